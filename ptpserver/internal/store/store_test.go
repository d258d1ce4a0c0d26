package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// clock is a settable simulated clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *clock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC) // an hour boundary

func openTest(t testing.TB, path string, c *clock, opt Options) *Store {
	t.Helper()
	opt.Now = c.Now
	opt.NoBackground = true
	s, err := Open(context.Background(), path, opt)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func flush(t testing.TB, s *Store) {
	t.Helper()
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func count(t testing.TB, path, q string, args ...any) int64 {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int64
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMigrations(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "m.db")
	c := &clock{t: t0}
	s := openTest(t, path, c, Options{})
	s.AddEvent(Event{Time: t0, Mesh: "m", UUID: "a", Kind: EventJoin, Addr: "1.2.3.4:5"})
	flush(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if v := count(t, path, "PRAGMA user_version"); v != int64(SchemaVersion) {
		t.Fatalf("user_version %d, want %d", v, SchemaVersion)
	}
	if mode := func() string {
		db, _ := sql.Open("sqlite", "file:"+path)
		defer db.Close()
		var m string
		db.QueryRow("PRAGMA journal_mode").Scan(&m)
		return m
	}(); mode != "wal" {
		t.Fatalf("journal_mode %q, want wal", mode)
	}
	// Reopening runs nothing and keeps the data.
	s = openTest(t, path, c, Options{})
	ev, err := s.Events(ctx, "m", t0.Add(-time.Hour), t0.Add(time.Hour), 0)
	if err != nil || len(ev) != 1 || ev[0].Addr != "1.2.3.4:5" {
		t.Fatalf("events after reopen: %v %v", ev, err)
	}
	s.Close()

	// A later migration applies on top of an existing database and keeps its rows.
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	next := append(append([]string{}, migrations...), "ALTER TABLE events ADD COLUMN extra INTEGER NOT NULL DEFAULT 7")
	if err := migrate(ctx, db, next); err != nil {
		t.Fatal(err)
	}
	var extra int
	var addr string
	if err := db.QueryRow("SELECT addr, extra FROM events").Scan(&addr, &extra); err != nil || addr != "1.2.3.4:5" || extra != 7 {
		t.Fatalf("after migration: %q %d %v", addr, extra, err)
	}
	// A failing step leaves the version where it was.
	bad := append(append([]string{}, next...), "CREATE TABLE x (a); SELECT no_such_function()")
	if err := migrate(ctx, db, bad); err == nil {
		t.Fatal("failing migration succeeded")
	}
	var v int
	db.QueryRow("PRAGMA user_version").Scan(&v)
	var tables int
	db.QueryRow("SELECT count(*) FROM sqlite_master WHERE name = 'x'").Scan(&tables)
	db.Close()
	if v != len(next) || tables != 0 {
		t.Fatalf("after failed migration: version %d (want %d), table x present %d", v, len(next), tables)
	}
	// This build refuses the now newer database.
	if _, err := Open(ctx, path, Options{NoBackground: true}); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("open newer schema: %v, want ErrSchemaTooNew", err)
	}
}

func rep(at time.Time, from, to string, sent, lost, rtt uint32) Report {
	return Report{Time: at, Mesh: "m", From: from, To: to, Path: PathDirect, Sent: sent, Received: sent - lost,
		Lost: lost, RTTMin: rtt - 10, RTTAvg: rtt, RTTP50: rtt, RTTP99: rtt + 50, RTTMax: rtt + 100, Jitter: 7}
}

func TestMatrixAndHistory(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.db")
	c := &clock{t: t0}
	s := openTest(t, path, c, Options{})
	defer s.Close()
	for _, u := range []string{"a", "b", "c"} {
		s.SetClient(Client{Mesh: "m", UUID: u, Online: u != "c", Mapping: "endpoint-independent",
			PortMap: []byte(`[{"protocol":"pcp","gateway":false}]`)})
	}
	s.SetClient(Client{Mesh: "other", UUID: "z", Online: true})
	// a→b every minute for 12 minutes: cumulative sent +120 per minute, lost +6 in minutes 3 and 7.
	var sent, lost uint32
	for i := 0; i < 12; i++ {
		at := t0.Add(time.Duration(i)*time.Minute + 30*time.Second)
		c.Set(at)
		sent += 120
		if i == 3 || i == 7 {
			lost += 6
		}
		s.AddReport(rep(at, "a", "b", sent, lost, uint32(1000+100*i)))
		if i == 5 {
			r := rep(at, "b", "a", 50, 1, 900)
			r.Path, r.Reason = PathRelay, "peer's NAT maps per destination: relayed"
			s.AddReport(r)
			s.AddReport(rep(at, "a", "c", 50, 0, 500)) // c is offline: not in the matrix
		}
		flush(t, s)
	}
	m, err := s.Matrix(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(m.Peers) != "[a b]" || len(m.Cells) != 2 {
		t.Fatalf("matrix peers %v cells %+v", m.Peers, m.Cells)
	}
	ab, ba := m.Cells[0], m.Cells[1]
	if ab.From != "a" || ab.To != "b" || ab.Sent != 1440 || ab.Lost != 12 || ab.RTTAvg != 2100 || ab.Path != PathDirect ||
		ab.LossPct != 100*12.0/1440 || !ab.Time.Equal(t0.Add(11*time.Minute+30*time.Second)) {
		t.Fatalf("a→b cell %+v", ab)
	}
	if ba.Path != PathRelay || ba.Reason != "peer's NAT maps per destination: relayed" || ba.RTTMin != 890 {
		t.Fatalf("b→a cell %+v", ba)
	}
	cl, err := s.Clients(ctx, "m")
	if err != nil || len(cl) != 3 || string(cl[0].PortMap) != `[{"protocol":"pcp","gateway":false}]` || cl[2].Online {
		t.Fatalf("clients %+v %v", cl, err)
	}
	ms, err := s.Meshes(ctx)
	if err != nil || fmt.Sprint(ms) != "[{m 3 2} {other 1 1}]" {
		t.Fatalf("meshes %v %v", ms, err)
	}

	// History: buckets 10:00 (minutes 0-4) and 10:05 (5-9) written, 10:10 (10-11) in memory.
	h, err := s.History(ctx, "m", "a", "b", t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := []Point{
		{Time: t0, Seconds: 300, Reports: 5, RTTAvg: 1200, RTTMin: 990, RTTMax: 1500, RTTP99: 1450, Jitter: 7, Sent: 600, Lost: 6, LossPct: 1, Path: PathDirect},
		{Time: t0.Add(5 * time.Minute), Seconds: 300, Reports: 5, RTTAvg: 1700, RTTMin: 1490, RTTMax: 2000, RTTP99: 1950, Jitter: 7, Sent: 600, Lost: 6, LossPct: 1, Path: PathDirect},
		{Time: t0.Add(10 * time.Minute), Seconds: 300, Reports: 2, RTTAvg: 2050, RTTMin: 1990, RTTMax: 2200, RTTP99: 2150, Jitter: 7, Sent: 240, Lost: 0, LossPct: 0, Path: PathDirect},
	}
	if fmt.Sprint(h) != fmt.Sprint(want) {
		t.Fatalf("history\n got %v\nwant %v", h, want)
	}
	if n := count(t, path, "SELECT count(*) FROM summaries WHERE res = 300"); n != 2+2 { // a→b ×2, b→a, a→c
		t.Fatalf("%d fine summaries written, want 4", n)
	}
	// The counter reset of a restarted reporter counts from zero, not as a negative delta.
	c.Set(t0.Add(12*time.Minute + 30*time.Second))
	s.AddReport(rep(c.Now(), "a", "b", 100, 2, 1000))
	flush(t, s)
	h, _ = s.History(ctx, "m", "a", "b", t0.Add(10*time.Minute), t0.Add(15*time.Minute))
	if len(h) != 1 || h[0].Sent != 340 || h[0].Lost != 2 {
		t.Fatalf("after counter reset: %+v", h)
	}
}

// Reports of one pair spanning several buckets in one flush each land in their own bucket.
func TestBucketsWithinOneFlush(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: t0}
	s := openTest(t, filepath.Join(t.TempDir(), "s.db"), c, Options{})
	defer s.Close()
	for i := 0; i < 20; i++ {
		s.AddReport(rep(t0.Add(time.Duration(i)*time.Minute), "a", "b", uint32(10*(i+1)), 0, 100))
	}
	c.Set(t0.Add(20 * time.Minute))
	flush(t, s)
	flush(t, s) // writes what the first flush closed
	h, err := s.History(ctx, "m", "a", "b", t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 4 {
		t.Fatalf("%d points, want 4: %+v", len(h), h)
	}
	for i, p := range h {
		if p.Reports != 5 || p.Sent != 50 || !p.Time.Equal(t0.Add(time.Duration(5*i)*time.Minute)) {
			t.Fatalf("point %d: %+v", i, p)
		}
	}
}

// A store abandoned without Close (its process died) is reopened: nothing committed is lost
// and the summaries of the open bucket are rebuilt once, not twice.
func TestReplayAfterAbandon(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.db")
	c := &clock{t: t0}
	s1 := openTest(t, path, c, Options{})
	for i := 0; i < 8; i++ { // minutes 0..7: bucket 10:00 written at minute 5, 10:05 open
		at := c.Add(time.Minute)
		s1.AddReport(rep(at, "a", "b", uint32(100*(i+1)), uint32(i), 100))
		flush(t, s1)
	}
	s1.AddReport(rep(c.Now(), "a", "b", 5000, 0, 100)) // queued, never flushed: lost with the process
	// s1 is abandoned here (as after kill -9).
	s2 := openTest(t, path, c, Options{})
	defer s2.Close()
	for i := 8; i < 12; i++ {
		at := c.Add(time.Minute)
		s2.AddReport(rep(at, "a", "b", uint32(100*(i+1)), uint32(i), 100))
		flush(t, s2)
	}
	h, err := s2.History(ctx, "m", "a", "b", t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var n, sent, lost int64
	for _, p := range h {
		n += p.Reports
		sent += p.Sent
		lost += p.Lost
	}
	if n != 12 || sent != 1200 || lost != 11 {
		t.Fatalf("after replay: %d reports, sent %d, lost %d (want 12, 1200, 11): %+v", n, sent, lost, h)
	}
	if got := count(t, path, "SELECT coalesce(sum(n), 0) FROM reports"); got != 12 {
		t.Fatalf("%d reports stored, want 12", got)
	}
	// A graceful close and reopen in the middle of a bucket also counts each report once.
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	s3 := openTest(t, path, c, Options{})
	defer s3.Close()
	at := c.Add(time.Minute)
	s3.AddReport(rep(at, "a", "b", 1300, 12, 100))
	c.Add(10 * time.Minute)
	flush(t, s3)
	flush(t, s3)
	if got := count(t, path, "SELECT sum(n) FROM summaries WHERE res = 300"); got != 13 {
		t.Fatalf("fine summaries count %d reports, want 13", got)
	}
}

func TestRetention(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.db")
	c := &clock{t: t0}
	s := openTest(t, path, c, Options{Retention: 3 * time.Hour})
	defer s.Close()
	// Five hours, one report per minute for a→b; b→a stops after the first hour.
	for i := 0; i < 300; i++ {
		at := t0.Add(time.Duration(i) * time.Minute)
		c.Set(at)
		s.AddReport(rep(at, "a", "b", uint32(10*(i+1)), 0, 100))
		if i < 60 {
			s.AddReport(rep(at, "b", "a", uint32(10*(i+1)), 0, 100))
		}
		if i%30 == 0 {
			s.AddEvent(Event{Time: at, Mesh: "m", UUID: "a", Kind: EventJoin})
		}
		flush(t, s)
	}
	c.Set(t0.Add(5 * time.Hour))
	flush(t, s)
	if err := s.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	cut := t0.Add(2 * time.Hour)
	if n := count(t, path, "SELECT coalesce(sum(n), 0) FROM reports"); n != 180 {
		t.Fatalf("%d reports kept, want 180 (a→b of the last 3 h)", n)
	}
	if n := count(t, path, "SELECT count(*) FROM reports WHERE ts < ?", cut.UnixMilli()); n != 0 {
		t.Fatalf("%d reports older than the retention", n)
	}
	if n := count(t, path, "SELECT count(*) FROM events"); n != 6 {
		t.Fatalf("%d events kept, want 6", n)
	}
	if n := count(t, path, "SELECT count(*) FROM summaries WHERE bucket < ?", cut.Unix()); n != 0 {
		t.Fatalf("%d summaries older than the retention", n)
	}
	if n := count(t, path, "SELECT count(*) FROM summaries WHERE res = 3600"); n != 3 { // hours 12, 13, 14
		t.Fatalf("%d hourly summaries, want 3", n)
	}
	if n := count(t, path, "SELECT count(*) FROM pairs"); n != 1 {
		t.Fatalf("%d pairs, want 1 (b→a aged out)", n)
	}
	m, _ := s.Matrix(ctx, "m")
	if len(m.Cells) != 1 {
		t.Fatalf("matrix after retention: %+v", m)
	}
	// The long-range history uses the hourly summaries plus the hour not rolled up yet.
	h, err := s.History(ctx, "m", "a", "b", t0.Add(-3*24*time.Hour), t0.Add(6*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 3 || h[0].Seconds != 3600 || h[0].Reports != 60 || h[2].Reports != 60 || h[0].Sent != 600 {
		t.Fatalf("hourly history %+v", h)
	}
	// A report of the pruned pair starts it afresh (counters from zero).
	s.AddReport(rep(c.Now(), "b", "a", 5, 0, 100))
	flush(t, s)
	m, _ = s.Matrix(ctx, "m")
	if len(m.Cells) != 2 {
		t.Fatalf("matrix after new report: %+v", m)
	}
}

func TestQueueLimitAndClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	c := &clock{t: t0}
	s, err := Open(context.Background(), path, Options{Now: c.Now, QueueLimit: 10, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 15; i++ {
		s.AddReport(rep(t0, "a", "b", uint32(i), 0, 100))
	}
	if err := s.Close(); err != nil { // the SIGTERM path: Close commits the queue
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Reports != 10 || st.Dropped != 5 {
		t.Fatalf("stats %+v, want 10 committed, 5 dropped", st)
	}
	if n := count(t, path, "SELECT coalesce(sum(n), 0) FROM reports"); n != 10 {
		t.Fatalf("%d reports after Close, want 10", n)
	}
}

func TestMemoryStore(t *testing.T) {
	c := &clock{t: t0}
	s := openTest(t, "", c, Options{})
	defer s.Close()
	s.AddReport(rep(t0, "a", "b", 10, 1, 100))
	flush(t, s)
	m, err := s.Matrix(context.Background(), "m")
	if err != nil || len(m.Cells) != 1 || m.Cells[0].Lost != 1 {
		t.Fatalf("%+v %v", m, err)
	}
}

// Queries run while the flush goroutine commits (go test -race checks the locking).
func TestConcurrentQueries(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "s.db"), Options{FlushInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.Matrix(ctx, "m"); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.Totals(ctx, time.Now().Add(-time.Hour)); err != nil {
					t.Error(err)
					return
				}
				s.History(ctx, "m", "a", "b", time.Now().Add(-time.Hour), time.Now())
			}
		}()
	}
	for i := 0; i < 300; i++ {
		s.AddReport(rep(time.Now(), "a", fmt.Sprint("p", i%7), uint32(i), 0, 100))
		s.AddReport(rep(time.Now(), fmt.Sprint("q", i%5), "b", uint32(i), 0, 100))
		if i%50 == 0 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	close(stop)
	wg.Wait()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	m, err := s.Matrix(ctx, "m")
	if err != nil || len(m.Cells) != 12 {
		t.Fatalf("%d cells, %v", len(m.Cells), err)
	}
}
