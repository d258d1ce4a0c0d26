package reflector

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/timestamp"
	"github.com/probekit/probekit/shared/udpsock"
)

// TestServeLoopback runs the batched socket loop on loopback: every request gets a reply with
// a kernel T2 no later than T3 and the packet's TTL (64 on loopback), and cancellation stops
// Serve.
func TestServeLoopback(t *testing.T) {
	for _, tc := range []struct {
		name     string
		busyPoll time.Duration
		realtime int
		blocking bool
	}{
		{"netpoll", 0, 0, false},
		{"busy-poll", 100 * time.Microsecond, 0, false},
		{"realtime-blocking", 0, 5, true},
	} {
		t.Run(tc.name, func(t *testing.T) { serveLoopback(t, tc.busyPoll, tc.realtime, tc.blocking) })
	}
}

func serveLoopback(t *testing.T, busyPoll time.Duration, realtime int, blocking bool) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opts := ListenOptions(16)
	opts.Blocking = blocking
	conn, err := udpsock.Listen(ctx, "udp4", "127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{IdleTimeout: time.Second, BusyPoll: busyPoll, Realtime: realtime})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, conn) }()

	cl, err := udpsock.Listen(ctx, "udp4", "127.0.0.1:0", udpsock.Options{RxTimestamps: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const n = 200
	msgs := make([]udpsock.Message, n)
	for i := range msgs {
		msgs[i] = udpsock.Message{Buf: sender(testpkt.ModeUnauthenticated, uint32(i), 3, nil), Addr: conn.LocalAddr()}
	}
	if _, err := cl.WriteBatch(msgs); err != nil {
		t.Fatal(err)
	}
	_ = cl.SetReadDeadline(time.Now().Add(5 * time.Second))
	seen := make(map[uint32]bool)
	in := make([]udpsock.Message, 32)
	for i := range in {
		in[i].Buf = make([]byte, 2048)
	}
	for len(seen) < n {
		k, err := cl.ReadBatch(in)
		if err != nil {
			t.Fatalf("after %d replies: %v", len(seen), err)
		}
		for _, m := range in[:k] {
			rp := testpkt.ReflectedPacket{}
			if err := rp.UnmarshalBinary(m.Buf[:m.N]); err != nil || m.N != 44 {
				t.Fatalf("reply: %v (%d octets)", err, m.N)
			}
			if rp.SSID != 3 || rp.SenderTTL != 64 || rp.Residence() < 0 || rp.Seq != rp.SenderSeq {
				t.Fatalf("reply %+v residence %v", rp, rp.Residence())
			}
			seen[rp.SenderSeq] = true
		}
	}
	if got := r.Stats.Reflected.Load(); got != n {
		t.Errorf("reflected %d", got)
	}
	if r.Stats.RxKernel.Load() != n {
		t.Errorf("kernel T2 for %d of %d packets", r.Stats.RxKernel.Load(), n)
	}
	snap := r.Table().Snapshot()
	if len(snap) != 1 || snap[0].Received != n || snap[0].Peer != cl.LocalAddr().String() {
		t.Errorf("sessions %+v", snap)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
	_ = netip.AddrPort{}
	_ = timestamp.SourceKernel
}

// ServeOptions.Idle (TWAMP REFWAIT): traffic spaced below the idle period keeps the loop
// alive past several periods; silence ends it with ErrIdle no earlier than Idle after the
// last datagram; cancellation still returns nil while the idle deadline is armed.
//
// An end seen while sending is judged against the longest gap it could have followed (see
// serveIdleAttempt): below Idle is a defect; longer means the test itself was stalled (this
// VM stops for 100s of ms under load) and the attempt is repeated.
func TestServeIdle(t *testing.T) {
	const idle = 150 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var conn *udpsock.Conn
	var r *Reflector
	var done chan error
	var lastSend time.Time
	for attempt := 1; ; attempt++ {
		var stalled bool
		conn, r, done, lastSend, stalled = serveIdleAttempt(t, ctx, idle)
		if !stalled {
			break
		}
		if attempt == 5 {
			t.Skipf("the test was stalled longer than the idle period in %d attempts: not judged", attempt)
		}
		t.Logf("attempt %d: the test was stalled longer than the idle period; again", attempt)
	}
	select {
	case err := <-done:
		gap := time.Since(lastSend)
		if !errors.Is(err, ErrIdle) {
			t.Fatalf("ServeWith = %v, want ErrIdle", err)
		}
		if gap < idle { // no upper bound but the hang guard below: this VM stalls at random
			t.Errorf("ended %v after the last datagram, want ≥ %v", gap, idle)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("idle socket still served")
	}
	if got := r.Stats.Reflected.Load(); got != 12 {
		t.Errorf("reflected %d of 12", got)
	}

	// Cancellation wins over a distant idle deadline.
	go func() { done <- r.ServeWith(ctx, conn, ServeOptions{Idle: time.Hour}) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("cancelled ServeWith = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancellation ignored")
	}
}

// On a wildcard listener Serve answers each request from the address it was sent to and
// writes that address into the Location TLV's Destination Address, while the session stays
// keyed by the listener: requests to 127.0.0.1 and 127.0.0.2 (both on lo), over a plain
// IPv4 and a dual-stack socket, and to ::1 on the dual-stack one.
func TestServeWildcard(t *testing.T) {
	for _, tc := range []struct {
		network, addr string
		dsts          []string
	}{
		{"udp4", "0.0.0.0:0", []string{"127.0.0.1", "127.0.0.2"}},
		{"udp", "[::]:0", []string{"127.0.0.1", "127.0.0.2", "::1"}},
	} {
		t.Run(tc.network, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			conn, r, done := serveSocket(t, ctx, tc.network, tc.addr, Config{}, ServeOptions{})
			port := conn.LocalAddr().Port()
			for i, d := range tc.dsts {
				dst := netip.AddrPortFrom(netip.MustParseAddr(d), port)
				clAddr := "127.0.0.1:0"
				if dst.Addr().Is6() {
					clAddr = "[::1]:0"
				}
				cl, err := udpsock.Listen(ctx, "udp", clAddr, udpsock.Options{})
				if err != nil {
					if dst.Addr().Is6() {
						t.Skipf("IPv6 loopback unavailable: %v", err)
					}
					t.Fatal(err)
				}
				defer cl.Close()
				loc := testpkt.TLV{Flags: 0x80, Type: testpkt.TypeLocation, Value: testpkt.NewLocationRequest()}
				req := sender(testpkt.ModeUnauthenticated, uint32(i), 7, loc.AppendTo(nil))
				if err := cl.WriteTo(&udpsock.Message{Buf: req, Addr: dst}); err != nil {
					t.Fatal(err)
				}
				_ = cl.SetReadDeadline(time.Now().Add(3 * time.Second))
				m := udpsock.Message{Buf: make([]byte, 2048)}
				if err := cl.ReadFrom(&m); err != nil {
					t.Fatalf("to %v: %v", dst, err)
				}
				if m.Addr != dst {
					t.Errorf("request to %v answered from %v", dst, m.Addr)
				}
				tl, err := testpkt.ParseTLVs(m.Buf[testpkt.BaseLen:m.N])
				if err != nil || len(tl) != 1 {
					t.Fatalf("reply TLVs %+v: %v", tl, err)
				}
				l, err := testpkt.ParseLocation(tl[0].Value)
				if err != nil || tl[0].Flags != 0 || l.DstPort != port || l.SrcPort != cl.LocalAddr().Port() {
					t.Fatalf("location %+v flags %#x: %v", l, tl[0].Flags, err)
				}
				for _, s := range l.Sub {
					a, _ := testpkt.LocationSubAddr(s)
					want := cl.LocalAddr().Addr()
					if s.Type == testpkt.SubDestIPv4 || s.Type == testpkt.SubDestIPv6 {
						want = dst.Addr()
					}
					if a != want || s.Flags != 0 {
						t.Errorf("to %v: location sub-TLV type %d = %v flags %#x, want %v", dst, int(s.Type), a, s.Flags, want)
					}
				}
			}
			for _, si := range r.Table().Snapshot() {
				if si.Local != conn.LocalAddr().String() {
					t.Errorf("session %+v not keyed by the listener %v", si, conn.LocalAddr())
				}
			}
			if got := r.Table().Len(); got != len(tc.dsts) {
				t.Errorf("%d sessions, want %d (one per client)", got, len(tc.dsts))
			}
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
}

// BenchmarkServe measures the whole socket loop per packet on loopback, on a wildcard
// dual-stack listener with RecvDst (reply sent from the request's destination), a batch of
// 32 requests in flight. allocs/op counts every goroutine, the client's included: 0 means the
// loop allocates nothing per packet.
func BenchmarkServe(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conn, _, done := serveSocket(b, ctx, "udp", "[::]:0", Config{Batch: 32}, ServeOptions{})
	cl, err := udpsock.Listen(ctx, "udp4", "127.0.0.1:0", udpsock.Options{Batch: 32, ReadBuffer: 4 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	to := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), conn.LocalAddr().Port())
	const batch = 32
	out := make([]udpsock.Message, batch)
	in := make([]udpsock.Message, batch)
	for i := range out {
		out[i] = udpsock.Message{Buf: sender(testpkt.ModeUnauthenticated, uint32(i), 1, nil), Addr: to}
		in[i].Buf = make([]byte, 2048)
	}
	roundTrip := func(n int) {
		if _, err := cl.WriteBatch(out[:n]); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < n; {
			k, err := cl.ReadBatch(in)
			if err != nil {
				b.Fatalf("%d of %d replies: %v", got, n, err)
			}
			got += k
		}
	}
	_ = cl.SetReadDeadline(time.Now().Add(time.Minute))
	roundTrip(batch) // warm-up: session learned, buffers grown
	b.ReportAllocs()
	b.ResetTimer()
	for left := b.N; left > 0; left -= batch {
		roundTrip(min(left, batch))
	}
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// serveIdleAttempt starts a reflector with opts.Idle = idle and sends 12 datagrams idle/3
// apart. It fails the test if Serve provably ended sooner than idle after a datagram it
// received; stalled reports an end that a stall of the test itself may explain.
func serveIdleAttempt(t *testing.T, ctx context.Context, idle time.Duration) (conn *udpsock.Conn, r *Reflector, done chan error, lastSend time.Time, stalled bool) {
	t.Helper()
	started := time.Now() // before the deadline is armed
	conn, r, done = serveSocket(t, ctx, "udp4", "127.0.0.1:0", Config{}, ServeOptions{Idle: idle})
	cl, err := udpsock.Listen(ctx, "udp4", "127.0.0.1:0", udpsock.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// Serve ended at E; the last datagram it had received before E came in inside its send
	// call. If that was this one, E − receive ≤ now − lastSend; if E came before this one
	// arrived, E − previous receive < this send's return − the previous send's start (the
	// start of Serve for the first). Both below idle proves an early end.
	prevSend := started
	for i := 0; i < 12; i++ { // 12 × 50 ms = 4 idle periods
		lastSend = time.Now()
		if err := cl.WriteTo(&udpsock.Message{Buf: sender(testpkt.ModeUnauthenticated, uint32(i), 1, nil), Addr: conn.LocalAddr()}); err != nil {
			t.Fatal(err)
		}
		sendReturn := time.Now()
		select {
		case err := <-done:
			if gap := max(time.Since(lastSend), sendReturn.Sub(prevSend)); gap < idle {
				t.Fatalf("Serve ended at most %v after a datagram (packet %d), idle is %v: %v", gap, i, idle, err)
			}
			return conn, r, done, lastSend, true
		case <-time.After(idle / 3):
		}
		prevSend = lastSend
	}
	return conn, r, done, lastSend, false
}

// serveSocket opens a reflector socket with ListenOptions, closed at the end of the test, and
// runs ServeWith on it; done receives ServeWith's result.
func serveSocket(t testing.TB, ctx context.Context, network, addr string, cfg Config, opts ServeOptions) (*udpsock.Conn, *Reflector, chan error) {
	t.Helper()
	conn, err := udpsock.Listen(ctx, network, addr, ListenOptions(cfg.Batch))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.ServeWith(ctx, conn, opts) }()
	return conn, r, done
}

func TestCheckScheduling(t *testing.T) {
	for _, tc := range []struct {
		busyPoll time.Duration
		realtime int
		ok       bool
	}{
		{0, 0, true}, {200 * time.Microsecond, 0, true}, {MaxBusyPoll, 0, true}, {0, 99, true},
		{-time.Microsecond, 0, false}, {MaxBusyPoll + 1, 0, false}, {0, 100, false}, {0, -1, false},
		{time.Microsecond, 1, false},
	} {
		if err := CheckScheduling(tc.busyPoll, tc.realtime); (err == nil) != tc.ok {
			t.Errorf("CheckScheduling(%v, %d) = %v, want ok %v", tc.busyPoll, tc.realtime, err, tc.ok)
		}
		_, err := New(Config{BusyPoll: tc.busyPoll, Realtime: tc.realtime})
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrConfig)) {
			t.Errorf("New with busy-poll %v realtime %d: %v", tc.busyPoll, tc.realtime, err)
		}
	}
}
