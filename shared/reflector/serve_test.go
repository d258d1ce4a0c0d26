package reflector

import (
	"context"
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
