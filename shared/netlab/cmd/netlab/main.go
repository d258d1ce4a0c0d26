// Command netlab builds, lists and removes probekit network labs and runs the lab self test.
// It is the tool behind scripts/netlab; tests use package netlab directly.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/shared/netlab"
)

func main() {
	app := &cli.App{
		Name:  "netlab",
		Usage: "network namespaces labs with delay, loss, NAT kinds and middleboxes",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-level", Value: "warn", Usage: "debug, info, warn, error"},
		},
		Commands: []*cli.Command{
			{
				Name:  "up",
				Usage: "build a lab that stays up until `netlab down PREFIX`",
				Subcommands: []*cli.Command{
					{
						Name:  "path",
						Usage: "A — R — B with impairments per direction on R",
						Flags: []cli.Flag{
							&cli.DurationFlag{Name: "delay", Usage: "delay each way"},
							&cli.DurationFlag{Name: "delay-out", Usage: "delay A→B (overrides --delay)"},
							&cli.DurationFlag{Name: "delay-in", Usage: "delay B→A (overrides --delay)"},
							&cli.DurationFlag{Name: "jitter", Usage: "jitter each way"},
							&cli.StringFlag{Name: "jitter-dist", Value: "uniform", Usage: "uniform or normal"},
							&cli.BoolFlag{Name: "reorder", Usage: "let jittered packets overtake each other"},
							&cli.Float64Flag{Name: "loss", Usage: "loss probability each way (0..1)"},
							cliutil.IntFlag("rate", "rate limit each way, bit/s (0: none)", 0, 0, 1<<40),
							&cli.StringFlag{Name: "schedule", Usage: "A→B delay schedule AT=DELAY,… e.g. 5s=30ms,10s=10ms"},
						},
						Action: upPath,
					},
					{
						Name:  "nat",
						Usage: "STUN server, rendezvous host and NAT routers with clients",
						Flags: []cli.Flag{
							&cli.StringFlag{Name: "kinds", Value: "full-cone,address-restricted,port-restricted,symmetric", Usage: "NAT kinds, one router each"},
							cliutil.IntFlag("clients", "clients behind each NAT (1..4)", 1, 1, 4),
							&cli.BoolFlag{Name: "hairpin", Usage: "enable hairpinning (not on symmetric routers)"},
							&cli.BoolFlag{Name: "upnp", Usage: "run miniupnpd (UPnP IGD + NAT-PMP) on every router"},
							&cli.DurationFlag{Name: "udp-timeout", Usage: "idle UDP mapping lifetime (default: conntrack's 30 s/120 s)"},
						},
						Action: upNAT,
					},
					{
						Name:  "middlebox",
						Usage: "client — router — server with a TCP middlebox mode",
						Flags: []cli.Flag{
							&cli.StringFlag{Name: "mode", Value: "transparent", Usage: strings.Join(netlab.MiddleboxModeNames(), ", ")},
						},
						Action: upMiddlebox,
					},
				},
			},
			{Name: "down", Usage: "remove a lab", ArgsUsage: "PREFIX…", Action: down},
			{Name: "status", Usage: "list labs, their namespaces and addresses", Action: status},
			{
				Name:   "clean",
				Usage:  "remove leftover labs (owner gone); --all also removes `up` labs; or name prefixes",
				Flags:  []cli.Flag{&cli.BoolFlag{Name: "all"}},
				Action: clean, ArgsUsage: "[PREFIX…]",
			},
			{
				Name:  "selftest",
				Usage: "build every topology and prove it with independent tools",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "only", Usage: "run checks whose name contains this"},
					&cli.StringFlag{Name: "keep", Usage: "keep captures in this directory"},
				},
				Action: selftest,
			},
		},
	}
	if err := app.Run(os.Args); err != nil {
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(os.Stderr, "netlab:", strings.TrimPrefix(msg, "netlab: "))
		}
		os.Exit(1)
	}
}

func logger(c *cli.Context) *logrus.Logger {
	l := logrus.New()
	l.SetOutput(os.Stderr)
	if lvl, err := logrus.ParseLevel(c.String("log-level")); err == nil {
		l.SetLevel(lvl)
	}
	return l
}

func parseSchedule(s string) ([]netlab.Step, error) {
	var steps []netlab.Step
	for _, part := range strings.Split(s, ",") {
		if part == "" {
			continue
		}
		at, d, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("schedule step %q: want AT=DELAY", part)
		}
		a, err := time.ParseDuration(at)
		if err != nil {
			return nil, err
		}
		dd, err := time.ParseDuration(d)
		if err != nil {
			return nil, err
		}
		steps = append(steps, netlab.Step{At: a, Delay: dd})
	}
	return steps, nil
}

func upPath(c *cli.Context) error {
	imp := netlab.Impairment{Delay: c.Duration("delay"), Jitter: c.Duration("jitter"), Reorder: c.Bool("reorder"),
		Loss: c.Float64("loss"), RateBps: cliutil.Int(c, "rate")}
	switch c.String("jitter-dist") {
	case "uniform":
	case "normal":
		imp.JitterDist = netlab.Normal
	default:
		return fmt.Errorf("--jitter-dist: uniform or normal, not %q", c.String("jitter-dist"))
	}
	out, in := imp, imp
	if c.IsSet("delay-out") {
		out.Delay = c.Duration("delay-out")
	}
	if c.IsSet("delay-in") {
		in.Delay = c.Duration("delay-in")
	}
	steps, err := parseSchedule(c.String("schedule"))
	if err != nil {
		return err
	}
	out.Schedule = steps
	p, err := netlab.NewPath(netlab.PathConfig{Out: out, In: in, Log: logger(c), Persistent: true})
	if err != nil {
		return err
	}
	return printLab(p.Lab)
}

func upNAT(c *cli.Context) error {
	cfg := netlab.NATConfig{Log: logger(c), Persistent: true, STUN: true}
	for _, k := range strings.Split(c.String("kinds"), ",") {
		kind, err := netlab.ParseNATKind(k)
		if err != nil {
			return err
		}
		cfg.NATs = append(cfg.NATs, netlab.NATSpec{Kind: kind, Clients: int(cliutil.Int(c, "clients")), Hairpin: c.Bool("hairpin"),
			UPnP: c.Bool("upnp"), UDPTimeout: c.Duration("udp-timeout")})
	}
	n, err := netlab.NewNAT(cfg)
	if err != nil {
		return err
	}
	return printLab(n.Lab)
}

func upMiddlebox(c *cli.Context) error {
	mode, err := netlab.ParseMiddleboxMode(c.String("mode"))
	if err != nil {
		return err
	}
	m, err := netlab.NewMiddlebox(netlab.MiddleboxConfig{Mode: mode, Log: logger(c), Persistent: true})
	if err != nil {
		return err
	}
	return printLab(m.Lab)
}

// printLab detaches the lab (it stays up) and prints how to reach its hosts.
func printLab(lab *netlab.Lab) error {
	lab.Detach()
	fmt.Println(lab.Prefix)
	for _, h := range lab.Hosts() {
		addr := ""
		if h.Addr.IsValid() {
			addr = h.Addr.String()
		}
		fmt.Printf("  %-10s ip netns exec %-16s %s %s\n", h.Name, h.NS, h.Iface, addr)
	}
	fmt.Printf("remove with: scripts/netlab down %s\n", lab.Prefix)
	return nil
}

func down(c *cli.Context) error {
	if c.NArg() == 0 {
		return errors.New("down: name the lab prefix (see `netlab status`)")
	}
	labs, err := netlab.List()
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range c.Args().Slice() {
		if !slices.ContainsFunc(labs, func(l netlab.LabInfo) bool { return l.Prefix == p }) {
			errs = append(errs, fmt.Errorf("down: no lab %q (see `netlab status`)", p))
			continue
		}
		errs = append(errs, netlab.Destroy(p))
	}
	return errors.Join(errs...)
}

func status(c *cli.Context) error {
	labs, err := netlab.List()
	if err != nil {
		return err
	}
	if len(labs) == 0 {
		fmt.Println("no labs")
	}
	for _, l := range labs {
		state := "owner " + l.Owner
		if l.Owner == "persistent" {
			state = "up"
		}
		if l.Orphan {
			state += " (leftover: owner gone)"
		}
		fmt.Printf("%s %s\n", l.Prefix, state)
		for _, ns := range l.Namespaces {
			out, _ := execOut("ip", "-n", ns, "-br", "-4", "addr")
			fmt.Printf("  %s: %s\n", ns, strings.Join(strings.Fields(out), " "))
		}
	}
	return nil
}

func clean(c *cli.Context) error {
	labs, err := netlab.List()
	if err != nil {
		return err
	}
	named := map[string]bool{}
	for _, p := range c.Args().Slice() {
		named[p] = true
	}
	var errs []error
	n := 0
	for _, l := range labs {
		if named[l.Prefix] || (len(named) == 0 && (l.Orphan || (c.Bool("all") && l.Owner == "persistent"))) {
			errs = append(errs, netlab.Destroy(l.Prefix))
			n++
		}
	}
	fmt.Printf("removed %d labs\n", n)
	return errors.Join(errs...)
}

func selftest(c *cli.Context) error {
	_, failed := netlab.Selftest(netlab.SelftestConfig{Out: os.Stdout, Log: logger(c), Only: c.String("only"), Dir: c.String("keep")})
	if failed > 0 {
		return cli.Exit("", 1)
	}
	return nil
}

func execOut(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).Output()
	return string(out), err
}
