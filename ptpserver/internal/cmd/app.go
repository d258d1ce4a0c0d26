// Package cmd builds ptpserver's command line (the original ptptest server's flags plus
// probekit's) and runs the server with line, JSON or terminal output.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/probekit/probekit/ptpserver/internal/server"
	"github.com/probekit/probekit/shared/cliutil"
)

// Flag names.
const (
	flagServer         = "server"
	flagPort           = "port"
	flagDebug          = "debug"
	flagHexdump        = "hexdump"
	flagLoglines       = "loglines"
	flagNoSTUN         = "no-stun"
	flagCurses         = "curses"
	flagOtherAddress   = "other-address"
	flagDuration       = "duration"
	flagRelayRate      = "relay-rate"
	flagRelayBurst     = "relay-burst"
	flagBeaconInterval = "beacon-interval"
	flagExpiry         = "expiry"
	flagNoTUI          = "no-tui"
	flagReports        = "reports"
	flagSummaryEvery   = "summary-every"
)

// Hook lets other packages of this module (store, web page, metrics) take part in a run
// without editing this file's logic: each is called with the server after its socket is open
// and before it serves, and may return an Observer (membership events and reports) and a
// function called after the server stopped. An error ends the run (return nil and log a
// warning for optional side ports: a daemon never dies for them).
type Hook func(c *cli.Context, srv *server.Server, log logrus.FieldLogger) (server.Observer, func(), error)

var (
	hooks      []Hook
	appVersion = "dev"
)
var extraFlags []cli.Flag

// Register adds a hook and its flags. Call it before NewApp, from main (main imports this
// package and the hook's; the hook's package must not import this one).
func Register(h Hook, flags ...cli.Flag) {
	hooks = append(hooks, h)
	extraFlags = append(extraFlags, flags...)
}

// NewApp returns the ptpserver command.
func NewApp(version string) *cli.App {
	appVersion = version
	app := cliutil.NewApp("ptpserver", "PtP test (peer-to-peer UDP mesh) rendezvous server", version)
	cliutil.SetManSection(app, 8)
	app.ArgsUsage = " "
	app.Description = "ptpserver is the rendezvous server of the PtP test (peer-to-peer UDP mesh tester, a " +
		"rebuild of chrisy/ptptest; not IEEE 1588 PTP). Clients (ptpclient, or the original Python client) " +
		"beacon it; it tells every client the observed (public) addresses of the other clients of its mesh, " +
		"with their LAN addresses when they share its public IP, every 13 s and within a second of any " +
		"membership change, and drops clients silent for 30 s or that send SHUTDOWN. Protocol version 3 " +
		"clients also get meshes (--mesh on the client), paged lists, relaying of their packets when no direct " +
		"path works (rate-limited per client), and report their reachability to every peer, which the server " +
		"keeps as the mesh matrix and explains (why a pair is relayed). ptpserver answers STUN Binding " +
		"requests on its own port (RFC 8489; --no-stun turns it off) and, with --other-address, the RFC 5780 " +
		"CHANGE-REQUEST tests from a second address. On a terminal it shows the original's screen (q quits); " +
		"otherwise it prints one line per event, or JSON lines with --json, and a per-client summary at the end."
	app.Flags = append(app.Flags,
		&cli.StringFlag{Name: flagServer, Aliases: []string{"s"}, Value: "0.0.0.0", Usage: "the `ADDRESS` to bind to"},
		cliutil.PortFlag(flagPort, "the UDP `PORT` to serve", server.DefaultPort, false, "p"),
		&cli.BoolFlag{Name: flagDebug, Aliases: []string{"d"}, Usage: "log every packet received and sent"},
		&cli.BoolFlag{Name: flagHexdump, Usage: "with --debug, also log the bytes of every packet sent"},
		cliutil.IntFlag(flagLoglines, "height of the log pane on the terminal screen", 10, 1, 1000),
		&cli.BoolFlag{Name: flagNoSTUN, Aliases: []string{"nostun"}, Usage: "do not answer STUN Binding requests on the server port"},
		&cli.BoolFlag{Name: flagCurses, Usage: "accepted for compatibility with the original; ignored (the terminal screen is used whenever stdout is a terminal)"},
		&cli.StringFlag{Name: flagOtherAddress, Usage: "alternate `IP[:PORT]` of this host for RFC 5780 STUN CHANGE-REQUEST (port default: PORT+1); needs a specific --server address"},
		&cli.DurationFlag{Name: flagDuration, Usage: "stop after `D` and print the summary (default: run until SIGTERM or q)"},
		cliutil.IntFlag(flagRelayRate, "relayed packets per second allowed per client (0 disables relaying)", server.DefaultRelayRate, 0, 1_000_000),
		cliutil.IntFlag(flagRelayBurst, "relay burst per client (packets)", server.DefaultRelayBurst, 1, 1_000_000),
		&cli.DurationFlag{Name: flagBeaconInterval, Value: server.DefaultBeaconInterval, Usage: "period of the list sent to every client"},
		&cli.DurationFlag{Name: flagExpiry, Value: server.DefaultExpiry, Usage: "drop a client after this long without a packet"},
		&cli.BoolFlag{Name: flagNoTUI, Usage: "print lines even when stdout is a terminal"},
		&cli.BoolFlag{Name: flagReports, Usage: "with --json, also print every reachability report a v3 client sends (type \"report\"; one line per client beacon)"},
		&cli.DurationFlag{Name: flagSummaryEvery, Usage: "also print the per-client summary every `D` while running (default: at the end only)"},
	)
	app.Flags = append(app.Flags, extraFlags...)
	app.Action = run
	return app
}

// Config validates the flags and returns the server configuration.
func Config(c *cli.Context) (server.Config, error) {
	if c.NArg() > 0 {
		return server.Config{}, cliutil.Usagef("unexpected argument %q", c.Args().First())
	}
	port := uint16(cliutil.Int(c, flagPort))
	ip, err := resolve(c.Context, c.String(flagServer))
	if err != nil {
		return server.Config{}, cliutil.Usagef("--%s: %v", flagServer, err)
	}
	cfg := server.Config{
		Addr:           netip.AddrPortFrom(ip, port),
		Debug:          c.Bool(flagDebug),
		Hexdump:        c.Bool(flagHexdump),
		NoSTUN:         c.Bool(flagNoSTUN),
		BeaconInterval: c.Duration(flagBeaconInterval),
		Expiry:         c.Duration(flagExpiry),
		RelayRate:      float64(cliutil.Int(c, flagRelayRate)),
		RelayBurst:     int(cliutil.Int(c, flagRelayBurst)),
	}
	if cfg.RelayRate == 0 {
		cfg.RelayRate = -1
	}
	if cfg.BeaconInterval <= 0 || cfg.Expiry <= 0 {
		return cfg, cliutil.Usagef("--%s and --%s must be positive", flagBeaconInterval, flagExpiry)
	}
	if s := c.String(flagOtherAddress); s != "" {
		other, err := netip.ParseAddrPort(s)
		if err != nil {
			a, err2 := netip.ParseAddr(s)
			if err2 != nil {
				return cfg, cliutil.Usagef("--%s: %q is not IP or IP:PORT", flagOtherAddress, s)
			}
			other = netip.AddrPortFrom(a, port+1)
		}
		if ip.IsUnspecified() {
			return cfg, cliutil.Usagef("--%s needs a specific --%s address (clients are told where the RFC 5780 sockets are)", flagOtherAddress, flagServer)
		}
		if other.Addr().Is4() != ip.Is4() || other.Addr() == ip || other.Port() == port {
			return cfg, cliutil.Usagef("--%s %v must differ from %v in address and port, same family", flagOtherAddress, other, cfg.Addr)
		}
		if c.Bool(flagNoSTUN) {
			return cfg, cliutil.Usagef("--%s conflicts with --%s", flagOtherAddress, flagNoSTUN)
		}
		cfg.OtherAddress = other
	}
	if c.Duration(flagDuration) < 0 || c.Duration(flagSummaryEvery) < 0 {
		return cfg, cliutil.Usagef("--%s and --%s must not be negative", flagDuration, flagSummaryEvery)
	}
	return cfg, nil
}

func resolve(ctx context.Context, host string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap(), nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return netip.Addr{}, fmt.Errorf("cannot resolve %q", host)
	}
	for _, a := range ips {
		if a.Unmap().Is4() {
			return a.Unmap(), nil
		}
	}
	return ips[0], nil
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func run(c *cli.Context) error {
	cfg, err := Config(c)
	if err != nil {
		return err
	}
	log := cliutil.Logger(c)
	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	if d := c.Duration(flagDuration); d > 0 {
		var cancelT context.CancelFunc
		ctx, cancelT = context.WithTimeout(ctx, d)
		defer cancelT()
	}
	format := cliutil.OutputFormat(c)
	// cliutil wraps the app's Writer, so ask the process's stdout (in-process tests pass --no-tui
	// or run without a terminal).
	tui := format == cliutil.FormatText && !c.Bool(flagNoTUI) && isTerminal(os.Stdout)
	if format == cliutil.FormatCSV {
		return cliutil.Usagef("--%s csv is not supported by ptpserver (text or json)", cliutil.FlagFormat)
	}
	out := newPrinter(c.App.Writer, format == cliutil.FormatJSON)
	out.reports = c.Bool(flagReports)
	cfg.Log = log
	var obs server.Observers
	cfg.Observer = &lateObserver{obs: &obs}
	srv, err := server.New(ctx, cfg)
	if err != nil {
		return err
	}
	var screen *screenUI
	if tui {
		screen, err = newScreenUI(nil, int(cliutil.Int(c, flagLoglines)))
		if err != nil {
			return fmt.Errorf("terminal: %w", err)
		}
		// Logs go to the log pane while the screen is up.
		log.SetOutput(screen.logWriter())
		defer log.SetOutput(c.App.ErrWriter)
		obs = append(obs, screen)
	} else {
		obs = append(obs, out)
	}
	var finish []func()
	for _, h := range hooks {
		o, fin, err := h(c, srv, log)
		if err != nil {
			if screen != nil {
				screen.fini()
			}
			return err
		}
		if o != nil {
			obs = append(obs, o)
		}
		if fin != nil {
			finish = append(finish, fin)
		}
	}
	log.WithFields(logrus.Fields{"address": srv.LocalAddr(), "stun": !cfg.NoSTUN, "other_address": cfg.OtherAddress}).Info("PTP Server listening")
	errc := make(chan error, 1)
	go func() { errc <- srv.Run(ctx) }()
	if d := c.Duration(flagSummaryEvery); d > 0 && screen == nil {
		go func() {
			t := time.NewTicker(d)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					out.summary(srv.Snapshot())
				}
			}
		}()
	}
	if screen != nil {
		screen.run(ctx, cancel, srv, cfg)
		cancel()
	}
	runErr := <-errc
	for _, f := range finish {
		f()
	}
	if screen != nil {
		screen.fini()
	}
	if runErr != nil {
		return runErr
	}
	if err := out.summary(srv.Snapshot()); err != nil {
		return err
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || c.Context.Err() != nil || ctx.Err() != nil {
		return nil
	}
	return nil
}

// lateObserver lets hooks add observers after the server exists.
type lateObserver struct{ obs *server.Observers }

func (l *lateObserver) Joined(c server.ClientInfo)         { l.obs.Joined(c) }
func (l *lateObserver) Left(c server.ClientInfo, r string) { l.obs.Left(c, r) }
func (l *lateObserver) Reported(r server.Report)           { l.obs.Reported(r) }
