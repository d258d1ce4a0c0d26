package cmd

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/stampref/internal/server"
)

func parse(t *testing.T, args ...string) (server.Config, int) {
	t.Helper()
	app := NewApp("test")
	app.Writer, app.ErrWriter = io.Discard, os.Stderr
	var cfg server.Config
	app.Action = func(c *cli.Context) error {
		var err error
		cfg, err = Config(c)
		return err
	}
	return cfg, cliutil.Run(context.Background(), app, append([]string{"stampref"}, args...))
}

// B-02: stampref listens on UDP 862 (IPv4 and IPv6) by default; --listen is repeatable.
func TestB02DefaultListen(t *testing.T) {
	cfg, code := parse(t)
	if code != 0 || len(cfg.Listen) != 1 || cfg.Listen[0] != "[::]:862" || cfg.Monitor != DefaultMonitor {
		t.Fatalf("code %d cfg %+v", code, cfg)
	}
	cfg, code = parse(t, "--listen", "127.0.0.1:8620", "--listen", "[::1]:8620", "--stateless", "--max-sessions", "10",
		"--idle-timeout", "30s", "--ptp", "--no-monitor")
	if code != 0 || len(cfg.Listen) != 2 || !cfg.Reflector.Stateless || cfg.Reflector.MaxSessions != 10 ||
		cfg.Reflector.IdleTimeout != 30*time.Second || !cfg.Reflector.PTP || cfg.Monitor != "" {
		t.Errorf("code %d cfg %+v", code, cfg)
	}
}

func TestUsage(t *testing.T) {
	for _, bad := range [][]string{{"--listen", "x"}, {"--monitor", "10.0.0.1:80"}, {"--auth"}, {"extra"},
		{"--idle-timeout", "0s"}, {"--max-sessions", "-1"}, {"--busy-poll", "2s"},
		{"--busy-poll", "100us", "--realtime", "10"}} {
		if _, code := parse(t, bad...); code != cliutil.ExitUsage {
			t.Errorf("%v: exit %d, want 2", bad, code)
		}
	}
	if _, code := parse(t, "--auth", "--provisioned-only"); code != 0 {
		t.Error("--auth --provisioned-only refused")
	}
}

// Issue 10: a key file means authenticated mode, as on stampsend; never serve open when the
// user gave a key.
func TestKeyFileMeansAuthenticated(t *testing.T) {
	cfg, code := parse(t, "--key-file", "/etc/stampref/stamp.key")
	if code != 0 || !cfg.Authenticated || cfg.KeyFile != "/etc/stampref/stamp.key" {
		t.Errorf("--key-file: exit %d, authenticated %v", code, cfg.Authenticated)
	}
	cfg, code = parse(t, "-k", "K", "--auth")
	if code != 0 || !cfg.Authenticated {
		t.Errorf("--key-file --auth: exit %d, authenticated %v", code, cfg.Authenticated)
	}
	if _, code := parse(t, "-k", "K", "--auth=false"); code != cliutil.ExitUsage {
		t.Errorf("--key-file --auth=false: exit %d, want usage error", code)
	}
	if cfg, _ := parse(t); cfg.Authenticated {
		t.Error("authenticated without a key file or --auth")
	}
}

func TestHelpDefaults(t *testing.T) {
	code, out, _ := cliutil.RunCapture(context.Background(), NewApp("test"), "--help")
	for _, want := range []string{"implied by --key-file", "if the address is taken stampref warns and serves without it"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}

// Issue 11 H9: the monitoring API off loopback needs a token file; the token file must be
// private; provisioned sessions expire after --provisioned-idle-timeout.
func TestMonitorToken(t *testing.T) {
	dir := t.TempDir()
	tok := dir + "/token"
	if err := os.WriteFile(tok, []byte("0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, code := parse(t, "--monitor", "0.0.0.0:8862", "--monitor-token-file", tok, "--provisioned-idle-timeout", "10m")
	if code != 0 || cfg.MonitorToken != "0123456789abcdef0123" || cfg.Monitor != "0.0.0.0:8862" || cfg.ProvisionedIdle != 10*time.Minute {
		t.Errorf("exit %d cfg %+v", code, cfg)
	}
	if cfg, _ := parse(t); cfg.MonitorToken != "" || cfg.ProvisionedIdle != DefaultProvisionedIdle {
		t.Errorf("defaults %+v", cfg)
	}
	if _, code := parse(t, "--monitor", "0.0.0.0:8862"); code != cliutil.ExitUsage {
		t.Errorf("wildcard monitor without token: exit %d", code)
	}
	if err := os.Chmod(tok, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := cliutil.RunCapture(context.Background(), NewApp("test"), "--monitor-token-file", tok, "--listen", "127.0.0.1:0")
	if code != cliutil.ExitFailure || !strings.Contains(stderr, "chmod 600") {
		t.Errorf("0644 token file: exit %d %q", code, stderr)
	}
}
