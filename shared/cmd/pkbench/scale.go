package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/shared/loadgen"
	"github.com/probekit/probekit/shared/reflector"
	"github.com/probekit/probekit/shared/udpsock"
)

const (
	flagWorkers = "workers"
	flagSockets = "sockets"
	flagFlows   = "flows"
)

// MinScaling is issue 10's target: N = 2 workers deliver at least 1.7 × one worker's packets
// per second when each has a CPU, i.e. 2 × (packets per CPU-second of 2) / (that of 1) ≥ 1.7.
const MinScaling = 1.7

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "run shared/reflector (unauthenticated stateful STAMP) with N workers, for the scale benchmark",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: flagListen, Value: "127.0.0.1:0", Usage: "UDP `ADDR:PORT` to listen on"},
			cliutil.IntFlag(flagSockets, "SO_REUSEPORT sockets bound to the address (one worker each unless --workers says more)", 1, 1, 64),
			cliutil.IntFlag(flagWorkers, "worker goroutines per socket", 1, 1, 64),
			&cli.BoolFlag{Name: flagBlocking, Usage: "wait inside recvmmsg (udpsock Options.Blocking) instead of the runtime poller"},
		},
		Action: serveAction,
	}
}

func serveAction(c *cli.Context) error {
	opts := reflector.ListenOptions(0)
	opts.RecvDst = false
	opts.Blocking = c.Bool(flagBlocking)
	conns, err := udpsock.ListenGroup(c.Context, "udp4", c.String(flagListen), int(cliutil.Int(c, flagSockets)), opts)
	if err != nil {
		return err
	}
	r, err := reflector.New(reflector.Config{Workers: int(cliutil.Int(c, flagWorkers)), Logger: cliutil.Logger(c)})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "listening %v\n", conns[0].LocalAddr())
	return r.Run(c.Context, conns...)
}

func scaleCommand() *cli.Command {
	return &cli.Command{
		Name:  "scale",
		Usage: "measure how shared/reflector scales with workers: 1 worker, N workers on N SO_REUSEPORT sockets, N workers on one socket",
		Description: "Starts `pkbench serve` three times (1 worker; N sockets × 1 worker; 1 socket × N workers) and " +
			"offers each the same load from --flows generator sockets (distinct source ports: sessions the kernel " +
			"spreads over SO_REUSEPORT sockets). Per configuration it reports replies, loss, the reflector's CPU " +
			"time (/proc/PID/stat, all threads), packets per CPU-second, the CPUs it kept busy and the residence " +
			"p50. On a shared machine other load decides how much wall-clock throughput the workers get; " +
			"packets per CPU-second hardly depends on it, so the scaling figure is N × (packets per CPU-second " +
			"with N workers) / (with 1): what N workers deliver when each has a CPU (target ≥ 1.7 for N = 2). " +
			"Lock contention or cache-line bouncing between workers lowers it. Runs alternate between the " +
			"configurations; medians count.",
		Flags: []cli.Flag{
			cliutil.IntFlag(flagWorkers, "N: workers of the multi-worker configurations", 2, 2, 64),
			cliutil.IntFlag(flagFlows, "generator sockets (sessions) sharing the rate", 8, 1, 256),
			&cli.Float64Flag{Name: flagRate, Value: 40000, Usage: "offered `PPS`, all flows together"},
			&cli.DurationFlag{Name: flagDuration, Value: 3 * time.Second, Usage: "`DURATION` of each run"},
			cliutil.IntFlag(flagRepeat, "runs per configuration (alternating; the median counts)", 3, 1, 20),
			cliutil.IntFlag(flagSize, "UDP payload `BYTES` (44 = unauthenticated STAMP)", loadgen.DefaultSize, 44, 9000),
			&cli.BoolFlag{Name: flagBlocking, Usage: "serve in udpsock's Blocking mode"},
			&cli.BoolFlag{Name: flagCheck, Usage: "exit 1 when the scaling or residence target is missed"},
		},
		Action: scaleAction,
	}
}

// scaleConfig is one configuration of the scale benchmark.
type scaleConfig struct {
	Name    string                `json:"name"`
	Sockets int                   `json:"sockets"`
	Workers int                   `json:"workers_per_socket"`
	Runs    []loadgen.FlowsResult `json:"runs"`
	// Medians over the runs.
	PacketsPerCPUSecond float64       `json:"packets_per_cpu_second"`
	ResidenceP50        time.Duration `json:"residence_p50_ns"`
	// Scaling is workers × PacketsPerCPUSecond / that of one worker.
	Scaling float64 `json:"scaling"`
}

type scaleReport struct {
	Rate     float64         `json:"rate_pps"`
	Duration time.Duration   `json:"duration_ns"`
	Flows    int             `json:"flows"`
	LoadAvg  [2]float64      `json:"loadavg_1m"`
	Configs  []*scaleConfig  `json:"configs"`
	Checks   []loadgen.Check `json:"checks"`
}

func scaleAction(c *cli.Context) error {
	if err := positive(c, flagRate, flagDuration); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	n := int(cliutil.Int(c, flagWorkers))
	cfgs := []*scaleConfig{
		{Name: "1 worker", Sockets: 1, Workers: 1},
		{Name: fmt.Sprintf("%d sockets x 1 worker", n), Sockets: n, Workers: 1},
		{Name: fmt.Sprintf("1 socket x %d workers", n), Sockets: 1, Workers: n},
	}
	rep := scaleReport{Rate: c.Float64(flagRate), Duration: c.Duration(flagDuration), Flows: int(cliutil.Int(c, flagFlows)),
		Configs: cfgs}
	rep.LoadAvg[0] = loadgen.LoadAvg1()
	procs := make([]*loadgen.Process, len(cfgs))
	for i, sc := range cfgs {
		p, err := startServe(c.Context, exe, sc, c.Bool(flagBlocking))
		if err != nil {
			return err
		}
		defer p.Stop()
		procs[i] = p
	}
	log := cliutil.Logger(c)
	for r := 0; r < int(cliutil.Int(c, flagRepeat)); r++ {
		for i, sc := range cfgs {
			res, err := loadgen.RunFlows(c.Context, procs[i], rep.Rate, rep.Duration, rep.Flows, int(cliutil.Int(c, flagSize)))
			if err != nil {
				return err
			}
			log.WithField("config", sc.Name).WithField("pkts_per_cpu_s", int(res.PacketsPerCPUSecond)).Info("scale run")
			sc.Runs = append(sc.Runs, res)
		}
	}
	for _, sc := range cfgs {
		var ppcs []float64
		var p50 []time.Duration
		for _, r := range sc.Runs {
			ppcs = append(ppcs, r.PacketsPerCPUSecond)
			p50 = append(p50, r.ResidenceP50)
		}
		sc.PacketsPerCPUSecond, sc.ResidenceP50 = median(ppcs), median(p50)
	}
	base := cfgs[0]
	for _, sc := range cfgs {
		if base.PacketsPerCPUSecond > 0 {
			sc.Scaling = float64(sc.Sockets*sc.Workers) * sc.PacketsPerCPUSecond / base.PacketsPerCPUSecond
		}
		if sc == base {
			continue
		}
		rep.Checks = append(rep.Checks,
			loadgen.Check{Name: sc.Name + ": scaling", Value: sc.Scaling, Op: ">=", Limit: MinScaling, Pass: sc.Scaling >= MinScaling},
			// "No residence added at p50": within 1.5 × one worker's, the run-to-run spread here.
			loadgen.Check{Name: sc.Name + ": residence_p50_ratio", Value: ratio(sc.ResidenceP50, base.ResidenceP50), Op: "<=", Limit: 1.5,
				Pass: ratio(sc.ResidenceP50, base.ResidenceP50) <= 1.5})
	}
	rep.LoadAvg[1] = loadgen.LoadAvg1()
	if cliutil.OutputFormat(c) == cliutil.FormatJSON {
		if err := json.NewEncoder(c.App.Writer).Encode(rep); err != nil {
			return err
		}
	} else {
		writeScale(c.App.Writer, rep)
	}
	if c.Bool(flagCheck) {
		for _, ch := range rep.Checks {
			if !ch.Pass {
				return errors.New("reflector missed a scaling target (see checks)")
			}
		}
	}
	return nil
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func median[T int64 | float64 | time.Duration](v []T) T {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func startServe(ctx context.Context, exe string, sc *scaleConfig, blocking bool) (*loadgen.Process, error) {
	port, err := loadgen.FreePort()
	if err != nil {
		return nil, err
	}
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	argv := []string{exe, "--log-level", "warn", "serve", "--" + flagListen, addr.String(),
		"--" + flagSockets, strconv.Itoa(sc.Sockets), "--" + flagWorkers, strconv.Itoa(sc.Workers)}
	if blocking {
		argv = append(argv, "--"+flagBlocking)
	}
	return loadgen.StartArgs(ctx, sc.Name, addr, argv, nil)
}

func writeScale(w io.Writer, rep scaleReport) {
	fmt.Fprintf(w, "pkbench scale: shared/reflector, %.0f pps from %d flows for %v per run, %d runs each (load average %.2f → %.2f on %d CPUs)\n",
		rep.Rate, rep.Flows, rep.Duration, len(rep.Configs[0].Runs), rep.LoadAvg[0], rep.LoadAvg[1], runtime.NumCPU())
	fmt.Fprintf(w, "%-24s %10s %10s %8s %10s %8s %14s %12s %8s\n", "config", "sent", "received", "loss%", "cpu_s", "cores",
		"pkts/cpu_s", "resid_p50µs", "scaling")
	for _, sc := range rep.Configs {
		for i, r := range sc.Runs {
			name := sc.Name
			if i > 0 {
				name = ""
			}
			fmt.Fprintf(w, "%-24s %10d %10d %8.4f %10.3f %8.2f %14.0f %12s %8s\n", name, r.Sent, r.Received, 100*r.Loss,
				r.CPU.Seconds(), r.Cores, r.PacketsPerCPUSecond, usf(r.ResidenceP50), "")
		}
		fmt.Fprintf(w, "%-24s %10s %10s %8s %10s %8s %14.0f %12s %8.2f\n", "  median", "", "", "", "", "",
			sc.PacketsPerCPUSecond, usf(sc.ResidenceP50), sc.Scaling)
	}
	for _, ch := range rep.Checks {
		verdict := "ok"
		if !ch.Pass {
			verdict = "MISSED"
		}
		fmt.Fprintf(w, "check %-40s %8.3f %-2s %-6g %s\n", ch.Name, ch.Value, ch.Op, ch.Limit, verdict)
	}
}
