package reflector

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/timestamp"
	"github.com/probekit/probekit/shared/udpsock"
)

// BenchmarkResidence splits the reflector's residence time (T3 − T2, T2 the kernel receive
// stamp) into wake-up — kernel stamp to the reading goroutine running again, Stats.Wakeup —
// and processing (the rest), with the socket read through the Go network poller (default)
// and blocking inside recvmmsg (udpsock Options.Blocking), at 100 pps and 10 kpps. Run it with
// a fixed count, e.g. -benchtime 300x (3 s at 100 pps). It reports medians in µs:
// resid-p50-µs from the replies' T3 − T2, wake-p50-µs as the Stats.Wakeup bucket holding the
// median (bounds 1, 2, 5, 10, 20, 50, 100, 200 µs …), and the means of both.
func BenchmarkResidence(b *testing.B) {
	for _, blocking := range []bool{false, true} {
		for _, rate := range []int{100, 10000} {
			name := fmt.Sprintf("read=netpoll/rate=%d", rate)
			if blocking {
				name = fmt.Sprintf("read=blocking/rate=%d", rate)
			}
			b.Run(name, func(b *testing.B) { benchResidence(b, blocking, rate) })
		}
	}
}

func benchResidence(b *testing.B, blocking bool, rate int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opts := ListenOptions(0)
	opts.Blocking = blocking
	opts.RecvDst = false
	conn, err := udpsock.Listen(ctx, "udp4", "127.0.0.1:0", opts)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	r, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, conn) }()
	cl, err := udpsock.Listen(ctx, "udp4", "127.0.0.1:0", udpsock.Options{ReadBuffer: 4 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	recvd := make(chan []time.Duration, 1)
	go func() {
		var res []time.Duration
		m := udpsock.Message{Buf: make([]byte, 2048)}
		for {
			if cl.ReadFrom(&m) != nil {
				recvd <- res
				return
			}
			rp := testpkt.ReflectedPacket{Mode: testpkt.ModeUnauthenticated}
			if rp.UnmarshalBinary(m.Buf[:m.N]) == nil {
				res = append(res, timestamp.NTP(rp.Timestamp).Time().Sub(timestamp.NTP(rp.ReceiveTimestamp).Time()))
			}
		}
	}()
	req := sender(testpkt.ModeUnauthenticated, 0, 1, nil)
	out := udpsock.Message{Buf: req, Addr: conn.LocalAddr()}
	gap := time.Second / time.Duration(rate)
	b.ResetTimer()
	next := time.Now()
	for i := 0; i < b.N; i++ {
		next = next.Add(gap)
		time.Sleep(time.Until(next))
		testpkt.PutSequenceNumber(req, uint32(i))
		if err := cl.WriteTo(&out); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	b.StopTimer()
	_ = cl.SetReadDeadline(time.Now())
	res := <-recvd
	cancel()
	<-done
	if len(res) == 0 {
		b.Fatal("no replies")
	}
	slices.Sort(res)
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	b.ReportMetric(us(res[len(res)/2]), "resid-p50-µs")
	b.ReportMetric(us(time.Duration(r.Stats.ResidenceSum.Load())/time.Duration(max(r.Stats.Reflected.Load(), 1))), "resid-mean-µs")
	var wakes uint64
	for i := range r.Stats.Wakeup {
		wakes += r.Stats.Wakeup[i].Load()
	}
	var cum uint64
	for i := range r.Stats.Wakeup {
		cum += r.Stats.Wakeup[i].Load()
		if cum*2 >= wakes && i < len(residenceBounds) {
			b.ReportMetric(us(residenceBounds[i]), "wake-p50-bucket-µs")
			break
		}
	}
	b.ReportMetric(us(time.Duration(r.Stats.WakeupSum.Load())/time.Duration(max(wakes, 1))), "wake-mean-µs")
}
