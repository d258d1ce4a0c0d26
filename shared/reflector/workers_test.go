package reflector

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/udpsock"
)

// cpuTime is the process's user+system CPU time so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkReflectWorkers runs 1 and 2 Workers of one Reflector in parallel, each on its own
// sessions, with a Timestamp Information and a Class of Service TLV per packet (the work the
// table lock used to cover). It reports wall-clock packets per second (pps, which on a busy
// machine depends on how much CPU the other processes leave) and packets per CPU-second of
// the process (pkts/cpu-s: lock waits and cache-line bouncing lower it, other load hardly
// does). Scaling with cores means pps of 2 workers ≈ 2 × pps of 1 on an idle 2-CPU machine
// and pkts/cpu-s of 2 workers ≈ pkts/cpu-s of 1: two workers then deliver
// 2 × (pkts/cpu-s of 2) / (pkts/cpu-s of 1) times one worker's packets per second when each
// has a CPU. allocs/op must stay 0.
func BenchmarkReflectWorkers(b *testing.B) {
	ti := testpkt.TLV{Flags: 0x80, Type: testpkt.TypeTimestampInformation, Value: make([]byte, 4)}
	cos := testpkt.TLV{Flags: 0x80, Type: testpkt.TypeClassOfService, Value: make([]byte, 4)}
	req := tlvReq(ti, cos)
	for _, n := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", n), func(b *testing.B) {
			r, err := New(Config{})
			if err != nil {
				b.Fatal(err)
			}
			type job struct {
				w   *Worker
				ps  []Packet
				out []byte
			}
			jobs := make([]job, n)
			for i := range jobs {
				jobs[i] = job{w: r.NewWorker(), out: make([]byte, 0, 2048)}
				// 16 sessions per worker, distinct peers.
				for k := range 16 {
					peer := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i), byte(k), 1}), uint16(40000+k))
					jobs[i].ps = append(jobs[i].ps, *pkt(req, peer))
				}
			}
			var wg sync.WaitGroup
			var dropped atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			cpu0, t0 := cpuTime(b), time.Now()
			for i := range jobs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					j := &jobs[i]
					for k := i; k < b.N; k += n {
						p := &j.ps[k%len(j.ps)]
						p.RxTime = time.Now()
						if _, _, ok := j.w.Reflect(p, j.out); !ok {
							dropped.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			cpu, wall := cpuTime(b)-cpu0, time.Since(t0)
			b.StopTimer()
			if d := dropped.Load(); d > 0 {
				b.Fatalf("%d requests not reflected", d)
			}
			b.ReportMetric(float64(b.N)/wall.Seconds(), "pps")
			if cpu > 0 {
				b.ReportMetric(float64(b.N)/cpu.Seconds(), "pkts/cpu-s")
			}
		})
	}
}

// Several workers on one socket (Config.Workers) and one worker on each of several
// SO_REUSEPORT sockets (udpsock.ListenGroup with Run) answer every request of many sessions
// exactly once, and their per-worker counters add up.
func TestServeWorkers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sockets int
		workers int
	}{{"one-socket-3-workers", 1, 3}, {"3-reuseport-sockets", 3, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			conns, err := udpsock.ListenGroup(ctx, "udp4", "127.0.0.1:0", tc.sockets, ListenOptions(0))
			if err != nil {
				t.Fatal(err)
			}
			r, err := New(Config{Workers: tc.workers})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx, conns...) }()
			const clients, per = 8, 200
			got := make(chan int, clients)
			for c := range clients {
				go func() {
					cl, err := udpsock.Listen(ctx, "udp4", "127.0.0.1:0", udpsock.Options{ReadBuffer: 1 << 20})
					if err != nil {
						got <- -1
						return
					}
					defer cl.Close()
					seen := map[uint32]bool{}
					in := udpsock.Message{Buf: make([]byte, 2048)}
					for i := range per {
						req := sender(unauth, uint32(i), uint16(c), nil)
						if cl.WriteTo(&udpsock.Message{Buf: req, Addr: conns[0].LocalAddr()}) != nil {
							break
						}
						_ = cl.SetReadDeadline(time.Now().Add(20 * time.Second))
						if cl.ReadFrom(&in) != nil {
							break
						}
						rp := testpkt.ReflectedPacket{Mode: unauth}
						if rp.UnmarshalBinary(in.Buf[:in.N]) == nil {
							seen[rp.SenderSeq] = true
						}
					}
					got <- len(seen)
				}()
			}
			for range clients {
				if n := <-got; n != per {
					t.Errorf("a client got %d of %d replies", n, per)
				}
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if rx, tx := r.Stats.Received.Load(), r.Stats.Reflected.Load(); rx != clients*per || tx != clients*per {
				t.Errorf("counters: received %d reflected %d, want %d", rx, tx, clients*per)
			}
			if n := r.Table().Len(); n != clients {
				t.Errorf("%d sessions, want %d", n, clients)
			}
		})
	}
	r, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.ServeWith(context.Background(), nil, ServeOptions{Workers: 2, Idle: time.Second}); !errors.Is(err, ErrWorkersIdle) {
		t.Errorf("workers with idle: %v", err)
	}
}

// BenchmarkServeWorkers runs the socket loop as one worker, as 2 workers on 2 SO_REUSEPORT
// sockets and as 2 workers on one socket, with 8 client flows (sessions) each keeping a batch
// of 8 requests in flight. allocs/op counts every goroutine, the clients' included: 0 means
// no worker configuration allocates per packet. Packets per CPU-second of the reflector
// alone, the scaling figure, comes from `pkbench scale`, which runs it as its own process.
func BenchmarkServeWorkers(b *testing.B) {
	for _, c := range []struct {
		name             string
		sockets, workers int
	}{{"workers=1", 1, 1}, {"sockets=2", 2, 1}, {"one-socket-workers=2", 1, 2}} {
		b.Run(c.name, func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			conns, err := udpsock.ListenGroup(ctx, "udp4", "127.0.0.1:0", c.sockets, ListenOptions(16))
			if err != nil {
				b.Fatal(err)
			}
			r, err := New(Config{Workers: c.workers, Batch: 16})
			if err != nil {
				b.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx, conns...) }()
			const flows, inflight = 8, 8
			type flow struct {
				c       *udpsock.Conn
				out, in []udpsock.Message
			}
			fs := make([]flow, flows)
			for i := range fs {
				cl, err := udpsock.Listen(ctx, "udp4", "127.0.0.1:0", udpsock.Options{Batch: inflight, ReadBuffer: 1 << 20})
				if err != nil {
					b.Fatal(err)
				}
				defer cl.Close()
				fs[i] = flow{c: cl, out: make([]udpsock.Message, inflight), in: make([]udpsock.Message, inflight)}
				for k := range inflight {
					fs[i].out[k] = udpsock.Message{Buf: sender(unauth, uint32(k), uint16(i), nil), Addr: conns[0].LocalAddr()}
					fs[i].in[k].Buf = make([]byte, 2048)
				}
				_ = cl.SetReadDeadline(time.Now().Add(time.Minute))
			}
			roundTrip := func(f *flow) error {
				if _, err := f.c.WriteBatch(f.out); err != nil {
					return err
				}
				for got := 0; got < inflight; {
					k, err := f.c.ReadBatch(f.in)
					if err != nil {
						return err
					}
					got += k
				}
				return nil
			}
			for i := range fs {
				if err := roundTrip(&fs[i]); err != nil { // warm-up: sessions learned
					b.Fatal(err)
				}
			}
			rounds := b.N / (flows * inflight)
			var wg sync.WaitGroup
			errs := make([]error, flows)
			b.ReportAllocs()
			b.ResetTimer()
			t0 := time.Now()
			for i := range fs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range rounds + 1 {
						if errs[i] = roundTrip(&fs[i]); errs[i] != nil {
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			for _, err := range errs {
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((rounds+1)*flows*inflight)/time.Since(t0).Seconds(), "pps")
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}
