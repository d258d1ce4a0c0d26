package stats

import "time"

// Delay bundles what tools report for one direction (or the round trip) of a packet stream:
// the delay Series, RFC 5481 IPDV and PDV, and RFC 3550 jitter, fed by one Add per received
// packet in arrival order. The zero value is ready.
type Delay struct {
	Series Series `json:"delay"`
	IPDV   IPDV   `json:"ipdv"`
	Jitter Jitter `json:"jitter"`
}

// Add records the delay of packet seq. For one-way delays with unsynchronised clocks the
// constant offset shifts Series and PDV's minimum alike, and cancels in IPDV, PDV and jitter.
func (d *Delay) Add(seq uint64, delay time.Duration) {
	d.Series.Add(delay)
	d.IPDV.Add(seq, delay)
	d.Jitter.Add(delay)
}

// PDVSummary gives RFC 5481 PDV (delay above the minimum delay) at the usual percentiles, µs.
type PDVSummary struct {
	P50US  float64 `json:"p50_us"`
	P90US  float64 `json:"p90_us"`
	P95US  float64 `json:"p95_us"`
	P99US  float64 `json:"p99_us"`
	P999US float64 `json:"p999_us"`
}

// DelaySummary is a Delay reduced to the figures tools print.
type DelaySummary struct {
	Delay    Summary    `json:"delay"`
	IPDV     Summary    `json:"ipdv"`
	PDV      PDVSummary `json:"pdv"`
	JitterUS float64    `json:"jitter_us"`
}

// Summary returns the delay, IPDV and PDV summaries and the jitter.
func (d *Delay) Summary() DelaySummary {
	s := &d.Series
	return DelaySummary{
		Delay: s.Summary(),
		IPDV:  d.IPDV.Summary(),
		PDV: PDVSummary{P50US: toUS(s.PDV(50)), P90US: toUS(s.PDV(90)), P95US: toUS(s.PDV(95)),
			P99US: toUS(s.PDV(99)), P999US: toUS(s.PDV(99.9))},
		JitterUS: usRound(d.Jitter.Nanos()),
	}
}
