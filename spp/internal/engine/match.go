package engine

// instance is one packet seen at one point.
type instance struct {
	ts int64 // µs since the epoch
	id uint32
}

// sec is the whole-second part of a µs timestamp, as tv_sec of a struct timeval.
func sec(us int64) int64 {
	s := us / 1e6
	if us%1e6 < 0 {
		s--
	}
	return s
}

type stepResult uint8

const (
	stepWait    stepResult = iota // need more input
	stepRecord                    // a record was formed
	stepMonDrop                   // the MON head was given up
)

// matcher pairs the REF and MON instances of one direction into records (spp.md §4). The
// scan of the REF queue for the current MON head is resumable: when it reaches the end of
// the REF queue before the REF input has ended, it stops and continues from the same place
// once more REF instances arrive, so the outcome does not depend on how the two inputs are
// interleaved.
type matcher struct {
	dir        Dir
	cfg        *Config
	ref, mon   ring[instance]
	eof        [2]bool
	pos        int // next REF index to visit for the current MON head
	count      int // REF instances visited for the current MON head
	refDropped uint64
}

func (m *matcher) init(d Dir, cfg *Config) {
	m.dir = d
	m.cfg = cfg
}

func (m *matcher) restart() {
	m.pos = 0
	m.count = 0
}

func (m *matcher) step() (Record, stepResult) {
	if m.mon.len() == 0 {
		return Record{}, stepWait
	}
	limit := m.cfg.Window + 1
	mh := *m.mon.at(0)
	monSec := sec(mh.ts) - m.cfg.Offset
	for m.pos < m.ref.len() {
		r := m.ref.at(m.pos)
		m.count++
		delta := sec(r.ts) - monSec
		if delta > limit {
			// This REF instance is far later than the MON head: its REF copy is gone.
			m.mon.pop()
			m.restart()
			return Record{}, stepMonDrop
		}
		if -delta > limit {
			// Too old for this and every later MON instance.
			m.ref.remove(m.pos)
			m.refDropped++
			if m.pos == 0 && m.count == 1 {
				m.count = 0
			} else {
				m.restart()
			}
			continue
		}
		if m.count >= m.cfg.MaxSearch {
			m.mon.pop()
			m.restart()
			return Record{}, stepMonDrop
		}
		if r.id == mh.id {
			rec := Record{Ref: r.ts, Mon: mh.ts}
			m.ref.remove(m.pos)
			m.mon.pop()
			m.restart()
			for m.ref.len() > 0 && monSec-sec(m.ref.at(0).ts) > limit {
				m.ref.pop()
				m.refDropped++
			}
			return rec, stepRecord
		}
		m.pos++
	}
	if m.eof[Ref] {
		// The REF input has ended and holds no copy of the MON head.
		m.mon.pop()
		m.restart()
		return Record{}, stepMonDrop
	}
	return Record{}, stepWait
}
