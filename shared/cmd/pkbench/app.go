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
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/shared/loadgen"
	"github.com/probekit/probekit/shared/udpsock"
)

const (
	flagListen      = "listen"
	flagBatch       = "batch"
	flagTarget      = "target"
	flagRate        = "rate"
	flagDuration    = "duration"
	flagPID         = "pid"
	flagSize        = "size"
	flagCmd         = "cmd"
	flagName        = "name"
	flagRepeat      = "repeat"
	flagResRate     = "residence-rate"
	flagResDuration = "residence-duration"
	flagSearchStart = "search-start"
	flagSearchMax   = "search-max"
	flagSearchDur   = "search-duration"
	flagNoSearch    = "no-search"
	flagCheck       = "check"
	flagRcvBuf      = "rcvbuf"
	flagWait        = "wait"
	flagBlocking    = "blocking"
	flagStamp       = "stamp"
	flagLimitStamps = "limit-stamps"
	flagBusyPoll    = "busy-poll"
	flagLimitPoll   = "limit-busy-poll"
	flagPin         = "pin"
	flagResAlso     = "residence-also"
	flagResSlices   = "residence-slices"
)

// limitRcvBuf is the limit echo's default receive buffer: the best a reflector can do is
// batched I/O and nothing else, with a queue deep enough (like shared/reflector's sockets)
// that a scheduling stall on a busy machine delays packets instead of dropping them.
const limitRcvBuf = 4 << 20

func newApp(version string) *cli.App {
	app := cliutil.NewApp("pkbench", "benchmark UDP reflectors against a minimal batched echo on loopback", version)
	app.Commands = append(app.Commands,
		&cli.Command{
			Name:  "echo",
			Usage: "run the limit echo: every datagram straight back (recvmmsg/sendmmsg, nothing else)",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: flagListen, Value: "127.0.0.1:0", Usage: "UDP `ADDR:PORT` to listen on"},
				cliutil.IntFlag(flagBatch, "datagrams per recvmmsg/sendmmsg", udpsock.DefaultBatch, 1, 1024),
				cliutil.IntFlag(flagRcvBuf, "socket receive buffer `BYTES` (0: the kernel default)", limitRcvBuf, 0, 1<<30),
				&cli.BoolFlag{Name: flagBlocking, Usage: "wait inside recvmmsg (udpsock Options.Blocking) instead of the runtime poller"},
				&cli.BoolFlag{Name: flagStamp, Usage: "write T2 (kernel receive stamp) and T3 (just before sending) into replies like a STAMP reflector"},
				&cli.DurationFlag{Name: flagBusyPoll, Usage: "poll the socket without sleeping for up to `DURATION` before each wait (udpsock Options.BusyPoll)"},
			},
			Action: echoAction,
		},
		&cli.Command{
			Name:  "load",
			Usage: "offer a fixed packet rate to a running echo or reflector and report loss, RTT, residence and its CPU",
			Flags: append([]cli.Flag{
				&cli.StringFlag{Name: flagTarget, Usage: "target `ADDR:PORT` (loopback)"},
				cliutil.IntFlag(flagPID, "process whose CPU time to measure (0: none)", 0, 0, 1<<22),
				&cli.DurationFlag{Name: flagWait, Value: loadgen.DefaultWait, Usage: "how long to wait for late replies after the last send"},
			}, loadFlags(20000, 5*time.Second)...),
			Action: loadAction,
		},
		&cli.Command{
			Name:  "reflector",
			Usage: "compare a reflector command with the limit echo in one run (CPU per packet, max rate, residence)",
			Description: "Starts the limit echo and the reflector (CMD with {port} replaced by a free port on " +
				"127.0.0.1), offers both the same fixed rate and compares CPU time per reflected packet from " +
				"/proc/PID/stat, searches the highest reply rate with < 0.1 % loss, and reads T3 − T2 from " +
				"STAMP/TWAMP replies at the residence rate. Without --cmd a second echo is the reflector, " +
				"which gives the baseline ratios of identical implementations.",
			Flags: append([]cli.Flag{
				&cli.StringFlag{Name: flagCmd, Usage: "reflector `COMMAND` with {port} for its UDP port, e.g. 'bin/stampref --listen 127.0.0.1:{port}'"},
				&cli.StringFlag{Name: flagName, Usage: "reflector `NAME` in the report (default: the command's first word)"},
				cliutil.IntFlag(flagBatch, "datagrams per recvmmsg/sendmmsg of the limit echo", udpsock.DefaultBatch, 1, 1024),
				cliutil.IntFlag(flagRcvBuf, "receive buffer `BYTES` of the limit echo (0: the kernel default)", limitRcvBuf, 0, 1<<30),
				&cli.BoolFlag{Name: flagBlocking, Usage: "run the limit echo (and the stand-in echo) in udpsock's Blocking mode"},
				&cli.BoolFlag{Name: flagLimitStamps, Usage: "let the limit echo write T2/T3 (kernel receive stamp, send time): the machine's residence floor beside the reflector's"},
				&cli.DurationFlag{Name: flagLimitPoll, Usage: "let the limit echo busy-poll for up to `DURATION` (compare with a polling reflector)"},
				&cli.BoolFlag{Name: flagPin, Usage: "pin the load generator to the first CPU and the limit echo and reflector to the last (needs 2 CPUs): the targets do not compete with the generator for a CPU"},
				cliutil.IntFlag(flagRepeat, "fixed-rate runs per target (alternating; the median counts)", 1, 1, 20),
				&cli.Float64Flag{Name: flagResRate, Value: 10000, Usage: "offered `PPS` for the residence-time run"},
				&cli.DurationFlag{Name: flagResDuration, Value: 3 * time.Second, Usage: "`DURATION` of the residence-time run"},
				cliutil.IntFlag(flagResSlices, "split each residence-time run into `N` slices alternating between the limit echo and the reflector (load drift hits both alike; the median slice counts)", 1, 1, 100),
				&cli.Float64SliceFlag{Name: flagResAlso, Usage: "further residence-time runs at these `PPS` (repeatable), e.g. 100 where an idle CPU's wake-up dominates; with --limit-stamps each rate is checked against the limit echo's residence (≤ 1.5×)"},
				&cli.Float64Flag{Name: flagSearchStart, Value: 50000, Usage: "first offered `PPS` of the max-rate search (×1.25 per step)"},
				&cli.Float64Flag{Name: flagSearchMax, Value: 2e6, Usage: "highest offered `PPS` of the max-rate search"},
				&cli.DurationFlag{Name: flagSearchDur, Value: time.Second, Usage: "`DURATION` of each max-rate step"},
				&cli.BoolFlag{Name: flagNoSearch, Usage: "skip the max-rate search"},
				&cli.BoolFlag{Name: flagCheck, Usage: "exit 1 when a target figure of issues 4/5 is missed"},
			}, loadFlags(20000, 5*time.Second)...),
			Action: reflectorAction,
		},
		serveCommand(),
		scaleCommand(),
	)
	return app
}

func loadFlags(rate float64, d time.Duration) []cli.Flag {
	return []cli.Flag{
		&cli.Float64Flag{Name: flagRate, Value: rate, Usage: "offered `PPS`"},
		&cli.DurationFlag{Name: flagDuration, Value: d, Usage: "how long to offer it"},
		cliutil.IntFlag(flagSize, "UDP payload `BYTES` (44 = unauthenticated STAMP)", loadgen.DefaultSize, 4, 9000),
	}
}

// loopbackAddr parses a target and refuses anything off 127.0.0.0/8 and ::1: the benchmark
// floods its target.
func loopbackAddr(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return ap, cliutil.Usagef("--%s: %v", flagTarget, err)
	}
	if !ap.Addr().Unmap().IsLoopback() {
		return ap, cliutil.Usagef("--%s %v: only loopback targets are allowed", flagTarget, ap)
	}
	return ap, nil
}

func positive(c *cli.Context, names ...string) error {
	for _, n := range names {
		switch v := c.Value(n).(type) {
		case float64:
			if !(v > 0) {
				return cliutil.Usagef("--%s must be positive", n)
			}
		case time.Duration:
			if v <= 0 {
				return cliutil.Usagef("--%s must be positive", n)
			}
		}
	}
	return nil
}

func echoAction(c *cli.Context) error {
	log := cliutil.Logger(c)
	stamp := c.Bool(flagStamp)
	conn, err := udpsock.Listen(c.Context, "udp", c.String(flagListen), udpsock.Options{
		Batch: int(cliutil.Int(c, flagBatch)), ReadBuffer: int(cliutil.Int(c, flagRcvBuf)), Blocking: c.Bool(flagBlocking),
		RxTimestamps: stamp, BusyPoll: c.Duration(flagBusyPoll)})
	if err != nil {
		return err
	}
	defer conn.Close()
	// The first stdout line tells a parent which port was bound.
	fmt.Fprintf(c.App.Writer, "listening %v\n", conn.LocalAddr())
	var count atomic.Uint64
	run := loadgen.Echo
	if stamp {
		run = loadgen.StampingEcho
	}
	err = run(c.Context, conn, int(cliutil.Int(c, flagBatch)), &count)
	log.WithField("echoed", count.Load()).Info("echo stopped")
	return err
}

func loadAction(c *cli.Context) error {
	if err := positive(c, flagRate, flagDuration); err != nil {
		return err
	}
	if err := cliutil.RequireFlags(c, flagTarget); err != nil {
		return err
	}
	target, err := loopbackAddr(c.String(flagTarget))
	if err != nil {
		return err
	}
	network := "udp4"
	bind := "127.0.0.1:0"
	if target.Addr().Is6() && !target.Addr().Is4In6() {
		network, bind = "udp6", "[::1]:0"
	}
	conn, err := udpsock.Listen(c.Context, network, bind, udpsock.Options{RxTimestamps: true, ReadBuffer: 8 << 20, WriteBuffer: 4 << 20})
	if err != nil {
		return err
	}
	defer conn.Close()
	res, err := loadgen.Run(c.Context, conn, loadgen.Config{
		Target: target, Rate: c.Float64(flagRate), Duration: c.Duration(flagDuration),
		Size: int(cliutil.Int(c, flagSize)), PID: int(cliutil.Int(c, flagPID)), Residence: loadgen.STAMPResidence,
		Wait: c.Duration(flagWait),
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	switch cliutil.OutputFormat(c) {
	case cliutil.FormatJSON:
		return json.NewEncoder(c.App.Writer).Encode(res)
	case cliutil.FormatCSV:
		e := cliutil.NewEmitter(c.App.Writer, cliutil.FormatCSV, "target", "rate_pps", "duration_s", "size", "sent", "received",
			"lost", "duplicates", "unexpected", "loss", "sent_pps", "reply_pps", "rtt_p50_us", "rtt_p99_us",
			"residence_p50_us", "residence_p99_us", "cpu_us_per_packet")
		if err := e.Emit(target.String(), res.Rate, res.Duration.Seconds(), res.Size, res.Sent, res.Received, res.Lost,
			res.Duplicates, res.Unexpected, res.Loss, res.SentRate, res.ReplyRate, usv(res.RTT.P50), usv(res.RTT.P99),
			usv(res.Residence.P50), usv(res.Residence.P99), usv(res.CPUPerPacket)); err != nil {
			return err
		}
		return e.Close()
	}
	writeResult(c.App.Writer, target.String(), res)
	return nil
}

func reflectorAction(c *cli.Context) error {
	if err := positive(c, flagRate, flagDuration, flagResRate, flagResDuration, flagSearchStart, flagSearchMax, flagSearchDur); err != nil {
		return err
	}
	cmd := c.String(flagCmd)
	if cmd != "" && !strings.Contains(cmd, "{port}") {
		return cliutil.Usagef("--%s must contain {port}", flagCmd)
	}
	log := cliutil.Logger(c)
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	ctx := c.Context
	startEcho := func(name string, stamp bool) (*loadgen.Process, error) {
		port, err := loadgen.FreePort()
		if err != nil {
			return nil, err
		}
		addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
		argv := []string{exe, "--log-level", "warn", "echo",
			"--" + flagListen, addr.String(), "--" + flagBatch, strconv.Itoa(int(cliutil.Int(c, flagBatch))),
			"--" + flagRcvBuf, strconv.Itoa(int(cliutil.Int(c, flagRcvBuf)))}
		if c.Bool(flagBlocking) {
			argv = append(argv, "--"+flagBlocking)
		}
		if stamp {
			argv = append(argv, "--"+flagStamp)
		}
		if d := c.Duration(flagLimitPoll); d > 0 {
			argv = append(argv, "--"+flagBusyPoll, d.String())
		}
		return loadgen.StartArgs(ctx, name, addr, argv, nil)
	}
	limit, err := startEcho("limit-echo", c.Bool(flagLimitStamps))
	if err != nil {
		return err
	}
	defer limit.Stop()
	var target *loadgen.Process
	if cmd != "" {
		name := c.String(flagName)
		if name == "" {
			name = cmdName(cmd)
		}
		target, err = loadgen.StartCommand(ctx, name, cmd, os.Stderr)
	} else {
		name := c.String(flagName)
		if name == "" {
			name = "echo"
		}
		target, err = startEcho(name, false)
	}
	if err != nil {
		return err
	}
	defer target.Stop()
	var pinned string
	if c.Bool(flagPin) {
		cpus, err := loadgen.Affinity(0)
		if err != nil {
			return err
		}
		if len(cpus) < 2 {
			return cliutil.Usagef("--%s needs 2 CPUs, this process may use %v", flagPin, cpus)
		}
		gen, tgt := cpus[0], cpus[len(cpus)-1]
		for _, pid := range []int{0, limit.PID(), target.PID()} {
			cpu := tgt
			if pid == 0 {
				cpu = gen
			}
			if err := loadgen.PinTasks(pid, cpu); err != nil {
				return err
			}
		}
		pinned = fmt.Sprintf("generator on CPU %d, limit echo and %s on CPU %d", gen, target.Name, tgt)
		log.WithField("pin", pinned).Info("pinned")
	}
	log.WithFields(logrus.Fields{"limit": limit.Addr, "limit_pid": limit.PID(), "target": target.Name,
		"target_addr": target.Addr, "target_pid": target.PID()}).Info("targets ready")

	rep, err := loadgen.Compare(ctx, limit, target, loadgen.BenchConfig{
		Rate: c.Float64(flagRate), Duration: c.Duration(flagDuration), Repeat: int(cliutil.Int(c, flagRepeat)),
		ResidenceRate: c.Float64(flagResRate), ResidenceDuration: c.Duration(flagResDuration),
		ExtraResidenceRates: c.Float64Slice(flagResAlso), ResidenceSlices: int(cliutil.Int(c, flagResSlices)),
		SearchStart: c.Float64(flagSearchStart), SearchMax: c.Float64(flagSearchMax), SearchDuration: c.Duration(flagSearchDur),
		SkipSearch: c.Bool(flagNoSearch), Size: int(cliutil.Int(c, flagSize)), Log: log,
	})
	if err != nil {
		return err
	}
	rep.Pinned = pinned
	switch cliutil.OutputFormat(c) {
	case cliutil.FormatJSON:
		if err := json.NewEncoder(c.App.Writer).Encode(rep); err != nil {
			return err
		}
	case cliutil.FormatCSV:
		if err := writeReportCSV(c.App.Writer, rep); err != nil {
			return err
		}
	default:
		writeReport(c.App.Writer, rep)
	}
	if c.Bool(flagCheck) && !rep.Passed() {
		return errors.New("reflector missed a performance target (see checks)")
	}
	return nil
}

// cmdName is the base name of a command line's program.
func cmdName(cmd string) string {
	f := strings.Fields(cmd)
	if len(f) == 0 {
		return "reflector"
	}
	name := f[0]
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	return name
}

func usf(d time.Duration) string { return strconv.FormatFloat(usv(d), 'f', 2, 64) }

func usv(d time.Duration) float64 { return float64(d) / 1e3 }

// totals sums a target's fixed-rate runs.
func totals(tr loadgen.TargetReport) (sent, recv uint64, loss float64) {
	for _, f := range tr.Fixed {
		sent += f.Sent
		recv += f.Received
	}
	if sent > 0 {
		loss = float64(sent-recv) / float64(sent)
	}
	return sent, recv, loss
}

// writeReportCSV writes one row per target; the ratios repeat on both rows.
func writeReportCSV(w io.Writer, rep loadgen.Report) error {
	e := cliutil.NewEmitter(w, cliutil.FormatCSV, "target", "rate_pps", "sent", "received", "loss", "cpu_us_per_packet",
		"max_pps", "max_pps_bound", "residence_p50_us", "residence_p99_us", "cpu_ratio", "max_rate_ratio")
	for _, tr := range []loadgen.TargetReport{rep.Limit, rep.Target} {
		sent, recv, loss := totals(tr)
		var p50, p99 float64
		if tr.Residence != nil {
			p50, p99 = usv(tr.Residence.Residence.P50), usv(tr.Residence.Residence.P99)
		}
		if err := e.Emit(tr.Name, rep.Rate, sent, recv, loss, usv(tr.CPUPerPacket), tr.MaxRate, tr.MaxRateBound,
			p50, p99, rep.CPURatio, rep.MaxRateRatio); err != nil {
			return err
		}
	}
	return e.Close()
}

func writeResult(w io.Writer, target string, r loadgen.Result) {
	fmt.Fprintf(w, "target %s: offered %.0f pps for %v, %d-byte packets\n", target, r.Rate, r.Duration, r.Size)
	fmt.Fprintf(w, "sent %d (%.0f pps), received %d (%.0f pps), lost %d (%.4f %%), duplicates %d, unexpected %d\n",
		r.Sent, r.SentRate, r.Received, r.ReplyRate, r.Lost, 100*r.Loss, r.Duplicates, r.Unexpected)
	fmt.Fprintf(w, "rtt µs min/p50/p90/p99/max %s/%s/%s/%s/%s\n", usf(r.RTT.Min), usf(r.RTT.P50), usf(r.RTT.P90), usf(r.RTT.P99), usf(r.RTT.Max))
	if r.Residence.Count > 0 {
		fmt.Fprintf(w, "residence (T3-T2) µs min/p50/p99/max %s/%s/%s/%s over %d replies\n",
			usf(r.Residence.Min), usf(r.Residence.P50), usf(r.Residence.P99), usf(r.Residence.Max), r.Residence.Count)
	}
	if r.CPU > 0 || r.CPUPerPacket > 0 {
		fmt.Fprintf(w, "target cpu %v, %s µs/packet\n", r.CPU, usf(r.CPUPerPacket))
	}
	fmt.Fprintf(w, "send lateness µs p50/p99 %s/%s, generator cpu %v\n", usf(r.SendLate.P50), usf(r.SendLate.P99), r.SelfCPU)
}

func writeReport(w io.Writer, rep loadgen.Report) {
	fmt.Fprintf(w, "pkbench: %s vs %s on 127.0.0.1, %.0f pps for %v (load average %.2f → %.2f on %d CPUs)\n",
		rep.Limit.Name, rep.Target.Name, rep.Rate, rep.Duration, rep.LoadAvg[0], rep.LoadAvg[1], runtime.NumCPU())
	if rep.Pinned != "" {
		fmt.Fprintf(w, "pinned: %s\n", rep.Pinned)
	}
	nw := max(14, len(rep.Limit.Name), len(rep.Target.Name))
	fmt.Fprintf(w, "%-*s %9s %9s %8s %12s %14s %-10s %12s %12s\n", nw,
		"target", "sent", "received", "loss%", "cpu_µs/pkt", "max_pps<0.1%", "bound", "resid_p50µs", "resid_p99µs")
	for _, tr := range []loadgen.TargetReport{rep.Limit, rep.Target} {
		sent, recv, loss := totals(tr)
		maxRate, bound := "-", "-"
		if tr.MaxRate > 0 {
			maxRate, bound = strconv.FormatFloat(tr.MaxRate, 'f', 0, 64), tr.MaxRateBound
		}
		p50, p99 := "-", "-"
		if tr.Residence != nil && tr.Residence.Residence.Count > 0 {
			p50, p99 = usf(tr.Residence.Residence.P50), usf(tr.Residence.Residence.P99)
		}
		fmt.Fprintf(w, "%-*s %9d %9d %8.4f %12s %14s %-10s %12s %12s\n", nw,
			tr.Name, sent, recv, 100*loss, usf(tr.CPUPerPacket), maxRate, bound, p50, p99)
	}
	for i := range rep.Target.ExtraResidence {
		for _, tr := range []loadgen.TargetReport{rep.Limit, rep.Target} {
			if i >= len(tr.ExtraResidence) || tr.ExtraResidence[i].Residence.Count == 0 {
				continue
			}
			r := tr.ExtraResidence[i]
			fmt.Fprintf(w, "%-*s residence at %.0f pps: p50 %s µs, p99 %s µs over %d replies\n", nw, tr.Name, r.Rate,
				usf(r.Residence.P50), usf(r.Residence.P99), r.Residence.Count)
		}
	}
	for _, ch := range rep.Checks {
		verdict := "ok"
		if !ch.Pass {
			verdict = "MISSED"
		}
		fmt.Fprintf(w, "check %-22s %10.3f %-2s %-8g %s\n", ch.Name, ch.Value, ch.Op, ch.Limit, verdict)
	}
}
