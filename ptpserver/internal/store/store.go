// Package store keeps ptpserver's mesh analytics — every reachability report, per-pair RTT/loss
// summaries, membership events and what clients say about their NAT and port mappings — in an
// embedded SQLite database (modernc.org/sqlite, pure Go, WAL).
//
// Writes are queued in memory and committed by one goroutine every FlushInterval (default
// 500 ms) in one transaction, so a kill -9 loses at most the reports of the last interval and
// Close (SIGTERM) loses none. The newest report of each pair is kept in its own table (the
// matrix); the history plot reads per-pair summaries per 5 minutes (kept two days at most) and
// per hour (kept for the retention), built in memory for the open 5-minute bucket and rebuilt
// from the raw reports after a crash.
package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// ErrSchemaTooNew is returned by Open for a database written by a newer build.
var ErrSchemaTooNew = errors.New("store: database schema is newer than this build")

// ErrClosed is returned by queries after Close.
var ErrClosed = errors.New("store: closed")

// Path is how a reporter reaches a peer (the REACH TLV's path byte).
type Path uint8

// Path values as on the wire.
const (
	PathNone Path = iota
	PathDirect
	PathLAN
	PathHairpin
	PathRelay
)

var pathNames = [...]string{"none", "direct", "lan", "hairpin", "relay"}

func (p Path) String() string {
	if int(p) < len(pathNames) {
		return pathNames[p]
	}
	return fmt.Sprintf("path(%d)", uint8(p))
}

// MarshalText writes the path's name.
func (p Path) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// Paths lists the known path kinds in wire order.
func Paths() []Path { return []Path{PathNone, PathDirect, PathLAN, PathHairpin, PathRelay} }

// Report is one reporter's view of one peer. Counters are cumulative since the reporter started
// measuring the peer; times are microseconds as on the wire.
type Report struct {
	Time     time.Time // when the server received it; zero means now
	Mesh     string
	From, To string // reporter and peer UUIDs
	Path     Path
	Reason   string // why the path is not direct, in words
	Sent     uint32
	Received uint32
	Lost     uint32
	RTTMin   uint32
	RTTAvg   uint32
	RTTP50   uint32
	RTTP99   uint32
	RTTMax   uint32
	Jitter   uint32
}

// Event kinds of the membership timeline.
const (
	EventJoin    = "join"
	EventLeave   = "leave"   // SHUTDOWN received
	EventExpire  = "expire"  // silent for too long
	EventAddress = "address" // public address changed
)

// Event is one membership change.
type Event struct {
	Time   time.Time
	Mesh   string
	UUID   string
	Kind   string
	Addr   string
	Detail string
}

// Client is what the server knows about a client: its addresses, NAT behaviour (as the client
// measured it) and the result of its port-mapping attempts (JSON array, see shared/portmap).
type Client struct {
	Mesh      string
	UUID      string
	Seen      time.Time
	Addr      string // address the server sees
	Public    string // public address the client measured with STUN
	Version   int    // protocol version announced
	Mapping   string
	Filtering string
	Hairpin   string
	PortMap   json.RawMessage
	Online    bool
}

// Options tune Open; zero values take the defaults.
type Options struct {
	// Retention bounds the data kept (default 30 days).
	Retention time.Duration
	// FlushInterval is how often queued writes are committed (default 500 ms): the most a
	// kill -9 can lose.
	FlushInterval time.Duration
	// QueueLimit caps queued, uncommitted reports (default 1<<20); beyond it reports are
	// dropped and counted (Stats.Dropped) rather than growing memory without bound.
	QueueLimit int
	// Now is the clock (tests and benchmarks simulate time with it).
	Now func() time.Time
	// Log receives flush and retention errors.
	Log logrus.FieldLogger
	// NoBackground disables the flush goroutine: the caller calls Flush and Prune (benchmarks).
	NoBackground bool
}

// DefaultRetention is the --retention default.
const DefaultRetention = 30 * 24 * time.Hour

// fineRes is the resolution of the summaries built from reports; coarseRes those rolled up from
// them. fineKeep caps how long fine summaries are kept.
const (
	fineRes   = 300
	coarseRes = 3600
	fineKeep  = 48 * time.Hour
)

// Stats counts what the store did.
type Stats struct {
	Reports uint64 // reports committed
	Events  uint64 // events committed
	Dropped uint64 // reports dropped because the queue was full
	Flushes uint64
	Errors  uint64 // failed flushes (their data is retried)
}

type pairKey struct{ mesh, src, dst string }

type repKey struct{ mesh, uuid string }

// agg is a summary bucket being built.
type agg struct {
	bucket                                 int64
	n, rttSum, rttMin, rttMax, rttP99, jit int64
	dSent, dLost                           int64
	path                                   Path
}

func (a *agg) add(e *entry) {
	if a.n == 0 || int64(e.rttMin) < a.rttMin {
		a.rttMin = int64(e.rttMin)
	}
	a.rttMax = max(a.rttMax, int64(e.rttMax))
	a.rttP99 = max(a.rttP99, int64(e.rttP99))
	a.n++
	a.rttSum += int64(e.rttAvg)
	a.jit += int64(e.jitter)
	a.dSent += e.dSent
	a.dLost += e.dLost
	a.path = e.path
}

// Store is an open analytics database. Its methods are safe for concurrent use.
type Store struct {
	w, r *sql.DB
	opt  Options
	log  logrus.FieldLogger

	mu      sync.Mutex // queues
	reports []Report
	events  []Event
	clients []Client
	closed  bool

	wmu       sync.Mutex // writer state below; one flush at a time
	reporters map[repKey]int64
	pairs     map[pairKey]int64
	pairRep   map[int64]int64 // pair → reporter
	reasons   map[string]int64

	// The newest committed entry of every pair, for the matrix without SQL: changed by the
	// flush goroutine under lmu, read by queries under lmu.RLock.
	lmu        sync.RWMutex
	latest     map[int64]map[int64]entry // reporter → pair → newest entry
	meshReps   map[string]map[int64]bool // mesh → reporters with entries
	repKeys    map[int64]repKey
	pairIDs    map[int64]pairKey
	reasonText map[int64]string
	nextID     int64
	lastTS     int64 // unix ms of the newest committed report
	fineW      int64 // every fine bucket before this (unix s) is written
	hourW      int64 // every coarse bucket before this is rolled up
	lastPrune  time.Time

	amu     sync.Mutex // open fine buckets, read by History
	open    map[int64]*agg
	pending []closedAgg // buckets a later report of the same pair closed, not yet written

	nReports, nEvents, nDropped, nFlushes, nErrors atomic.Uint64

	stop chan struct{}
	done chan struct{}
}

// Open opens (creating it if needed) the database at path and brings its schema up to date. An
// empty path keeps everything in memory (the web page without --store).
func Open(ctx context.Context, path string, opt Options) (*Store, error) {
	if opt.Retention <= 0 {
		opt.Retention = DefaultRetention
	}
	if opt.FlushInterval <= 0 {
		opt.FlushInterval = 500 * time.Millisecond
	}
	if opt.QueueLimit <= 0 {
		opt.QueueLimit = 1 << 20
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Log == nil {
		l := logrus.New()
		l.SetLevel(logrus.PanicLevel)
		opt.Log = l
	}
	s := &Store{opt: opt, log: opt.Log, reporters: map[repKey]int64{}, repKeys: map[int64]repKey{},
		pairs: map[pairKey]int64{}, pairIDs: map[int64]pairKey{}, pairRep: map[int64]int64{},
		reasons: map[string]int64{"": 0}, latest: map[int64]map[int64]entry{}, open: map[int64]*agg{},
		meshReps: map[string]map[int64]bool{}, reasonText: map[int64]string{0: ""},
		stop: make(chan struct{}), done: make(chan struct{})}
	const pragmas = "_pragma=busy_timeout(10000)&_pragma=foreign_keys(0)&_pragma=cache_size(-65536)"
	var err error
	if path == "" {
		s.w, err = sql.Open("sqlite", "file::memory:?"+pragmas)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		s.w.SetMaxOpenConns(1)
		s.r = s.w
	} else {
		if strings.ContainsAny(path, "?#") {
			return nil, fmt.Errorf("store: path %q: '?' and '#' are not allowed", path)
		}
		dsn := "file:" + path + "?_txlock=immediate&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&" + pragmas
		if s.w, err = sql.Open("sqlite", dsn); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		s.w.SetMaxOpenConns(1)
		if s.r, err = sql.Open("sqlite", "file:"+path+"?_pragma=query_only(1)&"+pragmas); err != nil {
			s.w.Close()
			return nil, fmt.Errorf("store: %w", err)
		}
		s.r.SetMaxOpenConns(4)
	}
	s.w.SetConnMaxLifetime(0)
	s.w.SetMaxIdleConns(1)
	if err := s.init(ctx); err != nil {
		s.w.Close()
		if s.r != s.w {
			s.r.Close()
		}
		return nil, err
	}
	if opt.NoBackground {
		close(s.done)
	} else {
		go s.loop()
	}
	return s, nil
}

func (s *Store) init(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("store: open: %w", err)
	}
	if err := migrate(ctx, s.w, migrations); err != nil {
		return err
	}
	if err := s.load(ctx); err != nil {
		return fmt.Errorf("store: load: %w", err)
	}
	return nil
}

// load reads the writer's state: interned ids, the newest entry of each pair, watermarks, and
// rebuilds the open fine buckets from the reports committed after the last written bucket.
func (s *Store) load(ctx context.Context) error {
	err := queryEach(ctx, s.w, "SELECT id, mesh, uuid FROM reporters", nil, func(sc func(...any) error) error {
		var id int64
		var k repKey
		if err := sc(&id, &k.mesh, &k.uuid); err != nil {
			return err
		}
		s.reporters[k], s.repKeys[id] = id, k
		return nil
	})
	if err != nil {
		return err
	}
	err = queryEach(ctx, s.w, "SELECT id, mesh, src, dst FROM pairs", nil, func(sc func(...any) error) error {
		var id int64
		var k pairKey
		if err := sc(&id, &k.mesh, &k.src, &k.dst); err != nil {
			return err
		}
		s.pairs[k], s.pairIDs[id] = id, k
		s.pairRep[id] = s.reporters[repKey{k.mesh, k.src}]
		return nil
	})
	if err != nil {
		return err
	}
	err = queryEach(ctx, s.w, "SELECT id, text FROM reasons", nil, func(sc func(...any) error) error {
		var id int64
		var t string
		if err := sc(&id, &t); err != nil {
			return err
		}
		s.reasons[t], s.reasonText[id] = id, t
		return nil
	})
	if err != nil {
		return err
	}
	err = queryEach(ctx, s.w, "SELECT reporter, ts, entries FROM latest", nil, func(sc func(...any) error) error {
		var rep, ts int64
		var blob []byte
		if err := sc(&rep, &ts, &blob); err != nil {
			return err
		}
		m := map[int64]entry{}
		s.latest[rep] = m
		mesh := s.repKeys[rep].mesh
		if s.meshReps[mesh] == nil {
			s.meshReps[mesh] = map[int64]bool{}
		}
		s.meshReps[mesh][rep] = true
		return decodeEntries(blob, ts, func(e *entry) { m[e.pair] = *e })
	})
	if err != nil {
		return err
	}
	var maxID, maxTS sql.NullInt64
	if err := s.w.QueryRowContext(ctx, "SELECT max(id) FROM reports").Scan(&maxID); err != nil {
		return err
	}
	s.nextID = maxID.Int64 + 1
	if maxID.Valid {
		if err := s.w.QueryRowContext(ctx, "SELECT ts FROM reports WHERE id = ?", maxID.Int64).Scan(&maxTS); err != nil {
			return err
		}
		s.lastTS = maxTS.Int64
	}
	for _, m := range s.latest {
		for _, e := range m {
			s.lastTS = max(s.lastTS, e.ts)
		}
	}
	s.fineW, _ = s.meta(ctx, "fine_written")
	s.hourW, _ = s.meta(ctx, "hour_rolled")
	// Replay: reports at or after the fine watermark are in no written summary (a report row
	// never spans two fine buckets).
	from, err := s.firstIDAtOrAfter(ctx, s.w, s.fineW*1000)
	if err != nil {
		return err
	}
	return queryEach(ctx, s.w, "SELECT ts, entries FROM reports WHERE id >= ? ORDER BY id", []any{from},
		func(sc func(...any) error) error {
			var ts int64
			var blob []byte
			if err := sc(&ts, &blob); err != nil {
				return err
			}
			return decodeEntries(blob, ts, s.addFine)
		})
}

// queryEach runs q and calls fn with a scanner for each row.
func queryEach(ctx context.Context, db interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, q string, args []any, fn func(scan func(...any) error) error) error {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (s *Store) meta(ctx context.Context, key string) (int64, error) {
	var v int64
	err := s.w.QueryRowContext(ctx, "SELECT value FROM meta WHERE key = ?", key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return v, err
}

type querier interface {
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

// firstIDAtOrAfter finds the first report id with ts ≥ tsMS by binary search over ids (ts never
// decreases with id), so no index on ts is needed. It returns max(id)+1 when there is none.
func (s *Store) firstIDAtOrAfter(ctx context.Context, q querier, tsMS int64) (int64, error) {
	// Two queries: SQLite answers a lone min() or max() of the key from the B-tree's edge,
	// but scans the whole table for both in one SELECT (12 s for a month of reports).
	var lo, hi sql.NullInt64
	if err := q.QueryRowContext(ctx, "SELECT min(id) FROM reports").Scan(&lo); err != nil {
		return 0, err
	}
	if err := q.QueryRowContext(ctx, "SELECT max(id) FROM reports").Scan(&hi); err != nil {
		return 0, err
	}
	if !lo.Valid {
		return 1, nil
	}
	l, h := lo.Int64, hi.Int64+1 // answer in [l, h]
	for l < h {
		m := l + (h-l)/2
		var id, ts int64
		err := q.QueryRowContext(ctx, "SELECT id, ts FROM reports WHERE id >= ? ORDER BY id LIMIT 1", m).Scan(&id, &ts)
		if err != nil {
			return 0, err
		}
		if ts >= tsMS {
			h = m
		} else {
			l = id + 1
		}
	}
	return l, nil
}

// AddReport queues a report; it is committed within FlushInterval.
func (s *Store) AddReport(r Report) {
	s.mu.Lock()
	if s.closed || len(s.reports) >= s.opt.QueueLimit {
		s.mu.Unlock()
		s.nDropped.Add(1)
		return
	}
	s.reports = append(s.reports, r)
	s.mu.Unlock()
}

// AddEvent queues a membership event.
func (s *Store) AddEvent(e Event) {
	s.mu.Lock()
	if !s.closed {
		s.events = append(s.events, e)
	}
	s.mu.Unlock()
}

// SetClient queues an update of what a client said about itself.
func (s *Store) SetClient(c Client) {
	s.mu.Lock()
	if !s.closed {
		s.clients = append(s.clients, c)
	}
	s.mu.Unlock()
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	return Stats{Reports: s.nReports.Load(), Events: s.nEvents.Load(), Dropped: s.nDropped.Load(),
		Flushes: s.nFlushes.Load(), Errors: s.nErrors.Load()}
}

func (s *Store) loop() {
	defer close(s.done)
	t := time.NewTicker(s.opt.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if err := s.Flush(context.Background()); err != nil {
			s.log.WithError(err).Warn("store: flush failed; retrying")
		}
		if s.opt.Now().Sub(s.lastPrune) >= time.Hour {
			if err := s.Prune(context.Background()); err != nil {
				s.log.WithError(err).Warn("store: retention failed")
			}
		}
	}
}

// Close commits everything queued and closes the database.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	if !s.opt.NoBackground {
		close(s.stop)
	}
	<-s.done
	err := s.Flush(context.Background())
	if _, e := s.w.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); e != nil && err == nil && s.r != s.w {
		err = fmt.Errorf("store: checkpoint: %w", e)
	}
	if s.r != s.w {
		s.r.Close()
	}
	if e := s.w.Close(); err == nil && e != nil {
		err = fmt.Errorf("store: close: %w", e)
	}
	return err
}

// Flush commits everything queued now, in one transaction. On failure the batch is put back at
// the head of the queues and retried by the next flush.
func (s *Store) Flush(ctx context.Context) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	reps, evs, cls := s.reports, s.events, s.clients
	s.reports, s.events, s.clients = nil, nil, nil
	s.mu.Unlock()
	if len(reps)+len(evs)+len(cls) == 0 && !s.bucketDue() {
		return nil
	}
	if err := s.write(ctx, reps, evs, cls); err != nil {
		s.nErrors.Add(1)
		s.mu.Lock()
		s.reports = append(reps, s.reports...)
		s.events = append(evs, s.events...)
		s.clients = append(cls, s.clients...)
		s.mu.Unlock()
		return err
	}
	s.nFlushes.Add(1)
	s.nEvents.Add(uint64(len(evs)))
	return nil
}

// bucketDue reports whether the clock has left the newest open fine bucket, so its summaries
// should be written even without new reports.
func (s *Store) bucketDue() bool {
	if s.opt.Now().Unix()/fineRes*fineRes <= s.fineW {
		return false
	}
	s.amu.Lock()
	defer s.amu.Unlock()
	return len(s.open)+len(s.pending) > 0
}

// group is the entries of one reporter in one fine bucket within a flush: one reports row.
type group struct {
	rep     int64
	ts      int64
	entries []entry
}

func (s *Store) write(ctx context.Context, reps []Report, evs []Event, cls []Client) (err error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	// Writer state changes stick only once the commit succeeded: scalars are copies, map
	// insertions are undone on failure.
	nextID, lastTS := s.nextID, s.lastTS
	var newReps []repKey
	var newPairs []pairKey
	var newReasons []string
	// The newest entries of this flush, applied to s.latest once committed.
	ov := map[int64]entry{}
	ovRep := map[int64]int64{}
	defer func() {
		if err == nil {
			return
		}
		tx.Rollback()
		s.lmu.Lock()
		defer s.lmu.Unlock()
		for _, k := range newPairs {
			delete(s.pairRep, s.pairs[k])
			delete(s.pairIDs, s.pairs[k])
			delete(s.pairs, k)
		}
		for _, k := range newReps {
			delete(s.latest, s.reporters[k])
			delete(s.repKeys, s.reporters[k])
			delete(s.reporters, k)
		}
		for _, r := range newReasons {
			delete(s.reasons, r)
		}
	}()
	var groups []*group
	var entries int
	if len(reps) > 0 {
		byKey := map[[2]int64]*group{}
		now := s.opt.Now()
		for i := range reps {
			r := &reps[i]
			t := r.Time
			if t.IsZero() {
				t = now
			}
			rk := repKey{r.Mesh, r.From}
			rid, ok := s.reporters[rk]
			if !ok {
				res, err := tx.ExecContext(ctx, "INSERT INTO reporters (mesh, uuid) VALUES (?, ?)", rk.mesh, rk.uuid)
				if err != nil {
					return fmt.Errorf("store: reporter: %w", err)
				}
				if rid, err = res.LastInsertId(); err != nil {
					return fmt.Errorf("store: reporter: %w", err)
				}
				s.reporters[rk] = rid
				s.lmu.Lock()
				s.repKeys[rid] = rk
				s.lmu.Unlock()
				newReps = append(newReps, rk)
			}
			pk := pairKey{r.Mesh, r.From, r.To}
			pid, ok := s.pairs[pk]
			if !ok {
				res, err := tx.ExecContext(ctx, "INSERT INTO pairs (mesh, src, dst) VALUES (?, ?, ?)", pk.mesh, pk.src, pk.dst)
				if err != nil {
					return fmt.Errorf("store: pair: %w", err)
				}
				if pid, err = res.LastInsertId(); err != nil {
					return fmt.Errorf("store: pair: %w", err)
				}
				s.pairs[pk], s.pairRep[pid] = pid, rid
				s.lmu.Lock()
				s.pairIDs[pid] = pk
				s.lmu.Unlock()
				newPairs = append(newPairs, pk)
			}
			reason, ok := s.reasons[r.Reason]
			if !ok {
				res, err := tx.ExecContext(ctx, "INSERT INTO reasons (text) VALUES (?)", r.Reason)
				if err != nil {
					return fmt.Errorf("store: reason: %w", err)
				}
				if reason, err = res.LastInsertId(); err != nil {
					return fmt.Errorf("store: reason: %w", err)
				}
				s.reasons[r.Reason] = reason
				s.lmu.Lock()
				s.reasonText[reason] = r.Reason
				s.lmu.Unlock()
				newReasons = append(newReasons, r.Reason)
			}
			e := entry{pair: pid, reason: reason, path: r.Path, sent: r.Sent, received: r.Received, lost: r.Lost,
				rttMin: r.RTTMin, rttAvg: r.RTTAvg, rttP50: r.RTTP50, rttP99: r.RTTP99, rttMax: r.RTTMax, jitter: r.Jitter}
			// Commit order is time order (retention and replay rely on it), and never before
			// the written summaries (a report there would miss its bucket after a crash).
			e.ts = max(t.UnixMilli(), lastTS, s.fineW*1000)
			lastTS = e.ts
			// Only this goroutine changes s.latest, so reading it unlocked is safe.
			p, had := ov[pid]
			if !had {
				p, had = s.latest[rid][pid]
			}
			if had && e.sent >= p.sent {
				e.dSent = int64(e.sent - p.sent)
				e.dLost = max(int64(e.lost)-int64(p.lost), 0)
			} else { // first report, or the reporter restarted its counters
				e.dSent, e.dLost = int64(e.sent), int64(e.lost)
			}
			e.dLost = min(e.dLost, e.dSent)
			ov[pid], ovRep[pid] = e, rid
			gk := [2]int64{rid, e.ts / 1000 / fineRes}
			g := byKey[gk]
			if g == nil {
				g = &group{rep: rid, ts: e.ts}
				byKey[gk] = g
				groups = append(groups, g)
			}
			g.entries = append(g.entries, e)
			entries++
		}
		ins, err := tx.PrepareContext(ctx, "INSERT INTO reports (id, ts, reporter, n, entries) VALUES (?, ?, ?, ?, ?)")
		if err != nil {
			return fmt.Errorf("store: report: %w", err)
		}
		defer ins.Close()
		var blob []byte
		touched := map[int64]bool{}
		// Groups were created in the order of their first entry, so ids follow time.
		for _, g := range groups {
			blob = blob[:0]
			for i := range g.entries {
				blob = appendEntry(blob, &g.entries[i], g.ts)
			}
			if _, err := ins.ExecContext(ctx, nextID, g.ts, g.rep, len(g.entries), blob); err != nil {
				return fmt.Errorf("store: report: %w", err)
			}
			nextID++
			touched[g.rep] = true
		}
		up, err := tx.PrepareContext(ctx, "INSERT OR REPLACE INTO latest (reporter, ts, entries) VALUES (?, ?, ?)")
		if err != nil {
			return fmt.Errorf("store: latest: %w", err)
		}
		defer up.Close()
		for rep := range touched {
			merged := make(map[int64]entry, len(s.latest[rep])+1)
			for k, e := range s.latest[rep] {
				merged[k] = e
			}
			for k, e := range ov {
				if ovRep[k] == rep {
					merged[k] = e
				}
			}
			base, b := encodeEntries(merged, blob[:0])
			blob = b
			if _, err := up.ExecContext(ctx, rep, base, blob); err != nil {
				return fmt.Errorf("store: latest: %w", err)
			}
		}
	}
	for _, e := range evs {
		t := e.Time
		if t.IsZero() {
			t = s.opt.Now()
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO events (ts, mesh, uuid, kind, addr, detail) VALUES (?,?,?,?,?,?)",
			t.UnixMilli(), e.Mesh, e.UUID, e.Kind, e.Addr, e.Detail); err != nil {
			return fmt.Errorf("store: event: %w", err)
		}
	}
	for _, c := range cls {
		t := c.Seen
		if t.IsZero() {
			t = s.opt.Now()
		}
		pm := string(c.PortMap)
		if pm == "" {
			pm = "null"
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO clients (mesh, uuid, ts, addr, public, version,
			mapping, filtering, hairpin, portmap, online) VALUES (?,?,?,?,?,?,?,?,?,?,?)`,
			c.Mesh, c.UUID, t.UnixMilli(), c.Addr, c.Public, c.Version, c.Mapping, c.Filtering, c.Hairpin,
			pm, c.Online); err != nil {
			return fmt.Errorf("store: client: %w", err)
		}
	}
	// Summaries: a bucket is complete once time has moved past it (report times never
	// decrease, and the clock is the bound for pairs that went quiet).
	nowBucket := max(s.opt.Now().Unix(), lastTS/1000) / fineRes * fineRes
	firstBucket := nowBucket
	if len(groups) > 0 {
		firstBucket = min(groups[0].ts/1000/fineRes*fineRes, nowBucket)
	}
	// Buckets before the first new report's bucket are complete: write them before adding.
	closed := s.takeClosed(firstBucket)
	if err := s.writeSummaries(ctx, tx, closed); err != nil {
		s.restore(closed)
		return err
	}
	fineW := max(s.fineW, firstBucket)
	if err := setMeta(ctx, tx, "fine_written", fineW); err != nil {
		s.restore(closed)
		return err
	}
	hourW, err := s.rollup(ctx, tx, fineW)
	if err != nil {
		s.restore(closed)
		return err
	}
	if err := tx.Commit(); err != nil {
		s.restore(closed)
		return fmt.Errorf("store: commit: %w", err)
	}
	s.nextID, s.lastTS, s.fineW, s.hourW = nextID, lastTS, fineW, hourW
	if len(ov) > 0 {
		s.lmu.Lock()
		for k, e := range ov {
			rep := ovRep[k]
			m := s.latest[rep]
			if m == nil {
				m = map[int64]entry{}
				s.latest[rep] = m
				mesh := s.repKeys[rep].mesh
				if s.meshReps[mesh] == nil {
					s.meshReps[mesh] = map[int64]bool{}
				}
				s.meshReps[mesh][rep] = true
			}
			m[k] = e
		}
		s.lmu.Unlock()
	}
	for _, g := range groups {
		for i := range g.entries {
			s.addFine(&g.entries[i])
		}
	}
	s.nReports.Add(uint64(entries))
	return nil
}

func encodeEntries(m map[int64]entry, b []byte) (int64, []byte) {
	var base int64 = 1 << 62
	for _, e := range m {
		base = min(base, e.ts)
	}
	if len(m) == 0 {
		base = 0
	}
	for _, e := range m {
		b = appendEntry(b, &e, base)
	}
	return base, b
}

// addFine adds a committed report to its pair's open fine bucket; a bucket it leaves behind
// is written by the next flush.
func (s *Store) addFine(r *entry) {
	b := r.ts / 1000 / fineRes * fineRes
	s.amu.Lock()
	a := s.open[r.pair]
	if a == nil || a.bucket != b {
		if a != nil {
			// ts never decreases, so a.bucket < b.
			s.pending = append(s.pending, closedAgg{r.pair, a})
		}
		a = &agg{bucket: b}
		s.open[r.pair] = a
	}
	a.add(r)
	s.amu.Unlock()
}

type closedAgg struct {
	pair int64
	a    *agg
}

// takeClosed removes and returns the pending buckets and the open ones that start before bucket.
func (s *Store) takeClosed(bucket int64) []closedAgg {
	s.amu.Lock()
	defer s.amu.Unlock()
	out := s.pending
	s.pending = nil
	if len(s.open) == 0 || bucket <= s.fineW {
		return out // open buckets start at or after fineW
	}
	for p, a := range s.open {
		if a.bucket < bucket {
			out = append(out, closedAgg{p, a})
			delete(s.open, p)
		}
	}
	return out
}

// restore puts buckets taken for a failed write back for the next flush.
func (s *Store) restore(c []closedAgg) {
	s.amu.Lock()
	defer s.amu.Unlock()
	s.pending = append(c, s.pending...)
}

const upsertSummary = `INSERT INTO summaries (res, pair, bucket, n, rtt_sum, rtt_min, rtt_max, rtt_p99,
	jit_sum, d_sent, d_lost, path) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)
	ON CONFLICT (res, pair, bucket) DO UPDATE SET n = n + excluded.n, rtt_sum = rtt_sum + excluded.rtt_sum,
	rtt_min = min(rtt_min, excluded.rtt_min), rtt_max = max(rtt_max, excluded.rtt_max),
	rtt_p99 = max(rtt_p99, excluded.rtt_p99), jit_sum = jit_sum + excluded.jit_sum,
	d_sent = d_sent + excluded.d_sent, d_lost = d_lost + excluded.d_lost, path = excluded.path`

func (s *Store) writeSummaries(ctx context.Context, tx *sql.Tx, c []closedAgg) error {
	if len(c) == 0 {
		return nil
	}
	st, err := tx.PrepareContext(ctx, upsertSummary)
	if err != nil {
		return fmt.Errorf("store: summaries: %w", err)
	}
	defer st.Close()
	for _, x := range c {
		a := x.a
		if _, err := st.ExecContext(ctx, fineRes, x.pair, a.bucket, a.n, a.rttSum, a.rttMin, a.rttMax, a.rttP99,
			a.jit, a.dSent, a.dLost, int64(a.path)); err != nil {
			return fmt.Errorf("store: summaries: %w", err)
		}
	}
	return nil
}

// rollup builds the hourly summaries of every hour that the fine watermark has passed.
func (s *Store) rollup(ctx context.Context, tx *sql.Tx, fineW int64) (int64, error) {
	h := s.hourW
	limit := fineW / coarseRes * coarseRes // hours before this are complete
	for h < limit {
		// Skip empty stretches (server down for days) in one step.
		var next sql.NullInt64
		if err := tx.QueryRowContext(ctx, "SELECT min(bucket) FROM summaries WHERE res = ? AND bucket >= ? AND bucket < ?",
			fineRes, h, limit).Scan(&next); err != nil {
			return 0, fmt.Errorf("store: rollup: %w", err)
		}
		if !next.Valid {
			h = limit
			break
		}
		h = next.Int64 / coarseRes * coarseRes
		if _, err := tx.ExecContext(ctx, `INSERT INTO summaries (res, pair, bucket, n, rtt_sum, rtt_min, rtt_max,
			rtt_p99, jit_sum, d_sent, d_lost, path)
			SELECT ?, pair, ?, sum(n), sum(rtt_sum), min(rtt_min), max(rtt_max), max(rtt_p99), sum(jit_sum),
			sum(d_sent), sum(d_lost), path FROM summaries WHERE res = ? AND bucket >= ? AND bucket < ? GROUP BY pair
			ON CONFLICT (res, pair, bucket) DO UPDATE SET n = n + excluded.n, rtt_sum = rtt_sum + excluded.rtt_sum,
			rtt_min = min(rtt_min, excluded.rtt_min), rtt_max = max(rtt_max, excluded.rtt_max),
			rtt_p99 = max(rtt_p99, excluded.rtt_p99), jit_sum = jit_sum + excluded.jit_sum,
			d_sent = d_sent + excluded.d_sent, d_lost = d_lost + excluded.d_lost, path = excluded.path`,
			coarseRes, h, fineRes, h, h+coarseRes); err != nil {
			return 0, fmt.Errorf("store: rollup: %w", err)
		}
		h += coarseRes
	}
	if h != s.hourW {
		if err := setMeta(ctx, tx, "hour_rolled", h); err != nil {
			return 0, err
		}
	}
	return h, nil
}

func setMeta(ctx context.Context, tx *sql.Tx, key string, v int64) error {
	if _, err := tx.ExecContext(ctx, "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", key, v); err != nil {
		return fmt.Errorf("store: meta %s: %w", key, err)
	}
	return nil
}
