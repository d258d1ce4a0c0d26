// Package cmd builds twampd's command line and maps it onto server.Config, including the
// security policy (which modes a key file enables) and the RFC 6038/5938 extensions.
package cmd

import (
	"github.com/urfave/cli/v2"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/shared/httpside"
	"github.com/probekit/probekit/shared/twampctl"
	"github.com/probekit/probekit/twampd/internal/server"
)

// Flag names.
const (
	flagListen         = "listen"
	flagAuthModes      = "auth-modes"
	flagKeyFile        = "key-file"
	flagLimits         = "limits"
	flagTestPorts      = "test-ports"
	flagServWait       = "servwait"
	flagRefWait        = "refwait"
	flagMaxTimeout     = "max-timeout"
	flagMaxSessions    = "max-sessions"
	flagMaxConnections = "max-connections"
	flagMaxConnsHost   = "max-connections-per-host"
	flagMaxSessConn    = "max-sessions-per-connection"
	flagHandshake      = "handshake-timeout"
	flagCount          = "count"
	flagStrictStop     = "strict-stop"
	flagLight          = "light"
	flagMetrics        = "metrics"
	flagMetricsToken   = "metrics-token-file"
	flagNoKernelTS     = "no-kernel-timestamps"
	flagSynchronized   = "synchronized"
	flagBlocking       = "blocking"
	flagRealtime       = "realtime"
	flagBusyPoll       = "busy-poll"
	flagStrictSize     = "strict-size"
	flagWorkers        = "workers"
)

// DefaultMetrics is the default address of /metrics and /status.
const DefaultMetrics = "127.0.0.1:9862"

// Security modes offered when --auth-modes is not given: open without a key file; with one,
// the three keyed modes, as owamp's twampd does when it has keys.
const (
	defaultModesOpen  = twampctl.ModeUnauthenticated
	defaultModesKeyed = twampctl.ModeAuthenticated | twampctl.ModeEncrypted | twampctl.ModeMixed
)

// NewApp returns the twampd command.
func NewApp(version string) *cli.App {
	app := cliutil.NewApp("twampd", "TWAMP server and session-reflector (RFC 5357, 5618, 5938, 6038, 7750; TWAMP Light)", version)
	cliutil.SetManSection(app, 8) // a daemon
	app.UsageText = "twampd [flags]"
	app.Description = "twampd answers TWAMP-Control on TCP 862 and reflects the negotiated test sessions " +
		"(or, with --light, TWAMP Light packets on UDP). Without --auth-modes it offers open mode, or " +
		"authenticated, encrypted and mixed mode when --key-file is given. " +
		"The metrics port (--metrics) is optional: when its address is taken (a second twampd on " +
		"the host) twampd logs a warning and keeps serving TWAMP without it. " +
		"Every per-client resource is bounded by default: 64 control connections, 8 per client address " +
		"(others get a Modes 0 greeting: refused; when all are taken, the oldest one open longer than the " +
		"handshake timeout whose sessions got no test packet within it makes room), 10 s for the greeting exchange before SERVWAIT applies, " +
		"32 sessions per connection and 1000 in all. A requested session holds a UDP socket and a few " +
		"kilobytes; a running one about 300 KiB of buffers plus its socket buffer, so the defaults bound " +
		"twampd's memory to about 300 MB."
	app.Flags = append(app.Flags,
		&cli.StringSliceFlag{Name: flagListen, Aliases: []string{"S"}, Value: cli.NewStringSlice("[::]:862"),
			Usage: "TCP address for TWAMP-Control (UDP with --light); repeat for several"},
		&cli.StringFlag{Name: flagAuthModes, Aliases: []string{"a"},
			Usage: "security modes offered, comma-separated words open, authenticated, encrypted, mixed or letters O, A, E, M (default: open; with --key-file: authenticated,encrypted,mixed)"},
		&cli.StringFlag{Name: flagKeyFile, Aliases: []string{"k"}, Usage: "owamp pfstore key `FILE` with lines 'identity hex-pass-phrase' (mode 0600); enables the keyed modes"},
		&cli.StringFlag{Name: flagLimits, Usage: "per-identity limits `FILE`: lines 'identity|open|* sessions=N padding=N [deny]'"},
		&cli.StringFlag{Name: flagTestPorts, Aliases: []string{"P"}, Usage: "UDP port range `LO-HI` for test sessions after the requested port (default: kernel-chosen)"},
		&cli.DurationFlag{Name: flagServWait, Value: server.DefaultServWait, Usage: "close idle control connections after this long (SERVWAIT)"},
		&cli.DurationFlag{Name: flagRefWait, Value: server.DefaultRefWait, Usage: "end test sessions without packets after this long (REFWAIT)"},
		&cli.DurationFlag{Name: flagMaxTimeout, Value: server.DefaultMaxTimeout, Usage: "cap on the post-Stop-Sessions Timeout a client may request"},
		cliutil.IntFlag(flagMaxSessions, "most test sessions (requested or running) over all clients (0 = unlimited); with --light, most learned sessions (0 = the reflector's bound of 65536)", server.DefaultMaxSessions, 0, 1<<20),
		cliutil.IntFlag(flagMaxSessConn, "most test sessions one control connection may request (0 = unlimited)", server.DefaultMaxSessionsPerConnection, 0, 1<<20),
		cliutil.IntFlag(flagMaxConnections, "most concurrent control connections; clients beyond are refused with a Modes 0 greeting (0 = unlimited)", server.DefaultMaxConnections, 0, 1<<20),
		cliutil.IntFlag(flagMaxConnsHost, "most concurrent control connections from one client address (IPv6: one /64; 0 = unlimited)", server.DefaultMaxConnectionsPerHost, 0, 1<<20),
		&cli.DurationFlag{Name: flagHandshake, Value: server.DefaultHandshakeTimeout, Usage: "close a control connection whose greeting exchange (Set-Up-Response) takes longer; SERVWAIT applies after it"},
		cliutil.IntFlag(flagCount, "PBKDF2 iteration count offered in the greeting (power of 2, ≥ 1024)", server.DefaultCount, 1024, 1<<24),
		&cli.BoolFlag{Name: flagStrictStop, Usage: "close the control connection when Stop-Sessions miscounts the sessions (RFC 5357 §3.8)"},
		&cli.BoolFlag{Name: flagLight, Usage: "run a TWAMP Light reflector on --listen (UDP, no control connection)"},
		&cli.StringFlag{Name: flagMetrics, Value: DefaultMetrics,
			Usage: "serve /metrics (Prometheus) and /status (JSON) on `ADDR`; empty disables; an address other than loopback needs --metrics-token-file; if the address is taken twampd warns and serves without it"},
		&cli.StringFlag{Name: flagMetricsToken, Usage: "bearer token `FILE` (mode 0600, one word of ≥ 16 characters) required by every request to a non-loopback --metrics address"},
		&cli.BoolFlag{Name: flagNoKernelTS, Usage: "take receive timestamps in user space instead of SO_TIMESTAMPING"},
		&cli.BoolFlag{Name: flagSynchronized, Usage: "set the S bit in Error Estimates (clock synchronised to UTC)"},
		&cli.BoolFlag{Name: flagBlocking, Usage: "wait for test packets inside recvmmsg (one OS thread per test socket) instead of the Go network poller"},
		cliutil.IntFlag(flagRealtime, "serve each test socket (--light and sessions) on a SCHED_FIFO thread of this `PRIORITY` (1…99; needs CAP_SYS_NICE; implies --blocking)", 0, 0, 99),
		&cli.DurationFlag{Name: flagBusyPoll, Usage: "after each batch poll the test socket (--light and sessions) without sleeping for up to `DURATION` (lower residence time, one busy CPU per active socket; excludes --realtime)"},
		&cli.BoolFlag{Name: flagStrictSize, Usage: "with --light, never answer with more octets than the request: drop requests shorter than 41 octets (without it such replies are limited to 1000/s per source address)"},
		cliutil.IntFlag(flagWorkers, "with --light, `N` SO_REUSEPORT sockets per address, one worker each: the kernel spreads sessions over them, one CPU each", 1, 1, 64),
	)
	app.Action = func(c *cli.Context) error {
		cfg, err := Config(c)
		if err != nil {
			return err
		}
		return server.Run(c.Context, cfg)
	}
	return app
}

// Config validates the flags and returns the server configuration.
func Config(c *cli.Context) (server.Config, error) {
	if c.NArg() > 0 {
		return server.Config{}, cliutil.Usagef("unexpected argument %q", c.Args().First())
	}
	ports, err := cliutil.ParsePortRange(c.String(flagTestPorts))
	if err != nil {
		return server.Config{}, cliutil.Usagef("--%s: %v", flagTestPorts, err)
	}
	cfg := server.Config{
		Listen:                   c.StringSlice(flagListen),
		Count:                    uint32(cliutil.Int(c, flagCount)),
		ServWait:                 c.Duration(flagServWait),
		RefWait:                  c.Duration(flagRefWait),
		MaxTimeout:               c.Duration(flagMaxTimeout),
		TestPorts:                ports,
		MaxSessions:              int(cliutil.Int(c, flagMaxSessions)),
		MaxConnections:           int(cliutil.Int(c, flagMaxConnections)),
		MaxConnectionsPerHost:    int(cliutil.Int(c, flagMaxConnsHost)),
		MaxSessionsPerConnection: int(cliutil.Int(c, flagMaxSessConn)),
		HandshakeTimeout:         c.Duration(flagHandshake),
		StrictStop:               c.Bool(flagStrictStop),
		Light:                    c.Bool(flagLight),
		MetricsAddr:              c.String(flagMetrics),
		KernelTimestamps:         !c.Bool(flagNoKernelTS),
		Synchronized:             c.Bool(flagSynchronized),
		BusyPoll:                 c.Duration(flagBusyPoll),
		Realtime:                 int(cliutil.Int(c, flagRealtime)),
		Blocking:                 c.Bool(flagBlocking) || cliutil.Int(c, flagRealtime) > 0,
		StrictSize:               c.Bool(flagStrictSize),
		Workers:                  int(cliutil.Int(c, flagWorkers)),
		Logger:                   cliutil.Logger(c),
	}
	if cfg.ServWait <= 0 || cfg.RefWait <= 0 || cfg.MaxTimeout < 0 || cfg.HandshakeTimeout <= 0 {
		return server.Config{}, cliutil.Usagef("--%s, --%s and --%s must be positive", flagServWait, flagRefWait, flagHandshake)
	}
	if cfg.MetricsToken, err = httpside.LoadToken(c.String(flagMetricsToken)); err != nil {
		return server.Config{}, err
	}
	if f := c.String(flagKeyFile); f != "" {
		if cfg.Keys, err = twampctl.LoadKeyFile(f); err != nil {
			return server.Config{}, err
		}
		if len(cfg.Keys) == 0 {
			return server.Config{}, cliutil.Usagef("--%s %s holds no identity", flagKeyFile, f)
		}
	}
	switch {
	case c.IsSet(flagAuthModes):
		if cfg.Modes, err = twampctl.ParseModeLetters(c.String(flagAuthModes)); err != nil {
			return server.Config{}, cliutil.Usagef("--%s: %v", flagAuthModes, err)
		}
	case cfg.Light:
		cfg.Modes = defaultModesOpen
	case len(cfg.Keys) > 0:
		cfg.Modes = defaultModesKeyed
	default:
		cfg.Modes = defaultModesOpen
	}
	if f := c.String(flagLimits); f != "" {
		if cfg.Limits, err = server.LoadLimits(f); err != nil {
			return server.Config{}, err
		}
	}
	if cfg.Light && (cfg.Modes != twampctl.ModeUnauthenticated || len(cfg.Keys) > 0) {
		return server.Config{}, cliutil.Usagef("--%s is unauthenticated only (RFC 5357 Appendix I)", flagLight)
	}
	if cfg.Modes.Secure() && len(cfg.Keys) == 0 {
		return server.Config{}, cliutil.Usagef("--%s %s needs --%s (owamp pfstore: 'identity hex-pass-phrase' lines)",
			flagAuthModes, c.String(flagAuthModes), flagKeyFile)
	}
	if err := cfg.Validate(); err != nil {
		return server.Config{}, cliutil.Usagef("%v", err)
	}
	return cfg, nil
}
