package store

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkIngest feeds one simulated minute per iteration of 10,000 clients in 1,000 meshes
// of 10, each reporting its 9 peers once a minute (90,000 reports), committed once per
// simulated second as the flush goroutine would. "core-%" is the process CPU time per simulated
// minute as a share of one core; -benchtime=1440x runs the 24 simulated hours.
func BenchmarkIngest(b *testing.B) {
	const meshes, size = 1000, 10
	uuids := make([]string, meshes*size)
	for i := range uuids {
		uuids[i] = fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
	}
	dir := b.TempDir()
	c := &clock{t: t0}
	s := openTest(b, filepath.Join(dir, "ingest.db"), c, Options{})
	defer s.Close()
	var cum uint32
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		minute := t0.Add(time.Duration(i) * time.Minute)
		cum += 120
		for sec := 0; sec < 60; sec++ {
			at := minute.Add(time.Duration(sec) * time.Second)
			c.Set(at)
			// Clients spread their reports over the minute.
			for cl := sec; cl < len(uuids); cl += 60 {
				m := cl / size
				for p := 0; p < size; p++ {
					peer := m*size + p
					if peer == cl {
						continue
					}
					s.AddReport(Report{Time: at, Mesh: fmt.Sprint("mesh", m), From: uuids[cl], To: uuids[peer],
						Path: Path(1 + peer%4), Sent: cum, Received: cum - uint32(peer%3), Lost: uint32(peer % 3),
						RTTMin: 900, RTTAvg: 1000 + uint32(cl%500), RTTP50: 1000, RTTP99: 1800, RTTMax: 2500, Jitter: 40})
				}
			}
			if err := s.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
	}
	cpu := cpuTime() - cpu0
	b.StopTimer()
	b.ReportMetric(100*cpu.Seconds()/float64(b.N)/60, "core-%")
	b.ReportMetric(float64(b.N*meshes*size*(size-1))/cpu.Seconds(), "reports/cpu-s")
	if st, err := os.Stat(filepath.Join(dir, "ingest.db")); err == nil {
		b.ReportMetric(float64(st.Size())/float64(b.N*meshes*size*(size-1)), "db-bytes/report")
	}
}

// MonthFixture builds (once per machine, in the temp directory) a store holding a month of
// reports of a 50-peer mesh: every client reports its 49 peers once a minute (2.16 million
// report rows, 106 million peer entries), with the summaries and newest entries to match. It
// is written by SQL for speed rather than through the ingest path.
func MonthFixture(b *testing.B) (string, time.Time) {
	end := t0
	path := filepath.Join(os.TempDir(), fmt.Sprintf("ptpstore-bench-month-v%d.db", SchemaVersion))
	if _, err := os.Stat(path); err == nil {
		return path, end
	}
	b.Logf("building %s (once)", path)
	tmp := path + ".tmp"
	os.Remove(tmp)
	s := openTest(b, tmp, &clock{t: end}, Options{})
	s.Close()
	db, err := sql.Open("sqlite", "file:"+tmp+"?_pragma=journal_mode(WAL)&_pragma=synchronous(OFF)&_pragma=cache_size(-262144)")
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	start := end.Add(-30 * 24 * time.Hour)
	exec := func(q string, args ...any) {
		if _, err := db.Exec(q, args...); err != nil {
			b.Fatalf("%v: %s", err, q)
		}
	}
	const peers = 50
	uuid := func(i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i) }
	exec("INSERT INTO reasons (id, text) VALUES (1, 'peer''s NAT maps per destination (address-and-port-dependent) and ours filters per address and port: relayed')")
	latest := map[int]map[int64]entry{}
	for a := 0; a < peers; a++ {
		exec("INSERT INTO reporters (id, mesh, uuid) VALUES (?, 'big', ?)", a+1, uuid(a))
		exec(`INSERT INTO clients VALUES ('big', ?, ?, '45.71.0.1:23456', '45.71.0.1:23456', 3, 'endpoint-independent',
			'address-and-port-dependent', 'yes', '[]', 1)`, uuid(a), end.UnixMilli())
		latest[a] = map[int64]entry{}
		for c := 0; c < peers; c++ {
			if c != a {
				id := int64(a*peers + c + 1)
				exec("INSERT INTO pairs (id, mesh, src, dst) VALUES (?, 'big', ?, ?)", id, uuid(a), uuid(c))
				latest[a][id] = entry{pair: id, path: Path(1 + id%4), reason: id % 4 / 3, sent: 43200 * 120,
					received: 43200*120 - 500, lost: 500, dSent: 120, rttMin: 900, rttAvg: 1000 + uint32(id%300),
					rttP50: 1000, rttP99: 1800, rttMax: 2500, jitter: 40}
			}
		}
	}
	tx, _ := db.Begin()
	ins, err := tx.Prepare("INSERT INTO reports (ts, reporter, n, entries) VALUES (?, ?, ?, ?)")
	if err != nil {
		b.Fatal(err)
	}
	for k := 0; k < 30*24*60; k++ {
		ts := start.Add(time.Duration(k) * time.Minute).UnixMilli()
		for a := 0; a < peers; a++ {
			var blob []byte
			for _, e := range latest[a] {
				e.ts, e.sent, e.received = ts, uint32(k*120), uint32(k*120-k/100)
				blob = appendEntry(blob, &e, ts)
			}
			if _, err := ins.Exec(ts, a+1, peers-1, blob); err != nil {
				b.Fatal(err)
			}
		}
		if k%1000 == 999 {
			ins.Close()
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
			tx, _ = db.Begin()
			ins, _ = tx.Prepare("INSERT INTO reports (ts, reporter, n, entries) VALUES (?, ?, ?, ?)")
		}
	}
	ins.Close()
	tx.Commit()
	for a := 0; a < peers; a++ {
		for id, e := range latest[a] {
			e.ts = end.Add(-time.Minute).UnixMilli()
			latest[a][id] = e
		}
		base, blob := encodeEntries(latest[a], nil)
		exec("INSERT INTO latest (reporter, ts, entries) VALUES (?, ?, ?)", a+1, base, blob)
	}
	exec(`WITH RECURSIVE t(k) AS (SELECT 0 UNION ALL SELECT k+1 FROM t WHERE k < ?)
		INSERT INTO summaries SELECT 300, p.id, ? + k*300, 5, 5*(1000 + p.id % 300), 900, 2500, 1800, 200, 600, 3, 1 + p.id % 4
		FROM t, pairs p`, int(fineKeep/(300*time.Second))-1, end.Add(-fineKeep).Unix())
	exec(`WITH RECURSIVE t(k) AS (SELECT 0 UNION ALL SELECT k+1 FROM t WHERE k < ?)
		INSERT INTO summaries SELECT 3600, p.id, ? + k*3600, 60, 60*(1000 + p.id % 300), 900, 2500, 1800, 2400, 7200, 36, 1 + p.id % 4
		FROM t, pairs p`, 30*24-1, start.Unix())
	exec("INSERT INTO meta VALUES ('fine_written', ?), ('hour_rolled', ?)", end.Unix(), end.Unix())
	exec("PRAGMA wal_checkpoint(TRUNCATE)")
	db.Close()
	if err := os.Rename(tmp, path); err != nil {
		b.Fatal(err)
	}
	return path, end
}

func latencyMetrics(b *testing.B, lat []time.Duration) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2])/1e6, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1])/1e6, "max-ms")
}

// BenchmarkMatrix50 is the matrix query of a 50-peer mesh with a month of data.
func BenchmarkMatrix50(b *testing.B) {
	path, end := MonthFixture(b)
	s := openTest(b, path, &clock{t: end}, Options{})
	defer s.Close()
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t := time.Now()
		m, err := s.Matrix(ctx, "big")
		if err != nil || len(m.Cells) != 2450 {
			b.Fatalf("%d cells, %v", len(m.Cells), err)
		}
		lat = append(lat, time.Since(t))
	}
	latencyMetrics(b, lat)
}

// BenchmarkHistoryMonth is one pair's history over the month (hourly points).
func BenchmarkHistoryMonth(b *testing.B) {
	path, end := MonthFixture(b)
	s := openTest(b, path, &clock{t: end}, Options{})
	defer s.Close()
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a, c := i%50, (i+1+i/50)%50
		if a == c {
			c = (c + 1) % 50
		}
		t := time.Now()
		h, err := s.History(ctx, "big", fmt.Sprintf("%08x-0000-4000-8000-%012x", a, a),
			fmt.Sprintf("%08x-0000-4000-8000-%012x", c, c), end.Add(-30*24*time.Hour), end)
		if err != nil || len(h) != 720 {
			b.Fatalf("%d points, %v", len(h), err)
		}
		lat = append(lat, time.Since(t))
	}
	latencyMetrics(b, lat)
}
