// Package cmd builds ptpclient's command line (the original's flags plus probekit's) and maps it
// onto client.Config; it picks the interface: the tcell UI on a terminal, one line per event
// otherwise, JSON lines with --json.
package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/probekit/probekit/ptpclient/internal/client"
	"github.com/probekit/probekit/ptpclient/internal/extras"
	"github.com/probekit/probekit/ptpclient/internal/ui"
	"github.com/probekit/probekit/shared/cliutil"
)

// Flag names.
const (
	flagServer   = "server"
	flagPort     = "port"
	flagDebug    = "debug"
	flagHexdump  = "hexdump"
	flagLogLines = "loglines"
	flagNoSTUN   = "no-stun"
	flagCurses   = "curses"
	flagSTUN     = "stun"
	flagMesh     = "mesh"
	flagDuration = "duration"
	flagHairpin  = "hairpin"
	flagBind     = "bind"
	flagNoUI     = "no-ui"
	flagInterval = "interval"
	flagCPUProf  = "cpuprofile"
	flagSamples  = "samples"
)

// DefaultPort is the original's port.
const DefaultPort = 23456

// NewApp returns the ptpclient command.
func NewApp(version string) *cli.App {
	app := cliutil.NewApp("ptpclient", "PtP test mesh client: UDP reachability, NAT behaviour, RTT and loss to every peer", version)
	app.UsageText = "ptpclient [-s SERVER] [-p PORT] [flags]"
	app.Description = "ptpclient registers with a ptpserver (or the original ptptest server), probes every peer " +
		"the server lists twice a second and shows, per peer, whether it is reached directly, on its LAN " +
		"address, through the NAT's hairpin or relayed through the server, with RTT (min/avg/p50/p99/max), " +
		"RFC 3550 jitter and loss counted by sequence number. It discovers its NAT's mapping and filtering " +
		"behaviour with STUN on its own socket (RFC 8489, RFC 5780). Not related to IEEE 1588 PTP. " +
		"On a terminal it shows the original's table; otherwise it prints one line per event and a final report."
	app.Flags = append(app.Flags,
		&cli.StringFlag{Name: flagServer, Aliases: []string{"s"}, Value: "127.0.0.1", Usage: "the `ADDRESS` (name or IP) of the server"},
		cliutil.PortFlag(flagPort, "the UDP port of the server", DefaultPort, false, "p"),
		&cli.BoolFlag{Name: flagDebug, Aliases: []string{"d"}, Usage: "log every packet received and sent"},
		&cli.BoolFlag{Name: flagHexdump, Usage: "hexdump sent packets (with --debug)"},
		cliutil.IntFlag(flagLogLines, "height of the log pane of the terminal UI", 10, 1, 1000),
		&cli.BoolFlag{Name: flagNoSTUN, Aliases: []string{"nostun"}, Usage: "do not run STUN NAT discovery (--nostun is the original's spelling)"},
		&cli.BoolFlag{Name: flagCurses, Usage: "accepted for compatibility with the original; ignored (the UI is used whenever stdout is a terminal)"},
		&cli.StringSliceFlag{Name: flagSTUN, Usage: "extra STUN server `HOST:PORT` for NAT discovery (repeatable; the rendezvous server is always asked)"},
		&cli.StringFlag{Name: flagMesh, Usage: "join the mesh `NAME` on the server (protocol version 3; default: the shared default mesh)"},
		&cli.DurationFlag{Name: flagDuration, Usage: "run for this long, send SHUTDOWN and print the final report (0: until q, Ctrl-C or SIGTERM)"},
		&cli.BoolFlag{Name: flagHairpin, Usage: "also test whether our NAT hairpins (sends a STUN request to our own public address)"},
		&cli.StringFlag{Name: flagBind, Value: ":0", Usage: "local `ADDRESS:PORT` of the socket (default: any address, a free port)"},
		&cli.BoolFlag{Name: flagNoUI, Usage: "print one line per event even on a terminal"},
		&cli.BoolFlag{Name: flagSamples, Usage: "print every RTT sample (peer, SEQUENCE of the probe, RTT in ns): one line each, JSON lines with --json"},
		&cli.StringFlag{Name: flagCPUProf, Hidden: true, Usage: "write a CPU profile to `FILE` (benchmarks)"},
		&cli.DurationFlag{Name: flagInterval, Value: client.DefaultProbeInterval, Usage: "probe interval per peer (the original's 0.5 s; 10ms at least)"},
	)
	app.Flags = append(app.Flags, extras.Flags...) // --port-mapping, --send/--to, --accept-dir, --rate
	app.Action = run
	return app
}

// resolve turns HOST (and a port) into one address: the first IPv4 result as the original's
// getaddrinfo(AF_INET), else the first IPv6 one.
func resolve(ctx context.Context, host string, port uint16) (netip.AddrPort, error) {
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return netip.AddrPortFrom(a.Unmap(), port), nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.AddrPort{}, err
	}
	for _, a := range addrs {
		if a.Unmap().Is4() {
			return netip.AddrPortFrom(a.Unmap(), port), nil
		}
	}
	if len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("no address for %s", host)
	}
	return netip.AddrPortFrom(addrs[0], port), nil
}

func splitHostPort(s string, def uint16) (string, uint16, error) {
	host, ps, err := net.SplitHostPort(s)
	if err != nil {
		if strings.Contains(err.Error(), "missing port") {
			return strings.Trim(s, "[]"), def, nil
		}
		return "", 0, err
	}
	p, err := cliutil.ParsePort(ps, false)
	return host, p, err
}

// Config is what the command line produced (exported for tests).
type Config struct {
	Client   client.Config
	Duration time.Duration
	LogLines int
	UI       bool
	Extras   extras.Config // port mapping and bulk transfer (internal/extras)
	Samples  bool
}

func configure(c *cli.Context, log logrus.FieldLogger) (Config, error) {
	var cfg Config
	port := uint16(cliutil.Int(c, flagPort))
	srv, err := resolve(c.Context, c.String(flagServer), port)
	if err != nil {
		return cfg, cliutil.Usagef("cannot resolve server %q: %v", c.String(flagServer), err)
	}
	var stuns []netip.AddrPort
	for _, s := range c.StringSlice(flagSTUN) {
		host, p, err := splitHostPort(s, 3478)
		if err != nil {
			return cfg, cliutil.Usagef("--stun %q: %v", s, err)
		}
		a, err := resolve(c.Context, host, p)
		if err != nil {
			return cfg, cliutil.Usagef("cannot resolve STUN server %q: %v", s, err)
		}
		stuns = append(stuns, a)
	}
	mesh := c.String(flagMesh)
	if len(mesh) > 64 {
		return cfg, cliutil.Usagef("--mesh: at most 64 bytes")
	}
	if iv := c.Duration(flagInterval); iv < 10*time.Millisecond {
		return cfg, cliutil.Usagef("--interval %v: at least 10ms", iv)
	}
	if c.Duration(flagDuration) < 0 {
		return cfg, cliutil.Usagef("--duration must not be negative")
	}
	cfg.Client = client.Config{Server: srv, Bind: c.String(flagBind), Mesh: mesh, STUN: stuns, NoSTUN: c.Bool(flagNoSTUN),
		Hairpin: c.Bool(flagHairpin), ProbeInterval: c.Duration(flagInterval), Debug: c.Bool(flagDebug), Hexdump: c.Bool(flagHexdump), Log: log}
	cfg.Duration = c.Duration(flagDuration)
	cfg.Samples = c.Bool(flagSamples)
	cfg.LogLines = int(cliutil.Int(c, flagLogLines))
	cfg.UI = !c.Bool(flagNoUI) && cliutil.OutputFormat(c) == cliutil.FormatText && isTerminal(c.App.Writer)
	if c.Bool(flagHexdump) && !c.Bool(flagDebug) {
		log.Warn("--hexdump has no effect without --debug (as in the original)")
	}
	if cfg.Extras, err = extras.FromFlags(c); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func run(c *cli.Context) error {
	log := cliutil.Logger(c)
	cfg, err := configure(c, log)
	if err != nil {
		return err
	}
	if f := c.String(flagCPUProf); f != "" {
		w, err := os.Create(f)
		if err != nil {
			return err
		}
		defer w.Close()
		if err := pprof.StartCPUProfile(w); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	return Run(c.Context, cfg, c.App.Writer, cliutil.OutputFormat(c), log)
}

// Run runs the client with the chosen interface and writes the final report.
func Run(ctx context.Context, cfg Config, w io.Writer, format cliutil.Format, log logrus.FieldLogger) error {
	out := &output{w: w, format: format}
	var u *ui.UI
	if cfg.UI {
		var err error
		u, err = ui.New(ui.Config{LogLines: cfg.LogLines, Version: "0.2-dev"})
		if err != nil {
			log.WithError(err).Warn("terminal UI unavailable; printing lines")
			u = nil
		} else if l, ok := log.(*logrus.Logger); ok {
			// Log records go to the log pane while the screen is up (stderr would tear it).
			old := l.Out
			l.SetOutput(u.LogWriter())
			defer l.SetOutput(old)
		}
	}
	cfg.Client.Events = func(e client.Event) {
		if u != nil {
			u.Log(e.Message)
			return
		}
		out.event(e)
	}
	if cfg.Samples && u == nil {
		cfg.Client.Samples = out.sample
	}
	ex := newExtras(cfg, w, format, u != nil, log)
	if ex != nil {
		cfg.Client.Extra = ex.OnExtra
	}
	cl, err := client.New(cfg.Client)
	if err != nil {
		return err
	}
	if cfg.Duration == 0 {
		cliutil.MarkComplete(ctx)
	}
	runCtx := ctx
	var cancelDur context.CancelFunc = func() {}
	if cfg.Duration > 0 {
		runCtx, cancelDur = context.WithTimeout(ctx, cfg.Duration)
	}
	defer cancelDur()
	if err := cl.Open(runCtx); err != nil {
		if u != nil {
			u.Close()
		}
		return err
	}
	runCtx, stop := context.WithCancel(runCtx)
	defer stop()
	sendRes := startExtras(runCtx, ex, cl, stop)
	var wg sync.WaitGroup
	if u != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u.Run(runCtx, stop, cl.Summary)
		}()
	}
	err = cl.Run(runCtx)
	stop()
	wg.Wait()
	if ex != nil {
		if cerr := ex.Close(); cerr != nil {
			log.WithError(cerr).Warn("deleting the port mapping")
		}
	}
	if u != nil {
		u.Close()
	}
	if err != nil {
		return err
	}
	if ex != nil {
		out.summaryExtras(cl.Summary(), cl.Counters(), ex.Summary())
		return sendResult(sendRes)
	}
	out.summary(cl.Summary(), cl.Counters())
	// Without --duration, q, Ctrl-C or SIGTERM is the normal end (exit 0); a signal before
	// --duration is over exits 130/143 after the report (cliutil.Main).
	return nil
}

// output writes events and the report as text lines or JSON lines.
type output struct {
	mu     sync.Mutex
	w      io.Writer
	format cliutil.Format
}

type jsonEvent struct {
	Type string `json:"type"`
	client.Event
}

func (o *output) event(e client.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.format == cliutil.FormatJSON {
		b, _ := json.Marshal(jsonEvent{Type: "event", Event: e})
		fmt.Fprintf(o.w, "%s\n", b)
		return
	}
	fmt.Fprintf(o.w, "%s %s %s\n", e.Time.UTC().Format("2006-01-02T15:04:05.000Z"), e.Kind, e.Message)
}

type jsonSample struct {
	Type string `json:"type"`
	client.Sample
}

func (o *output) sample(s client.Sample) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.format == cliutil.FormatJSON {
		b, _ := json.Marshal(jsonSample{Type: "sample", Sample: s})
		fmt.Fprintf(o.w, "%s\n", b)
		return
	}
	via := "direct"
	if s.Relayed {
		via = "relay"
	}
	fmt.Fprintf(o.w, "sample %s seq %d %s rtt %.6f ms\n", s.Address, s.Seq, via, float64(s.RTT)/1e6)
}

func (o *output) summary(s client.Summary, n client.Counters) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.format == cliutil.FormatJSON {
		b, _ := json.Marshal(s)
		fmt.Fprintf(o.w, "%s\n", b)
		return
	}
	WriteReport(o.w, s, n)
}

// WriteReport writes the final report as text: who we are, then one row per peer.
func WriteReport(w io.Writer, s client.Summary, n client.Counters) {
	fmt.Fprintf(w, "client %s, server %s", s.UUID, s.Server)
	if s.Mesh != "" {
		fmt.Fprintf(w, ", mesh %q", s.Mesh)
	}
	fmt.Fprintf(w, " (RTT avg %s ms, %d sent, %d answered)\n", f3(s.ServerR.RTT.Avg), s.ServerR.Sent, s.ServerR.Received)
	pub := s.Self.Public
	if pub == "" {
		pub = "unknown"
	}
	fmt.Fprintf(w, "local %s, public %s, NAT mapping %s, filtering %s, hairpin %s\n", s.Self.Local, pub,
		s.Self.NAT.Mapping, s.Self.NAT.Filtering, s.Self.NAT.Hairpin)
	for _, r := range []string{s.Self.NAT.MappingReason, s.Self.NAT.FilteringReason} {
		if r != "" {
			fmt.Fprintf(w, "  %s\n", r)
		}
	}
	if n.BadChecksum+n.Malformed+n.Unknown > 0 {
		fmt.Fprintf(w, "dropped: %d bad checksum, %d malformed, %d from unknown senders\n", n.BadChecksum, n.Malformed, n.Unknown)
	}
	fmt.Fprintf(w, "%-32s %-7s %6s %6s %6s %7s %9s %9s %9s %9s %9s %9s  %s\n",
		"Address", "Path", "Sent", "Rcvd", "Lost", "Loss %", "RTT min", "avg", "p50", "p99", "max", "Jitter", "Reason")
	for _, p := range s.Peers {
		path := p.Path
		if p.Learned {
			path += "*"
		}
		fmt.Fprintf(w, "%-32s %-7s %6d %6d %6d %7.2f %9s %9s %9s %9s %9s %9s  %s\n",
			p.Address, path, p.Sent, p.Received, p.Lost, p.LossPct,
			f3(p.RTT.Min), f3(p.RTT.Avg), f3(p.RTT.P50), f3(p.RTT.P99), f3(p.RTT.Max), f3(p.JitterMs), p.Reason)
	}
	if len(s.Peers) == 0 {
		fmt.Fprintln(w, "(no peers)")
	}
	fmt.Fprintln(w, "RTT and jitter in ms; * = address learned from the peer's packets (hole punching)")
}

func f3(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
