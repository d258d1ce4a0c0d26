package cmd

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/tcpexpose/internal/probe"
)

func TestLint(t *testing.T) {
	for _, err := range cliutil.Lint(NewApp("test")) {
		t.Error(err)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"test"},
		{"test", "--tests", "nosuch", "127.0.0.1"},
		{"test", "--send", "carrier-pigeon", "127.0.0.1"},
		{"test", "127.0.0.1:0"},
		{"send", "127.0.0.1"},
		{"send", "--opts", "mss", "127.0.0.1:80"},
		{"send", "--flags", "SX", "127.0.0.1:80"},
		{"send", "--script", "flags=S bogus", "127.0.0.1:80"},
		{"responder", "--listen", "nonsense:port"},
		{"responder", "extra"},
	} {
		code, _, stderr := cliutil.RunCapture(context.Background(), NewApp("test"), args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, stderr)
		}
		if strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%v: usage error is not one line: %q", args, stderr)
		}
	}
}

// TestSummary: the final line has the original's key order (tcpexposure.py
// make_result_string), −1 for keys not run, then the extra keys; JSON keeps that order.
func TestSummary(t *testing.T) {
	sum := &probe.Summary{Codes: map[string]int{}}
	for _, k := range probe.AllKeys() {
		sum.Codes[k] = -1
	}
	sum.Codes["Syn"], sum.Codes["SynOpt"], sum.Codes["Ecn"] = 0, 3, 4
	var b bytes.Buffer
	if err := writeSummary(&b, sum, false); err != nil {
		t.Fatal(err)
	}
	want := "Result: Syn 0 SynOpt 3 SynOpt2 -1 Data -1 DataKnownOpt -1 DataOpt -1 Split -1 SplitKnownOpt -1 SplitOpt -1 " +
		"Coalesce -1 CoalesceKnownOpt -1 CoalesceOpt -1 CoalesceFq -1 CoalesceFqKnownOpt -1 CoalesceFqOpt -1 " +
		"PseudoRtx -1 PseudoRtxL -1 PseudoRtxS -1 SeqHole -1 AckHole -1 UnexpAwnd -1 UnexpAwnd4Opt -1 " +
		"ChangeIncomingSeq -1 ChangeIncomingSeq4Opt -1 ChangeAwnd -1 ChangeAwnd4KnownOpt -1 ChangeAwnd4Opt -1 " +
		"ChangeSeq -1 ChangeSeq4KnownOpt -1 ChangeSeq4Opt -1 IndAck -1 IndAck4KnownOpt -1 IndAck4Opt -1 " +
		"ChangeMss -1 WsConsistent -1 TtlReset -1 SackTranslated -1 UnseenAck -1 Ecn 4\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	if err := writeSummary(&b, sum, true); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), `{"results":{"Syn":0,"SynOpt":3,"SynOpt2":-1,`) || !strings.Contains(b.String(), `"type":"result"`) ||
		!strings.Contains(b.String(), `"UnseenAck":-1,"Ecn":4}`) {
		t.Errorf("JSON %s", b.String())
	}
}

func TestParseTarget(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1":           "127.0.0.1:34343",
		"127.0.0.1:80":        "127.0.0.1:80",
		"[::1]:8080":          "[::1]:8080",
		"::1":                 "[::1]:34343",
		"[::ffff:10.0.0.1]:1": "10.0.0.1:1",
	} {
		got, err := parseTarget(in, 34343)
		if err != nil || got.String() != want {
			t.Errorf("%s: %v %v, want %s", in, got, err, want)
		}
	}
	if _, err := parseTarget("127.0.0.1:99999", 1); err == nil {
		t.Error("port out of range accepted")
	}
	if l, err := parseListen(":34343"); err != nil || l.Addr().IsValid() || l.Port() != 34343 {
		t.Errorf("parseListen: %v %v", l, err)
	}
}
