package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// Cell is the newest report of one reporter about one peer.
type Cell struct {
	From     string    `json:"from"`
	To       string    `json:"to"`
	Time     time.Time `json:"time"`
	Path     Path      `json:"path"`
	Reason   string    `json:"reason,omitempty"`
	Sent     uint32    `json:"sent"`
	Received uint32    `json:"received"`
	Lost     uint32    `json:"lost"`
	LossPct  float64   `json:"loss_pct"`
	RTTMin   uint32    `json:"rtt_min_us"`
	RTTAvg   uint32    `json:"rtt_avg_us"`
	RTTP50   uint32    `json:"rtt_p50_us"`
	RTTP99   uint32    `json:"rtt_p99_us"`
	RTTMax   uint32    `json:"rtt_max_us"`
	Jitter   uint32    `json:"jitter_us"`
}

// Matrix is a mesh's peer × peer reachability.
type Matrix struct {
	Mesh  string   `json:"mesh"`
	Peers []string `json:"peers"` // online members (all reporters if the server tracks none)
	Cells []Cell   `json:"cells"` // reports between Peers, by From then To
}

// LossPct is lost/sent in percent (0 when nothing was sent).
func LossPct(sent, lost uint32) float64 {
	if sent == 0 {
		return 0
	}
	return 100 * float64(lost) / float64(sent)
}

// Matrix returns the newest report of every pair of the mesh's members.
func (s *Store) Matrix(ctx context.Context, mesh string) (Matrix, error) {
	m := Matrix{Mesh: mesh, Peers: []string{}, Cells: []Cell{}}
	online := map[string]bool{}
	known := 0
	rows, err := s.r.QueryContext(ctx, "SELECT uuid, online FROM clients WHERE mesh = ? ORDER BY uuid", mesh)
	if err != nil {
		return m, fmt.Errorf("store: matrix: %w", err)
	}
	for rows.Next() {
		var u string
		var on bool
		if err := rows.Scan(&u, &on); err != nil {
			rows.Close()
			return m, fmt.Errorf("store: matrix: %w", err)
		}
		known++
		if on {
			online[u] = true
			m.Peers = append(m.Peers, u)
		}
	}
	rows.Close()
	// The cells come from the newest entries the store keeps in memory (committed ones).
	seen := map[string]bool{}
	s.lmu.RLock()
	for rep := range s.meshReps[mesh] {
		for _, e := range s.latest[rep] {
			k := s.pairIDs[e.pair]
			if known > 0 && (!online[k.src] || !online[k.dst]) {
				continue
			}
			m.Cells = append(m.Cells, Cell{From: k.src, To: k.dst, Time: time.UnixMilli(e.ts).UTC(), Path: e.path,
				Reason: s.reasonText[e.reason], Sent: e.sent, Received: e.received, Lost: e.lost,
				LossPct: LossPct(e.sent, e.lost), RTTMin: e.rttMin, RTTAvg: e.rttAvg, RTTP50: e.rttP50,
				RTTP99: e.rttP99, RTTMax: e.rttMax, Jitter: e.jitter})
			if known == 0 {
				for _, u := range []string{k.src, k.dst} {
					if !seen[u] {
						seen[u] = true
						m.Peers = append(m.Peers, u)
					}
				}
			}
		}
	}
	s.lmu.RUnlock()
	sort.Slice(m.Cells, func(i, j int) bool {
		a, b := &m.Cells[i], &m.Cells[j]
		return a.From < b.From || a.From == b.From && a.To < b.To
	})
	sort.Strings(m.Peers)
	return m, nil
}

// MeshInfo is one mesh in the mesh list.
type MeshInfo struct {
	Name    string `json:"name"`
	Clients int    `json:"clients"` // known members
	Online  int    `json:"online"`
}

// Meshes lists the meshes the store knows, by name.
func (s *Store) Meshes(ctx context.Context) ([]MeshInfo, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT mesh, sum(n), sum(o) FROM (
		SELECT mesh, count(*) AS n, sum(online) AS o FROM clients GROUP BY mesh
		UNION ALL SELECT DISTINCT mesh, 0, 0 FROM pairs) GROUP BY mesh ORDER BY mesh`)
	if err != nil {
		return nil, fmt.Errorf("store: meshes: %w", err)
	}
	defer rows.Close()
	out := []MeshInfo{}
	for rows.Next() {
		var m MeshInfo
		if err := rows.Scan(&m.Name, &m.Clients, &m.Online); err != nil {
			return nil, fmt.Errorf("store: meshes: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// Clients returns what the mesh's clients said about themselves, by UUID.
func (s *Store) Clients(ctx context.Context, mesh string) ([]Client, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT uuid, ts, addr, public, version, mapping, filtering, hairpin,
		portmap, online FROM clients WHERE mesh = ? ORDER BY uuid`, mesh)
	if err != nil {
		return nil, fmt.Errorf("store: clients: %w", err)
	}
	defer rows.Close()
	out := []Client{}
	for rows.Next() {
		c := Client{Mesh: mesh}
		var ts int64
		var pm string
		if err := rows.Scan(&c.UUID, &ts, &c.Addr, &c.Public, &c.Version, &c.Mapping, &c.Filtering, &c.Hairpin,
			&pm, &c.Online); err != nil {
			return nil, fmt.Errorf("store: clients: %w", err)
		}
		c.Seen = time.UnixMilli(ts).UTC()
		c.PortMap = json.RawMessage(pm)
		out = append(out, c)
	}
	return out, rows.Err()
}

// Events returns the mesh's membership events in [from, to], oldest first, at most limit (the newest).
func (s *Store) Events(ctx context.Context, mesh string, from, to time.Time, limit int) ([]Event, error) {
	if limit <= 0 {
		limit = 1000
	}
	// The newest `limit` events of the range, returned oldest first.
	rows, err := s.r.QueryContext(ctx, `SELECT ts, uuid, kind, addr, detail FROM (
		SELECT id, ts, uuid, kind, addr, detail FROM events WHERE mesh = ? AND ts >= ? AND ts <= ?
		ORDER BY ts DESC, id DESC LIMIT ?) ORDER BY ts, id`, mesh, from.UnixMilli(), to.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("store: events: %w", err)
	}
	defer rows.Close()
	out := []Event{}
	for rows.Next() {
		e := Event{Mesh: mesh}
		var ts int64
		if err := rows.Scan(&ts, &e.UUID, &e.Kind, &e.Addr, &e.Detail); err != nil {
			return nil, fmt.Errorf("store: events: %w", err)
		}
		e.Time = time.UnixMilli(ts).UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}

// Point is one bucket of a pair's history.
type Point struct {
	Time    time.Time `json:"time"` // bucket start
	Seconds int       `json:"seconds"`
	Reports int64     `json:"reports"`
	RTTAvg  float64   `json:"rtt_avg_us"` // mean of the reports' averages
	RTTMin  int64     `json:"rtt_min_us"`
	RTTMax  int64     `json:"rtt_max_us"`
	RTTP99  int64     `json:"rtt_p99_us"` // highest p99 reported in the bucket
	Jitter  float64   `json:"jitter_us"`
	Sent    int64     `json:"sent"` // probes sent during the bucket
	Lost    int64     `json:"lost"`
	LossPct float64   `json:"loss_pct"`
	Path    Path      `json:"path"` // path of the bucket's last report
}

func (a *agg) point(res int64) Point {
	p := Point{Time: time.Unix(a.bucket, 0).UTC(), Seconds: int(res), Reports: a.n, RTTMin: a.rttMin,
		RTTMax: a.rttMax, RTTP99: a.rttP99, Sent: a.dSent, Lost: a.dLost, Path: a.path}
	if a.n > 0 {
		p.RTTAvg = float64(a.rttSum) / float64(a.n)
		p.Jitter = float64(a.jit) / float64(a.n)
	}
	if a.dSent > 0 {
		p.LossPct = 100 * float64(a.dLost) / float64(a.dSent)
	}
	return p
}

func (a *agg) merge(b *agg) {
	if a.n == 0 || (b.n > 0 && b.rttMin < a.rttMin) {
		a.rttMin = b.rttMin
	}
	a.rttMax = max(a.rttMax, b.rttMax)
	a.rttP99 = max(a.rttP99, b.rttP99)
	a.n += b.n
	a.rttSum += b.rttSum
	a.jit += b.jit
	a.dSent += b.dSent
	a.dLost += b.dLost
	a.path = b.path
}

// ResolutionFor is the bucket width History uses for a range: 5 minutes up to two days, else
// one hour.
func ResolutionFor(span time.Duration) time.Duration {
	if span <= fineKeep {
		return fineRes * time.Second
	}
	return coarseRes * time.Second
}

// History returns the pair's summaries of the buckets starting in [from, to] at ResolutionFor(to-from), including the
// bucket still being filled.
func (s *Store) History(ctx context.Context, mesh, src, dst string, from, to time.Time) ([]Point, error) {
	res := int64(ResolutionFor(to.Sub(from)) / time.Second)
	var pair int64
	err := s.r.QueryRowContext(ctx, "SELECT id FROM pairs WHERE mesh = ? AND src = ? AND dst = ?", mesh, src, dst).Scan(&pair)
	if err == sql.ErrNoRows {
		return []Point{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: history: %w", err)
	}
	lo, hi := from.Unix()/res*res, to.Unix()+1 // a bucket starting at `to` holds reports of `to`
	buckets := map[int64]*agg{}
	var order []int64
	get := func(b int64) *agg {
		a := buckets[b]
		if a == nil {
			a = &agg{bucket: b}
			buckets[b] = a
			order = append(order, b)
		}
		return a
	}
	scan := func(r int64, lo, hi int64) error {
		rows, err := s.r.QueryContext(ctx, `SELECT bucket, n, rtt_sum, rtt_min, rtt_max, rtt_p99, jit_sum, d_sent,
			d_lost, path FROM summaries WHERE res = ? AND pair = ? AND bucket >= ? AND bucket < ? ORDER BY bucket`,
			r, pair, lo, hi)
		if err != nil {
			return fmt.Errorf("store: history: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var b agg
			if err := rows.Scan(&b.bucket, &b.n, &b.rttSum, &b.rttMin, &b.rttMax, &b.rttP99, &b.jit, &b.dSent,
				&b.dLost, &b.path); err != nil {
				return fmt.Errorf("store: history: %w", err)
			}
			get(b.bucket / res * res).merge(&b)
		}
		return rows.Err()
	}
	// No commit while we read: the database and the in-memory buckets stay consistent.
	s.wmu.Lock()
	defer s.wmu.Unlock()
	hourW := s.hourW
	s.amu.Lock()
	var mem []agg
	for _, x := range s.pending {
		if x.pair == pair {
			mem = append(mem, *x.a)
		}
	}
	if a := s.open[pair]; a != nil {
		mem = append(mem, *a)
	}
	s.amu.Unlock()
	if res == fineRes {
		if err := scan(fineRes, lo, hi); err != nil {
			return nil, err
		}
	} else {
		// Rolled-up hours, then the fine buckets of the hours not rolled up yet.
		if err := scan(coarseRes, lo, min(hi, hourW)); err != nil {
			return nil, err
		}
		if err := scan(fineRes, max(lo, hourW), hi); err != nil {
			return nil, err
		}
	}
	for i := range mem {
		if mem[i].bucket >= lo && mem[i].bucket < hi {
			get(mem[i].bucket / res * res).merge(&mem[i])
		}
	}
	sort.Slice(order, func(i, j int) bool { return order[i] < order[j] })
	out := make([]Point, 0, len(order))
	for _, b := range order {
		out = append(out, buckets[b].point(res))
	}
	return out, nil
}

// Totals are the figures /metrics exports.
type Totals struct {
	Clients int          // online clients
	Meshes  int          // meshes with an online client
	Paths   map[Path]int // pairs by path, among reports newer than the window
}

// Totals counts online clients, meshes and the paths of pairs reported since `since`.
func (s *Store) Totals(ctx context.Context, since time.Time) (Totals, error) {
	t := Totals{Paths: map[Path]int{}}
	if err := s.r.QueryRowContext(ctx, "SELECT count(*), count(DISTINCT mesh) FROM clients WHERE online = 1").Scan(
		&t.Clients, &t.Meshes); err != nil {
		return t, fmt.Errorf("store: totals: %w", err)
	}
	cut := since.UnixMilli()
	s.lmu.RLock()
	defer s.lmu.RUnlock()
	for _, m := range s.latest {
		for _, e := range m {
			if e.ts >= cut {
				t.Paths[e.path]++
			}
		}
	}
	return t, nil
}

// ReportCount is the number of stored peer reports.
func (s *Store) ReportCount(ctx context.Context) (int64, error) {
	var n int64
	if err := s.r.QueryRowContext(ctx, "SELECT coalesce(sum(n), 0) FROM reports").Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count: %w", err)
	}
	return n, nil
}
