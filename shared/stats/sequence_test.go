package stats

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"testing"
)

type seqWant struct {
	received, dups, stale, expected, lost, reordered, maxExt uint64
	meanExt, ratio, loss                                     float64
}

func checkSeq(t *testing.T, name string, q *Sequence, w seqWant) {
	t.Helper()
	got := seqWant{q.Received(), q.Duplicates(), q.Stale(), q.Expected(), q.Lost(), q.Reordered(), q.MaxExtent(),
		q.MeanExtent(), q.ReorderedRatio(), q.Loss()}
	if got != w {
		t.Errorf("%s:\n got %+v\nwant %+v", name, got, w)
	}
}

// RFC 4737 by hand: §3.3 next-expected test (s < NextExp → reordered, else NextExp = s+1),
// §4.1 ratio = reordered / received, §4.2.1 extent e = i − j for the earliest arrival j with
// a larger sequence number.
func TestSequenceHandComputed(t *testing.T) {
	t.Run("one packet late by four", func(t *testing.T) {
		// Arrival i: 1  2  3  4  5  6  7  8  9  10
		// seq s:     1  2  3  5  6  7  8  4  9  10
		// NextExp:   1  2  3  4  6  7  8  9  9  10   (before each arrival)
		// s=4 at i=8 < NextExp 9 → reordered; earliest j with s[j] > 4 is j=4 (s=5): e = 8−4 = 4.
		var q Sequence
		q.Init(1)
		for _, s := range []uint64{1, 2, 3, 5, 6, 7, 8, 4, 9, 10} {
			q.Add(s)
		}
		checkSeq(t, "late4", &q, seqWant{received: 10, expected: 10, reordered: 1, maxExt: 4, meanExt: 4, ratio: 0.1})
	})
	t.Run("duplicates loss and two reordered", func(t *testing.T) {
		// Arrivals (seq): 0 1 2 2 5 3 4 7, sender sent 9 (0..8).
		// Unique arrival index i (0-based): 0→0 1→1 2→2 (dup ignored) 5→3 3→4 4→5 7→6.
		// NextExp: 0→1, 1→2, 2→3, 5→6, 3 < 6 reordered, 4 < 6 reordered, 7→8.
		// Extent of 3 (i=4): earliest larger is 5 at i=3 → 1; of 4 (i=5): 5 at i=3 → 2.
		// received 7, duplicates 1, expected 9, lost 2 (6 and 8), loss 2/9,
		// ratio 2/7, max extent 2, mean 1.5.
		var q Sequence
		for _, s := range []uint64{0, 1, 2, 2, 5, 3, 4, 7} {
			q.Add(s)
		}
		q.SetSent(9)
		checkSeq(t, "mixed", &q, seqWant{received: 7, dups: 1, expected: 9, lost: 2, reordered: 2, maxExt: 2,
			meanExt: 1.5, ratio: 2.0 / 7, loss: 2.0 / 9})
		if q.Arrivals() != 8 {
			t.Errorf("arrivals %d", q.Arrivals())
		}
		want := SequenceSummary{Expected: 9, Received: 7, Lost: 2, LossPct: 100 * 2.0 / 9, Duplicates: 1,
			Reordered: 2, ReorderedRatio: 2.0 / 7, MaxExtent: 2, MeanExtent: 1.5}
		if q.Summary() != want {
			t.Errorf("Summary %+v", q.Summary())
		}
		const text = "expected=9 received=7 lost=2 loss_pct=22.222 duplicates=1 stale=0 reordered=2 " +
			"reordered_ratio=0.285714 max_extent=2 mean_extent=1.500"
		if q.Summary().String() != text {
			t.Errorf("String() = %q", q.Summary().String())
		}
		b, _ := json.Marshal(&q)
		const js = `{"expected":9,"received":7,"lost":2,"loss_pct":22.22222222222222,"duplicates":1,"stale":0,` +
			`"reordered":2,"reordered_ratio":0.2857142857142857,"max_extent":2,"mean_extent":1.5}`
		if string(b) != js {
			t.Errorf("JSON = %s", b)
		}
	})
	t.Run("reversed block", func(t *testing.T) {
		// Arrivals 0 4 3 2 1 5: NextExp after 4 is 5; 3, 2, 1 reordered.
		// Extents: 3 at i=2 → j=1 (4) → 1; 2 at i=3 → j=1 → 2; 1 at i=4 → j=1 → 3. Mean 2.
		var q Sequence
		for _, s := range []uint64{0, 4, 3, 2, 1, 5} {
			q.Add(s)
		}
		checkSeq(t, "reversed", &q, seqWant{received: 6, expected: 6, reordered: 3, maxExt: 3, meanExt: 2, ratio: 0.5})
	})
	t.Run("stale and before first", func(t *testing.T) {
		var q Sequence
		q.Init(10)
		q.Add(5) // before First
		q.Add(10)
		q.Add(10 + SeqWindow + 5)
		q.Add(10) // now more than SeqWindow behind the highest: stale, not a duplicate
		checkSeq(t, "stale", &q, seqWant{received: 2, stale: 2, expected: SeqWindow + 6, lost: SeqWindow + 4,
			loss: float64(SeqWindow+4) / float64(SeqWindow+6)})
	})
	t.Run("empty", func(t *testing.T) {
		var q Sequence
		checkSeq(t, "empty", &q, seqWant{})
		q.SetSent(4)
		checkSeq(t, "all lost", &q, seqWant{expected: 4, lost: 4, loss: 1})
	})
}

// naiveSequence is an unbounded reference model of the same definitions.
type naiveSequence struct {
	seen                    map[uint64]bool
	arrivals, prefixMax     []uint64
	nextExp, maxSeq         uint64
	dups, reordered, extSum uint64
	extMax                  uint64
}

func (n *naiveSequence) add(s uint64) {
	if n.seen[s] {
		n.dups++
		return
	}
	n.seen[s] = true
	if s >= n.nextExp {
		n.nextExp = s + 1
	} else {
		n.reordered++
		for j, a := range n.arrivals { // definition: the earliest arrival with a larger number
			if a > s {
				e := uint64(len(n.arrivals) - j)
				n.extSum += e
				n.extMax = max(n.extMax, e)
				break
			}
		}
	}
	n.arrivals = append(n.arrivals, s)
	n.maxSeq = max(n.maxSeq, s)
}

func TestSequenceMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	for trial := range 10 {
		var q Sequence
		ref := naiveSequence{seen: map[uint64]bool{}}
		const n = 8000
		order := make([]uint64, 0, n)
		for i := range uint64(n) {
			if r.IntN(20) == 0 {
				continue // lost
			}
			order = append(order, i)
			if r.IntN(50) == 0 {
				order = append(order, i) // duplicate
			}
		}
		// Bounded reordering: sort by position plus a random delay of up to span positions,
		// span growing per trial up to 361 (extents stay below ExtentWindow).
		span := 1 + trial*40
		key := make([]int, len(order))
		idx := make([]int, len(order))
		for i := range order {
			key[i], idx[i] = i+r.IntN(span), i
		}
		slices.SortStableFunc(idx, func(a, b int) int { return key[a] - key[b] })
		shuffled := make([]uint64, len(order))
		for i, k := range idx {
			shuffled[i] = order[k]
		}
		order = shuffled
		for _, s := range order {
			q.Add(s)
			ref.add(s)
		}
		if q.Received() != uint64(len(ref.seen)) || q.Duplicates() != ref.dups || q.Reordered() != ref.reordered ||
			q.MaxExtent() != ref.extMax || q.extentSum != ref.extSum || q.Stale() != 0 || q.ExtentCapped() != 0 {
			t.Fatalf("trial %d (span %d): received %d/%d dups %d/%d reordered %d/%d maxExt %d/%d extSum %d/%d stale %d capped %d",
				trial, span, q.Received(), len(ref.seen), q.Duplicates(), ref.dups, q.Reordered(), ref.reordered,
				q.MaxExtent(), ref.extMax, q.extentSum, ref.extSum, q.Stale(), q.ExtentCapped())
		}
		if q.Expected() != ref.maxSeq+1 || q.Lost() != ref.maxSeq+1-uint64(len(ref.seen)) {
			t.Fatalf("trial %d: expected %d lost %d", trial, q.Expected(), q.Lost())
		}
	}
}

// The duplicate window slides over many multiples of SeqWindow without false duplicates,
// and catches duplicates up to SeqWindow−1 behind the highest number.
func TestSequenceWindowSlides(t *testing.T) {
	var q Sequence
	var injected uint64
	for s := uint64(0); s < 5*SeqWindow; s++ {
		q.Add(s)
		if s%97 == 0 {
			q.Add(s) // immediate duplicate
			injected++
		}
		if s >= SeqWindow-1 && s%1009 == 0 {
			q.Add(s - (SeqWindow - 1)) // oldest number still in the window
			injected++
		}
	}
	if q.Duplicates() != injected || q.Received() != 5*SeqWindow || q.Stale() != 0 || q.Reordered() != 0 {
		t.Errorf("dups %d (want %d) received %d stale %d reordered %d", q.Duplicates(), injected, q.Received(),
			q.Stale(), q.Reordered())
	}
	// Jump far ahead: the window restarts, old numbers are stale.
	q.Add(100 * SeqWindow)
	q.Add(100*SeqWindow - 5)
	q.Add(100*SeqWindow - 5)
	if q.Duplicates() != injected+1 || q.Received() != 5*SeqWindow+2 || q.Reordered() != 1 {
		t.Errorf("after jump: dups %d received %d reordered %d", q.Duplicates(), q.Received(), q.Reordered())
	}
}

func TestSequenceExtentCapped(t *testing.T) {
	var q Sequence
	for s := uint64(1); s <= ExtentWindow+10; s++ {
		q.Add(s)
	}
	q.Add(0) // earliest larger arrival (1) is older than the window
	if q.MaxExtent() != ExtentWindow || q.ExtentCapped() != 1 || q.Reordered() != 1 {
		t.Errorf("max extent %d capped %d", q.MaxExtent(), q.ExtentCapped())
	}
}

func TestSequenceAddZeroAllocs(t *testing.T) {
	var q Sequence
	s := uint64(0)
	if n := testing.AllocsPerRun(1000, func() { q.Add(s); s++ }); n != 0 {
		t.Errorf("Add allocates %v", n)
	}
}
