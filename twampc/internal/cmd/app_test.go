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
	"github.com/probekit/probekit/twampc/internal/client"
)

// parse runs the command line through the real app and returns what Config builds from it.
func parse(t *testing.T, args ...string) (client.Config, client.Output, int) {
	t.Helper()
	app := NewApp("test")
	app.Writer, app.ErrWriter = io.Discard, io.Discard
	var cfg client.Config
	var out client.Output
	app.Action = func(c *cli.Context) error {
		var err error
		cfg, out, err = Config(c)
		return err
	}
	code := cliutil.Run(context.Background(), app, append([]string{"twampc"}, args...))
	return cfg, out, code
}

func TestDefaults(t *testing.T) {
	cfg, out, code := parse(t, "192.0.2.1")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if cfg.Target != "192.0.2.1" || cfg.Count != 100 || cfg.Interval != 100*time.Millisecond || !cfg.Poisson ||
		cfg.LossTimeout != 2*time.Second || cfg.Padding != -1 || cfg.Modes != twampctl.ModeUnauthenticated ||
		cfg.Sessions != 1 || cfg.ConnectTimeout != 10*time.Second || cfg.Network != "" || cfg.Light ||
		cfg.ReflectPadding != -1 || len(cfg.Percentiles) != 4 || cfg.Percentiles[3] != 99 {
		t.Errorf("defaults: %+v", cfg)
	}
	if out.Unit != 'm' || out.Format != cliutil.FormatText || out.Verbose || out.Raw || out.W == nil {
		t.Errorf("output: %+v", out)
	}
}

func TestFlagMapping(t *testing.T) {
	cfg, out, code := parse(t, "-c", "010", "-i", "0.01f", "-L", "3s", "-s", "100", "--zero-padding", "-D", "af41",
		"--sessions", "3", "-P", "9000-9010", "-z", "1s", "-Z", "-4", "-S", "127.0.0.1", "--dscp-ecn",
		"--individual", "-a", "50,99.9", "-v", "-n", "u", "--connect-timeout", "5s", "--format", "json", "host:8620")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	want := client.Config{Target: "host:8620", Count: 10, Schedule: client.Schedule{Interval: 10 * time.Millisecond},
		LossTimeout: 3 * time.Second, Padding: 100, ZeroPadding: true, DSCP: 34, Modes: twampctl.ModeUnauthenticated,
		Sessions: 3, TestPortLo: 9000, TestPortHi: 9010, StartDelay: time.Second, ZeroAddresses: true, Network: "tcp4",
		Source: "127.0.0.1", DSCPECN: true, Individual: true, ConnectTimeout: 5 * time.Second, ReflectPadding: -1}
	if cfg.Target != want.Target || cfg.Count != want.Count || cfg.Schedule != want.Schedule ||
		cfg.LossTimeout != want.LossTimeout || cfg.Padding != want.Padding || cfg.ZeroPadding != want.ZeroPadding ||
		cfg.DSCP != want.DSCP || cfg.Modes != want.Modes || cfg.Sessions != want.Sessions ||
		cfg.TestPortLo != want.TestPortLo || cfg.TestPortHi != want.TestPortHi || cfg.StartDelay != want.StartDelay ||
		cfg.ZeroAddresses != want.ZeroAddresses || cfg.Network != want.Network || cfg.Source != want.Source ||
		cfg.DSCPECN != want.DSCPECN || cfg.Individual != want.Individual || cfg.ConnectTimeout != want.ConnectTimeout ||
		cfg.ReflectPadding != want.ReflectPadding || len(cfg.Percentiles) != 2 || cfg.Percentiles[1] != 99.9 {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
	if out.Unit != 'u' || !out.Verbose || out.Format != cliutil.FormatJSON {
		t.Errorf("output: %+v", out)
	}
	if cfg, _, code := parse(t, "--light", "-6", "-R", "::1"); code != 0 || !cfg.Light || cfg.Network != "tcp6" {
		t.Errorf("--light -6: exit %d %+v", code, cfg)
	}
	cfg, _, code = parse(t, "--reflect-octets", "0xbeef", "--reflect-padding", "8", "--symmetric", "h")
	if code != 0 || !cfg.ReflectOctets || cfg.OctetsToBeReflected != 0xbeef || cfg.ReflectPadding != 8 || !cfg.Symmetric {
		t.Errorf("RFC 6038 flags: exit %d %+v", code, cfg)
	}
	if cfg, _, _ := parse(t, "-P", "9000", "h"); cfg.TestPortLo != 9000 || cfg.TestPortHi != 9000 {
		t.Errorf("-P 9000: %d-%d", cfg.TestPortLo, cfg.TestPortHi)
	}
}

// Modes A/E/M: with a key file and identity the secret is loaded; without them open mode is
// the fallback when O is also acceptable, else a usage error.
func TestSecurityPolicy(t *testing.T) {
	kf := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(kf, []byte("alice\t0102030405060708090a0b0c0d0e0f10\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, code := parse(t, "-A", "AE", "-u", "alice", "-k", kf, "h")
	if code != 0 || cfg.Modes != twampctl.ModeAuthenticated|twampctl.ModeEncrypted || len(cfg.Secret) != 16 || cfg.Secret[0] != 1 {
		t.Errorf("A E with key: exit %d modes %v secret %x", code, cfg.Modes, cfg.Secret)
	}
	if cfg, _, code := parse(t, "-A", "AO", "h"); code != 0 || cfg.Modes != twampctl.ModeUnauthenticated {
		t.Errorf("AO without key: exit %d modes %v, want open", code, cfg.Modes)
	}
	if _, _, code := parse(t, "-A", "A", "h"); code != cliutil.ExitUsage {
		t.Errorf("A without key: exit %d", code)
	}
	if _, _, code := parse(t, "-A", "A", "-u", "bob", "-k", kf, "h"); code != cliutil.ExitUsage {
		t.Errorf("unknown identity: exit %d", code)
	}
	if _, _, code := parse(t, "-A", "A", "-u", "alice", "-k", kf+".missing", "h"); code != cliutil.ExitFailure {
		t.Errorf("missing key file: exit %d", code)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{}, {"a", "b"}, {"-c", "0", "h"}, {"-c", "0x10", "h"}, {"-i", "x", "h"}, {"-A", "X", "h"},
		{"-4", "-6", "h"}, {"-P", "10-9", "h"}, {"-P", "a-b", "h"}, {"-P", "0-9", "h"}, {"-a", "101", "h"},
		{"--reflect-octets", "xyz", "h"}, {"--reflect-padding", "4", "h"}, {"--light", "--symmetric", "h"},
		{"--light", "--reflect-octets", "1", "h"}, {"-n", "x", "h"}, {"--sessions", "0", "h"}, {"-s", "70000", "h"},
	} {
		if _, _, code := parse(t, args...); code != cliutil.ExitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, cliutil.ExitUsage)
		}
	}
}

func TestLint(t *testing.T) {
	if errs := cliutil.Lint(NewApp("test")); len(errs) > 0 {
		t.Error(errs)
	}
}

// The man page documents the exit status: cliutil's rule plus twampc's own cases.
func TestManPageExitStatus(t *testing.T) {
	page, err := cliutil.ManPage(NewApp("test"), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".SH EXIT STATUS", "130, 143", "Test session(s) Failed", "got no reply", "exits 0 like ping"} {
		if !strings.Contains(page, want) {
			t.Errorf("man page lacks %q", want)
		}
	}
}
