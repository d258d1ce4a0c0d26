package stats

import (
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// Jitter is the RFC 3550 §6.4.1 interarrival jitter estimator: for each packet, in arrival
// order, D = transit(i) − transit(i−1) and J += (|D| − J)/16, where transit is the arrival
// time minus the send timestamp (any constant clock offset cancels). The zero value is ready.
type Jitter struct {
	j           float64 // ns
	last        time.Duration
	n           int64
	initialised bool
}

// Add feeds the transit time (receive time − send time) of the next packet to arrive.
func (j *Jitter) Add(transit time.Duration) {
	if j.initialised {
		d := math.Abs(float64(transit - j.last))
		j.j += (d - j.j) / 16
	}
	j.last, j.initialised = transit, true
	j.n++
}

// Value returns the current jitter estimate rounded to the nanosecond.
func (j *Jitter) Value() time.Duration { return time.Duration(math.Round(j.j)) }

// Nanos returns the unrounded jitter estimate in nanoseconds.
func (j *Jitter) Nanos() float64 { return j.j }

// Count returns the number of transit times fed.
func (j *Jitter) Count() int64 { return j.n }

type jitterJSON struct {
	JitterUS    float64 `json:"jitter_us"`
	JitterNS    float64 `json:"jitter_ns"`
	Count       int64   `json:"count"`
	LastTransit int64   `json:"last_transit_ns"`
}

// MarshalJSON writes the estimate (µs for reading, ns for state) and the estimator state.
func (j Jitter) MarshalJSON() ([]byte, error) {
	return json.Marshal(jitterJSON{JitterUS: usRound(j.j), JitterNS: j.j, Count: j.n, LastTransit: int64(j.last)})
}

// UnmarshalJSON restores a Jitter written by MarshalJSON, so estimation can continue.
func (j *Jitter) UnmarshalJSON(b []byte) error {
	var v jitterJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("stats: decode jitter: %w", err)
	}
	if v.Count < 0 || v.JitterNS < 0 || math.IsNaN(v.JitterNS) || math.IsInf(v.JitterNS, 0) {
		return fmt.Errorf("stats: decode jitter: invalid state %+v", v)
	}
	*j = Jitter{j: v.JitterNS, last: time.Duration(v.LastTransit), n: v.Count, initialised: v.Count > 0}
	return nil
}

// ipdvWindow is how many recent sequence numbers IPDV remembers to pair packets that arrive
// out of order; a packet reordered further than this loses its pairs.
const ipdvWindow = 256

type ipdvSlot struct {
	seq   uint64
	delay time.Duration
	ok    bool
}

// IPDV collects RFC 5481 §4.1 inter-packet delay variation: IPDV(i) = D(i) − D(i−1) for every
// pair of packets with consecutive sequence numbers that both arrived, whatever order they
// arrived in (the RFC's selection function is by sending order). Values are signed. PDV, the
// other RFC 5481 form, is Series.PDV over the delays. The zero value is ready.
type IPDV struct {
	s    Series
	ring [ipdvWindow]ipdvSlot
}

// Add records the one-way (or round-trip) delay of the packet with sequence number seq and
// adds an IPDV value for each neighbour (seq−1, seq+1) already seen. Duplicates are ignored.
func (p *IPDV) Add(seq uint64, delay time.Duration) {
	slot := &p.ring[seq%ipdvWindow]
	if slot.ok && slot.seq == seq {
		return // duplicate
	}
	*slot = ipdvSlot{seq, delay, true}
	if prev := &p.ring[(seq-1)%ipdvWindow]; seq > 0 && prev.ok && prev.seq == seq-1 {
		p.s.Add(delay - prev.delay)
	}
	if next := &p.ring[(seq+1)%ipdvWindow]; next.ok && next.seq == seq+1 {
		p.s.Add(next.delay - delay)
	}
}

// Series returns the IPDV values as a Series (count, min/max, percentiles of the signed values).
func (p *IPDV) Series() *Series { return &p.s }

// Summary summarises the IPDV values.
func (p *IPDV) Summary() Summary { return p.s.Summary() }

// Merge adds the IPDV values of o (pairing state is per stream and is not merged).
func (p *IPDV) Merge(o *IPDV) { p.s.Merge(&o.s) }

// MarshalJSON writes the IPDV distribution (as a Series); the pairing window is not kept.
func (p IPDV) MarshalJSON() ([]byte, error) { return p.s.MarshalJSON() }

// UnmarshalJSON restores the distribution written by MarshalJSON.
func (p *IPDV) UnmarshalJSON(b []byte) error {
	var s Series
	if err := s.UnmarshalJSON(b); err != nil {
		return err
	}
	*p = IPDV{s: s}
	return nil
}
