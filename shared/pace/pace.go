// Package pace times a sender's departures: a periodic or Poisson Schedule and a Pacer that
// sleeps and spins to it and hands out batches of the packets that are due.
package pace

import (
	"context"
	"math/rand/v2"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// Defaults for Config fields left zero.
const (
	DefaultMaxBatch = 64
	// DefaultSpin is the busy-wait before a departure: the thread sleeps until then and
	// spins the rest, since the kernel wakes a sleeper some microseconds late.
	DefaultSpin = 50 * time.Microsecond
	// DefaultBurstBelow is the interval under which departures are paced in bursts:
	// spinning for every 10 µs slot would take a whole core from a local reflector.
	DefaultBurstBelow = 100 * time.Microsecond
	// maxSleep keeps the pacer responsive to cancellation during long gaps.
	maxSleep = 100 * time.Millisecond
)

// Schedule yields the gaps between departures: the interval (periodic sampling, RFC 3432) or
// exponentially distributed gaps with the interval as mean (Poisson sampling, RFC 2330
// §11.1.1), the same sequence for the same seed. A Schedule is not safe for concurrent use.
type Schedule struct {
	interval time.Duration
	rng      *rand.Rand
}

// NewSchedule returns a periodic schedule, or with poisson an exponential one seeded by seed.
func NewSchedule(interval time.Duration, poisson bool, seed uint64) *Schedule {
	s := &Schedule{interval: interval}
	if poisson {
		s.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	}
	return s
}

// Interval is the period or the mean gap.
func (s *Schedule) Interval() time.Duration { return s.interval }

// Poisson reports whether the gaps are exponential.
func (s *Schedule) Poisson() bool { return s.rng != nil }

// Next returns the gap to the following departure.
func (s *Schedule) Next() time.Duration {
	if s.rng == nil {
		return s.interval
	}
	return time.Duration(s.rng.ExpFloat64() * float64(s.interval))
}

// Config bounds and tunes a Pacer.
type Config struct {
	// Schedule gives the gaps; the first departure is at the start time.
	Schedule *Schedule
	// Count stops after this many departures (0 = no limit).
	Count uint64
	// Duration stops before the first departure at or after start+Duration (0 = no limit).
	Duration time.Duration
	// MaxBatch bounds the departures one Next returns (DefaultMaxBatch when 0).
	MaxBatch int
	// Spin is the busy-wait before each departure (DefaultSpin when 0, none when negative).
	Spin time.Duration
	// BurstBelow: schedules whose interval is shorter are paced in bursts, the thread sleeps
	// and every departure due on waking leaves together (DefaultBurstBelow when 0, never
	// when negative).
	BurstBelow time.Duration
}

// Pacer owns a sender's timing loop. Each Next blocks until departures are due and says how
// many; the caller builds and sends that many packets (each with its own send time) and calls
// Next again. A Pacer is used by one goroutine, best locked to its thread with LockThread.
type Pacer struct {
	sched    *Schedule
	count    uint64
	end      time.Time
	maxBatch int
	spin     time.Duration
	burst    bool
	next     time.Time
	issued   uint64
	late     time.Duration
}

// New returns a pacer whose first departure is at start.
func New(start time.Time, cfg Config) *Pacer {
	p := &Pacer{sched: cfg.Schedule, count: cfg.Count, maxBatch: cfg.MaxBatch, spin: cfg.Spin, next: start}
	if p.sched == nil {
		p.sched = NewSchedule(0, false, 0)
	}
	if cfg.Duration > 0 {
		p.end = start.Add(cfg.Duration)
	}
	if p.maxBatch <= 0 {
		p.maxBatch = DefaultMaxBatch
	}
	if p.spin == 0 {
		p.spin = DefaultSpin
	}
	burstBelow := cfg.BurstBelow
	if burstBelow == 0 {
		burstBelow = DefaultBurstBelow
	}
	p.burst = p.sched.interval < burstBelow
	return p
}

// Next waits until at least one departure is due and returns how many are due now, at most
// MaxBatch; they count as issued. ok is false once Count departures were issued, the next
// departure falls at or after the end of Duration, or ctx is done.
func (p *Pacer) Next(ctx context.Context) (n int, ok bool) {
	done := ctx.Done()
	for {
		if p.count > 0 && p.issued >= p.count {
			return 0, false
		}
		select {
		case <-done:
			return 0, false
		default:
		}
		now := time.Now()
		if !p.end.IsZero() && !p.next.Before(p.end) {
			return 0, false
		}
		if wait := p.next.Sub(now); wait > 0 {
			p.wait(wait)
			continue
		}
		p.late = now.Sub(p.next)
		for n < p.maxBatch && (p.count == 0 || p.issued < p.count) && !p.next.After(now) &&
			(p.end.IsZero() || p.next.Before(p.end)) {
			n++
			p.issued++
			p.next = p.next.Add(p.sched.Next())
		}
		return n, true
	}
}

// wait sleeps towards a departure wait from now: in burst mode the whole wait (what falls due
// meanwhile leaves together), otherwise until Spin before it, returning to spin the rest.
func (p *Pacer) wait(wait time.Duration) {
	var sl time.Duration
	switch {
	case p.burst || p.spin < 0:
		sl = wait
	case wait > p.spin:
		sl = wait - p.spin
	default:
		return // spin
	}
	ts := unix.NsecToTimespec(int64(min(sl, maxSleep)))
	_ = unix.Nanosleep(&ts, nil)
}

// Late is how far behind its schedule the first departure of the last batch was when Next
// returned it.
func (p *Pacer) Late() time.Duration { return p.late }

// Issued is the number of departures Next has returned so far.
func (p *Pacer) Issued() uint64 { return p.issued }

// NextDeparture is the scheduled time of the next departure.
func (p *Pacer) NextDeparture() time.Time { return p.next }

// LockThread locks the calling goroutine to its thread and sets the thread's timer slack to
// 1 ns, so sleeps end within microseconds of their deadline; the returned function undoes both.
func LockThread() (unlock func()) {
	runtime.LockOSThread()
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
	return func() {
		_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 0, 0, 0, 0) // back to the thread default
		runtime.UnlockOSThread()
	}
}
