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
