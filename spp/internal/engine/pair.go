package engine

// pairer applies the synthetic-pair rule (spp.md §5) to the two record streams:
//
//	in  := next IN; out := held-over OUT, else next OUT
//	while !(out.mon < in.mon): in := next IN
//	held := next OUT
//	while held.mon < in.mon: out := held; held := next OUT
//	emit(out, in); keep held
//
// Any "next" that finds its stream ended stops pairing for good, so the last candidate
// pair is never emitted — the original's behaviour, kept for byte-identical output.
type pairer struct {
	q       [2]ring[Record]
	done    [2]bool
	state   uint8
	out, in Record
	stopped bool
}

const (
	pairNeedOut  = iota // start of a round: take the held OUT record or the next one
	pairNeedIn          // looking for the first IN that left MON after out arrived
	pairNeedHeld        // looking for the first OUT that arrived at MON at or after in left
)

// next pops a record of direction d; ok=false means "wait" or, when the stream has ended,
// sets stopped.
func (p *pairer) next(d Dir) (Record, bool) {
	if p.q[d].len() > 0 {
		return p.q[d].pop(), true
	}
	if p.done[d] {
		p.stopped = true
	}
	return Record{}, false
}

func (p *pairer) run(emit func(Pair)) {
	for !p.stopped {
		switch p.state {
		case pairNeedOut:
			r, ok := p.next(Out)
			if !ok {
				return
			}
			p.out = r
			p.state = pairNeedIn
		case pairNeedIn:
			r, ok := p.next(In)
			if !ok {
				return
			}
			if p.out.Mon < r.Mon {
				p.in = r
				p.state = pairNeedHeld
			}
		case pairNeedHeld:
			r, ok := p.next(Out)
			if !ok {
				return
			}
			if r.Mon < p.in.Mon {
				p.out = r
				continue
			}
			emit(Pair{Out: p.out, In: p.in})
			// The held record starts the next round.
			p.out = r
			p.state = pairNeedIn
		}
	}
}

// compact drops queued records that can no longer change any pair, given lower bounds on
// the MON times of future OUT and IN records (lbOut, lbIn). Exact for monotone MON input.
//
// While waiting for an IN record (pairNeedIn), OUT records queue up; the coming held loop
// passes every OUT record with mon < in.mon, and in.mon ≥ lbIn, so of two leading records
// both earlier than lbIn the first is always passed over. While waiting for an OUT record
// (pairNeedOut, pairNeedHeld), IN records queue up; the next round skips every IN record
// with mon ≤ out.mon, and out (a future OUT record) has mon ≥ lbOut.
func (p *pairer) compact(lbOut, lbIn int64) {
	if p.stopped {
		return
	}
	switch p.state {
	case pairNeedIn:
		q := &p.q[Out]
		for q.len() >= 2 && q.at(0).Mon < lbIn && q.at(1).Mon < lbIn {
			q.pop()
		}
	default:
		q := &p.q[In]
		for q.len() > 0 && q.at(0).Mon <= lbOut {
			q.pop()
		}
	}
}
