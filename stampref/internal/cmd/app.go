// Package cmd builds stampref's command line and maps it onto server.Config.
package cmd

import (
	"net/netip"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/shared/httpside"
	"github.com/probekit/probekit/shared/reflector"
	"github.com/probekit/probekit/stampref/internal/server"
)

// Flag names.
const (
	flagListen          = "listen"
	flagKeyFile         = "key-file"
	flagAuth            = "auth"
	flagStateless       = "stateless"
	flagMaxSessions     = "max-sessions"
	flagIdleTimeout     = "idle-timeout"
	flagProvisionedOnly = "provisioned-only"
	flagRefuseDSCP      = "refuse-dscp"
	flagPTP             = "ptp"
	flagSynchronized    = "synchronized"
	flagClockError      = "clock-error"
	flagMonitor         = "monitor"
	flagNoMonitor       = "no-monitor"
	flagMonitorToken    = "monitor-token-file"
	flagProvisionedIdle = "provisioned-idle-timeout"
	flagUser            = "user"
	flagBatch           = "batch"
	flagBusyPoll        = "busy-poll"
	flagBlocking        = "blocking"
	flagRealtime        = "realtime"
	flagWorkers         = "workers"
	flagStrictSize      = "strict-size"
)

// DefaultMonitor is the default monitoring address.
const DefaultMonitor = "127.0.0.1:8862"

// DefaultProvisionedIdle is how long an API-provisioned session lives without packets.
const DefaultProvisionedIdle = time.Hour

// NewApp returns the stampref command.
func NewApp(version string) *cli.App {
	app := cliutil.NewApp("stampref", "STAMP Session-Reflector (RFC 8762, RFC 8972)", version)
	cliutil.SetManSection(app, 8)
	app.ArgsUsage = " "
	app.Description = "stampref answers STAMP test packets (and TWAMP-Light ones) on UDP 862: unauthenticated or " +
		"authenticated (HMAC-SHA-256/128), stateless or stateful, with every RFC 8972 TLV, symmetric reply " +
		"size, the received TTL copied and kernel receive timestamps as T2. A localhost HTTP API lists " +
		"sessions and counters (GET /sessions, /stats, Prometheus /metrics) and provisions sessions " +
		"(POST /sessions, DELETE /sessions/ID; these need the --monitor-token-file token and " +
		"Content-Type: application/json, so without a token file the API is read-only; provisioned sessions " +
		"count against --max-sessions and expire after --provisioned-idle-timeout without packets). --key-file alone selects authenticated mode. The monitoring " +
		"port is optional: when its address is taken (a second stampref on the host) stampref logs a " +
		"warning and keeps reflecting without it. SIGHUP reloads the key file; SIGTERM stops cleanly."
	app.Flags = append(app.Flags,
		&cli.StringSliceFlag{Name: flagListen, Value: cli.NewStringSlice("[::]:862"),
			Usage: "UDP `ADDR:PORT` to serve (repeatable; [::]:862 serves IPv4 and IPv6)"},
		&cli.StringFlag{Name: flagKeyFile, Aliases: []string{"k"}, Usage: "HMAC key `FILE` (raw octets, or hex:… ; mode 0600; reloaded on SIGHUP): authenticated mode"},
		&cli.BoolFlag{Name: flagAuth, Aliases: []string{"a"}, Usage: "authenticated mode (112-octet packets, HMAC-SHA-256/128); implied by --key-file"},
		&cli.BoolFlag{Name: flagStateless, Usage: "reflect the sender's sequence number instead of per-session counters"},
		cliutil.IntFlag(flagMaxSessions, "most sessions, learned and provisioned together (≤ 512 bytes each); when full, a new learned one replaces the least recently used learned one", reflector.DefaultMaxSessions, 1, 1<<24),
		&cli.DurationFlag{Name: flagIdleTimeout, Value: reflector.DefaultIdleTimeout, Usage: "expire learned sessions idle this long"},
		&cli.BoolFlag{Name: flagProvisionedOnly, Usage: "answer only sessions provisioned through the API"},
		&cli.BoolFlag{Name: flagRefuseDSCP, Usage: "do not apply Class of Service DSCP requests (reply with the received DSCP, RP=1)"},
		&cli.BoolFlag{Name: flagPTP, Usage: "write T2/T3 in truncated PTPv2 format (Z=1) instead of NTP"},
		&cli.BoolFlag{Name: flagSynchronized, Usage: "set the S bit: this host's clock is synchronised to UTC"},
		&cli.DurationFlag{Name: flagClockError, Value: time.Millisecond, Usage: "clock error reported in the Error Estimate"},
		&cli.StringFlag{Name: flagMonitor, Value: DefaultMonitor, Usage: "HTTP monitoring `ADDR:PORT` (an address other than loopback needs --monitor-token-file); if the address is taken stampref warns and serves without it"},
		&cli.StringFlag{Name: flagMonitorToken, Usage: "bearer token `FILE` (mode 0600, one word of ≥ 16 characters) for the monitoring API: needed by POST/DELETE (read-only without it) and, off loopback, by every request"},
		&cli.DurationFlag{Name: flagProvisionedIdle, Value: DefaultProvisionedIdle, Usage: "remove sessions provisioned through the API after this long without a packet (0 = never)"},
		&cli.BoolFlag{Name: flagNoMonitor, Usage: "disable the HTTP monitoring API"},
		&cli.StringFlag{Name: flagUser, Usage: "switch to `USER` after binding (when started as root)"},
		cliutil.IntFlag(flagBatch, "datagrams per recvmmsg/sendmmsg", 64, 1, 1024),
		&cli.BoolFlag{Name: flagBlocking, Usage: "wait for packets inside recvmmsg (one OS thread per listener) instead of the Go network poller"},
		cliutil.IntFlag(flagRealtime, "serve each listener on a SCHED_FIFO thread of this `PRIORITY` (1…99; needs CAP_SYS_NICE; implies --blocking)", 0, 0, 99),
		&cli.DurationFlag{Name: flagBusyPoll, Usage: "after each batch poll the socket without sleeping for up to `DURATION` (lower residence time, one busy CPU)"},
		cliutil.IntFlag(flagWorkers, "`N` SO_REUSEPORT sockets per listen address, one worker each: the kernel spreads sessions over them, one CPU each", 1, 1, 64),
		&cli.BoolFlag{Name: flagStrictSize, Usage: "never answer with more octets than the request: drop requests shorter than the reply layout (44 octets; without it such replies are limited to 1000/s per source address)"},
	)
	app.Action = func(c *cli.Context) error {
		cfg, err := Config(c)
		if err != nil {
			return err
		}
		return server.Run(c.Context, cfg, cliutil.Logger(c))
	}
	return app
}

// Config validates the flags and returns the server configuration.
func Config(c *cli.Context) (server.Config, error) {
	if c.NArg() > 0 {
		return server.Config{}, cliutil.Usagef("unexpected argument %q", c.Args().First())
	}
	cfg := server.Config{
		Listen:          c.StringSlice(flagListen),
		KeyFile:         c.String(flagKeyFile),
		Authenticated:   c.Bool(flagAuth),
		Monitor:         c.String(flagMonitor),
		ProvisionedIdle: c.Duration(flagProvisionedIdle),
		User:            c.String(flagUser),
		Blocking:        c.Bool(flagBlocking),
		Workers:         int(cliutil.Int(c, flagWorkers)),
		Reflector: reflector.Config{
			Stateless:       c.Bool(flagStateless),
			ProvisionedOnly: c.Bool(flagProvisionedOnly),
			MaxSessions:     int(cliutil.Int(c, flagMaxSessions)),
			IdleTimeout:     c.Duration(flagIdleTimeout),
			RefuseDSCP:      c.Bool(flagRefuseDSCP),
			PTP:             c.Bool(flagPTP),
			Synchronized:    c.Bool(flagSynchronized),
			ClockError:      c.Duration(flagClockError),
			Batch:           int(cliutil.Int(c, flagBatch)),
			BusyPoll:        c.Duration(flagBusyPoll),
			Realtime:        int(cliutil.Int(c, flagRealtime)),
			StrictSize:      c.Bool(flagStrictSize),
		},
	}
	if cfg.Reflector.Realtime > 0 {
		cfg.Blocking = true
	}
	if c.Bool(flagNoMonitor) {
		cfg.Monitor = ""
	}
	for _, l := range cfg.Listen {
		if _, err := netip.ParseAddrPort(l); err != nil {
			return cfg, cliutil.Usagef("--%s %q: want ADDR:PORT ([::]:862, 127.0.0.1:8620): %v", flagListen, l, err)
		}
	}
	if cfg.Monitor != "" {
		ap, err := netip.ParseAddrPort(cfg.Monitor)
		if err != nil {
			return cfg, cliutil.Usagef("--%s %q: want ADDR:PORT (127.0.0.1:8862)", flagMonitor, cfg.Monitor)
		}
		if f := c.String(flagMonitorToken); f != "" {
			if cfg.MonitorToken, err = httpside.LoadToken(f); err != nil {
				return cfg, err
			}
		}
		if !ap.Addr().IsLoopback() && cfg.MonitorToken == "" {
			return cfg, cliutil.Usagef("--%s %s is not loopback: it needs --%s", flagMonitor, cfg.Monitor, flagMonitorToken)
		}
	}
	if cfg.ProvisionedIdle < 0 {
		return cfg, cliutil.Usagef("--%s must not be negative", flagProvisionedIdle)
	}
	// A key file means authenticated mode, as on stampsend: never serve open when the user
	// gave a key (issue 10).
	if cfg.KeyFile != "" {
		if c.IsSet(flagAuth) && !cfg.Authenticated {
			return cfg, cliutil.Usagef("--%s means authenticated mode; drop --%s=false (or the key file to serve unauthenticated)", flagKeyFile, flagAuth)
		}
		cfg.Authenticated = true
	}
	if cfg.Authenticated && cfg.KeyFile == "" && !cfg.Reflector.ProvisionedOnly {
		return cfg, cliutil.Usagef("--%s needs --%s (or --%s with per-session keys)", flagAuth, flagKeyFile, flagProvisionedOnly)
	}
	if cfg.Reflector.IdleTimeout <= 0 {
		return cfg, cliutil.Usagef("--%s must be positive", flagIdleTimeout)
	}
	if err := reflector.CheckScheduling(cfg.Reflector.BusyPoll, cfg.Reflector.Realtime); err != nil {
		return cfg, cliutil.Usagef("--%s/--%s: %v", flagBusyPoll, flagRealtime, err)
	}
	if cfg.Reflector.ClockError <= 0 {
		return cfg, cliutil.Usagef("--%s must be positive", flagClockError)
	}
	return cfg, nil
}
