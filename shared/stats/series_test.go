package stats

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

const us = time.Microsecond

func series(vals ...time.Duration) *Series {
	var s Series
	for _, v := range vals {
		s.Add(v)
	}
	return &s
}

// Hand-computed series. Arithmetic is written out next to each expectation.
func TestSeriesHandComputed(t *testing.T) {
	tests := []struct {
		name           string
		vals           []time.Duration
		min, max, mean time.Duration
		stddevNS       float64
		pct            map[float64]time.Duration
	}{
		{
			// sum 2000 µs / 5 = mean 400 µs; deviations −300 −200 −100 0 600;
			// squares 90000+40000+10000+0+360000 = 500000 µs²; /5 = 100000; σ = 316.2278 µs.
			// Nearest rank ceil(p·5/100): p20 → 1, p20.1 → 2, p40 → 2, p50 → 3, p60 → 3, p80 → 4,
			// p90 → 5, p100 → 5.
			name: "five values", vals: []time.Duration{300 * us, 100 * us, 1000 * us, 200 * us, 400 * us},
			min: 100 * us, max: 1000 * us, mean: 400 * us, stddevNS: math.Sqrt(100000e6),
			pct: map[float64]time.Duration{0: 100 * us, 20: 100 * us, 20.1: 200 * us, 40: 200 * us,
				50: 300 * us, 60: 300 * us, 80: 400 * us, 90: 1000 * us, 100: 1000 * us},
		},
		{
			// Signed IPDV-like values: −20 30 −20 60 µs; sum 50, mean 12.5 µs;
			// deviations −32.5 17.5 −32.5 47.5; squares 1056.25+306.25+1056.25+2256.25 = 4675;
			// /4 = 1168.75; σ = 34.18699 µs. p25 → rank 1 = −20, p50 → rank 2 = −20,
			// p75 → rank 3 = 30, p100 = 60.
			name: "signed", vals: []time.Duration{30 * us, -20 * us, 60 * us, -20 * us},
			min: -20 * us, max: 60 * us, mean: 12500, stddevNS: math.Sqrt(1168.75e6),
			pct: map[float64]time.Duration{25: -20 * us, 50: -20 * us, 50.1: 30 * us, 75: 30 * us, 100: 60 * us},
		},
		{
			name: "single", vals: []time.Duration{7 * time.Millisecond},
			min: 7 * time.Millisecond, max: 7 * time.Millisecond, mean: 7 * time.Millisecond, stddevNS: 0,
			pct: map[float64]time.Duration{0: 7 * time.Millisecond, 50: 7 * time.Millisecond, 100: 7 * time.Millisecond},
		},
		{
			name: "empty", min: 0, max: 0, mean: 0, stddevNS: 0, pct: map[float64]time.Duration{50: 0},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := series(tc.vals...)
			if s.Count() != int64(len(tc.vals)) || s.Min() != tc.min || s.Max() != tc.max || s.Mean() != tc.mean {
				t.Errorf("count/min/max/mean = %d %v %v %v", s.Count(), s.Min(), s.Max(), s.Mean())
			}
			if d := math.Abs(s.StddevNanos() - tc.stddevNS); d > 1e-6 {
				t.Errorf("stddev = %.9f ns, want %.9f", s.StddevNanos(), tc.stddevNS)
			}
			for p, want := range tc.pct {
				if got := s.Percentile(p); got != want {
					t.Errorf("Percentile(%v) = %v, want %v", p, got, want)
				}
			}
		})
	}
}

func TestSummary(t *testing.T) {
	s := series(300*us, 100*us, 1000*us, 200*us, 400*us)
	got := s.Summary()
	want := Summary{Count: 5, MinUS: 100, MeanUS: 400, MaxUS: 1000, StddevUS: 316.228, P50US: 300, P90US: 1000,
		P95US: 1000, P99US: 1000, P999US: 1000, Exact: true}
	if got != want {
		t.Errorf("Summary = %+v\nwant      %+v", got, want)
	}
	const text = "count=5 min_us=100.000 mean_us=400.000 max_us=1000.000 stddev_us=316.228 p50_us=300.000 " +
		"p90_us=1000.000 p95_us=1000.000 p99_us=1000.000 p999_us=1000.000 exact=true"
	if got.String() != text {
		t.Errorf("String() = %q\nwant       %q", got.String(), text)
	}
	b, _ := json.Marshal(got)
	const js = `{"count":5,"min_us":100,"mean_us":400,"max_us":1000,"stddev_us":316.228,"p50_us":300,` +
		`"p90_us":1000,"p95_us":1000,"p99_us":1000,"p999_us":1000,"exact":true}`
	if string(b) != js {
		t.Errorf("JSON = %s\nwant   %s", b, js)
	}
	// Nanosecond values survive as three µs decimals.
	if m := series(1234567).Summary(); m.MinUS != 1234.567 || m.P50US != 1234.567 {
		t.Errorf("ns precision lost: %+v", m)
	}
}

// The PDV of RFC 5481 is the delay distribution shifted by its minimum.
func TestPDV(t *testing.T) {
	// Delays 10.1, 10.3, 10.2, 12.0, 10.1 ms: min 10.1; sorted 10.1 10.1 10.2 10.3 12.0;
	// p50 = rank 3 = 10.2 → PDV 0.1 ms; p99 = rank 5 = 12.0 → PDV 1.9 ms; p0 → 0.
	s := series(10100*us, 10300*us, 10200*us, 12000*us, 10100*us)
	for p, want := range map[float64]time.Duration{0: 0, 50: 100 * us, 99: 1900 * us} {
		if got := s.PDV(p); got != want {
			t.Errorf("PDV(%v) = %v, want %v", p, got, want)
		}
	}
	var empty Series
	if empty.PDV(50) != 0 {
		t.Error("empty PDV != 0")
	}
}

func sortedCopy(v []time.Duration) []time.Duration {
	c := slices.Clone(v)
	slices.Sort(c)
	return c
}

func nearestRank(sorted []time.Duration, p float64) time.Duration {
	r := int(math.Ceil(p * float64(len(sorted)) / 100))
	return sorted[min(max(r, 1), len(sorted))-1]
}

// Above ExactLimit the histogram answers: every percentile is within half a bucket
// (≤ 2^-11 relative, plus 1 ns of rounding) of the exact order statistic.
func TestHistogramPercentiles(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var vals []time.Duration
	var s Series
	for range 3 * ExactLimit {
		// Log-normal-ish RTTs around 20 ms plus some negative IPDV-like values and tiny ones.
		var v time.Duration
		switch r.IntN(10) {
		case 0:
			v = -time.Duration(r.Int64N(int64(5 * time.Millisecond)))
		case 1:
			v = time.Duration(r.Int64N(3000))
		default:
			v = time.Duration(float64(20*time.Millisecond) * math.Exp(r.NormFloat64()*0.3))
		}
		vals = append(vals, v)
		s.Add(v)
	}
	if s.Exact() {
		t.Fatal("series should have left exact mode")
	}
	sorted := sortedCopy(vals)
	for _, p := range []float64{0, 0.1, 1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99, 100} {
		want := nearestRank(sorted, p)
		got := s.Percentile(p)
		tol := math.Abs(float64(want))/2048 + 1
		if math.Abs(float64(got-want)) > tol {
			t.Errorf("p%v = %v, exact %v (tolerance %.0f ns)", p, got, want, tol)
		}
	}
	if s.Percentile(0) != sorted[0] || s.Percentile(100) != sorted[len(sorted)-1] {
		t.Error("p0/p100 are not the exact min/max")
	}
}

func TestBuckets(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	check := func(m uint64) {
		c, off := bucketOf(m)
		v := bucketValue(c, off)
		if c2, off2 := bucketOf(v); c2 != c || off2 != off {
			t.Fatalf("value %d → bucket (%d,%d) → midpoint %d → bucket (%d,%d)", m, c, off, v, c2, off2)
		}
		if m < 2*subCount && v != m {
			t.Fatalf("small magnitude %d not exact (%d)", m, v)
		}
		if d := math.Abs(float64(v) - float64(m)); d > float64(m)/2048+1 {
			t.Fatalf("magnitude %d → %d: error %.0f exceeds half a bucket", m, v, d)
		}
	}
	for m := range uint64(5000) {
		check(m)
	}
	for range 100000 {
		check(r.Uint64() >> r.IntN(64) >> 1)
	}
	check(1<<63 - 1)
	// Bucket boundaries: 2047 and 2048 ns are exact; 2049 shares 2048's 2 ns bucket.
	if c1, o1 := bucketOf(2048); bucketValue(c1, o1) != 2048 {
		t.Error("2048 not exact")
	}
	if a, b := bucketValue(bucketOf(2049)), bucketValue(bucketOf(2048)); a != b {
		t.Errorf("2049 → %d, 2048 → %d: want the same 2 ns bucket", a, b)
	}
}

func TestExtremes(t *testing.T) {
	s := series(math.MinInt64, math.MaxInt64, 0)
	for range ExactLimit {
		s.Add(1)
	}
	if s.Min() != math.MinInt64 || s.Max() != math.MaxInt64 || s.Percentile(0) != math.MinInt64 ||
		s.Percentile(100) != math.MaxInt64 || s.Percentile(50) != 1 {
		t.Errorf("extremes: min %v max %v p50 %v", s.Min(), s.Max(), s.Percentile(50))
	}
}

// Merging partial series gives the same statistics as adding everything to one.
func TestMerge(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 1, 10, 5000, 3 * ExactLimit} {
		var whole Series
		parts := make([]Series, 4)
		for range n {
			v := time.Duration(r.Int64N(int64(100*time.Millisecond))) - 10*time.Millisecond
			whole.Add(v)
			parts[r.IntN(len(parts))].Add(v)
		}
		var merged Series
		for i := range parts {
			merged.Merge(&parts[i])
		}
		merged.Merge(nil)
		if merged.Count() != whole.Count() || merged.Min() != whole.Min() || merged.Max() != whole.Max() ||
			merged.Exact() != whole.Exact() {
			t.Fatalf("n=%d: merged %d %v %v, whole %d %v %v", n, merged.Count(), merged.Min(), merged.Max(),
				whole.Count(), whole.Min(), whole.Max())
		}
		if d := math.Abs(merged.MeanNanos() - whole.MeanNanos()); d > 1e-6*math.Abs(whole.MeanNanos())+1e-6 {
			t.Errorf("n=%d: mean %f vs %f", n, merged.MeanNanos(), whole.MeanNanos())
		}
		if d := math.Abs(merged.StddevNanos() - whole.StddevNanos()); d > 1e-6*whole.StddevNanos()+1e-6 {
			t.Errorf("n=%d: stddev %f vs %f", n, merged.StddevNanos(), whole.StddevNanos())
		}
		for _, p := range []float64{1, 50, 90, 99, 99.9} {
			if merged.Percentile(p) != whole.Percentile(p) {
				t.Errorf("n=%d p%v: merged %v, whole %v", n, p, merged.Percentile(p), whole.Percentile(p))
			}
		}
	}
	// Chan et al. by hand: {1,2,3} (mean 2, M2 2) + {10,20} (mean 15, M2 50):
	// δ = 13, mean = 2 + 13·2/5 = 7.2, M2 = 2 + 50 + 169·3·2/5 = 254.8, σ = sqrt(254.8/5) = 7.13863 ns.
	a, b := series(1, 2, 3), series(10, 20)
	a.Merge(b)
	if a.MeanNanos() != 7.2 || math.Abs(a.StddevNanos()-math.Sqrt(254.8/5)) > 1e-12 {
		t.Errorf("Chan merge: mean %v stddev %v", a.MeanNanos(), a.StddevNanos())
	}
}

func TestReset(t *testing.T) {
	s := series(1, 2, 3)
	for range ExactLimit {
		s.Add(time.Second)
	}
	s.Reset()
	s.Add(5 * us)
	if s.Count() != 1 || s.Percentile(50) != 5*us || s.Min() != 5*us || !s.Exact() || s.StddevNanos() != 0 {
		t.Errorf("after Reset: %+v", s.Summary())
	}
}

func TestSeriesJSONRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{0, 1, 100, ExactLimit, ExactLimit + 1, 4 * ExactLimit} {
		var s Series
		for range n {
			s.Add(time.Duration(r.Int64N(int64(time.Second))) - 100*time.Millisecond)
		}
		b, err := json.Marshal(&s)
		if err != nil {
			t.Fatal(err)
		}
		var back Series
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if back.Summary() != s.Summary() {
			t.Errorf("n=%d: summary after round trip\n%+v\nwant\n%+v", n, back.Summary(), s.Summary())
		}
		b2, _ := json.Marshal(&back)
		if string(b) != string(b2) {
			t.Errorf("n=%d: re-encoding differs", n)
		}
		// The restored series still merges like the original.
		back.Merge(&s)
		s.Merge(&s)
		if back.Summary() != s.Summary() {
			t.Errorf("n=%d: merge after round trip differs", n)
		}
	}
	if b, _ := json.Marshal(series(3, 1, 2)); string(b) != `{"count":3,"min_ns":1,"max_ns":3,"mean_ns":2,"m2_ns2":2,"samples_ns":[1,2,3]}` {
		t.Errorf("exact JSON = %s", b)
	}
}

func TestSeriesJSONErrors(t *testing.T) {
	for _, in := range []string{
		`{"count":2,"min_ns":1,"max_ns":3,"mean_ns":2,"m2_ns2":2,"samples_ns":[3,1,2]}`,
		`{"count":3,"min_ns":0,"max_ns":3,"mean_ns":2,"m2_ns2":2,"samples_ns":[3,1,2]}`,
		`{"count":3,"min_ns":1,"max_ns":3,"mean_ns":2,"m2_ns2":2,"buckets":[[1,1],[3,1]]}`,
		`{"count":2,"min_ns":1,"max_ns":3,"mean_ns":2,"m2_ns2":2,"buckets":[[1,1],[3,0],[3,1]]}`,
		`{"count":2,"min_ns":1,"max_ns":3,"mean_ns":2,"m2_ns2":2,"samples_ns":[1,3],"buckets":[[1,1],[3,1]]}`,
		`{"count":2,"min_ns":1,"max_ns":3,"mean_ns":2,"m2_ns2":2,"buckets":[[1,1],[3,1]]}`,
		`{"count":0,"buckets":[]}`,
		`{"count":-1}`,
		`{"count":1,"m2_ns2":-1,"samples_ns":[1],"min_ns":1,"max_ns":1}`,
	} {
		var s Series
		if err := json.Unmarshal([]byte(in), &s); !errors.Is(err, ErrBadSeriesJSON) {
			t.Errorf("%s: err %v, want ErrBadSeriesJSON", in, err)
		}
	}
	var s Series
	if err := json.Unmarshal([]byte(`{"count":"x"}`), &s); err == nil || !strings.Contains(err.Error(), "stats") {
		t.Errorf("type error: %v", err)
	}
}

func TestSeriesAddZeroAllocs(t *testing.T) {
	var s Series
	for i := range 2 * ExactLimit {
		s.Add(time.Duration(i) * us)
	}
	if n := testing.AllocsPerRun(1000, func() { s.Add(1234 * us) }); n != 0 {
		t.Errorf("Add allocates %v per call", n)
	}
	var small Series
	small.Add(time.Millisecond)
	if n := testing.AllocsPerRun(50, func() { small.Add(time.Millisecond + 7) }); n != 0 {
		t.Errorf("exact-mode Add allocates %v per call within capacity", n)
	}
}
