package cmd

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/shared/twampctl"
	"github.com/probekit/probekit/twampd/internal/server"
)

func parse(t *testing.T, args ...string) (server.Config, int, string) {
	t.Helper()
	app := NewApp("test")
	var stderr strings.Builder
	app.Writer, app.ErrWriter = io.Discard, &stderr
	var cfg server.Config
	app.Action = func(c *cli.Context) error {
		var err error
		cfg, err = Config(c)
		return err
	}
	code := cliutil.Run(context.Background(), app, append([]string{"twampd"}, args...))
	return cfg, code, stderr.String()
}

func keyFile(t *testing.T, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "twampd.pfs")
	if err := os.WriteFile(p, []byte("alice\t736563726574\nbob\t626f62\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// Every flag lands in its Config field.
func TestFlagMapping(t *testing.T) {
	limits := filepath.Join(t.TempDir(), "limits")
	if err := os.WriteFile(limits, []byte("open sessions=2\nalice padding=1400\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, code, errOut := parse(t, "-S", "127.0.0.1:8620", "-S", "[::1]:8620", "-P", "9000-9010",
		"--servwait", "30s", "--refwait", "40s", "--max-timeout", "5s", "--max-sessions", "7",
		"--max-connections", "3", "--count", "4096", "--strict-stop", "--metrics", "127.0.0.1:9999",
		"--no-kernel-timestamps", "--synchronized", "--limits", limits, "--max-connections-per-host", "2",
		"--max-sessions-per-connection", "5", "--handshake-timeout", "3s")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := server.Config{Listen: []string{"127.0.0.1:8620", "[::1]:8620"}, Modes: twampctl.ModeUnauthenticated,
		Count: 4096, ServWait: 30 * time.Second, RefWait: 40 * time.Second, MaxTimeout: 5 * time.Second,
		TestPorts: server.PortRange{Lo: 9000, Hi: 9010}, MaxSessions: 7, MaxConnections: 3, StrictStop: true,
		MetricsAddr: "127.0.0.1:9999", KernelTimestamps: false, Synchronized: true,
		MaxConnectionsPerHost: 2, MaxSessionsPerConnection: 5, HandshakeTimeout: 3 * time.Second}
	got := cfg
	got.Logger, got.Limits = nil, nil
	if !equalConfig(got, want) {
		t.Errorf("config\n got %+v\nwant %+v", got, want)
	}
	if cfg.Limits.For("").MaxSessions != 2 || cfg.Limits.For("alice").MaxPadding != 1400 {
		t.Errorf("limits %+v", cfg.Limits)
	}
	// Defaults.
	cfg, code, _ = parse(t)
	if code != 0 || len(cfg.Listen) != 1 || cfg.Listen[0] != "[::]:862" || cfg.MetricsAddr != DefaultMetrics ||
		cfg.ServWait != server.DefaultServWait || cfg.RefWait != server.DefaultRefWait || !cfg.KernelTimestamps ||
		cfg.Count != server.DefaultCount || cfg.Light || cfg.MaxConnections != server.DefaultMaxConnections ||
		cfg.MaxConnectionsPerHost != server.DefaultMaxConnectionsPerHost || cfg.MaxSessions != server.DefaultMaxSessions ||
		cfg.MaxSessionsPerConnection != server.DefaultMaxSessionsPerConnection || cfg.HandshakeTimeout != server.DefaultHandshakeTimeout {
		t.Errorf("defaults: exit %d %+v", code, cfg)
	}
	cfg, _, _ = parse(t, "--metrics=")
	if cfg.MetricsAddr != "" {
		t.Errorf("--metrics= left %q", cfg.MetricsAddr)
	}
}

func equalConfig(a, b server.Config) bool {
	if len(a.Listen) != len(b.Listen) {
		return false
	}
	for i := range a.Listen {
		if a.Listen[i] != b.Listen[i] {
			return false
		}
	}
	a.Listen, b.Listen = nil, nil
	a.Keys, b.Keys = nil, nil
	return a.Modes == b.Modes && a.Count == b.Count && a.ServWait == b.ServWait && a.RefWait == b.RefWait &&
		a.MaxTimeout == b.MaxTimeout && a.TestPorts == b.TestPorts && a.MaxSessions == b.MaxSessions &&
		a.MaxConnections == b.MaxConnections && a.StrictStop == b.StrictStop && a.Light == b.Light &&
		a.MetricsAddr == b.MetricsAddr && a.KernelTimestamps == b.KernelTimestamps &&
		a.Synchronized == b.Synchronized && a.BusyPoll == b.BusyPoll && a.Realtime == b.Realtime &&
		a.Blocking == b.Blocking && a.MaxConnectionsPerHost == b.MaxConnectionsPerHost &&
		a.MaxSessionsPerConnection == b.MaxSessionsPerConnection && a.HandshakeTimeout == b.HandshakeTimeout
}

// Issue 10: a key file alone offers authenticated, encrypted and mixed (as owamp's twampd);
// --auth-modes takes the words --help prints and the letters.
func TestSecurityModes(t *testing.T) {
	O, A, E, M := twampctl.ModeUnauthenticated, twampctl.ModeAuthenticated, twampctl.ModeEncrypted, twampctl.ModeMixed
	kf := keyFile(t, 0o600)
	for _, tc := range []struct {
		args []string
		want twampctl.Mode
	}{
		{nil, O},
		{[]string{"-k", kf}, A | E | M},
		{[]string{"--key-file", kf, "-a", "OAEM"}, O | A | E | M},
		{[]string{"-k", kf, "--auth-modes", "open,authenticated,encrypted,mixed"}, O | A | E | M},
		{[]string{"-k", kf, "--auth-modes", "encrypted"}, E},
		{[]string{"-k", kf, "--auth-modes", "open"}, O},
		{[]string{"--auth-modes", "open"}, O},
		{[]string{"--light"}, O},
		{[]string{"--light", "-a", "open"}, O},
	} {
		cfg, code, errOut := parse(t, tc.args...)
		if code != 0 || cfg.Modes != tc.want {
			t.Errorf("%v: exit %d (%s), modes %s, want %s", tc.args, code, errOut, cfg.Modes, tc.want)
		}
		if tc.want.Secure() && len(cfg.Keys) != 2 {
			t.Errorf("%v: keys %v", tc.args, cfg.Keys)
		}
	}
}

// The socket scheduling flags map onto the server configuration (--realtime implies
// --blocking) and are checked like stampref's.
func TestSchedulingFlags(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		busyPoll time.Duration
		realtime int
		blocking bool
	}{
		{nil, 0, 0, false},
		{[]string{"--light", "--busy-poll", "200us"}, 200 * time.Microsecond, 0, false},
		{[]string{"--realtime", "10"}, 0, 10, true},
		{[]string{"--light", "--blocking"}, 0, 0, true},
		{[]string{"--blocking", "--busy-poll", "1ms"}, time.Millisecond, 0, true},
	} {
		cfg, code, _ := parse(t, tc.args...)
		if code != 0 || cfg.BusyPoll != tc.busyPoll || cfg.Realtime != tc.realtime || cfg.Blocking != tc.blocking {
			t.Errorf("%v: exit %d, busy-poll %v realtime %d blocking %v", tc.args, code, cfg.BusyPoll, cfg.Realtime, cfg.Blocking)
		}
	}
}

func TestUsage(t *testing.T) {
	kf := keyFile(t, 0o600)
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"extra"}, "unexpected argument"},
		{[]string{"--busy-poll", "2s"}, ""},
		{[]string{"--busy-poll", "-1ms"}, ""},
		{[]string{"--busy-poll", "100us", "--realtime", "10"}, ""},
		{[]string{"--realtime", "100"}, ""},
		{[]string{"--realtime", "-1"}, ""},
		{[]string{"--refwait", "0s"}, "must be positive"},
		{[]string{"--handshake-timeout", "0s"}, "must be positive"},
		{[]string{"--light", "-a", "OA"}, "unauthenticated only"},
		{[]string{"--light", "-k", kf}, ""},
		{[]string{"--test-ports", "9-1"}, "--test-ports"},
		{[]string{"-a", "AE"}, "needs --key-file"},
		{[]string{"-a", "authenticated"}, "needs --key-file"},
		{[]string{"-a", "opn"}, "unknown mode"},
		{[]string{"-a", ""}, "empty mode list"},
		{[]string{"--count", "1000"}, ""},
		{[]string{"--metrics", "0.0.0.0:9862"}, "needs a token"},
		{[]string{"--metrics", "localhost:9862"}, "want IP:PORT"},
	} {
		_, code, errOut := parse(t, tc.args...)
		if code != cliutil.ExitUsage || !strings.Contains(errOut, tc.msg) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want %d and one line with %q", tc.args, code, errOut, cliutil.ExitUsage, tc.msg)
		}
	}
}

// A key file other accounts can read is refused with one line naming chmod 600 (issue 11 H11).
func TestKeyFilePermissions(t *testing.T) {
	kf := keyFile(t, 0o644)
	_, code, errOut := parse(t, "-k", kf)
	if code != cliutil.ExitFailure || !strings.Contains(errOut, "chmod 600 "+kf) || strings.Count(errOut, "\n") != 1 {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

// --help states the defaults users trip over.
func TestHelp(t *testing.T) {
	code, out, _ := cliutil.RunCapture(context.Background(), NewApp("test"), "--help")
	for _, want := range []string{"open, authenticated, encrypted, mixed", "with --key-file: authenticated,encrypted,mixed",
		"if the address is taken twampd warns and serves without it", "64 control connections, 8 per client address",
		"32 sessions per connection and 1000 in all", "(default: 1000)", "(default: 10s)"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
	if errs := cliutil.Lint(NewApp("test")); len(errs) > 0 {
		t.Errorf("lint: %v", errs)
	}
}

// --metrics-token-file allows a metrics address off loopback (issue 11 H10).
func TestMetricsToken(t *testing.T) {
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("metrics-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, code, errOut := parse(t, "--metrics", "0.0.0.0:9862", "--metrics-token-file", tok)
	if code != 0 || cfg.MetricsToken != "metrics-token-0123456789" || cfg.MetricsAddr != "0.0.0.0:9862" {
		t.Errorf("exit %d (%s) %+v", code, errOut, cfg)
	}
	if err := os.Chmod(tok, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, code, errOut := parse(t, "--metrics-token-file", tok); code != cliutil.ExitFailure || !strings.Contains(errOut, "chmod 600") {
		t.Errorf("0640 token file: exit %d %q", code, errOut)
	}
}
