// Package cmd builds spp's command line: the original's single-letter options with their
// getopt behaviour, plus the probekit standard flags, mapped onto spp.Config.
package cmd

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/spp/internal/spp"
)

// NewApp returns the spp application; run it with cliutil.Main(app, Getopt(os.Args)).
func NewApp(version string) *cli.App {
	app := cliutil.NewApp("spp", "passive round-trip time between two measurement points (Synthetic Packet Pairs)", version)
	app.UsageText = "spp -a ADDR -A ADDR (-f FILE | -i IFACE | -r SLAVE) (-F FILE | -I IFACE | -R SLAVE) [-c] [-p] [-m | -b] [options]\n" +
		"spp -s MASTER -a ADDR -A ADDR -I IFACE [-l LEN] [-g USEC] [-t SEC]   (slave)"
	app.Description = `Reads the same traffic at a reference point (REF) and a monitor point (MON), matches each
packet's two copies by a CRC-32 of header fields, and pairs an outgoing packet (-a → -A) with the
first incoming one leaving MON after it arrived. Prints one line per pair:
"[count] timestamp rtt [spt]" in seconds, exactly as SPP 0.3.6 does. No clock synchronisation
is needed: each difference is taken on one clock.

Remote mode: the slave (-s MASTER -I IFACE) sends SPP sample frames to UDP port 9822 of the
master (-r or -R names the slave). Frames use the x86-64 C layout: header and hashes
little-endian, offsets big-endian. The master must be given the slave's -g.`
	app.Flags = append(app.Flags,
		&cli.StringFlag{Name: "a", Usage: "target address `ADDR` near the reference point (required)"},
		&cli.StringFlag{Name: "A", Usage: "target address `ADDR` near the monitor point (required)"},
		&cli.StringFlag{Name: "f", Usage: "reference point capture `FILE` (pcap/pcapng, .gz, - = stdin)"},
		&cli.StringFlag{Name: "F", Usage: "monitor point capture `FILE`"},
		&cli.StringFlag{Name: "i", Usage: "reference point live `IFACE`"},
		&cli.StringFlag{Name: "I", Usage: "monitor point live `IFACE` (also the slave's capture interface)"},
		&cli.StringFlag{Name: "r", Usage: "reference point is the remote slave `HOST`"},
		&cli.StringFlag{Name: "R", Usage: "monitor point is the remote slave `HOST`"},
		&cli.StringFlag{Name: "s", Usage: "run as slave sending sample frames to `MASTER`"},
		&cli.StringFlag{Name: "n", Usage: "NAT address `ADDR` seen for the reference side (addresses then leave the packet ID)"},
		&cli.StringFlag{Name: "N", Usage: "NAT address `ADDR` seen for the monitor side"},
		&cli.StringFlag{Name: "o", Value: "0", Usage: "clock offset of MON relative to REF in whole seconds `SEC`, may be negative"},
		&cli.StringFlag{Name: "d", Value: strconv.Itoa(spp.DefaultWindow), Usage: "max timestamp difference between a packet's two instances, seconds `SEC`"},
		&cli.StringFlag{Name: "G", Usage: "max instances searched for one match (`N`; default 10000 files, 500 live)"},
		&cli.StringFlag{Name: "#", Usage: "packet-ID field `CODE` (sum of: 1 src, 2 dst, 4 proto, 8 IP ID, 16/32 ports, 64 seq, 128 ack, 256 TCP off/flags/win, 512 TCP csum/urg, 1024 UDP len/csum, 2048 UDP payload, 4096 other L4; default 63, IPv6 6399)"},
		&cli.StringFlag{Name: "v", Value: "0", Usage: "verbosity `BITS` on stderr: 1 queues, 2 threads, 4 pairs, 8 records, 16 instances, 32 packets, 64 RTT COUNT, 128 network, 1024 verbose network"},
		&cli.StringFlag{Name: "l", Value: strconv.Itoa(spp.DefaultTSLen), Usage: "slave: timestamp field length `LEN` in sample frames, 1-4 bytes, 0 = absolute timestamps"},
		&cli.StringFlag{Name: "g", Value: strconv.Itoa(spp.DefaultGranularity), Usage: "timestamp granularity of sample frames, `USEC` (master and slave must agree)"},
		&cli.StringFlag{Name: "t", Value: "1", Usage: "slave: max time between sample frames, seconds `SEC` (fractions allowed)"},
		&cli.BoolFlag{Name: "c", DisableDefaultText: true, Usage: "print the running pair count"},
		&cli.BoolFlag{Name: "p", DisableDefaultText: true, Usage: "print the server processing time (time between the pair at MON)"},
		&cli.BoolFlag{Name: "m", DisableDefaultText: true, Usage: "timestamp from the monitor point clock (not corrected by -o)"},
		&cli.BoolFlag{Name: "b", DisableDefaultText: true, Usage: "timestamp = time the pair's first packet was seen at REF"},
		&cli.BoolFlag{Name: "summary", DisableDefaultText: true, Usage: "print count and RTT/SPT statistics after the pairs"},
		&cli.StringFlag{Name: "port", Value: strconv.Itoa(spp.DefaultPort), Usage: "UDP `PORT` of sample frames"},
	)
	app.Action = func(c *cli.Context) error {
		if c.NArg() > 0 {
			return cliutil.Usagef("unexpected argument %q (options take their values as -x VALUE)", c.Args().First())
		}
		cfg, err := config(c)
		if err != nil {
			return err
		}
		if cfg.Live() {
			// Live, remote and slave runs measure until Ctrl-C or SIGTERM, which is their
			// normal end: every pair printed by then is final (exit 0, not 130/143).
			cliutil.MarkComplete(c.Context)
		}
		err = spp.Run(c.Context, cfg)
		if errors.Is(err, spp.ErrUsage) {
			return cliutil.Usagef("%s", trimUsage(err))
		}
		return err
	}
	return app
}

func parseInt(c *cli.Context, name string, lo, hi int64) (int64, error) {
	s := c.String(name)
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < lo || v > hi {
		return 0, cliutil.Usagef("-%s %q: want a whole number from %d to %d", name, s, lo, hi)
	}
	return v, nil
}

func parseAddr(c *cli.Context, name string) (netip.Addr, error) {
	s := c.String(name)
	if s == "" {
		return netip.Addr{}, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), nil
	}
	// The original accepts host names; resolve once.
	ips, err := net.LookupIP(s)
	if err != nil || len(ips) == 0 {
		return netip.Addr{}, cliutil.Usagef("-%s %q: not an IP address or resolvable host name", name, s)
	}
	a, _ := netip.AddrFromSlice(ips[0])
	return a.Unmap(), nil
}

func config(c *cli.Context) (spp.Config, error) {
	cfg := spp.Config{
		RefFile: c.String("f"), MonFile: c.String("F"),
		RefIface: c.String("i"), MonIface: c.String("I"),
		RefRemote: c.String("r"), MonRemote: c.String("R"),
		Slave: c.String("s"),
		Count: c.Bool("c"), SPT: c.Bool("p"), MonStamp: c.Bool("m"), Begin: c.Bool("b"),
		Summary: c.Bool("summary"),
		Output:  string(cliutil.OutputFormat(c)),
		Stdout:  c.App.Writer,
		Stderr:  c.App.ErrWriter,
		Log:     cliutil.Logger(c),
	}
	var err error
	for _, p := range []struct {
		name string
		dst  *netip.Addr
	}{{"a", &cfg.A}, {"A", &cfg.B}, {"n", &cfg.NatA}, {"N", &cfg.NatB}} {
		if *p.dst, err = parseAddr(c, p.name); err != nil {
			return cfg, err
		}
	}
	ints := []struct {
		name   string
		lo, hi int64
		set    func(int64)
	}{
		{"o", -1 << 40, 1 << 40, func(v int64) { cfg.Offset = v }},
		{"d", 0, 1 << 40, func(v int64) { cfg.Window = v }},
		{"v", 0, 1<<16 - 1, func(v int64) { cfg.Verbose = uint(v) }},
		{"l", 0, 4, func(v int64) { cfg.TSLen = int(v) }},
		{"g", 1, 1e9, func(v int64) { cfg.Granularity = int(v) }},
		{"port", 1, 65535, func(v int64) { cfg.Port = int(v) }},
	}
	if c.IsSet("G") {
		ints = append(ints, struct {
			name   string
			lo, hi int64
			set    func(int64)
		}{"G", 1, 1 << 40, func(v int64) { cfg.MaxSearch = int(v) }})
	}
	if c.IsSet("#") {
		ints = append(ints, struct {
			name   string
			lo, hi int64
			set    func(int64)
		}{"#", 1, 8191, func(v int64) { cfg.Code = uint32(v) }})
	}
	for _, p := range ints {
		v, err := parseInt(c, p.name, p.lo, p.hi)
		if err != nil {
			return cfg, err
		}
		p.set(v)
	}
	t, err := strconv.ParseFloat(c.String("t"), 64)
	if err != nil || t <= 0 || t > 3600 {
		return cfg, cliutil.Usagef("-t %q: want seconds between 0 and 3600", c.String("t"))
	}
	cfg.FrameInterval = time.Duration(t * float64(time.Second))
	if err := cfg.Validate(); err != nil {
		return cfg, cliutil.Usagef("%s", trimUsage(err))
	}
	return cfg, nil
}

func trimUsage(err error) string {
	s := err.Error()
	p := spp.ErrUsage.Error() + ": "
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return fmt.Sprint(s)
}
