// Package cmd builds twampc's command line and maps it onto client.Config and client.Output.
package cmd

import (
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/shared/twampctl"
	"github.com/probekit/probekit/twampc/internal/client"
)

// NewApp returns the twampc command.
func NewApp(version string) *cli.App {
	app := cliutil.NewApp("twampc", "TWAMP client and session-sender (twping-compatible flags; TWAMP Light)", version)
	app.UsageText = "twampc [flags] HOST[:PORT]"
	app.Description = "twampc sets up TWAMP test sessions with a server over TWAMP-Control (RFC 5357; --light sends " +
		"TWAMP Light test packets without it), sends the test packets and prints twping's summary: loss, duplicates, " +
		"round-trip, send and reflect times with their error bounds, reflector processing time, jitter and hops. " +
		"RTT = (T4-T1) - (T3-T2) with kernel transmit and receive timestamps where available. Replies are " +
		"validated against what was sent (source address and port, the session keys in authenticated and " +
		"encrypted modes, a sequence number actually sent); others are counted as invalid and never change loss, " +
		"RTT or reordering. The exit status is 1, after the results, when a session got no reply, when its " +
		"replies stopped (no reply to the last packets for longer than --loss-timeout), or when the TWAMP-Control " +
		"connection was lost during the test (\"Test session(s) Failed\", as twping); Ctrl-C after replies came " +
		"back exits 0 like ping."
	app.Flags = append(app.Flags,
		cliutil.IntFlag("count", "packets per session", 100, 1, 1<<30, "c"),
		&cli.StringFlag{Name: "interval", Aliases: []string{"i"}, Value: "0.1e",
			Usage: "mean gap between packets: seconds or duration, suffix e = exponential (Poisson), f = fixed"},
		&cli.DurationFlag{Name: "loss-timeout", Aliases: []string{"L"}, Value: 2e9, Usage: "wait this long for replies after the last packet"},
		cliutil.IntFlag("padding", "Padding Length in octets (-1: 27 open/mixed, 64 authenticated/encrypted, equal sizes)", -1, -1, 65000, "s"),
		&cli.BoolFlag{Name: "zero-padding", Usage: "pad with zeros instead of pseudo-random octets"},
		cliutil.DSCPFlag("dscp", "DSCP of test packets (number or name like EF, AF41)", 0, "D"),
		&cli.StringFlag{Name: "auth-mode", Aliases: []string{"A"}, Value: "O", Usage: "acceptable modes, strongest chosen: O open, A authenticated, E encrypted, M mixed"},
		&cli.StringFlag{Name: "identity", Aliases: []string{"u"}, Usage: "KeyID for modes A, E, M"},
		&cli.StringFlag{Name: "key-file", Aliases: []string{"k"}, Usage: "owamp pfstore key `FILE` holding the identity's pass-phrase"},
		cliutil.IntFlag("sessions", "test sessions in parallel over one control connection", 1, 1, 1024),
		cliutil.PortRangeFlag("test-ports", "local UDP port range `LO-HI` (or one port) for the senders", "P"),
		&cli.DurationFlag{Name: "start-delay", Aliases: []string{"z"}, Usage: "delay before the first packet (Start Time)"},
		&cli.BoolFlag{Name: "zero-addresses", Aliases: []string{"Z"}, Usage: "send zero Sender/Receiver addresses (NAT)"},
		&cli.BoolFlag{Name: "ipv4", Aliases: []string{"4"}, Usage: "use IPv4 only"},
		&cli.BoolFlag{Name: "ipv6", Aliases: []string{"6"}, Usage: "use IPv6 only"},
		&cli.StringFlag{Name: "source", Aliases: []string{"S"}, Usage: "local source `ADDRESS`"},
		&cli.BoolFlag{Name: "light", Usage: "send TWAMP Light (no control connection) to HOST[:PORT] (UDP)"},
		&cli.BoolFlag{Name: "dscp-ecn", Usage: "request RFC 7750 DSCP and ECN monitoring (report the DS field the reflector received)"},
		&cli.StringFlag{Name: "reflect-octets", Usage: "RFC 6038 reflect octets: 2 octets in `HEX` the server must echo in Accept-Session; replies return padding octets (see --reflect-padding)"},
		cliutil.IntFlag("reflect-padding", "RFC 6038 Length of Padding to Reflect with --reflect-octets (-1: 2, the Server Octets)", -1, -1, 65000),
		&cli.BoolFlag{Name: "symmetric", Usage: "RFC 6038 symmetrical size sender format (requests as long as replies)"},
		&cli.BoolFlag{Name: "individual", Usage: "start/stop sessions with RFC 5938 Start-N/Stop-N when the server offers it"},
		&cli.StringFlag{Name: "percentiles", Aliases: []string{"a"}, Value: "50,90,95,99", Usage: "comma-separated percentiles to print"},
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "print every packet as twping -v does (seq_no=… fwd_delay=… bck_delay=… delay=… proc_delay=… (err=…), or *LOST*)"},
		&cli.StringFlag{Name: "units", Aliases: []string{"n"}, Value: "m", Usage: "time unit of the text summary: n, u, m or s (twping -n)"},
		&cli.BoolFlag{Name: "raw", Aliases: []string{"R"}, Usage: "print only twping's raw per-packet lines: SSEQ STIME SS SERR SRTIME SRS SRERR STTL RSEQ RSTIME RSS RSERR RTIME RS RERR RTTL"},
		&cli.DurationFlag{Name: "connect-timeout", Value: 10e9, Usage: "bound on connection setup and control replies"},
	)
	app.Action = func(c *cli.Context) error {
		cfg, out, err := Config(c)
		if err != nil {
			return err
		}
		_, err = client.Run(c.Context, cfg, out)
		return err
	}
	return app
}

// Config validates the command line and returns the client configuration and where and how
// the results are written. Security policy lives here: modes A, E and M need an identity and
// a key file unless open mode is also acceptable (then the client falls back to it), and
// TWAMP Light and the RFC 6038 options exclude each other.
func Config(c *cli.Context) (client.Config, client.Output, error) {
	var out client.Output
	if c.NArg() != 1 {
		return client.Config{}, out, cliutil.Usagef("want exactly one HOST[:PORT], got %d arguments", c.NArg())
	}
	sched, err := client.ParseSchedule(c.String("interval"))
	if err != nil {
		return client.Config{}, out, cliutil.Usagef("--interval: %v", err)
	}
	modes, err := twampctl.ParseModeLetters(c.String("auth-mode"))
	if err != nil {
		return client.Config{}, out, cliutil.Usagef("--auth-mode: %v", err)
	}
	cfg := client.Config{
		Target:         c.Args().First(),
		Count:          int(cliutil.Int(c, "count")),
		Schedule:       sched,
		LossTimeout:    c.Duration("loss-timeout"),
		Padding:        int(cliutil.Int(c, "padding")),
		ZeroPadding:    c.Bool("zero-padding"),
		DSCP:           uint8(cliutil.Int(c, "dscp")),
		Modes:          modes,
		Identity:       c.String("identity"),
		Sessions:       int(cliutil.Int(c, "sessions")),
		StartDelay:     c.Duration("start-delay"),
		ZeroAddresses:  c.Bool("zero-addresses"),
		Source:         c.String("source"),
		Light:          c.Bool("light"),
		Individual:     c.Bool("individual"),
		DSCPECN:        c.Bool("dscp-ecn"),
		ConnectTimeout: c.Duration("connect-timeout"),
		Logger:         cliutil.Logger(c),
	}
	switch {
	case c.Bool("ipv4") && c.Bool("ipv6"):
		return cfg, out, cliutil.Usagef("-4 and -6 exclude each other")
	case c.Bool("ipv4"):
		cfg.Network = "tcp4"
	case c.Bool("ipv6"):
		cfg.Network = "tcp6"
	}
	pr := cliutil.PortRangeOf(c, "test-ports")
	cfg.TestPortLo, cfg.TestPortHi = pr.Lo, pr.Hi
	for _, f := range strings.Split(c.String("percentiles"), ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v < 0 || v > 100 {
			return cfg, out, cliutil.Usagef("--percentiles: bad value %q", f)
		}
		cfg.Percentiles = append(cfg.Percentiles, v)
	}
	if modes.Secure() {
		kf := c.String("key-file")
		if kf == "" || cfg.Identity == "" {
			if modes&twampctl.ModeUnauthenticated == 0 {
				return cfg, out, cliutil.Usagef("modes A, E and M need --identity and --key-file")
			}
			cfg.Modes = twampctl.ModeUnauthenticated
		} else {
			keys, err := twampctl.LoadKeyFile(kf)
			if err != nil {
				return cfg, out, err
			}
			secret, ok := keys[cfg.Identity]
			if !ok {
				return cfg, out, cliutil.Usagef("identity %q not in %s", cfg.Identity, kf)
			}
			cfg.Secret = secret
		}
	}
	if h := c.String("reflect-octets"); h != "" {
		v, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(h), "0x"), 16, 16)
		if err != nil {
			return cfg, out, cliutil.Usagef("--reflect-octets: want 1-4 hex digits (2 octets), got %q", h)
		}
		cfg.ReflectOctets, cfg.OctetsToBeReflected = true, uint16(v)
	}
	cfg.ReflectPadding = int(cliutil.Int(c, "reflect-padding"))
	if cfg.ReflectPadding >= 0 && !cfg.ReflectOctets {
		return cfg, out, cliutil.Usagef("--reflect-padding needs --reflect-octets")
	}
	cfg.Symmetric = c.Bool("symmetric")
	if cfg.Light && (cfg.ReflectOctets || cfg.Symmetric) {
		return cfg, out, cliutil.Usagef("RFC 6038 options need TWAMP-Control; not available with --light")
	}
	if cfg.Light && cfg.Modes != twampctl.ModeUnauthenticated {
		return cfg, out, cliutil.Usagef("--light is unauthenticated only")
	}
	if err := cfg.Validate(); err != nil {
		return cfg, out, cliutil.Usagef("%v", err)
	}
	unit, err := client.ParseUnit(c.String("units"))
	if err != nil {
		return cfg, out, cliutil.Usagef("--units: %v", err)
	}
	out = client.Output{Unit: unit, W: c.App.Writer, Format: cliutil.OutputFormat(c), Verbose: c.Bool("verbose"), Raw: c.Bool("raw")}
	return cfg, out, nil
}
