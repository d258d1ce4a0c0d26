package engine

import (
	"cmp"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

type inst struct {
	p  Point
	d  Dir
	id uint32
	ts int64
}

func runAll(cfg Config, in []inst) []Pair {
	var got []Pair
	e := New(cfg, func(p Pair) { got = append(got, p) })
	for _, i := range in {
		e.Add(i.p, i.d, i.id, i.ts)
	}
	e.Close(Ref)
	e.Close(Mon)
	return got
}

// echo builds n request/response rounds: OUT i sent at REF at i*period, arriving at MON
// after owdOut; the reply leaves MON think µs later and reaches REF after owdIn. MON's clock
// is ahead by monOffset µs.
func echo(n int, period, owdOut, think, owdIn, monOffset int64) (ref, mon []inst, want []Pair) {
	var recs []Pair
	for i := range n {
		t := 1_700_000_000_000_000 + int64(i)*period
		o := Record{Ref: t, Mon: t + owdOut + monOffset}
		in := Record{Mon: o.Mon + think, Ref: t + owdOut + think + owdIn}
		ref = append(ref, inst{Ref, Out, uint32(2 * i), o.Ref}, inst{Ref, In, uint32(2*i + 1), in.Ref})
		mon = append(mon, inst{Mon, Out, uint32(2 * i), o.Mon}, inst{Mon, In, uint32(2*i + 1), in.Mon})
		recs = append(recs, Pair{Out: o, In: in})
	}
	// The original never prints the last candidate pair.
	return ref, mon, recs[:n-1]
}

func TestEchoPairs(t *testing.T) {
	ref, mon, want := echo(50, 20_000, 5_000, 300, 7_000, 0)
	got := runAll(Config{Window: 60, MaxSearch: 10000}, append(ref, mon...))
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %d pairs, want %d:\n%v\n%v", len(got), len(want), got, want)
	}
	for _, p := range got {
		if p.RTT() != 12_000 || p.SPT() != 300 {
			t.Fatalf("pair %+v: rtt %d spt %d, want 12000/300", p, p.RTT(), p.SPT())
		}
	}
}

// TestInterleavingIndependent feeds the same two inputs in many random interleavings
// (per-point order kept): the pairs must not depend on how the inputs were read, because
// the original's file mode is deterministic (spp.md §4).
func TestInterleavingIndependent(t *testing.T) {
	ref, mon, want := echo(200, 3_000, 5_000, 100, 5_000, 2_000_000)
	// Lose some packets between the points and reorder a few at MON.
	mon = append(mon[:40:40], mon[41:]...)
	mon[100], mon[101] = mon[101], mon[100]
	cfg := Config{Offset: 2, Window: 3, MaxSearch: 10000}
	base := runAll(cfg, append(append([]inst{}, ref...), mon...))
	if len(base) < len(want)-3 {
		t.Fatalf("only %d pairs of %d", len(base), len(want))
	}
	r := rand.New(rand.NewPCG(1, 2))
	for k := range 20 {
		var seq []inst
		i, j := 0, 0
		for i < len(ref) || j < len(mon) {
			if j == len(mon) || (i < len(ref) && r.IntN(2) == 0) {
				seq = append(seq, ref[i])
				i++
			} else {
				seq = append(seq, mon[j])
				j++
			}
		}
		if got := runAll(cfg, seq); !reflect.DeepEqual(got, base) {
			t.Fatalf("interleaving %d: %d pairs differ from %d", k, len(got), len(base))
		}
	}
}

// TestPairingRule checks §5 on hand-made records: the OUT that arrived last before the IN
// left, and the first IN leaving after it; IN records before any OUT are skipped.
func TestPairingRule(t *testing.T) {
	// MON times (µs): IN@5, OUT@10, OUT@20, OUT@30, IN@35, IN@40, OUT@50, IN@60, OUT@70, IN@80
	type ev struct {
		d   Dir
		mon int64
	}
	evs := []ev{{In, 5}, {Out, 10}, {Out, 20}, {Out, 30}, {In, 35}, {In, 40}, {Out, 50}, {In, 60}, {Out, 70}, {In, 80}}
	var in []inst
	for i, e := range evs {
		// REF sees OUT 1000 µs earlier and IN 1000 µs later than MON.
		refT := e.mon - 1000
		if e.d == In {
			refT = e.mon + 1000
		}
		in = append(in, inst{Ref, e.d, uint32(i), refT}, inst{Mon, e.d, uint32(i), e.mon})
	}
	got := runAll(Config{Window: 60, MaxSearch: 100}, in)
	var mons [][2]int64
	for _, p := range got {
		mons = append(mons, [2]int64{p.Out.Mon, p.In.Mon})
		if p.RTT() != 2000 {
			t.Errorf("pair %+v rtt %d", p, p.RTT())
		}
	}
	// (70,80) is the last candidate and is never emitted: no OUT record follows it.
	want := [][2]int64{{30, 35}, {50, 60}}
	if !reflect.DeepEqual(mons, want) {
		t.Fatalf("pairs at MON %v, want %v", mons, want)
	}
}

func TestStrictLess(t *testing.T) {
	// An IN leaving MON in the same µs as the OUT arrived does not pair with it.
	in := []inst{
		{Ref, Out, 1, 100}, {Mon, Out, 1, 200},
		{Ref, In, 2, 400}, {Mon, In, 2, 200},
		{Ref, In, 3, 500}, {Mon, In, 3, 300},
		{Ref, Out, 4, 600}, {Mon, Out, 4, 700},
	}
	got := runAll(Config{Window: 60, MaxSearch: 100}, in)
	if len(got) != 1 || got[0].In.Mon != 300 {
		t.Fatalf("got %+v, want the pair with IN at 300", got)
	}
}

func TestWindowAndSearchLimit(t *testing.T) {
	const s = 1_000_000
	tests := []struct {
		name    string
		cfg     Config
		in      []inst
		records int
		monDrop uint64
		refDrop uint64
	}{
		{
			name: "mon without ref copy is dropped once ref is past the window",
			cfg:  Config{Window: 2, MaxSearch: 100},
			in: []inst{
				{Mon, Out, 7, 10 * s},
				{Ref, Out, 1, 10 * s}, {Ref, Out, 2, 12 * s}, {Ref, Out, 3, 13*s + 5},
			},
			records: 0, monDrop: 1,
		},
		{
			name: "delta equal to window+1 is still searched",
			cfg:  Config{Window: 2, MaxSearch: 100},
			in: []inst{
				{Mon, Out, 3, 10 * s},
				{Ref, Out, 1, 10 * s}, {Ref, Out, 3, 13 * s},
			},
			records: 1,
		},
		{
			name: "old ref instances are dropped",
			cfg:  Config{Window: 1, MaxSearch: 100},
			in: []inst{
				{Ref, Out, 1, 1 * s}, {Ref, Out, 2, 2 * s}, {Ref, Out, 5, 9 * s},
				{Mon, Out, 5, 9 * s},
			},
			records: 1, refDrop: 2,
		},
		{
			name: "search limit gives up the mon instance",
			cfg:  Config{Window: 60, MaxSearch: 3},
			in: []inst{
				{Ref, Out, 1, s}, {Ref, Out, 2, s}, {Ref, Out, 3, s}, {Ref, Out, 4, s},
				{Mon, Out, 3, s}, {Mon, Out, 1, s},
			},
			records: 1, monDrop: 1,
		},
		{
			name: "negative offset: MON clock 100 s behind",
			cfg:  Config{Offset: -100, Window: 2, MaxSearch: 100},
			in: []inst{
				{Ref, Out, 1, 200 * s}, {Mon, Out, 1, 100 * s},
				{Ref, In, 2, 201 * s}, {Mon, In, 2, 101 * s},
			},
			records: 2,
		},
		{
			name: "offset not given: 100 s apart is outside the window",
			cfg:  Config{Window: 2, MaxSearch: 100},
			in: []inst{
				{Ref, Out, 1, 200 * s}, {Mon, Out, 1, 100 * s},
			},
			records: 0, monDrop: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := New(tc.cfg, func(Pair) {})
			for _, i := range tc.in {
				e.Add(i.p, i.d, i.id, i.ts)
			}
			e.Close(Ref)
			e.Close(Mon)
			c := e.Counters()
			if got := c.Records[Out] + c.Records[In]; got != uint64(tc.records) {
				t.Errorf("records %d, want %d", got, tc.records)
			}
			if c.MonDropped[Out] != tc.monDrop {
				t.Errorf("mon dropped %d, want %d", c.MonDropped[Out], tc.monDrop)
			}
			if c.RefDropped[Out] != tc.refDrop {
				t.Errorf("ref dropped %d, want %d", c.RefDropped[Out], tc.refDrop)
			}
		})
	}
}

// TestBoundedQueues: with both inputs fed in time order, queues stay near one window's
// worth of packets however long the run is.
func TestBoundedQueues(t *testing.T) {
	ref, mon, _ := echo(20000, 1000, 500, 50, 500, 0)
	e := New(Config{Window: 1, MaxSearch: 10000}, func(Pair) {})
	maxLen := 0
	for i := range ref {
		e.Add(Ref, ref[i].d, ref[i].id, ref[i].ts)
		e.Add(Mon, mon[i].d, mon[i].id, mon[i].ts)
		inst, rec := e.QueueLens()
		maxLen = max(maxLen, inst[0][0]+inst[0][1]+inst[1][0]+inst[1][1]+rec[0]+rec[1])
	}
	if maxLen > 8 {
		t.Fatalf("queues reached %d entries", maxLen)
	}
}

func TestRingRemove(t *testing.T) {
	var r ring[int]
	for i := range 100 {
		r.push(i)
		if i%3 == 0 {
			r.pop()
		}
	}
	var want []int
	for i := range r.len() {
		want = append(want, *r.at(i))
	}
	r.remove(5)
	want = append(want[:5:5], want[6:]...)
	for i := range r.len() {
		if *r.at(i) != want[i] {
			t.Fatalf("at %d: %d want %d", i, *r.at(i), want[i])
		}
	}
}

func BenchmarkEngine(b *testing.B) {
	ref, mon, _ := echo(100000, 1000, 500, 50, 500, 0)
	b.ReportAllocs()
	n := 0
	e := New(Config{Window: 60, MaxSearch: 10000}, func(Pair) { n++ })
	// Warm the queues so growth is not counted.
	for i := range ref {
		e.Add(Ref, ref[i].d, ref[i].id, ref[i].ts)
		e.Add(Mon, mon[i].d, mon[i].id, mon[i].ts)
	}
	b.ResetTimer()
	for k := 0; k < b.N; k++ {
		i := k % len(ref)
		off := int64(k/len(ref)+1) * 1_000_000_000
		e.Add(Ref, ref[i].d, ref[i].id, ref[i].ts+off)
		e.Add(Mon, mon[i].d, mon[i].id, mon[i].ts+off)
	}
}

func TestNamesInJSON(t *testing.T) {
	b, err := json.Marshal(map[string]any{"p": Mon, "d": Out})
	if err != nil || string(b) != `{"d":"OUT","p":"MON"}` {
		t.Fatalf("%s %v", b, err)
	}
}

// oneWay builds monotone traffic with long one-way stretches: bursts of up to 3000 packets
// in one direction, then the other, each seen at REF and MON (OWD 1 ms).
func oneWay(seed uint64, n int) []inst {
	r := rand.New(rand.NewPCG(seed, 99))
	var ref, mon []inst
	t := int64(1_700_000_000_000_000)
	for id := uint32(0); int(id) < n; {
		d := Dir(r.IntN(2))
		burst := 1 + r.IntN(3000)
		if r.IntN(4) > 0 {
			burst = 1 + r.IntN(5)
		}
		for k := 0; k < burst && int(id) < n; k++ {
			t += 1 + r.Int64N(200)
			refT, monT := t, t+1000
			if d == In {
				refT, monT = t+1000, t
			}
			ref = append(ref, inst{Ref, d, id, refT})
			mon = append(mon, inst{Mon, d, id, monT})
			id++
		}
	}
	// Each capture is in time order; feed both merged by time, as the file reader does.
	slices.SortStableFunc(ref, func(a, b inst) int { return cmp.Compare(a.ts, b.ts) })
	slices.SortStableFunc(mon, func(a, b inst) int { return cmp.Compare(a.ts, b.ts) })
	var out []inst
	i, j := 0, 0
	for i < len(ref) || j < len(mon) {
		if j == len(mon) || (i < len(ref) && ref[i].ts <= mon[j].ts) {
			out = append(out, ref[i])
			i++
		} else {
			out = append(out, mon[j])
			j++
		}
	}
	return out
}

// TestCompactionExact: dropping queued records that cannot matter any more gives exactly
// the pairs of the uncompacted engine, and keeps the pending records bounded during
// one-way stretches.
func TestCompactionExact(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		in := oneWay(seed, 15000)
		var want, got []Pair
		full := New(Config{Window: 60, MaxSearch: 10000}, func(p Pair) { want = append(want, p) })
		full.compactAt = 1 << 30
		small := New(Config{Window: 60, MaxSearch: 10000}, func(p Pair) { got = append(got, p) })
		small.compactAt = 8
		maxRec, maxRecFull := 0, 0
		for _, i := range in {
			full.Add(i.p, i.d, i.id, i.ts)
			small.Add(i.p, i.d, i.id, i.ts)
			_, r := small.QueueLens()
			maxRec = max(maxRec, r[0]+r[1])
			_, r = full.QueueLens()
			maxRecFull = max(maxRecFull, r[0]+r[1])
		}
		for _, e := range []*Engine{full, small} {
			e.Close(Ref)
			e.Close(Mon)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("seed %d: %d pairs with compaction, %d without", seed, len(got), len(want))
		}
		if maxRec > 64 || maxRecFull < 1000 {
			t.Fatalf("seed %d: pending records peaked at %d (uncompacted %d)", seed, maxRec, maxRecFull)
		}
	}
}
