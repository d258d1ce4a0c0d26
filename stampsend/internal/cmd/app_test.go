package cmd

import (
	"context"
	"io"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/stampsend/internal/sender"
)

// parse runs the command line through the real app and returns the Config it builds.
func parse(t *testing.T, args ...string) (sender.Config, int) {
	t.Helper()
	app := NewApp("test")
	app.Writer, app.ErrWriter = io.Discard, os.Stderr
	var cfg sender.Config
	app.Action = func(c *cli.Context) error {
		var err error
		cfg, err = Config(c)
		return err
	}
	code := cliutil.Run(context.Background(), app, append([]string{"stampsend"}, args...))
	return cfg, code
}

// B-01: the default destination port is 862; other ports and IPv6 literals work.
func TestB01DefaultPort(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1":      "127.0.0.1:862",
		"127.0.0.1:8620": "127.0.0.1:8620",
		"::1":            "[::1]:862",
		"[::1]":          "[::1]:862",
		"[::1]:9":        "[::1]:9",
		"localhost:7":    "127.0.0.1:7",
	} {
		got, err := ParseTarget(context.Background(), in)
		if err != nil || got != netip.MustParseAddrPort(want) {
			t.Errorf("%q: %v %v, want %s", in, got, err, want)
		}
	}
	if _, err := ParseTarget(context.Background(), "127.0.0.1:0"); err == nil {
		t.Error("port 0 accepted")
	}
}

// without --ssid every session gets a fresh non-zero SSID; --ssid sets it.
func TestX01SSID(t *testing.T) {
	seen := map[uint16]bool{}
	for i := 0; i < 50; i++ {
		cfg, code := parse(t, "127.0.0.1")
		if code != 0 || cfg.SSID == 0 {
			t.Fatalf("code %d ssid %d", code, cfg.SSID)
		}
		seen[cfg.SSID] = true
	}
	if len(seen) < 2 {
		t.Error("the same SSID for 50 sessions")
	}
	if cfg, _ := parse(t, "--ssid", "77", "127.0.0.1"); cfg.SSID != 77 {
		t.Errorf("--ssid: %d", cfg.SSID)
	}
}

func TestFlags(t *testing.T) {
	cfg, code := parse(t, "-c", "5", "-i", "0.01", "--schedule", "poisson", "--dscp", "ef", "--ecn", "ect0",
		"--tlv", "time", "--padding", "20", "-W", "3s", "127.0.0.1:9")
	if code != 0 || cfg.Count != 5 || cfg.Interval != 10*time.Millisecond || !cfg.Poisson || cfg.DSCP != 46 || cfg.ECN != 2 ||
		len(cfg.TLVs) != 2 || cfg.TLVs[1].Type != testpkt.TypeExtraPadding || len(cfg.TLVs[1].Value) != 20 || cfg.Timeout != 3*time.Second {
		t.Errorf("code %d cfg %+v", code, cfg)
	}
	cfg, code = parse(t, "--tlv", "cos:dscp=ef,ecn=ect0", "127.0.0.1")
	if code != 0 || len(cfg.TLVs) != 1 || cfg.TLVs[0].Value[0] != 0xb8 || cfg.TLVs[0].Value[2] != 0x80 {
		t.Errorf("--tlv with commas: code %d %+v", code, cfg.TLVs)
	}
	for _, bad := range [][]string{{}, {"a", "b"}, {"-i", "x", "127.0.0.1"}, {"--ecn", "x", "127.0.0.1"},
		{"--tlv", "cos:dscp=x", "127.0.0.1"}, {"-k", "/nonexistent", "127.0.0.1"}, {"-W", "0s", "127.0.0.1"}} {
		if _, code := parse(t, bad...); code == 0 {
			t.Errorf("%v accepted", bad)
		}
	}
	if d, err := ParseInterval("250us"); err != nil || d != 250*time.Microsecond {
		t.Errorf("ParseInterval: %v %v", d, err)
	}
}

// Integer flags are decimal (README): "--count 010" is ten packets, not eight (issue 10).
func TestDecimalFlags(t *testing.T) {
	cfg, code := parse(t, "--count", "010", "--seed", "010", "127.0.0.1")
	if code != 0 || cfg.Count != 10 || cfg.Seed != 10 {
		t.Errorf("code %d count %d seed %d, want 10 and 10", code, cfg.Count, cfg.Seed)
	}
	for _, bad := range []string{"0x10", "-1", "1e3"} {
		if _, code := parse(t, "--count", bad, "127.0.0.1"); code != cliutil.ExitUsage {
			t.Errorf("--count %s: exit %d, want %d", bad, code, cliutil.ExitUsage)
		}
	}
	if errs := cliutil.Lint(NewApp("test")); len(errs) > 0 {
		t.Error(errs)
	}
}

// The man page documents the exit status: cliutil's rule plus stampsend's own cases.
func TestManPageExitStatus(t *testing.T) {
	page, err := cliutil.ManPage(NewApp("test"), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".SH EXIT STATUS", "130, 143", "reflector stopped answering", "no reply came back", "exits 0 like ping"} {
		if !strings.Contains(page, want) {
			t.Errorf("man page lacks %q", want)
		}
	}
}
