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
func TestServeIdle(t *testing.T) {
	const idle = 150 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conn, err := udpsock.Listen(ctx, "udp4", "127.0.0.1:0", ListenOptions(8))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.ServeWith(ctx, conn, ServeOptions{Idle: idle}) }()
	cl, err := udpsock.Listen(ctx, "udp4", "127.0.0.1:0", udpsock.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var lastSend time.Time
	for i := 0; i < 12; i++ { // 12 × 50 ms = 4 idle periods
		if err := cl.WriteTo(&udpsock.Message{Buf: sender(testpkt.ModeUnauthenticated, uint32(i), 1, nil), Addr: conn.LocalAddr()}); err != nil {
			t.Fatal(err)
		}
		lastSend = time.Now()
		select {
		case err := <-done:
			t.Fatalf("Serve ended with traffic flowing (packet %d): %v", i, err)
		case <-time.After(idle / 3):
		}
	}
	select {
	case err := <-done:
		gap := time.Since(lastSend)
		if !errors.Is(err, ErrIdle) {
			t.Fatalf("ServeWith = %v, want ErrIdle", err)
		}
		if gap < idle || gap > idle+time.Second {
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
