package cmd

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"

	"github.com/probekit/probekit/shared/cliutil"
)

func TestLint(t *testing.T) {
	if errs := cliutil.Lint(NewApp("test")); len(errs) > 0 {
		t.Fatal(errs)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-s", "no-such-host.invalid", "--duration", "1s"}, 2, `cannot resolve server "no-such-host.invalid"`},
		{[]string{"-p", "0"}, 2, "out of range"},
		{[]string{"--stun", "127.0.0.1:99999"}, 2, "--stun"},
		{[]string{"--mesh", strings.Repeat("m", 65)}, 2, "--mesh"},
	} {
		code, _, stderr := cliutil.RunCapture(context.Background(), NewApp("test"), tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and one line with %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
}

func TestPortInUse(t *testing.T) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	code, _, stderr := cliutil.RunCapture(context.Background(), NewApp("test"), "--bind", c.LocalAddr().String(), "--duration", "1s", "--nostun")
	if code != 1 || !strings.Contains(stderr, "address already in use") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// The original's flags are accepted: --nostun works (no STUN), --curses is ignored, -d, --hexdump,
// --loglines; the JSON summary is the last line with the fields the issue names.
func TestOriginalFlagsAndJSON(t *testing.T) {
	code, stdout, stderr := cliutil.RunCapture(context.Background(), NewApp("test"),
		"-s", "127.0.0.1", "-p", "9", "--nostun", "--curses", "--loglines", "5", "--json", "--duration", "300ms")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var s struct {
		Type   string `json:"type"`
		UUID   string `json:"uuid"`
		Server string `json:"server"`
		Self   struct {
			Local, Public string
			NAT           map[string]string `json:"nat"`
		} `json:"self"`
		Peers []json.RawMessage `json:"peers"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &s); err != nil {
		t.Fatal(err)
	}
	if s.Type != "summary" || len(s.UUID) != 32 || s.Server != "127.0.0.1:9" || s.Peers == nil {
		t.Errorf("summary %+v", s)
	}
	if !strings.Contains(s.Self.NAT["mapping_reason"], "STUN disabled") {
		t.Errorf("--nostun did not disable STUN: %+v", s.Self.NAT)
	}
	for _, k := range []string{"mapping", "filtering", "hairpin"} {
		if _, ok := s.Self.NAT[k]; !ok {
			t.Errorf("nat.%s missing", k)
		}
	}
	if !strings.Contains(stdout, `"event":"shutdown"`) {
		t.Errorf("no SHUTDOWN event:\n%s", stdout)
	}
}
