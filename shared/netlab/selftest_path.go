package netlab

import (
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"time"
)

const echoPort = 7000

func pathChecks() []Check {
	return []Check{
		{Name: "path/rtt-20ms-each-way", Run: checkPathRTT},
		{Name: "path/loss-10pct-each-way", Run: checkPathLoss},
		{Name: "path/schedule-10-to-30ms", Run: checkPathSchedule},
		{Name: "path/reorder", Run: checkPathReorder},
		{Name: "path/rate-tbf", Run: checkPathRate},
	}
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

// checkPathRTT: 20 ms each way; the RTT of 1,000 UDP echoes, taken from a tcpdump capture on
// A's interface, has a median of 40 ms ± 1 ms. Captures on both router interfaces measure what
// the delayer itself adds per direction.
func checkPathRTT(env *CheckEnv) (string, error) {
	const n = 1000
	p, err := newCheckPath(env, PathConfig{Out: Impairment{Delay: 20 * time.Millisecond}, In: Impairment{Delay: 20 * time.Millisecond}})
	if err != nil {
		return "", err
	}
	defer p.Close()
	e, err := startUDPEcho(p.B, echoPort)
	if err != nil {
		return "", err
	}
	defer e.Close()
	var cs captureSet
	filter := fmt.Sprintf("udp port %d", echoPort)
	for _, c := range []struct {
		h     *Host
		iface string
	}{{p.A, "a0"}, {p.R, "ra"}, {p.R, "rb"}} {
		if err := cs.start(c.h, c.iface, env.File(c.iface+".pcap"), filter); err != nil {
			cs.stop()
			return "", err
		}
	}
	res, err := udpPing(p.A, netip.AddrPortFrom(PathB, echoPort), n, 2*time.Millisecond, 300*time.Millisecond)
	if cerr := cs.stop(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	a0, err := ReadCapture(env.File("a0.pcap"))
	if err != nil {
		return "", err
	}
	ra, err := ReadCapture(env.File("ra.pcap"))
	if err != nil {
		return "", err
	}
	rb, err := ReadCapture(env.File("rb.pcap"))
	if err != nil {
		return "", err
	}
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
	if d := med - 40*time.Millisecond; d < -time.Millisecond || d > time.Millisecond {
		return "", fmt.Errorf("RTT median %s not within 40 ms ± 1 ms (%s)", ms(med), detail)
	}
	return detail, nil
}

// checkPathLoss: 10 % loss per direction gives 1 − 0.9² = 19 % round-trip loss (± 3 %), counted
// from a capture on A (requests out, replies back) over 2,000 echoes.
func checkPathLoss(env *CheckEnv) (string, error) {
	const n = 2000
	p, err := newCheckPath(env, PathConfig{Out: Impairment{Loss: 0.1}, In: Impairment{Loss: 0.1}})
	if err != nil {
		return "", err
	}
	defer p.Close()
	e, err := startUDPEcho(p.B, echoPort)
	if err != nil {
		return "", err
	}
	defer e.Close()
	var cs captureSet
	if err := cs.start(p.A, "a0", env.File("a0.pcap"), fmt.Sprintf("udp port %d", echoPort)); err != nil {
		return "", err
	}
	_, err = udpPing(p.A, netip.AddrPortFrom(PathB, echoPort), n, 500*time.Microsecond, 200*time.Millisecond)
	if cerr := cs.stop(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	a0, err := ReadCapture(env.File("a0.pcap"))
	if err != nil {
		return "", err
	}
	sent := len(firstSeen(a0, toDst(echoPort)))
	back := len(firstSeen(a0, fromSrc(echoPort)))
	if sent != n {
		return "", fmt.Errorf("captured %d of %d requests", sent, n)
	}
	loss := 1 - float64(back)/float64(sent)
	detail := fmt.Sprintf("round-trip loss %.1f %% (%d of %d echoes back; expected 19 %% ± 3 %%)", 100*loss, back, sent)
	if math.Abs(loss-0.19) > 0.03 {
		return "", fmt.Errorf("%s", detail)
	}
	return detail, nil
}

// checkPathSchedule: out delay 10 ms, stepping to 30 ms 1 s after the impairment is applied;
// probes every 2 ms; one-way delays from captures on A and B show the step within 100 ms.
func checkPathSchedule(env *CheckEnv) (string, error) {
	const n = 1000
	p, err := newCheckPath(env, PathConfig{})
	if err != nil {
		return "", err
	}
	defer p.Close()
	e, err := startUDPEcho(p.B, echoPort)
	if err != nil {
		return "", err
	}
	defer e.Close()
	var cs captureSet
	filter := fmt.Sprintf("udp dst port %d", echoPort)
	if err := cs.start(p.A, "a0", env.File("a0.pcap"), filter); err != nil {
		return "", err
	}
	if err := cs.start(p.B, "b0", env.File("b0.pcap"), filter); err != nil {
		cs.stop()
		return "", err
	}
	imp := Impairment{Delay: 10 * time.Millisecond, Schedule: []Step{{At: time.Second, Delay: 30 * time.Millisecond}}}
	if err := p.Set(Out, imp); err != nil {
		cs.stop()
		return "", err
	}
	step := p.Epoch(Out).Add(time.Second)
	_, err = udpPing(p.A, netip.AddrPortFrom(PathB, echoPort), n, 2*time.Millisecond, 100*time.Millisecond)
	if cerr := cs.stop(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	a0, err := ReadCapture(env.File("a0.pcap"))
	if err != nil {
		return "", err
	}
	b0, err := ReadCapture(env.File("b0.pcap"))
	if err != nil {
		return "", err
	}
	sentAt := firstSeen(a0, toDst(echoPort))
	d := owd(sentAt, firstSeen(b0, toDst(echoPort)))
	var before, after []time.Duration
	first := time.Duration(math.MaxInt64) // first sign of the new delay, relative to the step
	for s, od := range d {
		rel := sentAt[s].Sub(step)
		if od > 20*time.Millisecond && rel < first {
			first = rel
		}
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
	detail := fmt.Sprintf("median OWD %s before the step, %s after; first 30 ms packet sent %s after the step; max before %s, min after +100 ms %s",
		ms(mb), ms(ma), ms(first), ms(percentile(before, 1)), ms(percentile(after, 0)))
	switch {
	case first < -time.Millisecond || first > 100*time.Millisecond:
		return "", fmt.Errorf("step not visible within 100 ms: %s", detail)
	case percentile(before, 1) > 20*time.Millisecond || percentile(after, 0) < 29*time.Millisecond:
		return "", fmt.Errorf("delays on the wrong side of the step: %s", detail)
	case (mb-10*time.Millisecond).Abs() > time.Millisecond || (ma-30*time.Millisecond).Abs() > time.Millisecond:
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
func checkPathReorder(env *CheckEnv) (string, error) {
	const n = 500
	p, err := newCheckPath(env, PathConfig{})
	if err != nil {
		return "", err
	}
	defer p.Close()
	e, err := startUDPEcho(p.B, echoPort)
	if err != nil {
		return "", err
	}
	defer e.Close()
	counts := map[bool]int{}
	for _, reorder := range []bool{true, false} {
		var cs captureSet
		file := env.File(fmt.Sprintf("b0-reorder-%v.pcap", reorder))
		if err := cs.start(p.B, "b0", file, fmt.Sprintf("udp dst port %d", echoPort)); err != nil {
			return "", err
		}
		if err := p.Set(Out, Impairment{Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond, Reorder: reorder}); err != nil {
			cs.stop()
			return "", err
		}
		_, err := udpPing(p.A, netip.AddrPortFrom(PathB, echoPort), n, time.Millisecond, 100*time.Millisecond)
		if cerr := cs.stop(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", err
		}
		b0, err := ReadCapture(file)
		if err != nil {
			return "", err
		}
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
// the rate delivered at B (from the capture, after the initial burst) is 20 Mbit/s ± 5 %.
func checkPathRate(env *CheckEnv) (string, error) {
	const rate = 20_000_000
	p, err := newCheckPath(env, PathConfig{Out: Impairment{RateBps: rate}})
	if err != nil {
		return "", err
	}
	defer p.Close()
	var cs captureSet
	file := env.File("b0.pcap")
	if err := cs.start(p.B, "b0", file, "udp dst port 7001"); err != nil {
		return "", err
	}
	c, err := udpSender(p.A, netip.AddrPortFrom(PathB, 7001))
	if err != nil {
		cs.stop()
		return "", err
	}
	buf := make([]byte, 1200)
	interval := time.Duration(float64(len(buf)+42) * 8 / (2 * rate) * 1e9)
	start := time.Now()
	for i := 0; time.Since(start) < 500*time.Millisecond; i++ {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		binary.BigEndian.PutUint32(buf, uint32(i))
		_, _ = c.Write(buf)
	}
	c.Close()
	time.Sleep(150 * time.Millisecond)
	if err := cs.stop(); err != nil {
		return "", err
	}
	pkts, err := ReadCapture(file)
	if err != nil {
		return "", err
	}
	pkts = slices.DeleteFunc(pkts, func(p CapturedPacket) bool { return p.UDP == nil })
	if len(pkts) < 200 {
		return "", fmt.Errorf("only %d datagrams delivered", len(pkts))
	}
	// Skip the first fifth: the tbf bucket starts full and lets a burst through at line rate.
	k := len(pkts) / 5
	bytes := 0
	for _, p := range pkts[k+1:] {
		bytes += p.Len
	}
	got := float64(bytes*8) / pkts[len(pkts)-1].Time.Sub(pkts[k].Time).Seconds()
	detail := fmt.Sprintf("delivered %.2f Mbit/s with tbf at %.0f Mbit/s (%d datagrams)", got/1e6, float64(rate)/1e6, len(pkts))
	if math.Abs(got/rate-1) > 0.05 {
		return "", fmt.Errorf("%s", detail)
	}
	return detail, nil
}
