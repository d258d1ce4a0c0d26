package stats

import (
	"encoding/json"
	"fmt"
)

const (
	// SeqWindow is how far behind the highest sequence number an arrival may be and still be
	// checked for duplication. Older arrivals are counted as Stale and not as received.
	SeqWindow = 1 << 16
	// ExtentWindow is how many recent arrivals are kept to measure RFC 4737 reordering
	// extent; larger extents are reported as ExtentWindow and counted in ExtentCapped.
	ExtentWindow = 1024
)

// Sequence tracks a stream by sequence number: arrivals, duplicates, loss, and RFC 4737
// reordering (§3.3 next-expected reordered-packet test and ratio, §4.2 reordering extent).
// Sequence numbers start at First (0 for the zero value; see Init) and increase by one per
// packet sent; callers unwrap 32-bit wire sequence numbers first. Not safe for concurrent use.
type Sequence struct {
	first     uint64
	nextExp   uint64
	maxSeq    uint64
	arrivals  uint64 // every arrival, duplicates and stale ones included
	unique    uint64
	dups      uint64
	stale     uint64
	reordered uint64
	sent      uint64
	extentSum uint64
	extentMax uint64
	capped    uint64
	seen      [SeqWindow / 64]uint64 // bit (seq mod SeqWindow) set when seq in (maxSeq−SeqWindow, maxSeq] arrived
	runMax    [ExtentWindow]uint64   // highest sequence number among unique arrivals 0..j, at j mod ExtentWindow
}

// Init resets q for a stream whose first sequence number is first.
func (q *Sequence) Init(first uint64) {
	*q = Sequence{first: first, nextExp: first}
}

// SetSent tells q how many packets the sender sent, so that losses at the end of the stream
// (after the highest sequence number received) count too.
func (q *Sequence) SetSent(n uint64) { q.sent = n }

// Add records the arrival of sequence number seq and reports whether it was a new packet
// (not a duplicate, not stale, not before First).
func (q *Sequence) Add(seq uint64) bool {
	q.arrivals++
	if seq < q.first || q.unique > 0 && seq+SeqWindow <= q.maxSeq {
		q.stale++
		return false
	}
	if q.unique > 0 && seq <= q.maxSeq {
		w, bit := (seq%SeqWindow)/64, uint64(1)<<(seq%64)
		if q.seen[w]&bit != 0 {
			q.dups++
			return false
		}
		q.seen[w] |= bit
	} else {
		q.advance(seq)
	}
	idx := q.unique // arrival index of this packet among unique arrivals
	q.unique++
	if seq >= q.nextExp {
		q.nextExp = seq + 1
	} else {
		q.reordered++
		e := q.extent(seq, idx)
		q.extentSum += e
		q.extentMax = max(q.extentMax, e)
	}
	q.runMax[idx%ExtentWindow] = q.maxSeq // maxSeq already includes seq
	return true
}

// advance moves the duplicate window up to a new highest sequence number seq, clearing the
// bits of the sequence numbers it passes (they last held numbers SeqWindow lower).
func (q *Sequence) advance(seq uint64) {
	from := q.maxSeq + 1
	if q.unique == 0 || seq-from >= SeqWindow {
		q.seen = [SeqWindow / 64]uint64{}
	} else {
		for s := from; s < seq; s++ {
			q.seen[(s%SeqWindow)/64] &^= 1 << (s % 64)
		}
	}
	q.seen[(seq%SeqWindow)/64] |= 1 << (seq % 64)
	q.maxSeq = seq
}

// extent is RFC 4737 §4.2.1: for a reordered packet s arriving at index i, e = i − j where j
// is the earliest arrival index whose sequence number is greater than s. That is the first
// index whose running maximum exceeds s; running maxima never decrease, so a binary search
// over the window finds it.
func (q *Sequence) extent(seq, i uint64) uint64 {
	lo := uint64(0)
	if i > ExtentWindow {
		lo = i - ExtentWindow
	}
	if q.runMax[lo%ExtentWindow] > seq && lo > 0 {
		q.capped++ // the earliest larger arrival may be older than the window
		return ExtentWindow
	}
	a, b := lo, i // invariant: runMax[a−1] ≤ seq (or a = lo), runMax[i−1] > seq
	for a < b {
		m := a + (b-a)/2
		if q.runMax[m%ExtentWindow] > seq {
			b = m
		} else {
			a = m + 1
		}
	}
	return i - a
}

// Received returns the number of distinct packets received (duplicates and stale arrivals
// excluded).
func (q *Sequence) Received() uint64 { return q.unique }

// Arrivals returns every arrival counted, including duplicates and stale packets.
func (q *Sequence) Arrivals() uint64 { return q.arrivals }

// Duplicates returns the number of arrivals of a sequence number already received.
func (q *Sequence) Duplicates() uint64 { return q.dups }

// Stale returns arrivals before First or more than SeqWindow behind the highest sequence
// number; they are not counted as received.
func (q *Sequence) Stale() uint64 { return q.stale }

// Expected returns the number of packets that should have arrived: the count from SetSent,
// or First..highest received when that is larger.
func (q *Sequence) Expected() uint64 {
	var e uint64
	if q.unique > 0 {
		e = q.maxSeq - q.first + 1
	}
	return max(e, q.sent)
}

// Lost returns Expected − Received.
func (q *Sequence) Lost() uint64 {
	e := q.Expected()
	if q.unique >= e {
		return 0
	}
	return e - q.unique
}

// Loss returns the lost fraction Lost/Expected in [0, 1] (0 when nothing was expected).
func (q *Sequence) Loss() float64 {
	e := q.Expected()
	if e == 0 {
		return 0
	}
	return float64(q.Lost()) / float64(e)
}

// Reordered returns the RFC 4737 §3.3 count of reordered packets: arrivals with a sequence
// number below the next expected one.
func (q *Sequence) Reordered() uint64 { return q.reordered }

// ReorderedRatio returns the RFC 4737 §4.1 reordered ratio: reordered packets / packets
// received (duplicates excluded).
func (q *Sequence) ReorderedRatio() float64 {
	if q.unique == 0 {
		return 0
	}
	return float64(q.reordered) / float64(q.unique)
}

// MaxExtent returns the largest RFC 4737 §4.2 reordering extent seen.
func (q *Sequence) MaxExtent() uint64 { return q.extentMax }

// MeanExtent returns the mean reordering extent over reordered packets.
func (q *Sequence) MeanExtent() float64 {
	if q.reordered == 0 {
		return 0
	}
	return float64(q.extentSum) / float64(q.reordered)
}

// ExtentCapped returns how many extents were capped at ExtentWindow.
func (q *Sequence) ExtentCapped() uint64 { return q.capped }

// SequenceSummary is a Sequence reduced to the figures tools print (text and JSON).
type SequenceSummary struct {
	Expected       uint64  `json:"expected"`
	Received       uint64  `json:"received"`
	Lost           uint64  `json:"lost"`
	LossPct        float64 `json:"loss_pct"`
	Duplicates     uint64  `json:"duplicates"`
	Stale          uint64  `json:"stale"`
	Reordered      uint64  `json:"reordered"`
	ReorderedRatio float64 `json:"reordered_ratio"`
	MaxExtent      uint64  `json:"max_extent"`
	MeanExtent     float64 `json:"mean_extent"`
}

// Summary returns the counters and ratios.
func (q *Sequence) Summary() SequenceSummary {
	return SequenceSummary{
		Expected:       q.Expected(),
		Received:       q.unique,
		Lost:           q.Lost(),
		LossPct:        100 * q.Loss(),
		Duplicates:     q.dups,
		Stale:          q.stale,
		Reordered:      q.reordered,
		ReorderedRatio: q.ReorderedRatio(),
		MaxExtent:      q.extentMax,
		MeanExtent:     q.MeanExtent(),
	}
}

// String formats the summary on one line with the JSON field names.
func (m SequenceSummary) String() string {
	return fmt.Sprintf("expected=%d received=%d lost=%d loss_pct=%.3f duplicates=%d stale=%d reordered=%d "+
		"reordered_ratio=%.6f max_extent=%d mean_extent=%.3f", m.Expected, m.Received, m.Lost, m.LossPct,
		m.Duplicates, m.Stale, m.Reordered, m.ReorderedRatio, m.MaxExtent, m.MeanExtent)
}

// MarshalJSON writes the summary of q.
func (q Sequence) MarshalJSON() ([]byte, error) { return json.Marshal(q.Summary()) }
