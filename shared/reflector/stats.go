package reflector

import (
	"sync/atomic"
	"time"
)

// statSlots is the number of per-worker counter slots: worker i adds to slot i mod statSlots,
// so workers on different cores do not bounce one cache line per packet, and a read sums the
// slots.
const statSlots = 16

// slot is one padded counter cell (one cache line each).
type slot struct {
	v atomic.Uint64
	_ [56]byte
}

// Counter is a monotonic counter kept per worker and summed on read.
type Counter struct{ s [statSlots]slot }

// Load returns the sum over every worker.
func (c *Counter) Load() uint64 {
	var n uint64
	for i := range c.s {
		n += c.s[i].v.Load()
	}
	return n
}

// Add adds d to the counter's shared slot; workers use their own slot on the hot path.
func (c *Counter) Add(d uint64) { c.s[0].v.Add(d) }

func (c *Counter) add(w int, d uint64) { c.s[w].v.Add(d) }

// Int64Counter is Counter for a signed sum (nanoseconds).
type Int64Counter struct{ c Counter }

// Load returns the sum over every worker.
func (c *Int64Counter) Load() int64 { return int64(c.c.Load()) }

func (c *Int64Counter) add(w int, d int64) { c.c.add(w, uint64(d)) }

// Stats are the reflector's counters: each worker adds to its own slot, Load sums them.
type Stats struct {
	Received  Counter
	Reflected Counter
	Drops     [numDrops]Counter
	// Residence counts T3 − T2 per reply in ResidenceBounds buckets (+Inf last).
	Residence    [len(residenceBounds) + 1]Counter
	ResidenceSum Int64Counter // nanoseconds
	// Wakeup counts, per received batch, the time from the kernel's receive stamp of the
	// batch's first datagram to the moment the reflector's read returned (same buckets):
	// the part of residence time spent waking the reader, as opposed to processing.
	Wakeup    [len(residenceBounds) + 1]Counter
	WakeupSum Int64Counter // nanoseconds
	// RxKernel counts packets whose T2 came from a kernel timestamp.
	RxKernel Counter
	// Evicted counts learned sessions removed to make room for a new one (table full).
	Evicted Counter
	// Expired counts learned sessions removed after IdleTimeout without packets.
	Expired Counter
}

func bucket(d time.Duration) int {
	i := 0
	for i < len(residenceBounds) && d > residenceBounds[i] {
		i++
	}
	return i
}

func (s *Stats) observe(w int, d time.Duration) {
	s.Residence[bucket(d)].add(w, 1)
	s.ResidenceSum.add(w, int64(d))
}

func (s *Stats) observeWakeup(w int, d time.Duration) {
	s.Wakeup[bucket(d)].add(w, 1)
	s.WakeupSum.add(w, int64(d))
}
