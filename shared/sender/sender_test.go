package sender

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/loadgen"
	"github.com/probekit/probekit/shared/pace"
	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/timestamp"
	"github.com/probekit/probekit/shared/udpsock"
)

func TestRTT(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	at := func(us int) time.Time { return t0.Add(time.Duration(us) * time.Microsecond) }
	for _, tc := range []struct {
		name           string
		t1, t2, t3, t4 time.Time
		rtt, res       time.Duration
	}{
		{"residence subtracted", at(0), at(400), at(450), at(1000), 950 * time.Microsecond, 50 * time.Microsecond},
		{"clock offset cancels", at(0), at(-5000), at(-4990), at(100), 90 * time.Microsecond, 10 * time.Microsecond},
		{"no T2", at(0), time.Time{}, at(500), at(1000), time.Millisecond, 0},
		{"negative residence", at(0), at(600), at(500), at(1000), time.Millisecond, 0},
		{"residence above raw", at(0), at(0), at(2000), at(1000), time.Millisecond, 0},
	} {
		rtt, res := RTT(tc.t1, tc.t2, tc.t3, tc.t4)
		if rtt != tc.rtt || res != tc.res {
			t.Errorf("%s: RTT %v residence %v, want %v %v", tc.name, rtt, res, tc.rtt, tc.res)
		}
	}
}

// testReflector answers unauthenticated STAMP packets on loopback with a fixed residence:
// T2 is the arrival, T3 = T2 + residence exactly, and it holds the packet at least that long
// before answering (so the residence is a known injected value and T4 − T1 exceeds it).
type testReflector struct {
	conn      *net.UDPConn
	residence time.Duration
	mu        sync.Mutex
	answer    func(seq uint32) bool     // nil: answer all
	before    func(from netip.AddrPort) // runs before the first answer (forgeries)
	once      sync.Once
}

// newTestReflector starts a reflector configured by set (before it serves).
func newTestReflector(t *testing.T, set func(r *testReflector)) *testReflector {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r := &testReflector{conn: c}
	if set != nil {
		set(r)
	}
	t.Cleanup(func() { c.Close() })
	go r.serve()
	return r
}

func (r *testReflector) addr() netip.AddrPort {
	return r.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

func (r *testReflector) serve() {
	buf := make([]byte, 2048)
	var seq uint32
	for {
		n, from, err := r.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		t2 := time.Now()
		var sp testpkt.SenderPacket
		if sp.UnmarshalBinary(buf[:n]) != nil {
			continue
		}
		r.mu.Lock()
		answer, before := r.answer, r.before
		r.mu.Unlock()
		if before != nil {
			r.once.Do(func() { before(from) })
		}
		if answer != nil && !answer(sp.Seq) {
			continue
		}
		rp := testpkt.ReflectedPacket{Seq: seq, SSID: sp.SSID, SenderSeq: sp.Seq, SenderTimestamp: sp.Timestamp,
			SenderErrorEstimate: sp.ErrorEstimate, SenderTTL: 64, ErrorEstimate: timestamp.NewErrorEstimate(false, false, time.Millisecond),
			ReceiveTimestamp: testpkt.Stamp(t2, false), Timestamp: testpkt.Stamp(t2.Add(r.residence), false)}
		seq++
		if r.residence > 0 {
			time.Sleep(time.Until(t2.Add(r.residence)))
		}
		_, _ = r.conn.WriteToUDPAddrPort(rp.AppendTo(nil), from)
	}
}

// reply builds a reflected packet answering sender sequence number seq.
func reply(seq uint32, ssid uint16) []byte {
	now := time.Now()
	rp := testpkt.ReflectedPacket{SSID: ssid, SenderSeq: seq, ReceiveTimestamp: testpkt.Stamp(now, false),
		Timestamp: testpkt.Stamp(now, false)}
	return rp.AppendTo(nil)
}

const testSSID = 0x5151

// stampCodec is a minimal STAMP Session-Sender for the pipeline: unauthenticated packets with
// testSSID, replies checked for the SSID.
func stampCodec() (build func([]byte, uint32, time.Time) (int, error), decode func([]byte, *Reply) error) {
	tmpl := (&testpkt.SenderPacket{SSID: testSSID, ErrorEstimate: timestamp.NewErrorEstimate(false, false, time.Millisecond)}).AppendTo(nil)
	build = func(b []byte, seq uint32, t1 time.Time) (int, error) {
		copy(b, tmpl)
		testpkt.PutSequenceNumber(b, seq)
		testpkt.PutTimestamp(b, testpkt.ModeUnauthenticated, testpkt.Stamp(t1, false))
		return len(tmpl), nil
	}
	var rp testpkt.ReflectedPacket
	decode = func(data []byte, r *Reply) error {
		if err := rp.UnmarshalBinary(data); err != nil {
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		if rp.SSID != testSSID {
			return fmt.Errorf("%w: SSID %d", ErrForeign, rp.SSID)
		}
		r.Seq, r.T2, r.T3 = rp.SenderSeq, rp.ReceiveTime(), rp.TransmitTime()
		return nil
	}
	return build, decode
}

func newPipeline(t *testing.T, target netip.AddrPort, count uint64, interval time.Duration, onReply func(*Reply) error) *Pipeline {
	t.Helper()
	conn, err := udpsock.Listen(context.Background(), "udp4", "127.0.0.1:0",
		udpsock.Options{RxTimestamps: true, TxTimestamps: true, ReadBuffer: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	build, decode := stampCodec()
	p, err := New(Config{Conn: conn, Target: target, Schedule: pace.NewSchedule(interval, false, 1), Count: count,
		Timeout: 2 * time.Second, MaxLen: testpkt.BaseLen, Build: build, Decode: decode, OnReply: onReply})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPipelineAllAnswered(t *testing.T) {
	refl := newTestReflector(t, func(r *testReflector) { r.residence = 2 * time.Millisecond })
	var mu sync.Mutex
	var replies []Reply
	p := newPipeline(t, refl.addr(), 50, time.Millisecond, func(r *Reply) error {
		mu.Lock()
		replies = append(replies, *r)
		mu.Unlock()
		return nil
	})
	st, err := p.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Sent != 50 || st.Received() != 50 || st.Lost() != 0 || st.Invalid() != 0 || st.Late != 0 || st.RTT.Count() != 50 {
		t.Fatalf("stats: sent %d received %d lost %d invalid %d late %d rtt %d", st.Sent, st.Received(), st.Lost(), st.Invalid(), st.Late, st.RTT.Count())
	}
	for _, r := range replies {
		// The injected residence is subtracted exactly (to the NTP resolution), and the RTT is
		// T4 − T1 − residence with T1 from the sender's memory.
		if d := r.Residence - refl.residence; d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("seq %d: residence %v, injected %v", r.Seq, r.Residence, refl.residence)
		}
		if r.RTT != r.T4.Sub(r.T1)-r.Residence || r.RTT <= 0 {
			t.Errorf("seq %d: RTT %v, T4−T1 %v residence %v", r.Seq, r.RTT, r.T4.Sub(r.T1), r.Residence)
		}
		u, k, ok := p.Departure(r.Seq)
		if !ok || r.T1User.UnixNano() != u || (k != 0 && r.T1.UnixNano() != k) {
			t.Errorf("seq %d: departure %d/%d %v, reply T1 %v", r.Seq, u, k, ok, r.T1)
		}
	}
}

// issue 11 H6: forged replies (a sequence number never sent, one not sent yet, another
// session's SSID, garbage, another source) are counted invalid and change neither loss, RTT
// nor reordering; the genuine replies all count.
func TestPipelineForgedRepliesIgnored(t *testing.T) {
	other, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	refl := newTestReflector(t, func(r *testReflector) {
		r.before = func(to netip.AddrPort) {
			// Spoofed (from the reflector's own address and port, as an off-path attacker
			// forging the source would appear).
			for _, b := range [][]byte{reply(0xFFFFFFFF, testSSID), reply(1000, testSSID), reply(0, testSSID+1), {1, 2, 3}} {
				_, _ = r.conn.WriteToUDPAddrPort(b, to)
			}
			_, _ = other.WriteToUDPAddrPort(reply(0, testSSID), to)
		}
	})
	const n = 20
	p := newPipeline(t, refl.addr(), n, time.Millisecond, nil)
	st, err := p.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Received() != n || st.Lost() != 0 || st.Seq.Reordered() != 0 || st.Seq.Stale() != 0 || st.RTT.Count() != n {
		t.Errorf("genuine replies: received %d lost %d reordered %d stale %d rtt %d", st.Received(), st.Lost(),
			st.Seq.Reordered(), st.Seq.Stale(), st.RTT.Count())
	}
	if st.Unknown != 2 || st.Foreign != 2 || st.Malformed != 1 || st.Invalid() != 5 {
		t.Errorf("invalid: unknown %d foreign %d malformed %d", st.Unknown, st.Foreign, st.Malformed)
	}
	if st.RTT.Max() > 2*time.Second {
		t.Errorf("RTT max %v", st.RTT.Max())
	}
}

func TestPipelineNoReply(t *testing.T) {
	refl := newTestReflector(t, func(r *testReflector) { r.answer = func(uint32) bool { return false } })
	p := newPipeline(t, refl.addr(), 3, time.Millisecond, nil)
	p.cfg.Timeout = 100 * time.Millisecond
	st, err := p.Run(context.Background())
	if !errors.Is(err, ErrNoReply) || st.Sent != 3 || st.Lost() != 3 {
		t.Fatalf("err %v sent %d lost %d", err, st.Sent, st.Lost())
	}
}

// Replies that stop for good (a dead reflector) end in ErrReflectorGone with the statistics
// of what came back before; a lossy but live path does not.
func TestPipelineReflectorGone(t *testing.T) {
	refl := newTestReflector(t, func(r *testReflector) { r.answer = func(seq uint32) bool { return seq < 5 } })
	p := newPipeline(t, refl.addr(), 25, 10*time.Millisecond, nil)
	p.cfg.Timeout = 150 * time.Millisecond // 20 unanswered × 10 ms by the schedule exceed it
	st, err := p.Run(context.Background())
	// (ErrNoReply only if a stall made all five replies late.)
	if !(errors.Is(err, ErrReflectorGone) || errors.Is(err, ErrNoReply) && st.Late > 0) || st.Received()+st.Late != 5 || st.Lost() != 25-st.Received() {
		t.Fatalf("err %v received %d late %d lost %d", err, st.Received(), st.Late, st.Lost())
	}
	if !strings.Contains(err.Error(), "the last 20 packets") {
		t.Errorf("message: %v", err)
	}
	// A lossy but live path (every other packet answered) is not gone, although its 120
	// losses span 600 ms of schedule, more than the Timeout: only trailing losses count. The
	// 500 ms Timeout leaves a loaded machine's stalls room (a reply later than that would
	// be late, and the last ones late would look like a dead reflector).
	refl2 := newTestReflector(t, func(r *testReflector) { r.answer = func(seq uint32) bool { return seq%2 == 0 || seq == 239 } })
	p = newPipeline(t, refl2.addr(), 240, 5*time.Millisecond, nil)
	p.cfg.Timeout = 500 * time.Millisecond
	if st, err := p.Run(context.Background()); err != nil || st.Received()+st.Late != 121 {
		t.Fatalf("lossy path: err %v received %d late %d", err, st.Received(), st.Late)
	}
}

// Abort (a lost control connection) ends the run at once with what was gathered.
func TestPipelineAbort(t *testing.T) {
	refl := newTestReflector(t, nil)
	gone := errors.New("control connection lost")
	var p *Pipeline
	p = newPipeline(t, refl.addr(), 0, 10*time.Millisecond, func(r *Reply) error {
		if r.Seq == 4 {
			p.Abort(gone)
		}
		return nil
	})
	st, err := p.Run(context.Background())
	if !errors.Is(err, gone) || st.Received() < 5 {
		t.Fatalf("err %v received %d", err, st.Received())
	}
}

// Cancelling the context (Ctrl-C) stops sending but still waits for the outstanding replies.
func TestPipelineInterrupted(t *testing.T) {
	refl := newTestReflector(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	p := newPipeline(t, refl.addr(), 0, 5*time.Millisecond, func(r *Reply) error {
		if r.Seq == 3 {
			cancel()
		}
		return nil
	})
	st, err := p.Run(ctx)
	if err != nil || st.Sent < 4 || st.Received() != st.Sent {
		t.Fatalf("err %v sent %d received %d", err, st.Sent, st.Received())
	}
}

// BenchmarkPipeline runs the whole pipeline (pace, build, sendmmsg, transmit stamps,
// validation, matching, statistics) against loadgen's stamping echo, which allocates nothing,
// so allocs/op is the pipeline's per-packet allocation (the target is zero).
func BenchmarkPipeline(b *testing.B) {
	echoConn, err := udpsock.Listen(context.Background(), "udp4", "127.0.0.1:0", udpsock.Options{RxTimestamps: true, ReadBuffer: 4 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer echoConn.Close()
	go func() { _ = loadgen.StampingEcho(context.Background(), echoConn, 0, nil) }()
	conn, err := udpsock.Listen(context.Background(), "udp4", "127.0.0.1:0",
		udpsock.Options{RxTimestamps: true, TxTimestamps: true, ReadBuffer: 4 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	build, _ := stampCodec()
	// The echo returns the sender packet with T2 and T3 written over it: the sequence number
	// stays where the sender put it.
	decode := func(data []byte, r *Reply) error {
		seq, ok := testpkt.SequenceNumber(data)
		t2, t3, ee, ok2 := testpkt.ReflectedTimes(data)
		if !ok || !ok2 {
			return ErrMalformed
		}
		r.Seq, r.T2, r.T3 = seq, testpkt.Time(t2, ee), testpkt.Time(t3, ee)
		return nil
	}
	p, err := New(Config{Conn: conn, Target: echoConn.LocalAddr(), Schedule: pace.NewSchedule(20*time.Microsecond, false, 1),
		Count: uint64(b.N), Timeout: time.Second, DeadAfter: -1, MaxLen: testpkt.BaseLen, Build: build, Decode: decode})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	st, err := p.Run(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(st.Received())/float64(st.Sent), "received/sent")
}

// Build (which signs, encrypts and adds TLVs in the tools) runs without the pipeline's lock,
// so the receiving goroutine never waits for per-packet crypto to match a reply: during every
// Build the lock can be taken. Before, the sending goroutine held it across Build and
// TryLock could never succeed there.
func TestBuildWithoutLock(t *testing.T) {
	conn, err := udpsock.Listen(context.Background(), "udp4", "127.0.0.1:0", udpsock.Options{ReadBuffer: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	refl := newTestReflector(t, nil)
	build, decode := stampCodec()
	var p *Pipeline
	var locked, builds int
	guarded := func(b []byte, seq uint32, t1 time.Time) (int, error) {
		builds++
		// The receiving goroutine may hold the lock for a moment; retry (hang guard 10 s).
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if p.mu.TryLock() {
				p.mu.Unlock()
				break
			}
			if time.Now().Add(time.Millisecond).After(deadline) {
				locked++
			}
		}
		return build(b, seq, t1)
	}
	p, err = New(Config{Conn: conn, Target: refl.addr(), Schedule: pace.NewSchedule(time.Millisecond, false, 1), Count: 5,
		Timeout: time.Second, MaxLen: testpkt.BaseLen, Build: guarded, Decode: decode})
	if err != nil {
		t.Fatal(err)
	}
	st, err := p.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if builds != 5 || locked != 0 || st.Received() != 5 {
		t.Errorf("%d builds, %d of them with the pipeline's lock held throughout; %d replies", builds, locked, st.Received())
	}
}

// TestPipelineStalledReceiverDrained: replies that reached the socket in time while the
// receiving goroutine was not running (held here until the wait ends) are still read and
// judged by their kernel receive stamps: all count, none is late, none lost. Without the final
// drain they were all lost.
func TestPipelineStalledReceiverDrained(t *testing.T) {
	refl := newTestReflector(t, nil)
	p := newPipeline(t, refl.addr(), 20, time.Millisecond, nil)
	p.cfg.Timeout = 300 * time.Millisecond
	p.testHookRead = func(stop <-chan struct{}) { <-stop }
	st, err := p.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Sent != 20 || st.Received() != 20 || st.Lost() != 0 || st.Late != 0 || st.RTT.Count() != 20 {
		t.Fatalf("stats: sent %d received %d lost %d late %d rtt %d", st.Sent, st.Received(), st.Lost(), st.Late, st.RTT.Count())
	}
	if max := st.RTT.Max(); max >= p.cfg.Timeout {
		t.Errorf("RTT max %v: the replies' own receive stamps, not the drain's time, must be used", max)
	}
}
