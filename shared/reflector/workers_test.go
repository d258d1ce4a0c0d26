package reflector

import (
	"fmt"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/testpkt"
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
							panic("dropped")
						}
					}
				}()
			}
			wg.Wait()
			cpu, wall := cpuTime(b)-cpu0, time.Since(t0)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/wall.Seconds(), "pps")
			if cpu > 0 {
				b.ReportMetric(float64(b.N)/cpu.Seconds(), "pkts/cpu-s")
			}
		})
	}
}
