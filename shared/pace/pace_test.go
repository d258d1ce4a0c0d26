package pace

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestSchedulePeriodic(t *testing.T) {
	for _, iv := range []time.Duration{0, time.Nanosecond, 10 * time.Microsecond, time.Millisecond, time.Second} {
		s := NewSchedule(iv, false, 1)
		if s.Poisson() || s.Interval() != iv {
			t.Fatalf("%v: Poisson %v Interval %v", iv, s.Poisson(), s.Interval())
		}
		for i := 0; i < 10; i++ {
			if g := s.Next(); g != iv {
				t.Fatalf("periodic %v: gap %v", iv, g)
			}
		}
	}
}

// The Poisson gaps are exponential with the interval as mean (RFC 2330 §11.1.1): mean,
// coefficient of variation 1 and P(gap < mean) = 1 − 1/e over 200,000 draws for seed 42.
func TestSchedulePoissonDistribution(t *testing.T) {
	s := NewSchedule(time.Millisecond, true, 42)
	const n = 200000
	var sum, sq float64
	below := 0
	for i := 0; i < n; i++ {
		g := float64(s.Next()) / 1e6 // ms
		if g < 0 {
			t.Fatalf("negative gap %v ms", g)
		}
		sum += g
		sq += g * g
		if g < 1 {
			below++
		}
	}
	mean := sum / n
	cv := math.Sqrt(sq/n-mean*mean) / mean
	frac := float64(below) / n
	if math.Abs(mean-1) > 0.01 || math.Abs(cv-1) > 0.02 || math.Abs(frac-(1-1/math.E)) > 0.005 {
		t.Errorf("poisson: mean %.4f ms, CV %.4f, P(gap<mean) %.4f", mean, cv, frac)
	}
}

// A seed always gives the same gaps: PCG(seed, seed ^ 0x9e3779b97f4a7c15) and ExpFloat64
// scaled by the interval, the sequence stampsend's --seed has always produced.
func TestSchedulePoissonSeed(t *testing.T) {
	for _, seed := range []uint64{0, 7, 9, 1 << 63} {
		a, b := NewSchedule(time.Millisecond, true, seed), NewSchedule(time.Millisecond, true, seed)
		ref := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		for i := 0; i < 100; i++ {
			want := time.Duration(ref.ExpFloat64() * float64(time.Millisecond))
			if ga, gb := a.Next(), b.Next(); ga != want || gb != want {
				t.Fatalf("seed %d draw %d: %v %v, want %v", seed, i, ga, gb, want)
			}
		}
	}
	a, b := NewSchedule(time.Millisecond, true, 1), NewSchedule(time.Millisecond, true, 2)
	same := 0
	for i := 0; i < 10; i++ {
		if a.Next() == b.Next() {
			same++
		}
	}
	if same == 10 {
		t.Error("seeds 1 and 2 give the same gaps")
	}
}

// drain runs p to its end, failing when a departure is handed out before its periodic
// schedule (start + i·iv) says, and returns the total issued and the number of batches.
func drain(t *testing.T, ctx context.Context, p *Pacer, start time.Time, iv time.Duration) (total, batches int) {
	t.Helper()
	for {
		n, ok := p.Next(ctx)
		now := time.Now()
		if !ok {
			if n != 0 {
				t.Fatalf("n %d with ok false", n)
			}
			return total, batches
		}
		if n < 1 {
			t.Fatalf("ok with n %d", n)
		}
		// The last departure of the batch was due: never early.
		if due := start.Add(time.Duration(total+n-1) * iv); now.Before(due) {
			t.Fatalf("departure %d handed out %v early", total+n-1, due.Sub(now))
		}
		total += n
		batches++
	}
}

func TestPacerStops(t *testing.T) {
	tests := []struct {
		name     string
		iv       time.Duration
		count    uint64
		duration time.Duration
		want     int
	}{
		{"count", 200 * time.Microsecond, 25, 0, 25},
		{"count burst", 10 * time.Microsecond, 300, 0, 300},
		{"count zero interval", 0, 1000, 0, 1000},
		// Departures at 0, 1, … 9 ms; the one at 10 ms falls at the end.
		{"duration", time.Millisecond, 0, 10 * time.Millisecond, 10},
		{"duration not multiple", time.Millisecond, 0, 10*time.Millisecond + 1, 11},
		{"count before duration", time.Millisecond, 5, time.Hour, 5},
		{"duration before count", time.Millisecond, 1000, 5 * time.Millisecond, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			p := New(start, Config{Schedule: NewSchedule(tc.iv, false, 0), Count: tc.count, Duration: tc.duration})
			total, _ := drain(t, context.Background(), p, start, tc.iv)
			if total != tc.want || p.Issued() != uint64(tc.want) {
				t.Errorf("issued %d (Issued %d), want %d", total, p.Issued(), tc.want)
			}
			if el, min := time.Since(start), time.Duration(tc.want-1)*tc.iv; el < min {
				t.Errorf("took %v, schedule needs %v", el, min)
			}
			if n, ok := p.Next(context.Background()); ok || n != 0 {
				t.Errorf("Next after the end: %d %v", n, ok)
			}
		})
	}
}

func TestPacerContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p := New(time.Now(), Config{Schedule: NewSchedule(time.Millisecond, false, 0)})
	if n, ok := p.Next(ctx); ok || n != 0 {
		t.Fatalf("cancelled context: %d %v", n, ok)
	}

	// A cancellation during a long gap ends the wait within the 100 ms sleep slice.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	p = New(time.Now(), Config{Schedule: NewSchedule(time.Hour, false, 0)})
	if n, ok := p.Next(ctx); !ok || n != 1 {
		t.Fatalf("first departure: %d %v", n, ok)
	}
	time.AfterFunc(20*time.Millisecond, cancel)
	t0 := time.Now()
	if n, ok := p.Next(ctx); ok || n != 0 {
		t.Fatalf("after cancel: %d %v", n, ok)
	}
	// Not before the cancel; the upper bound is a hang guard (without the cancel the wait is
	// an hour), not a latency: a loaded machine may stall the wake-up for any time.
	if el := time.Since(t0); el < 20*time.Millisecond || el > 30*time.Second {
		t.Errorf("cancel took effect after %v", el)
	}
}

// Departures that are overdue leave together, MaxBatch at a time, and Late says how far
// behind the first of each batch was.
func TestPacerBatches(t *testing.T) {
	for _, tc := range []struct {
		iv       time.Duration
		maxBatch int
		want     int
	}{
		{10 * time.Microsecond, 0, DefaultMaxBatch},
		{10 * time.Microsecond, 8, 8},
		{time.Millisecond, 0, 11}, // 0, 1, … 10 ms are due 10.5 ms after start
	} {
		start := time.Now().Add(-10*time.Millisecond - 500*time.Microsecond)
		p := New(start, Config{Schedule: NewSchedule(tc.iv, false, 0), MaxBatch: tc.maxBatch})
		n, ok := p.Next(context.Background())
		// want is what falls due within the first 11 ms; a test stalled past that (0.5 ms
		// from start's clock read) may see the next departures due too, never more than
		// were due by the clock read after Next (nor more than the batch limit).
		limit := tc.maxBatch
		if limit == 0 {
			limit = DefaultMaxBatch
		}
		hi := tc.want
		if el := time.Since(start); el >= 11*time.Millisecond {
			hi = max(hi, min(int(el/tc.iv)+1, limit))
		}
		if !ok || n < tc.want || n > hi {
			t.Errorf("%v max %d: first batch %d %v, want %d (up to %d by the clock after Next)", tc.iv, tc.maxBatch, n, ok, tc.want, hi)
		}
		if l := p.Late(); l < 10*time.Millisecond {
			t.Errorf("%v: Late %v, want ≥ 10.5 ms", tc.iv, l)
		}
		if want := start.Add(time.Duration(n) * tc.iv); !p.NextDeparture().Equal(want) {
			t.Errorf("%v: next departure %v, want %v", tc.iv, p.NextDeparture(), want)
		}
	}
}

// Below BurstBelow the pacer sleeps instead of spinning and hands out what fell due while it
// slept: fewer batches than packets (the kernel's wake-up latency alone exceeds 10 µs), and
// with bursting off every batch but catch-ups is a single packet at the same count.
func TestPacerBurst(t *testing.T) {
	const iv, count = 10 * time.Microsecond, 2000
	start := time.Now()
	p := New(start, Config{Schedule: NewSchedule(iv, false, 0), Count: count})
	total, batches := drain(t, context.Background(), p, start, iv)
	if total != count {
		t.Fatalf("burst: issued %d", total)
	}
	if batches >= count {
		t.Errorf("burst: %d batches for %d packets", batches, count)
	}
	t.Logf("burst: %d packets in %d batches over %v", total, batches, time.Since(start))
	if !p.burst {
		t.Error("10 µs interval not paced in bursts")
	}
	if New(start, Config{Schedule: NewSchedule(iv, false, 0), BurstBelow: -1}).burst {
		t.Error("BurstBelow -1 still bursts")
	}
	if New(start, Config{Schedule: NewSchedule(DefaultBurstBelow, false, 0)}).burst {
		t.Error("100 µs interval bursts")
	}
}

func TestPacerAllocs(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, poisson := range []bool{false, true} {
		p := New(time.Now(), Config{Schedule: NewSchedule(0, poisson, 3), MaxBatch: 4})
		p.Next(ctx)
		if a := testing.AllocsPerRun(1000, func() {
			if _, ok := p.Next(ctx); !ok {
				t.Fatal("stopped")
			}
		}); a != 0 {
			t.Errorf("poisson=%v: %v allocations per Next", poisson, a)
		}
	}
}

func BenchmarkPacerNext(b *testing.B) {
	p := New(time.Now(), Config{Schedule: NewSchedule(0, false, 0), MaxBatch: 1})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		p.Next(ctx)
	}
}

// BenchmarkPacer100k paces 100 kpps (10 µs, burst mode) for b.N packets and reports the
// achieved rate and packets per Next.
func BenchmarkPacer100k(b *testing.B) {
	unlock := LockThread()
	defer unlock()
	start := time.Now()
	p := New(start, Config{Schedule: NewSchedule(10*time.Microsecond, false, 0), Count: uint64(b.N)})
	calls := 0
	for {
		if _, ok := p.Next(context.Background()); !ok {
			break
		}
		calls++
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "pps")
	b.ReportMetric(float64(b.N)/float64(max(calls, 1)), "pkts/batch")
}

func BenchmarkSchedulePoisson(b *testing.B) {
	s := NewSchedule(time.Millisecond, true, 1)
	b.ReportAllocs()
	for b.Loop() {
		s.Next()
	}
}
