// Package engine implements SPP's matching of packet instances into records and the
// synthetic-pair rule (spp.md §4–§5), push-driven so that memory follows the matching window.
package engine

// Dir is a traffic direction between the two measurement points.
type Dir uint8

// Directions: Out travels REF→MON (src -a, dst -A), In travels MON→REF.
const (
	Out Dir = 0
	In  Dir = 1
)

func (d Dir) String() string {
	if d == Out {
		return "OUT"
	}
	return "IN"
}

// MarshalText makes JSON logs show "OUT"/"IN".
func (d Dir) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Point is one of the two measurement points.
type Point uint8

// Measurement points: Ref is where the trip starts (-f/-i/-r), Mon the far end (-F/-I/-R).
const (
	Ref Point = 0
	Mon Point = 1
)

func (p Point) String() string {
	if p == Ref {
		return "REF"
	}
	return "MON"
}

// MarshalText makes JSON logs show "REF"/"MON".
func (p Point) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// Record is one packet seen at both points; times are µs since the Unix epoch, each on its
// own point's clock.
type Record struct {
	Ref int64
	Mon int64
}

// Pair is one synthetic packet pair: an OUT record and the IN record that left MON first
// after the OUT packet arrived there.
type Pair struct {
	Out Record
	In  Record
}

// TPT is the total pair time on the REF clock (µs).
func (p Pair) TPT() int64 { return p.In.Ref - p.Out.Ref }

// SPT is the "server processing time" between the pair at MON (µs), always > 0.
func (p Pair) SPT() int64 { return p.In.Mon - p.Out.Mon }

// RTT is TPT − SPT in µs; it may be negative for mismatched packets (the text output clamps
// it to zero as the original does).
func (p Pair) RTT() int64 { return p.TPT() - p.SPT() }

// Config holds the matching parameters of the original's -o, -d and -G options.
type Config struct {
	// Offset is the MON clock's offset relative to REF in whole seconds (-o); may be negative.
	Offset int64
	// Window is the maximum timestamp difference in whole seconds between instances of one
	// packet (-d); the original compares against Window+1.
	Window int64
	// MaxSearch is the maximum number of REF instances visited for one MON instance (-G).
	MaxSearch int
}

// Counters count what the engine did, per direction.
type Counters struct {
	Instances [2][2]uint64 // [point][dir]
	Records   [2]uint64    // [dir]
	// MonDropped counts MON instances given up (no REF copy in the window, -G reached or
	// REF exhausted); RefDropped REF instances that aged out of the window.
	MonDropped [2]uint64
	RefDropped [2]uint64
	Pairs      uint64
}

// Engine matches instances from both points and emits pairs through a callback. It is not
// safe for concurrent use; feed it from one goroutine.
type Engine struct {
	cfg     Config
	match   [2]matcher
	pair    pairer
	emit    func(Pair)
	onRec   func(Dir, Record)
	closed  [2]bool
	counter Counters

	// MON timestamps seen so far: the last one and whether they never went backwards. With
	// monotone MON input, every future record of direction d has a MON time of at least
	// min(last, head of mon[d]); the pairer uses that bound to drop records that can no
	// longer matter, so one-way stretches of traffic do not pile up records.
	monLast     int64
	monSeen     bool
	monMonotone bool
	compactAt   int
}

// defaultCompactAt is the pending-record count above which the pairer compacts a queue.
const defaultCompactAt = 1024

// New returns an engine that calls emit for every pair, in order, as soon as it is formed.
func New(cfg Config, emit func(Pair)) *Engine {
	if cfg.MaxSearch <= 0 {
		cfg.MaxSearch = 10000
	}
	e := &Engine{cfg: cfg, emit: emit, monMonotone: true, compactAt: defaultCompactAt}
	for d := range e.match {
		e.match[d].init(Dir(d), &e.cfg)
	}
	return e
}

// OnRecord installs a callback invoked for every record (verbosity 8).
func (e *Engine) OnRecord(f func(Dir, Record)) { e.onRec = f }

// Counters returns a snapshot of the engine's counters.
func (e *Engine) Counters() Counters { return e.counter }

// QueueLens reports the queued instances [point][dir] and pending records [dir].
func (e *Engine) QueueLens() (inst [2][2]int, rec [2]int) {
	for d := range e.match {
		inst[Ref][d] = e.match[d].ref.len()
		inst[Mon][d] = e.match[d].mon.len()
		rec[d] = e.pair.q[d].len()
	}
	return inst, rec
}

// Add queues one packet instance seen at point p travelling in direction d with packet ID
// id at time ts (µs since the epoch, on p's clock) and runs matching and pairing as far as
// the data allows.
func (e *Engine) Add(p Point, d Dir, id uint32, ts int64) {
	e.counter.Instances[p][d]++
	m := &e.match[d]
	if p == Ref {
		m.ref.push(instance{ts: ts, id: id})
	} else {
		if e.monSeen && ts < e.monLast {
			e.monMonotone = false
		}
		e.monLast, e.monSeen = ts, true
		m.mon.push(instance{ts: ts, id: id})
	}
	e.run(d)
}

// Close marks the end of point p's input. After both points are closed every pair that the
// original would print has been emitted.
func (e *Engine) Close(p Point) {
	e.closed[p] = true
	for d := range e.match {
		e.match[d].eof[p] = true
	}
	e.run(Out)
	e.run(In)
	if e.closed[Ref] && e.closed[Mon] {
		// Both record streams are complete: let the pairer see the end.
		e.pair.done[Out] = true
		e.pair.done[In] = true
	}
}

func (e *Engine) run(d Dir) {
	m := &e.match[d]
	produced := false
	for {
		r, st := m.step()
		switch st {
		case stepRecord:
			e.counter.Records[d]++
			if e.onRec != nil {
				e.onRec(d, r)
			}
			e.pair.q[d].push(r)
			produced = true
		case stepMonDrop:
			e.counter.MonDropped[d]++
		case stepWait:
			e.counter.RefDropped[d] += m.refDropped
			m.refDropped = 0
			if m.mon.len() == 0 && m.eof[Mon] {
				e.pair.done[d] = true
			}
			if produced || e.pair.done[d] {
				e.pair.run(e.emitPair)
				if e.pair.q[d].len() > e.compactAt && e.monMonotone {
					e.pair.compact(e.lowerBound(Out), e.lowerBound(In))
				}
			}
			return
		}
	}
}

// lowerBound is the least MON time a future record of direction d can have, given monotone
// MON input: records come from queued MON instances (the queue head is the earliest) or
// from MON packets not read yet (no earlier than the last one read).
func (e *Engine) lowerBound(d Dir) int64 {
	lb := e.monLast
	if q := &e.match[d].mon; q.len() > 0 {
		lb = min(lb, q.at(0).ts)
	}
	return lb
}

func (e *Engine) emitPair(p Pair) {
	e.counter.Pairs++
	e.emit(p)
}
