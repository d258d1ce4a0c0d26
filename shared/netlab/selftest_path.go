package netlab

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"
)

const echoPort = 7000

func pathChecks() []Check {
	return []Check{{Name: "path/", Multi: checkPath}}
}

// checkPath proves the path impairments on one lab (with a UDP echo server on B), changing
// them with Set between properties; each property gets its own capture directory.
func checkPath(env *CheckEnv) []Result {
	p, err := newEchoPath(env, PathConfig{})
	if err != nil {
		return []Result{{Name: "path/build", Err: err}}
	}
	defer p.Close()
	var res []Result
	// floor: what the path adds to an injected delay on this machine right now (filled by the
	// first property; the delay checks bound their medians with it instead of a fixed margin,
	// so a loaded machine does not fail them).
	var floor time.Duration
	for _, c := range []struct {
		name string
		run  func(*CheckEnv, *PathLab) (string, error)
	}{
		{"floor-1ms-each-way", func(env *CheckEnv, p *PathLab) (string, error) {
			var detail string
			var err error
			floor, detail, err = measurePathFloor(env, p)
			return detail, err
		}},
		{"rtt-20ms-each-way", func(env *CheckEnv, p *PathLab) (string, error) { return checkPathRTT(env, p, floor) }},
		{"loss-10pct-each-way", checkPathLoss},
		{"schedule-10-to-30ms", func(env *CheckEnv, p *PathLab) (string, error) { return checkPathSchedule(env, p, floor) }},
		{"reorder", checkPathReorder},
		{"rate-tbf", checkPathRate},
	} {
		sub := &CheckEnv{Dir: filepath.Join(env.Dir, c.name), Log: env.Log.WithField("property", c.name)}
		err := os.MkdirAll(sub.Dir, 0o755)
		start, detail := time.Now(), ""
		if err == nil {
			detail, err = c.run(sub, p)
		}
		res = append(res, Result{Name: "path/" + c.name, Detail: detail, Err: err, Elapsed: time.Since(start)})
	}
	return res
}

// setBoth applies impairments to both directions.
func setBoth(p *PathLab, out, in Impairment) error {
	if err := p.Set(Out, out); err != nil {
		return err
	}
	return p.Set(In, in)
}

func newCheckPath(env *CheckEnv, cfg PathConfig) (*PathLab, error) {
	cfg.Log = env.Log
	p, err := NewPath(cfg)
	if err != nil {
		return nil, err
	}
	trackLab(p.Lab)
	return p, nil
}

// newEchoPath is newCheckPath with a UDP echo server on B's echoPort (stopped with the lab).
func newEchoPath(env *CheckEnv, cfg PathConfig) (*PathLab, error) {
	p, err := newCheckPath(env, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := startUDPEcho(p.B, echoPort); err != nil {
		_ = p.Close()
		return nil, err
	}
	return p, nil
}

// measurePathFloor: 1 ms each way; the median RTT of 300 UDP echoes from a capture on A's
// interface, less the 2 ms injected, is what the path (veths, NFQUEUE, the delayer's wake-ups)
// adds to an injected delay on this machine now. The delay checks allow it on top of their
// fixed margin: a median bound derived from a floor measured in the same run, not a constant
// that a loaded machine exceeds.
func measurePathFloor(env *CheckEnv, p *PathLab) (time.Duration, string, error) {
	const n = 300
	if err := setBoth(p, Impairment{Delay: time.Millisecond}, Impairment{Delay: time.Millisecond}); err != nil {
		return 0, "", err
	}
	caps, err := captured(env, []tap{{"a0", p.A, "a0"}}, fmt.Sprintf("udp port %d", echoPort), func() error {
		_, err := udpPing(p.A, netip.AddrPortFrom(PathB, echoPort), n, 2*time.Millisecond, 100*time.Millisecond)
		return err
	})
	if err != nil {
		return 0, "", err
	}
	a0 := caps["a0"]
	rtt := values(owd(firstSeen(a0, toDst(echoPort)), firstSeen(a0, fromSrc(echoPort))))
	if len(rtt) < n*9/10 {
		return 0, "", fmt.Errorf("only %d of %d echoes captured", len(rtt), n)
	}
	floor := max(percentile(rtt, 0.5)-2*time.Millisecond, 0)
	return floor, fmt.Sprintf("the path adds %s at the median to 1 ms each way (p99 %s) over %d echoes",
		ms(floor), ms(percentile(rtt, 0.99)-2*time.Millisecond), len(rtt)), nil
}

// checkPathRTT: 20 ms each way; the RTT of 1,000 UDP echoes, taken from a tcpdump capture on
// A's interface, has a median between 40 ms and 40 ms + 1 ms + floor (measurePathFloor).
// Captures on both router interfaces measure what the delayer itself adds per direction.
func checkPathRTT(env *CheckEnv, p *PathLab, floor time.Duration) (string, error) {
	const n = 1000
	if err := setBoth(p, Impairment{Delay: 20 * time.Millisecond}, Impairment{Delay: 20 * time.Millisecond}); err != nil {
		return "", err
	}
	var res pingResult
	caps, err := captured(env, []tap{{"a0", p.A, "a0"}, {"ra", p.R, "ra"}, {"rb", p.R, "rb"}}, fmt.Sprintf("udp port %d", echoPort), func() error {
		var err error
		res, err = udpPing(p.A, netip.AddrPortFrom(PathB, echoPort), n, 2*time.Millisecond, 300*time.Millisecond)
		return err
	})
	if err != nil {
		return "", err
	}
	a0, ra, rb := caps["a0"], caps["ra"], caps["rb"]
	rtt := values(owd(firstSeen(a0, toDst(echoPort)), firstSeen(a0, fromSrc(echoPort))))
	if len(rtt) < n*99/100 {
		return "", fmt.Errorf("only %d of %d echoes captured", len(rtt), n)
	}
	out := values(owd(firstSeen(ra, toDst(echoPort)), firstSeen(rb, toDst(echoPort))))
	in := values(owd(firstSeen(rb, fromSrc(echoPort)), firstSeen(ra, fromSrc(echoPort))))
	med := percentile(rtt, 0.5)
	app := percentile(res.received(), 0.5)
	detail := fmt.Sprintf("capture RTT median %s (p1 %s, p99 %s) over %d echoes, app median %s; delayer out min/med/p99 %s/%s/%s, in %s/%s/%s",
		ms(med), ms(percentile(rtt, 0.01)), ms(percentile(rtt, 0.99)), len(rtt), ms(app),
		ms(percentile(out, 0)), ms(percentile(out, 0.5)), ms(percentile(out, 0.99)),
		ms(percentile(in, 0)), ms(percentile(in, 0.5)), ms(percentile(in, 0.99)))
	detail += fmt.Sprintf("; floor %s", ms(floor))
	if d := med - 40*time.Millisecond; d < 0 || d > time.Millisecond+floor {
		return "", fmt.Errorf("RTT median %s not within [40 ms, 41 ms + floor] (%s)", ms(med), detail)
	}
	return detail, nil
}

// checkPathLoss: 10 % loss per direction, counted per direction from captures on both sides
// of the router over 2,000 echoes: A→B is requests seen at B of those sent by A, B→A is echoes
// seen at A of those B sent. Each must be within 3 points of 10 % (4.5 σ of a binomial over
// ~2,000 packets). Counting each direction across the router only keeps a starved echo server
// in B (a full socket buffer under a loaded CI run: it answers nothing, the router drops
// nothing) out of the path's figure; the round-trip loss is reported beside it.
func checkPathLoss(env *CheckEnv, p *PathLab) (string, error) {
	const n = 2000
	if err := setBoth(p, Impairment{Loss: 0.1}, Impairment{Loss: 0.1}); err != nil {
		return "", err
	}
	before := [2]DelayerStats{}
	for _, dir := range []Direction{Out, In} {
		st, err := p.Stats(dir)
		if err != nil {
			return "", err
		}
		before[dir] = st
	}
	caps, err := captured(env, []tap{{"a0", p.A, "a0"}, {"b0", p.B, "b0"}}, fmt.Sprintf("udp port %d", echoPort), func() error {
		_, err := udpPing(p.A, netip.AddrPortFrom(PathB, echoPort), n, 500*time.Microsecond, 200*time.Millisecond)
		return err
	})
	if err != nil {
		return "", err
	}
	a0, b0 := caps["a0"], caps["b0"]
	sent := len(firstSeen(a0, toDst(echoPort)))
	atB := len(firstSeen(b0, toDst(echoPort)))
	echoed := len(firstSeen(b0, fromSrc(echoPort)))
	back := len(firstSeen(a0, fromSrc(echoPort)))
	if sent != n {
		return "", fmt.Errorf("captured %d of %d requests", sent, n)
	}
	if echoed == 0 {
		return "", fmt.Errorf("B answered none of %d requests", atB)
	}
	out := 1 - float64(atB)/float64(sent)
	in := 1 - float64(back)/float64(echoed)
	var drops [2]uint64
	for _, dir := range []Direction{Out, In} {
		st, err := p.Stats(dir)
		if err != nil {
			return "", err
		}
		drops[dir] = st.Dropped - before[dir].Dropped
	}
	qd, ud, err := p.QueueDrops()
	if err != nil {
		return "", err
	}
	detail := fmt.Sprintf("loss A→B %.1f %% (%d of %d requests reach B), B→A %.1f %% (%d of %d echoes reach A); expected 10 %% ± 3 %% each; delayer dropped %d/%d, kernel queue drops %d/%d; round trip %.1f %%, B left %d unanswered",
		100*out, atB, sent, 100*in, back, echoed, drops[Out], drops[In], qd, ud, 100*(1-float64(back)/float64(sent)), atB-echoed)
	if math.Abs(out-0.1) > 0.03 || math.Abs(in-0.1) > 0.03 {
		return "", fmt.Errorf("%s", detail)
	}
	return detail, nil
}

// checkPathSchedule: out delay 10 ms, stepping to 30 ms 1 s after the impairment is applied;
// probes every 2 ms; one-way delays from captures on A and B show the step within 100 ms, every
// delay on its side of the step, and medians within 1 ms + floor above 10 and 30 ms.
func checkPathSchedule(env *CheckEnv, p *PathLab, floor time.Duration) (string, error) {
	const n = 1000
	if err := setBoth(p, Impairment{}, Impairment{}); err != nil {
		return "", err
	}
	var step time.Time
	caps, err := captured(env, []tap{{"a0", p.A, "a0"}, {"b0", p.B, "b0"}}, fmt.Sprintf("udp dst port %d", echoPort), func() error {
		imp := Impairment{Delay: 10 * time.Millisecond, Schedule: []Step{{At: time.Second, Delay: 30 * time.Millisecond}}}
		if err := p.Set(Out, imp); err != nil {
			return err
		}
		step = p.Epoch(Out).Add(time.Second)
		_, err := udpPing(p.A, netip.AddrPortFrom(PathB, echoPort), n, 2*time.Millisecond, 100*time.Millisecond)
		return err
	})
	if err != nil {
		return "", err
	}
	a0, b0 := caps["a0"], caps["b0"]
	sentAt := firstSeen(a0, toDst(echoPort))
	d := owd(sentAt, firstSeen(b0, toDst(echoPort)))
	var before, after []time.Duration
	// The step shows at the first probe (in send order) from which on the next ten all have
	// the new delay: one probe held up elsewhere (a deferred softirq on a loaded machine can
	// add tens of milliseconds to a single packet) must not count as the step.
	seqs := slices.Sorted(maps.Keys(d))
	first := time.Duration(math.MaxInt64)
	for i := range seqs {
		if i+10 > len(seqs) {
			break
		}
		if !slices.ContainsFunc(seqs[i:i+10], func(s int) bool { return d[s] <= 20*time.Millisecond }) {
			first = sentAt[seqs[i]].Sub(step)
			break
		}
	}
	for s, od := range d {
		rel := sentAt[s].Sub(step)
		switch {
		case rel < -time.Millisecond:
			before = append(before, od)
		case rel > 100*time.Millisecond:
			after = append(after, od)
		}
	}
	if len(before) < 100 || len(after) < 100 {
		return "", fmt.Errorf("probes did not straddle the step (%d before, %d after)", len(before), len(after))
	}
	mb, ma := percentile(before, 0.5), percentile(after, 0.5)
	detail := fmt.Sprintf("median OWD %s before the step, %s after; new delay from the probe sent %s after the step; p99 before %s, p1 after +100 ms %s; floor %s",
		ms(mb), ms(ma), ms(first), ms(percentile(before, 0.99)), ms(percentile(after, 0.01)), ms(floor))
	// A probe sent just before the step may reach the router after it (the delay follows the
	// arrival there): that transit is part of the floor.
	switch {
	case first < -time.Millisecond-floor || first > 100*time.Millisecond:
		return "", fmt.Errorf("step not visible within 100 ms: %s", detail)
	case percentile(before, 0.99) >= 29*time.Millisecond || percentile(after, 0.01) < 29*time.Millisecond:
		return "", fmt.Errorf("delays on the wrong side of the step: %s", detail)
	case mb < 10*time.Millisecond || mb > 11*time.Millisecond+floor || ma < 30*time.Millisecond || ma > 31*time.Millisecond+floor:
		return "", fmt.Errorf("medians off: %s", detail)
	}
	return detail, nil
}

// inversions counts adjacent decreases of the probe sequence in arrival order at b.
func inversions(pkts []CapturedPacket, port uint16) (inv, n int) {
	last := -1
	for _, p := range pkts {
		if !toDst(port)(p) {
			continue
		}
		s, ok := probeSeq(p)
		if !ok {
			continue
		}
		n++
		if s < last {
			inv++
		}
		last = s
	}
	return inv, n
}

// checkPathReorder: 20 ms ± 5 ms uniform jitter at 1 probe/ms; with reordering on, the capture
// on B shows sequence inversions; with it off (FIFO), none, and the delay never drops below 15 ms.
func checkPathReorder(env *CheckEnv, p *PathLab) (string, error) {
	const n = 500
	if err := setBoth(p, Impairment{}, Impairment{}); err != nil {
		return "", err
	}
	counts := map[bool]int{}
	for _, reorder := range []bool{true, false} {
		name := fmt.Sprintf("b0-reorder-%v", reorder)
		caps, err := captured(env, []tap{{name, p.B, "b0"}}, fmt.Sprintf("udp dst port %d", echoPort), func() error {
			if err := p.Set(Out, Impairment{Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond, Reorder: reorder}); err != nil {
				return err
			}
			_, err := udpPing(p.A, netip.AddrPortFrom(PathB, echoPort), n, time.Millisecond, 100*time.Millisecond)
			return err
		})
		if err != nil {
			return "", err
		}
		b0 := caps[name]
		inv, got := inversions(b0, echoPort)
		if got != n {
			return "", fmt.Errorf("reorder=%v: %d of %d probes arrived", reorder, got, n)
		}
		counts[reorder] = inv
	}
	detail := fmt.Sprintf("%d inversions in %d probes with reordering on, %d with it off (FIFO)", counts[true], n, counts[false])
	if counts[true] < n/10 || counts[false] != 0 {
		return "", fmt.Errorf("%s", detail)
	}
	return detail, nil
}

// checkPathRate: tbf at 20 Mbit/s out; A sends 1,200-byte datagrams at ~40 Mbit/s for 0.5 s;
// the rate at B (from the gaps between datagrams in the capture) is 20 Mbit/s ± 5 %.
func checkPathRate(env *CheckEnv, p *PathLab) (string, error) {
	const rate, n = 20_000_000, 1500
	// A queue of up to 1 s holds the whole burst (1.9 MB = 0.75 s at the rate), so the link stays
	// backlogged and the delivered rate does not depend on how steadily A could send.
	if err := setBoth(p, Impairment{RateBps: rate, RateLatency: time.Second}, Impairment{}); err != nil {
		return "", err
	}
	sink, err := listenUDPIn(p.B, netip.AddrPortFrom(PathB, 7001))
	if err != nil {
		return "", err
	}
	defer sink.conn.Close()
	caps, err := captured(env, []tap{{"b0", p.B, "b0"}}, "udp dst port 7001", func() error {
		c, err := udpSender(p.A, netip.AddrPortFrom(PathB, 7001))
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, 1200)
		for i := range n {
			if i%50 == 49 {
				time.Sleep(time.Millisecond) // stay within the veth backlog (1,000 packets)
			}
			binary.BigEndian.PutUint32(buf, uint32(i))
			if _, err := c.Write(buf); err != nil {
				return err
			}
		}
		time.Sleep(time.Duration(float64(n*(len(buf)+42)*8)/rate*1e9) + 200*time.Millisecond)
		return nil
	})
	if err != nil {
		return "", err
	}
	pkts := caps["b0"]
	pkts = slices.DeleteFunc(pkts, func(p CapturedPacket) bool { return p.UDP == nil })
	if len(pkts) != n {
		return "", fmt.Errorf("%d of %d datagrams delivered", len(pkts), n)
	}
	// While the tbf queue is backlogged, each datagram leaves exactly len×8/rate after the one
	// before. The median over all gaps ignores the initial burst (the bucket starts full) and
	// any stall in feeding the queue (A or the delayer held up by a loaded machine).
	perGap := make([]float64, 0, len(pkts))
	for i := 1; i < len(pkts); i++ {
		if gap := pkts[i].Time.Sub(pkts[i-1].Time).Seconds(); gap > 0 {
			perGap = append(perGap, float64(pkts[i].Len*8)/gap)
		}
	}
	slices.Sort(perGap)
	got := perGap[len(perGap)/2]
	detail := fmt.Sprintf("median rate between datagrams at B %.2f Mbit/s with tbf at %.0f Mbit/s (%d datagrams)", got/1e6, float64(rate)/1e6, len(pkts))
	if math.Abs(got/rate-1) > 0.05 {
		return "", fmt.Errorf("%s", detail)
	}
	return detail, nil
}
