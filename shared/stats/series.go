// Package stats holds the streaming, mergeable, JSON-serialisable measurement statistics every probekit tool reports: delay series with percentiles, RFC 3550 jitter, RFC 5481 IPDV/PDV, and RFC 4737 loss/duplicate/reordering counts.
package stats

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// ExactLimit is the number of samples a Series keeps verbatim. Up to this count percentiles
// are exact (nearest-rank over the recorded values); beyond it the samples are dropped and
// percentiles come from the log-linear histogram (bucket width ≤ 0.098 % of the value,
// result within 0.049 % of a recorded value, always clamped to [Min, Max]).
const ExactLimit = 10_000

// Series accumulates durations (RTTs, one-way delays, IPDV — negative values are fine) in
// O(1) per value: count, min, max, mean and standard deviation by Welford's method, and a
// histogram for percentiles. Two Series merge exactly (Chan et al. for mean/variance,
// bucket-wise for the histogram), and a Series round-trips through JSON without loss.
// The zero value is an empty Series ready to use. A Series must not be copied after use
// (it holds pointers to its histogram chunks); it is not safe for concurrent use.
type Series struct {
	n        int64
	mean, m2 float64 // ns, ns²
	min, max time.Duration
	h        hist
	samples  []time.Duration // every value while n ≤ ExactLimit
	overflow bool            // samples were dropped: percentiles come from h
	sorted   bool
}

// Add records one value. It allocates only when the value opens a new histogram octave or
// the exact-sample buffer grows (amortised; none once n > ExactLimit).
func (s *Series) Add(v time.Duration) {
	s.n++
	x := float64(v)
	d := x - s.mean
	s.mean += d / float64(s.n)
	s.m2 += d * (x - s.mean)
	if s.n == 1 || v < s.min {
		s.min = v
	}
	if s.n == 1 || v > s.max {
		s.max = v
	}
	s.h.record(int64(v), 1)
	if !s.overflow {
		if s.n > ExactLimit {
			s.samples, s.overflow = nil, true
		} else {
			if s.samples == nil {
				s.samples = make([]time.Duration, 0, 64)
			}
			s.samples = append(s.samples, v)
			s.sorted = false
		}
	}
}

// Merge adds every value recorded in o to s, as if they had been added to s directly
// (mean and variance combined by Chan et al.'s parallel formula).
func (s *Series) Merge(o *Series) {
	if o == nil || o.n == 0 {
		return
	}
	if s.n == 0 {
		s.min, s.max = o.min, o.max
	} else {
		s.min, s.max = min(s.min, o.min), max(s.max, o.max)
	}
	na, nb := float64(s.n), float64(o.n)
	n := na + nb
	d := o.mean - s.mean
	s.mean += d * nb / n
	s.m2 += o.m2 + d*d*na*nb/n
	total := s.n + o.n
	s.h.merge(&o.h)
	if !s.overflow && !o.overflow && total <= ExactLimit {
		s.samples = append(s.samples, o.samples...)
		s.sorted = false
	} else {
		s.samples, s.overflow = nil, true
	}
	s.n = total
}

// Reset empties s, keeping its allocated histogram chunks.
func (s *Series) Reset() {
	for c := range chunkCount {
		if p := s.h.pos[c]; p != nil {
			*p = chunk{}
		}
		if p := s.h.neg[c]; p != nil {
			*p = chunk{}
		}
	}
	s.h.posTot, s.h.negTot = [chunkCount]uint64{}, [chunkCount]uint64{}
	s.n, s.mean, s.m2, s.min, s.max = 0, 0, 0, 0, 0
	s.samples, s.overflow, s.sorted = s.samples[:0], false, false
}

// Count returns the number of values recorded.
func (s *Series) Count() int64 { return s.n }

// Min returns the smallest value (0 for an empty series).
func (s *Series) Min() time.Duration { return s.min }

// Max returns the largest value (0 for an empty series).
func (s *Series) Max() time.Duration { return s.max }

// Mean returns the arithmetic mean rounded to the nanosecond (0 for an empty series).
func (s *Series) Mean() time.Duration { return time.Duration(math.Round(s.mean)) }

// MeanNanos returns the unrounded mean in nanoseconds.
func (s *Series) MeanNanos() float64 { return s.mean }

// Stddev returns the population standard deviation σ = sqrt(Σ(x−mean)²/n), the same
// estimator as ping's "mdev", rounded to the nanosecond (0 for fewer than two values).
func (s *Series) Stddev() time.Duration { return time.Duration(math.Round(s.StddevNanos())) }

// StddevNanos returns the unrounded population standard deviation in nanoseconds.
func (s *Series) StddevNanos() float64 {
	if s.n < 2 || s.m2 <= 0 {
		return 0
	}
	return math.Sqrt(s.m2 / float64(s.n))
}

// Exact reports whether percentiles are exact, i.e. at most ExactLimit values were recorded.
func (s *Series) Exact() bool { return !s.overflow }

// Percentile returns the nearest-rank p-th percentile (0 ≤ p ≤ 100): the smallest recorded
// value such that at least p % of the values are ≤ it. Percentile(0) is Min and
// Percentile(100) is Max. Exact while Exact() holds, otherwise within 0.049 % (see
// ExactLimit). An empty series gives 0; p is clamped to [0, 100].
func (s *Series) Percentile(p float64) time.Duration {
	if s.n == 0 {
		return 0
	}
	rank := s.rank(p)
	if !s.overflow {
		s.sort()
		return s.samples[rank-1]
	}
	switch rank {
	case 1:
		return s.min
	case uint64(s.n):
		return s.max
	}
	v := time.Duration(s.h.valueAtRank(rank))
	return min(max(v, s.min), s.max)
}

func (s *Series) sort() {
	if !s.sorted {
		slices.Sort(s.samples)
		s.sorted = true
	}
}

// rank returns ceil(p/100 · n) clamped to [1, n]. p·n is computed before the division and a
// tiny epsilon absorbs float error, so for example p = 99.9, n = 1000 gives 999, not 1000.
func (s *Series) rank(p float64) uint64 {
	if math.IsNaN(p) || p <= 0 {
		return 1
	}
	if p >= 100 {
		return uint64(s.n)
	}
	r := uint64(math.Ceil(p*float64(s.n)/100 - 1e-9))
	return min(max(r, 1), uint64(s.n))
}

// PDV returns the RFC 5481 packet delay variation at percentile p for a series of one-way
// delays: PDV(i) = D(i) − D(min), so its p-th percentile is Percentile(p) − Min().
// PDV(50) is the median delay above the minimum; PDV(99.9) − PDV(0) is the de-jitter
// buffer RFC 5481 §7 sizes.
func (s *Series) PDV(p float64) time.Duration {
	if s.n == 0 {
		return 0
	}
	return s.Percentile(p) - s.min
}

// Summary is a Series reduced to the figures tools print. Values are microseconds as floats
// (exact to the nanosecond: three decimals), so JSON consumers need no unit conversion; the
// text form (String) uses the same field names.
type Summary struct {
	Count    int64   `json:"count"`
	MinUS    float64 `json:"min_us"`
	MeanUS   float64 `json:"mean_us"`
	MaxUS    float64 `json:"max_us"`
	StddevUS float64 `json:"stddev_us"`
	P50US    float64 `json:"p50_us"`
	P90US    float64 `json:"p90_us"`
	P95US    float64 `json:"p95_us"`
	P99US    float64 `json:"p99_us"`
	P999US   float64 `json:"p999_us"`
	// Exact is true when the percentiles are exact order statistics (Count ≤ ExactLimit).
	Exact bool `json:"exact"`
}

func toUS(d time.Duration) float64 { return float64(d) / 1e3 }

// usRound rounds a nanosecond float to the nanosecond and returns microseconds.
func usRound(ns float64) float64 { return math.Round(ns) / 1e3 }

// Summary returns count, min, mean, max, stddev and the 50/90/95/99/99.9th percentiles.
func (s *Series) Summary() Summary {
	return Summary{
		Count:    s.n,
		MinUS:    toUS(s.min),
		MeanUS:   usRound(s.mean),
		MaxUS:    toUS(s.max),
		StddevUS: usRound(s.StddevNanos()),
		P50US:    toUS(s.Percentile(50)),
		P90US:    toUS(s.Percentile(90)),
		P95US:    toUS(s.Percentile(95)),
		P99US:    toUS(s.Percentile(99)),
		P999US:   toUS(s.Percentile(99.9)),
		Exact:    !s.overflow,
	}
}

// String formats the summary on one line with the JSON field names, values in µs with three
// decimals, e.g. "count=3 min_us=1.000 mean_us=2.000 … exact=true".
func (m Summary) String() string {
	return fmt.Sprintf("count=%d min_us=%.3f mean_us=%.3f max_us=%.3f stddev_us=%.3f p50_us=%.3f p90_us=%.3f "+
		"p95_us=%.3f p99_us=%.3f p999_us=%.3f exact=%t", m.Count, m.MinUS, m.MeanUS, m.MaxUS, m.StddevUS,
		m.P50US, m.P90US, m.P95US, m.P99US, m.P999US, m.Exact)
}

// seriesJSON is the serialised state of a Series: the moments, and either every sample
// (while exact) or the non-empty histogram buckets as [value_ns, count] pairs.
type seriesJSON struct {
	Count   int64           `json:"count"`
	MinNS   int64           `json:"min_ns"`
	MaxNS   int64           `json:"max_ns"`
	MeanNS  float64         `json:"mean_ns"`
	M2NS2   float64         `json:"m2_ns2"`
	Samples []time.Duration `json:"samples_ns,omitempty"`
	Buckets []bucketJSON    `json:"buckets,omitempty"`
}

// MarshalJSON encodes the full state of s, so that UnmarshalJSON restores a Series with the
// same count, moments and percentiles that can still be merged. It has a value receiver so a
// Series inside a struct marshalled by value is encoded too.
func (s Series) MarshalJSON() ([]byte, error) {
	j := seriesJSON{Count: s.n, MinNS: int64(s.min), MaxNS: int64(s.max), MeanNS: s.mean, M2NS2: s.m2}
	if s.overflow {
		j.Buckets = s.h.buckets()
	} else {
		s.sort() // canonical order: equal series encode identically
		j.Samples = s.samples
	}
	return json.Marshal(j)
}

// ErrBadSeriesJSON reports a serialised Series whose parts disagree.
var ErrBadSeriesJSON = errors.New("stats: inconsistent series JSON")

// UnmarshalJSON restores a Series written by MarshalJSON, checking that its counts agree.
func (s *Series) UnmarshalJSON(b []byte) error {
	var j seriesJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("stats: decode series: %w", err)
	}
	var r Series
	switch {
	case j.Count < 0 || j.M2NS2 < 0 || math.IsNaN(j.MeanNS) || math.IsInf(j.MeanNS, 0) || math.IsInf(j.M2NS2, 0):
		return fmt.Errorf("%w: count %d, m2 %g, mean %g", ErrBadSeriesJSON, j.Count, j.M2NS2, j.MeanNS)
	case j.Buckets == nil:
		if int64(len(j.Samples)) != j.Count || j.Count > ExactLimit {
			return fmt.Errorf("%w: %d samples for count %d", ErrBadSeriesJSON, len(j.Samples), j.Count)
		}
		for _, v := range j.Samples {
			r.Add(v)
		}
		if r.n > 0 && (r.min != time.Duration(j.MinNS) || r.max != time.Duration(j.MaxNS)) {
			return fmt.Errorf("%w: samples span [%d, %d], header says [%d, %d]", ErrBadSeriesJSON,
				r.min, r.max, j.MinNS, j.MaxNS)
		}
	default:
		if j.Samples != nil {
			return fmt.Errorf("%w: both samples and buckets", ErrBadSeriesJSON)
		}
		if j.Count <= ExactLimit {
			return fmt.Errorf("%w: buckets for count %d ≤ ExactLimit", ErrBadSeriesJSON, j.Count)
		}
		var total uint64
		for _, bk := range j.Buckets {
			if bk[1] <= 0 {
				return fmt.Errorf("%w: bucket count %d", ErrBadSeriesJSON, bk[1])
			}
			if total += uint64(bk[1]); total > uint64(j.Count) {
				break
			}
			r.h.record(bk[0], uint64(bk[1]))
		}
		if total != uint64(j.Count) || j.MinNS > j.MaxNS {
			return fmt.Errorf("%w: buckets hold %d values, count %d", ErrBadSeriesJSON, total, j.Count)
		}
		r.overflow = true
	}
	// The moments are restored verbatim (recomputing them from the samples could differ in
	// the last float bit).
	r.n, r.min, r.max, r.mean, r.m2 = j.Count, time.Duration(j.MinNS), time.Duration(j.MaxNS), j.MeanNS, j.M2NS2
	if r.n == 0 {
		r.min, r.max, r.mean, r.m2 = 0, 0, 0, 0
	}
	*s = r
	return nil
}
