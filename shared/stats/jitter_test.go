package stats

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// RFC 3550 §6.4.1 by hand. Transit times 10, 12, 11, 15 ms:
//
//	packet 1: first, J = 0
//	packet 2: D = |12−10| = 2 ms,  J = 0 + (2 − 0)/16                  = 0.125 ms
//	packet 3: D = |11−12| = 1 ms,  J = 0.125 + (1 − 0.125)/16          = 0.1796875 ms
//	packet 4: D = |15−11| = 4 ms,  J = 0.1796875 + (4 − 0.1796875)/16  = 0.41845703125 ms
func TestJitterHandComputed(t *testing.T) {
	var j Jitter
	want := []float64{0, 125000, 179687.5, 418457.03125}
	for i, tr := range []time.Duration{10, 12, 11, 15} {
		j.Add(tr * time.Millisecond)
		if j.Nanos() != want[i] {
			t.Errorf("after packet %d: J = %v ns, want %v", i+1, j.Nanos(), want[i])
		}
	}
	if j.Value() != 418457*time.Nanosecond || j.Count() != 4 {
		t.Errorf("Value = %v, Count = %d", j.Value(), j.Count())
	}
	// A constant clock offset between sender and receiver cancels.
	var k Jitter
	for _, tr := range []time.Duration{10, 12, 11, 15} {
		k.Add(tr*time.Millisecond - 3*time.Hour)
	}
	if k.Nanos() != j.Nanos() {
		t.Errorf("offset changed jitter: %v vs %v", k.Nanos(), j.Nanos())
	}
}

// rfc3550Integer is the integer algorithm of RFC 3550 Appendix A.8 (jitter kept ×16 in
// timestamp units; here 1 unit = 1 µs): jitter += |d| − ((jitter + 8) >> 4).
func rfc3550Integer(transits []int64) float64 {
	var jit, prev int64
	for i, tr := range transits {
		if i > 0 {
			d := tr - prev
			if d < 0 {
				d = -d
			}
			jit += d - ((jit + 8) >> 4)
		}
		prev = tr
	}
	return float64(jit) / 16
}

// The float estimator agrees with the RFC's integer reference within its rounding (< 1 unit).
func TestJitterMatchesRFC3550Integer(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	var tr []int64
	var j Jitter
	for range 10000 {
		v := 20000 + r.Int64N(3000) // µs
		tr = append(tr, v)
		j.Add(time.Duration(v) * time.Microsecond)
	}
	if ref := rfc3550Integer(tr); math.Abs(j.Nanos()/1000-ref) > 1 {
		t.Errorf("jitter %.3f µs, RFC 3550 A.8 integer reference %.3f µs", j.Nanos()/1000, ref)
	}
}

func TestJitterJSON(t *testing.T) {
	var j Jitter
	for _, tr := range []time.Duration{10, 12, 11} {
		j.Add(tr * time.Millisecond)
	}
	b, err := json.Marshal(&j)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"jitter_us":179.688,"jitter_ns":179687.5,"count":3,"last_transit_ns":11000000}` {
		t.Errorf("JSON = %s", b)
	}
	var back Jitter
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	back.Add(15 * time.Millisecond)
	if back.Nanos() != 418457.03125 {
		t.Errorf("continued estimate = %v", back.Nanos())
	}
	if err := json.Unmarshal([]byte(`{"jitter_ns":-1,"count":1}`), &back); err == nil {
		t.Error("negative jitter accepted")
	}
}

// RFC 5481 §4.1 IPDV by hand. Packets 0..4 arrive in the order 0, 1, 2, 4, 3 (3 reordered),
// with a duplicate of 1, delays in µs:
//
//	seq:   0    1    2    3    4
//	delay: 100  130  110  170  150
//	IPDV(1) = 130−100 = 30, IPDV(2) = 110−130 = −20, IPDV(3) = 170−110 = 60, IPDV(4) = 150−170 = −20
//
// Sorted: −20 −20 30 60; mean 12.5; min −20; max 60.
func TestIPDVHandComputed(t *testing.T) {
	var p IPDV
	arrivals := []struct {
		seq   uint64
		delay time.Duration
	}{{0, 100}, {1, 130}, {1, 999}, {2, 110}, {4, 150}, {3, 170}}
	for _, a := range arrivals {
		p.Add(a.seq, a.delay*time.Microsecond)
	}
	s := p.Series()
	if s.Count() != 4 || s.Min() != -20*time.Microsecond || s.Max() != 60*time.Microsecond ||
		s.Mean() != 12500*time.Nanosecond || s.Percentile(50) != -20*time.Microsecond ||
		s.Percentile(75) != 30*time.Microsecond {
		t.Errorf("IPDV %+v", p.Summary())
	}
	// A lost packet breaks the pairs around it: 0, 1, 3 → only IPDV(1).
	var q IPDV
	q.Add(0, 10)
	q.Add(1, 15)
	q.Add(3, 40)
	if q.Series().Count() != 1 || q.Series().Max() != 5 {
		t.Errorf("with loss: %+v", q.Summary())
	}
	// JSON carries the distribution.
	b, _ := json.Marshal(&p)
	var back IPDV
	if err := json.Unmarshal(b, &back); err != nil || back.Summary() != p.Summary() {
		t.Errorf("JSON round trip: %v %+v", err, back.Summary())
	}
	back.Merge(&q)
	if back.Series().Count() != 5 {
		t.Errorf("merged count %d", back.Series().Count())
	}
}

// IPDV pairs equal D(i)−D(i−1) over every consecutive pair present, for any arrival order
// within the window, checked against a direct computation.
func TestIPDVMatchesDirect(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	const n = 5000
	delay := make([]time.Duration, n)
	got := make([]bool, n)
	for i := range delay {
		delay[i] = time.Duration(r.Int64N(1e6))
		got[i] = r.IntN(10) != 0 // 10 % loss
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	for i := range order { // local shuffles: reordering by up to 8 positions
		j := min(n-1, i+r.IntN(8))
		order[i], order[j] = order[j], order[i]
	}
	var p IPDV
	for _, i := range order {
		if got[i] {
			p.Add(uint64(i), delay[i])
		}
	}
	var want Series
	for i := 1; i < n; i++ {
		if got[i] && got[i-1] {
			want.Add(delay[i] - delay[i-1])
		}
	}
	if p.Summary() != want.Summary() {
		t.Errorf("IPDV %+v\nwant %+v", p.Summary(), want.Summary())
	}
}

// Delay feeds all three estimators; by hand with the IPDV example above (arrival order
// 0, 1, 2, 4, 3; delays 100, 130, 110, 150, 170 µs):
//
//	delay: min 100, sorted 100 110 130 150 170, p50 = rank 3 = 130, p90 = rank 5 = 170
//	PDV:   p50 = 130 − 100 = 30, p90 = 70
//	IPDV:  30 −20 60 −20 (see TestIPDVHandComputed)
//	jitter in arrival order, transit 100 130 110 150 170:
//	  |D| = 30, 20, 40, 20;  J = 30/16 = 1.875;  J += (20 − 1.875)/16 → 3.0078125;
//	  J += (40 − 3.0078125)/16 → 5.31982421875;  J += (20 − 5.31982421875)/16 → 6.2373352050781
func TestDelayHandComputed(t *testing.T) {
	var d Delay
	for _, a := range []struct {
		seq uint64
		us  time.Duration
	}{{0, 100}, {1, 130}, {2, 110}, {4, 150}, {3, 170}} {
		d.Add(a.seq, a.us*time.Microsecond)
	}
	m := d.Summary()
	if m.Delay.Count != 5 || m.Delay.MinUS != 100 || m.Delay.P50US != 130 || m.Delay.P90US != 170 {
		t.Errorf("delay %+v", m.Delay)
	}
	if m.PDV != (PDVSummary{P50US: 30, P90US: 70, P95US: 70, P99US: 70, P999US: 70}) {
		t.Errorf("PDV %+v", m.PDV)
	}
	if m.IPDV.Count != 4 || m.IPDV.MinUS != -20 || m.IPDV.MaxUS != 60 || m.IPDV.MeanUS != 12.5 {
		t.Errorf("IPDV %+v", m.IPDV)
	}
	if math.Abs(d.Jitter.Nanos()-6237.3352050781) > 1e-6 || m.JitterUS != 6.237 {
		t.Errorf("jitter %v ns, summary %v µs", d.Jitter.Nanos(), m.JitterUS)
	}
	b, err := json.Marshal(&d)
	if err != nil {
		t.Fatal(err)
	}
	if byValue, _ := json.Marshal(d); string(byValue) != string(b) {
		t.Errorf("marshalling by value differs:\n%s\n%s", byValue, b)
	}
	var back Delay
	if err := json.Unmarshal(b, &back); err != nil || back.Summary() != m {
		t.Errorf("JSON round trip: %v\n%+v\n%+v", err, back.Summary(), m)
	}
}
