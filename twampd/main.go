// Command twampd is a TWAMP Server and Session-Reflector (RFC 5357) with authenticated,
// encrypted and mixed modes, RFC 5938 individual session control and a TWAMP Light mode.
package main

import (
	"os"

	"github.com/urfave/cli/v2"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/shared/twampctl"
	"github.com/probekit/probekit/twampd/internal/server"
)

var version = "dev"

func main() { os.Exit(cliutil.Main(newApp(), os.Args)) }

func newApp() *cli.App {
	app := cliutil.NewApp("twampd", "TWAMP server and session-reflector (RFC 5357, 5618, 5938, 6038, 7750; TWAMP Light)", version)
	cliutil.SetManSection(app, 8) // a daemon
	app.UsageText = "twampd [flags]"
	app.Flags = append(app.Flags,
		&cli.StringSliceFlag{Name: "listen", Aliases: []string{"S"}, Value: cli.NewStringSlice("[::]:862"),
			Usage: "TCP address for TWAMP-Control (UDP with --light); repeat for several"},
		&cli.StringFlag{Name: "auth-modes", Aliases: []string{"a"}, Value: "O",
			Usage: "security modes offered: any of O (open), A (authenticated), E (encrypted), M (mixed)"},
		&cli.StringFlag{Name: "key-file", Aliases: []string{"k"}, Usage: "owamp pfstore key file: `FILE` with lines 'identity hex-pass-phrase'"},
		&cli.StringFlag{Name: "limits", Usage: "per-identity limits `FILE`: lines 'identity|open|* sessions=N padding=N [deny]'"},
		&cli.StringFlag{Name: "test-ports", Aliases: []string{"P"}, Usage: "UDP port range `LO-HI` for test sessions after the requested port (default: kernel-chosen)"},
		&cli.DurationFlag{Name: "servwait", Value: server.DefaultServWait, Usage: "close idle control connections after this long (SERVWAIT)"},
		&cli.DurationFlag{Name: "refwait", Value: server.DefaultRefWait, Usage: "end test sessions without packets after this long (REFWAIT)"},
		&cli.DurationFlag{Name: "max-timeout", Value: server.DefaultMaxTimeout, Usage: "cap on the post-Stop-Sessions Timeout a client may request"},
		cliutil.IntFlag("max-sessions", "most concurrent test sessions over all clients (0 = unlimited)", 0, 0, 1<<20),
		cliutil.IntFlag("max-connections", "most concurrent control connections (0 = unlimited)", 0, 0, 1<<20),
		cliutil.IntFlag("count", "PBKDF2 iteration count offered in the greeting (power of 2, ≥ 1024)", server.DefaultCount, 1024, 1<<24),
		&cli.BoolFlag{Name: "strict-stop", Usage: "close the control connection when Stop-Sessions miscounts the sessions (RFC 5357 §3.8)"},
		&cli.BoolFlag{Name: "light", Usage: "run a TWAMP Light reflector on --listen (UDP, no control connection)"},
		&cli.StringFlag{Name: "metrics", Value: "127.0.0.1:9862", Usage: "serve /metrics (Prometheus) and /status (JSON) on `ADDR`; empty disables"},
		&cli.BoolFlag{Name: "no-kernel-timestamps", Usage: "take receive timestamps in user space instead of SO_TIMESTAMPING"},
		&cli.BoolFlag{Name: "synchronized", Usage: "set the S bit in Error Estimates (clock synchronised to UTC)"},
		&cli.BoolFlag{Name: "blocking", Usage: "wait for test packets inside recvmmsg (one OS thread per test socket) instead of the Go network poller"},
		cliutil.IntFlag("realtime", "serve each test socket (--light and sessions) on a SCHED_FIFO thread of this `PRIORITY` (1…99; needs CAP_SYS_NICE; implies --blocking)", 0, 0, 99),
		&cli.DurationFlag{Name: "busy-poll", Usage: "after each batch poll the test socket (--light and sessions) without sleeping for up to `DURATION` (lower residence time, one busy CPU per active socket; excludes --realtime)"},
	)
	app.Action = func(c *cli.Context) error {
		cfg, err := config(c)
		if err != nil {
			return err
		}
		return server.Run(c.Context, cfg)
	}
	return app
}

// config validates the flags and returns the server configuration.
func config(c *cli.Context) (server.Config, error) {
	if c.NArg() > 0 {
		return server.Config{}, cliutil.Usagef("unexpected argument %q", c.Args().First())
	}
	modes, err := twampctl.ParseModeLetters(c.String("auth-modes"))
	if err != nil {
		return server.Config{}, cliutil.Usagef("--auth-modes: %v", err)
	}
	ports, err := server.ParsePortRange(c.String("test-ports"))
	if err != nil {
		return server.Config{}, cliutil.Usagef("--test-ports: %v", err)
	}
	cfg := server.Config{
		Listen:           c.StringSlice("listen"),
		Modes:            modes,
		Count:            uint32(cliutil.Int(c, "count")),
		ServWait:         c.Duration("servwait"),
		RefWait:          c.Duration("refwait"),
		MaxTimeout:       c.Duration("max-timeout"),
		TestPorts:        ports,
		MaxSessions:      int(cliutil.Int(c, "max-sessions")),
		MaxConnections:   int(cliutil.Int(c, "max-connections")),
		StrictStop:       c.Bool("strict-stop"),
		Light:            c.Bool("light"),
		MetricsAddr:      c.String("metrics"),
		KernelTimestamps: !c.Bool("no-kernel-timestamps"),
		Synchronized:     c.Bool("synchronized"),
		BusyPoll:         c.Duration("busy-poll"),
		Realtime:         int(cliutil.Int(c, "realtime")),
		Blocking:         c.Bool("blocking") || cliutil.Int(c, "realtime") > 0,
		Logger:           cliutil.Logger(c),
	}
	if cfg.ServWait <= 0 || cfg.RefWait <= 0 || cfg.MaxTimeout < 0 {
		return server.Config{}, cliutil.Usagef("--servwait and --refwait must be positive")
	}
	if f := c.String("key-file"); f != "" {
		if cfg.Keys, err = twampctl.LoadKeyFile(f); err != nil {
			return server.Config{}, err
		}
	}
	if f := c.String("limits"); f != "" {
		if cfg.Limits, err = server.LoadLimits(f); err != nil {
			return server.Config{}, err
		}
	}
	if cfg.Light && modes != twampctl.ModeUnauthenticated {
		return server.Config{}, cliutil.Usagef("--light is unauthenticated only (RFC 5357 Appendix I)")
	}
	if err := cfg.Validate(); err != nil {
		return server.Config{}, cliutil.Usagef("%v", err)
	}
	return cfg, nil
}
