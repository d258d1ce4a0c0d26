package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/netlab"
	"github.com/probekit/probekit/shared/testsupport/gobuild"
	"github.com/probekit/probekit/shared/testsupport/labtest"
	"github.com/probekit/probekit/spp/internal/engine"
	"github.com/probekit/probekit/spp/internal/synth"
)

var (
	addrA = netlab.PathA.String()
	addrB = netlab.PathB.String()
)

// sppBinary builds the spp command once per test binary (CGO off, as released); a build
// failure fails the test.
func sppBinary(t *testing.T) string {
	t.Helper()
	return gobuild.Binary(t, "../..")
}

func TestMain(m *testing.M) {
	code := m.Run()
	gobuild.Cleanup()
	os.Exit(code)
}

// sppProc is a running spp in a lab namespace. Its stdout and stderr are read only after
// it has exited; a reader goroutine watches stderr for the readiness line.
type sppProc struct {
	cmd      *exec.Cmd
	out, err bytes.Buffer
	ready    chan struct{}
	done     chan error
}

// startSPP starts spp in h's namespace and waits until its log says it is capturing or
// listening (ready).
func startSPP(t *testing.T, h *netlab.Host, ready string, args ...string) *sppProc {
	t.Helper()
	p := &sppProc{ready: make(chan struct{}), done: make(chan error, 1)}
	p.cmd = h.Command(context.Background(), sppBinary(t), args...)
	p.cmd.Stdout = &p.out
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stderr)
		signalled := false
		for sc.Scan() {
			p.err.WriteString(sc.Text() + "\n")
			if !signalled && strings.Contains(sc.Text(), ready) {
				close(p.ready)
				signalled = true
			}
		}
	}()
	go func() {
		<-copied
		p.done <- p.cmd.Wait()
	}()
	t.Cleanup(func() { p.cmd.Process.Kill() })
	select {
	case <-p.ready:
	case err := <-p.done:
		t.Fatalf("spp %v exited: %v\n%s", args, err, p.err.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("spp %v not ready", args)
	}
	return p
}

// stop interrupts spp (SIGINT, its normal end in live modes) and returns its stdout.
func (p *sppProc) stop(t *testing.T) string {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("spp exited with %v: %s", err, p.err.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("spp did not stop within 10 s of SIGINT")
	}
	return p.out.String()
}

// runFile runs spp on two capture files and returns its CSV pairs.
func runFile(t *testing.T, ref, mon string, extra ...string) []csvPair {
	t.Helper()
	args := append([]string{"-a", addrA, "-A", addrB, "-f", ref, "-F", mon, "--format", "csv"}, extra...)
	cmd := exec.Command(sppBinary(t), args...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("spp %v: %v\n%s", args, err, errb.String())
	}
	return parseCSV(t, string(out))
}

// csvPair is one line of spp --format csv, times in µs.
type csvPair struct {
	ts, rtt, spt                 int64
	outRef, outMon, inRef, inMon int64
}

func parseCSV(t *testing.T, s string) []csvPair {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) == 0 || lines[0] != "n,ts,rtt,spt,out_ref,out_mon,in_ref,in_mon" {
		t.Fatalf("not spp CSV: %.200q", s)
	}
	var res []csvPair
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		if len(f) != 8 {
			t.Fatalf("csv line %q", l)
		}
		var v [7]int64
		for i := range v {
			v[i] = micros(t, f[i+1])
		}
		res = append(res, csvPair{v[0], v[1], v[2], v[3], v[4], v[5], v[6]})
	}
	return res
}

func micros(t *testing.T, s string) int64 {
	neg := strings.HasPrefix(s, "-")
	w, f, _ := strings.Cut(strings.TrimPrefix(s, "-"), ".")
	a, err1 := strconv.ParseInt(w, 10, 64)
	b, err2 := strconv.ParseInt(f, 10, 64)
	if err1 != nil || err2 != nil || len(f) != 6 {
		t.Fatalf("bad seconds %q", s)
	}
	if neg {
		return -(a*1e6 + b)
	}
	return a*1e6 + b
}

// truthPackets identifies every packet of the two captures with a strong key (addresses,
// protocol, IP ID, total length, first 40 bytes of the transport header and payload; FIFO
// per key) — an identification independent of spp's CRC of -# fields — and returns them
// with their times at both points (µs, one shared clock). Sample frames (UDP 9822) are
// not target traffic.
func truthPackets(t *testing.T, refFile, monFile string) []synth.Packet {
	t.Helper()
	return truthPacketsFor(t, refFile, monFile, netlab.PathA, netlab.PathB)
}

func truthPacketsFor(t *testing.T, refFile, monFile string, a, b netip.Addr) []synth.Packet {
	t.Helper()
	type inst struct {
		us  int64
		dir engine.Dir
	}
	read := func(file string) (map[string][]inst, []string) {
		pkts, err := netlab.ReadCapture(file)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string][]inst{}
		var order []string
		for _, p := range pkts {
			if p.Src.Port() == 9822 || p.Dst.Port() == 9822 {
				continue
			}
			var l4 []byte
			var id, length uint16
			switch {
			case p.IPv4 != nil:
				l4, id, length = p.IPv4.Payload, p.IPv4.Id, p.IPv4.Length
				if p.Proto == 1 && len(l4) > 0 && l4[0] == 3 {
					continue // ICMP unreachable: excluded by the original's capture filter
				}
			case p.IPv6 != nil:
				l4, length = p.IPv6.Payload, p.IPv6.Length
				if p.Proto == 58 && len(l4) > 0 && l4[0] < 128 {
					continue // ICMPv6 errors and neighbour discovery are not target traffic here
				}
			default:
				continue
			}
			var dir engine.Dir
			switch {
			case p.Src.Addr() == a && p.Dst.Addr() == b:
				dir = engine.Out
			case p.Src.Addr() == b && p.Dst.Addr() == a:
				dir = engine.In
			default:
				continue
			}
			l4 = l4[:min(len(l4), 40)]
			key := fmt.Sprintf("%v>%v/%d/%d/%d/%x", p.Src.Addr(), p.Dst.Addr(), p.Proto, id, length, l4)
			if _, ok := m[key]; !ok {
				order = append(order, key)
			}
			m[key] = append(m[key], inst{p.Time.UnixMicro(), dir})
		}
		return m, order
	}
	ref, order := read(refFile)
	mon, _ := read(monFile)
	var res []synth.Packet
	for _, k := range order {
		r, m := ref[k], mon[k]
		for i, ri := range r {
			p := synth.Packet{Dir: ri.dir, Lost: i >= len(m)}
			p.Ref = ri.us
			if !p.Lost {
				p.Mon = m[i].us
			}
			res = append(res, p)
		}
	}
	return res
}

// checkAgainstTruth: spp's file-run pairs are exactly the pairs the SPP rule forms from the
// perfectly identified packets, and every RTT is the true owd_out + owd_in.
func checkAgainstTruth(t *testing.T, got []csvPair, truth []synth.Packet) {
	t.Helper()
	want := synth.Pairs(truth)
	if len(want) < 20 {
		t.Fatalf("truth has only %d pairs", len(want))
	}
	if len(got) != len(want) {
		t.Fatalf("spp formed %d pairs, truth %d", len(got), len(want))
	}
	for i, g := range got {
		w := want[i]
		if [4]int64{g.outRef, g.outMon, g.inRef, g.inMon} != [4]int64{w.Out.Ref, w.Out.Mon, w.In.Ref, w.In.Mon} {
			t.Fatalf("pair %d: spp %+v, truth %+v", i+1, g, w)
		}
		// The true RTT of the pair: the OUT packet's one-way delay plus the IN packet's.
		if tr := (w.Out.Mon - w.Out.Ref) + (w.In.Ref - w.In.Mon); g.rtt != tr {
			t.Fatalf("pair %d: rtt %d µs, true %d µs", i+1, g.rtt, tr)
		}
	}
}

// similar compares two runs over the same traffic seen by different capture handles
// (tcpdump vs spp's own, or a slave's frames): each pair of got is looked up in want by its
// timestamp (within tol µs) and its RTT must agree within tol. A run that started or stopped
// a little apart may differ by a pair or two at the ends. What spp guarantees is the same
// pairs from the same packets: when one of its captures reports that the kernel dropped
// packets (procs' logs, "drops=N"), each dropped packet may change up to two pairs, and those
// are logged instead of failing. Nothing here depends on how fast the machine is.
func similar(t *testing.T, what string, got, want []csvPair, tol int64, procs ...*sppProc) {
	t.Helper()
	var drops int64
	for _, p := range procs {
		drops += reportedDrops(p.err.String())
	}
	matched, bad := 0, 0
	var worst int64
	for _, g := range got {
		i, _ := slices.BinarySearchFunc(want, g.ts-tol, func(p csvPair, ts int64) int { return cmpInt(p.ts, ts) })
		if i < len(want) && abs(want[i].ts-g.ts) <= tol {
			matched++
			d := abs(want[i].rtt - g.rtt)
			worst = max(worst, d)
			if d > tol {
				bad++
				t.Logf("%s: pair %+v, file run %+v: rtt differs by %d µs", what, g, want[i], d)
			}
		} else {
			t.Logf("%s: pair %+v not in the file run", what, g)
		}
	}
	allowed := int(2 * drops)
	if matched < len(want)-3-allowed || matched < len(got)-3-allowed || bad > allowed {
		t.Errorf("%s: %d pairs, file run %d, %d matched by timestamp, %d differ by more than %d µs (worst %d µs); spp's captures reported %d kernel drops",
			what, len(got), len(want), matched, bad, tol, worst, drops)
		return
	}
	t.Logf("%s: %d pairs, file run %d, worst rtt difference %d µs, %d kernel drops reported", what, len(got), len(want), worst, drops)
}

var dropsRE = regexp.MustCompile(`drops=([0-9]+)`)

// reportedDrops sums the kernel drop counts spp logged ("the kernel dropped packets … drops=N").
func reportedDrops(stderr string) int64 {
	var n int64
	for _, m := range dropsRE.FindAllStringSubmatch(stderr, -1) {
		v, _ := strconv.ParseInt(m[1], 10, 64)
		n += v
	}
	return n
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// udpEcho sends count datagrams A→B:7 every interval; B echoes each after a random think
// time up to maxThink. Sockets live in the lab namespaces, the loops in this process.
func udpEcho(t *testing.T, p *netlab.PathLab, count int, interval, maxThink time.Duration) {
	t.Helper()
	udpEchoTo(t, p, netlab.PathB, count, interval, maxThink)
}

func udpEchoTo(t *testing.T, p *netlab.PathLab, dst netip.Addr, count int, interval, maxThink time.Duration) {
	t.Helper()
	var srv, cli *net.UDPConn
	if err := p.B.Do(func() (err error) {
		srv, err = net.ListenUDP("udp", &net.UDPAddr{IP: dst.AsSlice(), Port: 7})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := p.A.Do(func() (err error) {
		cli, err = net.DialUDP("udp", nil, &net.UDPAddr{IP: dst.AsSlice(), Port: 7})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	go func() {
		r := rand.New(rand.NewPCG(7, 8))
		buf := make([]byte, 2048)
		for {
			n, from, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if maxThink > 0 {
				time.Sleep(time.Duration(r.Int64N(int64(maxThink))))
			}
			srv.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, err := cli.Read(buf); err != nil {
				return
			}
		}
	}()
	msg := make([]byte, 64)
	next := time.Now()
	for i := range count {
		binary.BigEndian.PutUint32(msg, uint32(i))
		if _, err := cli.Write(msg); err != nil {
			t.Fatal(err)
		}
		next = next.Add(interval)
		time.Sleep(time.Until(next))
	}
	time.Sleep(200 * time.Millisecond) // last replies
}

// needTcpdump skips a lab test on machines without tcpdump (the truth comes from its captures).
func needTcpdump(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Skip("tcpdump not installed: the lab truth needs its captures")
	}
}

func captures(t *testing.T, p *netlab.PathLab, points ...string) (files map[string]string, stop func()) {
	dir := t.TempDir()
	files = map[string]string{}
	var stops []func()
	hosts := map[string]*netlab.Host{"a0": p.A, "b0": p.B, "ra": p.R, "rb": p.R}
	for _, iface := range points {
		files[iface] = filepath.Join(dir, iface+".pcap")
		stops = append(stops, labtest.StartCapture(t, hosts[iface], iface, files[iface], "host "+addrA+" and host "+addrB))
	}
	return files, func() {
		for _, s := range stops {
			s()
		}
	}
}

// TestLabDelayStepsLiveAndRemote: UDP echo through the path while the OUT delay steps from
// 10 ms to 30 ms (IN 10 ms). Captured at A and B (tcpdump) and at both router interfaces.
// Checks: the file run on a0/b0 equals the truth exactly and follows the injected step;
// a live run (-i ra -I rb) equals the file run on ra/rb; remote runs (master -i a0 -R B with
// slave -s A -I b0 at -l 2 -g 100, and master -r A -I b0 with slave -s B -I a0 at -l 3 -g 10)
// equal the a0/b0 file run within the frames' granularity.
func TestLabDelayStepsLiveAndRemote(t *testing.T) {
	needTcpdump(t)
	p := labtest.Path(t, netlab.PathConfig{})
	floor := pathFloor(t, p)
	for _, d := range []netlab.Direction{netlab.Out, netlab.In} {
		if err := p.Set(d, netlab.Impairment{Delay: 10 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	files, stopCaptures := captures(t, p, "a0", "b0", "ra", "rb")
	live := startSPP(t, p.R, "point=MON", "-a", addrA, "-A", addrB, "-i", "ra", "-I", "rb", "--format", "csv")
	master := startSPP(t, p.A, "waiting for sample frames", "-a", addrA, "-A", addrB, "-i", "a0", "-R", addrB, "--format", "csv")
	slave := startSPP(t, p.B, "slave capturing", "-s", addrA, "-a", addrA, "-A", addrB, "-I", "b0")
	// And the mirror image: REF remote (-r), the slave capturing a0 for a master at B.
	masterR := startSPP(t, p.B, "point=MON", "-a", addrA, "-A", addrB, "-r", addrA, "-I", "b0", "--format", "csv", "-g", "10", "-l", "3")
	slaveR := startSPP(t, p.A, "slave capturing", "-s", addrB, "-a", addrA, "-A", addrB, "-I", "a0", "-g", "10", "-l", "3")
	// The schedule starts now (its epoch), so the step falls inside the traffic.
	if err := p.Set(netlab.Out, netlab.Impairment{Delay: 10 * time.Millisecond,
		Schedule: []netlab.Step{{At: 1500 * time.Millisecond, Delay: 30 * time.Millisecond}}}); err != nil {
		t.Fatal(err)
	}
	udpEcho(t, p, 300, 10*time.Millisecond, 3*time.Millisecond)
	slave.stop(t)
	slaveR.stop(t)
	time.Sleep(300 * time.Millisecond) // the last frame crosses the 10 ms path
	remoteOut := master.stop(t)
	remoteROut := masterR.stop(t)
	liveOut := live.stop(t)
	stopCaptures()

	fileAB := runFile(t, files["a0"], files["b0"])
	checkAgainstTruth(t, fileAB, truthPackets(t, files["a0"], files["b0"]))

	// The injected step: OUT packets that reached R before epoch+1.5 s saw 10 ms, after it 30 ms.
	step := p.Epoch(netlab.Out).Add(1500 * time.Millisecond).UnixMicro()
	var before, after []int64
	for _, q := range fileAB {
		switch {
		case q.outRef < step-50_000:
			before = append(before, q.rtt)
		case q.outRef > step+50_000:
			after = append(after, q.rtt)
		}
	}
	t.Logf("step at %d µs; pairs %d from %d to %d", step, len(fileAB), fileAB[0].outRef, fileAB[len(fileAB)-1].outRef)
	checkBand(t, "before the step", before, 20_000, floor)
	checkBand(t, "after the step", after, 40_000, floor)

	similar(t, "live -i ra -I rb", parseCSV(t, liveOut), runFile(t, files["ra"], files["rb"]), 50, live)
	similar(t, "remote -i a0 -R B (-g 100)", parseCSV(t, remoteOut), fileAB, 250, master, slave)
	similar(t, "remote -r A -I b0 (-g 10 -l 3)", parseCSV(t, remoteROut), fileAB, 25, masterR, slaveR)
	if t.Failed() {
		for name, p := range map[string]*sppProc{"live": live, "master -R": master, "slave": slave, "master -r": masterR, "slave -r": slaveR} {
			t.Logf("%s stderr:\n%s", name, p.err.String())
		}
	}
}

// checkBand: every RTT is at least the injected delay (the delayer never releases early),
// and the median is at most injected + slack + floor, where floor is what the path added to
// an injected delay in the same lab just before (pathFloor): on a loaded
// machine the delayer, the veths and the capture all run late together, and the floor shows
// by how much. slack covers what the injected delay itself spreads (jitter, queueing).
func checkBand(t *testing.T, what string, rtts []int64, injected, floor int64) {
	t.Helper()
	checkBandSlack(t, what, rtts, injected, 1_000, floor)
}

func checkBandSlack(t *testing.T, what string, rtts []int64, injected, slack, floor int64) {
	t.Helper()
	if len(rtts) < 30 {
		t.Fatalf("%s: only %d pairs", what, len(rtts))
	}
	slices.Sort(rtts)
	med := rtts[len(rtts)/2]
	if rtts[0] < injected || med > injected+slack+floor {
		t.Fatalf("%s: rtt min %d µs, median %d µs; injected %d µs, slack %d µs, floor %d µs", what, rtts[0], med, injected, slack, floor)
	}
	t.Logf("%s: %d pairs, rtt min %d median %d µs (injected %d, floor %d)", what, len(rtts), rtts[0], med, injected, floor)
}

// pathFloor measures what the lab path adds to an injected delay, in the same lab just
// before the test's own traffic: 100 UDP echoes A→B:17 through the same delayers (holding
// each packet 1 ms, so their timer wake-ups count), veths and namespaces, timed in this
// process, minus the 2 ms injected. The echo's user-space wake-ups are included too, so it
// is an upper estimate of what the captures see. Returns the 90th percentile in µs and
// leaves both directions at that 1 ms; the caller sets the test's impairment afterwards.
func pathFloor(t *testing.T, p *netlab.PathLab) int64 {
	t.Helper()
	const hold = time.Millisecond
	for _, d := range []netlab.Direction{netlab.Out, netlab.In} {
		if err := p.Set(d, netlab.Impairment{Delay: hold}); err != nil {
			t.Fatal(err)
		}
	}
	var srv, cli *net.UDPConn
	if err := p.B.Do(func() (err error) {
		srv, err = net.ListenUDP("udp", &net.UDPAddr{IP: netlab.PathB.AsSlice(), Port: 17})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := p.A.Do(func() (err error) {
		cli, err = net.DialUDP("udp", nil, &net.UDPAddr{IP: netlab.PathB.AsSlice(), Port: 17})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			srv.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	var rtts []int64
	buf := make([]byte, 64)
	for range 100 {
		start := time.Now()
		if _, err := cli.Write(buf); err != nil {
			t.Fatal(err)
		}
		cli.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := cli.Read(buf); err != nil {
			continue // counted by the length check below
		}
		rtts = append(rtts, (time.Since(start) - 2*hold).Microseconds())
		time.Sleep(2 * time.Millisecond)
	}
	if len(rtts) < 90 {
		t.Fatalf("path floor: only %d of 100 echoes came back", len(rtts))
	}
	slices.Sort(rtts)
	f := rtts[len(rtts)*9/10]
	t.Logf("path floor: %d echoes, added to the injected delay: median %d µs, p90 %d µs", len(rtts), rtts[len(rtts)/2], f)
	return f
}

// TestLabLossReorderingIPv4IPv6: 5 % loss each way and ±3 ms jitter with reordering, UDP
// echo over IPv4 and then over IPv6 (fd71:1::1 ↔ fd71:2::1). The file runs still form
// exactly the truth's pairs with exact RTTs; for IPv6 that rests on spp's IPv6 default
// packet ID (flow label, length, ports, 12 bytes of payload).
func TestLabLossReorderingIPv4IPv6(t *testing.T) {
	needTcpdump(t)
	p := labtest.Path(t, netlab.PathConfig{})
	floor := pathFloor(t, p)
	for _, d := range []netlab.Direction{netlab.Out, netlab.In} {
		if err := p.Set(d, netlab.Impairment{Delay: 8 * time.Millisecond, Jitter: 3 * time.Millisecond, Reorder: true, Loss: 0.05}); err != nil {
			t.Fatal(err)
		}
	}
	files, stop := captures(t, p, "a0", "b0")
	dir := t.TempDir()
	a60, b60 := filepath.Join(dir, "a0-v6.pcap"), filepath.Join(dir, "b0-v6.pcap")
	a6, b6 := netlab.PathA6.String(), netlab.PathB6.String()
	stopA6 := labtest.StartCapture(t, p.A, "a0", a60, "ip6 and host "+a6+" and host "+b6)
	stopB6 := labtest.StartCapture(t, p.B, "b0", b60, "ip6 and host "+a6+" and host "+b6)
	udpEcho(t, p, 300, 5*time.Millisecond, 0)
	udpEchoTo(t, p, netlab.PathB6, 300, 5*time.Millisecond, time.Millisecond)
	stop()
	stopA6()
	stopB6()

	truth := truthPackets(t, files["a0"], files["b0"])
	lost := 0
	for _, q := range truth {
		if q.Lost {
			lost++
		}
	}
	if lost == 0 {
		t.Fatal("no packet was lost: the scenario does not test loss")
	}
	checkAgainstTruth(t, runFile(t, files["a0"], files["b0"]), truth)

	cmd := exec.Command(sppBinary(t), "-a", a6, "-A", b6, "-f", a60, "-F", b60, "--format", "csv")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("spp: %v", err)
	}
	got := parseCSV(t, string(out))
	checkAgainstTruth(t, got, truthPacketsFor(t, a60, b60, netlab.PathA6, netlab.PathB6))
	// 8 ms ± 3 ms uniform each way: RTT at least 10 ms, median 16 ms plus what the path adds.
	checkBandAll(t, got, 10_000, 6_000, floor)
}

// TestLabOneWayAndTCPBulk runs two phases in one path lab. One-way: a 200 pps stream A→B
// and an independent 20 pps stream B→A with no request/response relation (SPP pairs any
// traffic), 15 ms OUT and 5 ms IN. TCP bulk: a transfer A→B limited to 20 Mbit/s, 5 ms each
// way: data segments OUT, ACKs IN.
func TestLabOneWayAndTCPBulk(t *testing.T) {
	needTcpdump(t)
	p := labtest.Path(t, netlab.PathConfig{})
	floor := pathFloor(t, p)
	for d, delay := range map[netlab.Direction]time.Duration{netlab.Out: 15 * time.Millisecond, netlab.In: 5 * time.Millisecond} {
		if err := p.Set(d, netlab.Impairment{Delay: delay}); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("one-way", func(t *testing.T) {
		files, stop := captures(t, p, "a0", "b0")
		// Each side sends from port 9 to the other's port 9, where the same socket drains it
		// (no ICMP port unreachable replies: the traffic stays one-way per stream).
		a := dialUDP(t, p.A, netlab.PathA, netlab.PathB)
		b := dialUDP(t, p.B, netlab.PathB, netlab.PathA)
		for _, c := range []*net.UDPConn{a, b} {
			go func() {
				buf := make([]byte, 2048)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			}()
		}
		var wg sync.WaitGroup
		send := func(c *net.UDPConn, n int, every time.Duration) {
			defer wg.Done()
			msg := make([]byte, 100)
			for i := range n {
				binary.BigEndian.PutUint32(msg, uint32(i))
				c.Write(msg)
				time.Sleep(every)
			}
		}
		wg.Add(2)
		go send(a, 400, 5*time.Millisecond)
		go send(b, 40, 50*time.Millisecond)
		wg.Wait()
		time.Sleep(100 * time.Millisecond)
		stop()
		got := runFile(t, files["a0"], files["b0"])
		checkAgainstTruth(t, got, truthPackets(t, files["a0"], files["b0"]))
		checkBandAll(t, got, 20_000, 1_000, floor)
	})
	t.Run("tcp-bulk", func(t *testing.T) {
		if err := p.Set(netlab.Out, netlab.Impairment{Delay: 5 * time.Millisecond, RateBps: 20_000_000}); err != nil {
			t.Fatal(err)
		}
		files, stop := captures(t, p, "a0", "b0")
		var ln *net.TCPListener
		if err := p.B.Do(func() (err error) {
			ln, err = net.ListenTCP("tcp4", &net.TCPAddr{IP: netlab.PathB.AsSlice(), Port: 5201})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			buf := make([]byte, 1<<16)
			for {
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
		}()
		var c net.Conn
		if err := p.A.Do(func() (err error) {
			c, err = net.Dial("tcp4", netlab.PathB.String()+":5201")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1200)
		end := time.Now().Add(1500 * time.Millisecond)
		for time.Now().Before(end) {
			if _, err := c.Write(buf); err != nil {
				t.Fatal(err)
			}
		}
		c.Close()
		time.Sleep(300 * time.Millisecond)
		stop()
		got := runFile(t, files["a0"], files["b0"])
		checkAgainstTruth(t, got, truthPackets(t, files["a0"], files["b0"]))
		// Data segments also wait in the 20 Mbit/s tbf queue (up to its 100 ms latency).
		checkBandAll(t, got, 10_000, 100_000, floor)
	})
}

func checkBandAll(t *testing.T, pairs []csvPair, injected, slack, floor int64) {
	t.Helper()
	var rtts []int64
	for _, q := range pairs {
		rtts = append(rtts, q.rtt)
	}
	checkBandSlack(t, "all pairs", rtts, injected, slack, floor)
}

// dialUDP opens a UDP socket in h's namespace from local:9 to remote:9, closed at cleanup.
func dialUDP(t *testing.T, h *netlab.Host, local, remote netip.Addr) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	if err := h.Do(func() (err error) {
		c, err = net.DialUDP("udp", &net.UDPAddr{IP: local.AsSlice(), Port: 9}, &net.UDPAddr{IP: remote.AsSlice(), Port: 9})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
