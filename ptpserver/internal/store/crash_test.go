package store

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const crashEnv = "PTPSTORE_CRASH_CHILD_DB"

// TestCrashChild is the writer that TestCrashRecovery kills; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("helper process of TestCrashRecovery")
	}
	s, err := Open(context.Background(), path, Options{FlushInterval: 20 * time.Millisecond})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(3)
	}
	start := s.lastSent()
	go func() {
		var last uint64
		for {
			if n := s.Stats().Reports; n != last {
				last = n
				fmt.Printf("durable %d\n", start+n) // committed: must survive the kill
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	// Report i carries cumulative sent = i, so the parent can tell gaps from a clean prefix.
	for i := start + 1; ; i++ {
		s.AddReport(Report{Mesh: "m", From: "a", To: "b", Path: PathDirect, Sent: uint32(i), Received: uint32(i),
			RTTAvg: 100, RTTMin: 90, RTTMax: 110, RTTP50: 100, RTTP99: 105})
		if i%50 == 0 {
			s.AddEvent(Event{Mesh: "m", UUID: "a", Kind: EventAddress, Detail: strconv.FormatUint(i, 10)})
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// lastSent is the cumulative counter of the newest committed a→b report (0 when none).
func (s *Store) lastSent() uint64 {
	var n uint64
	s.eachEntry(func(e *entry) { n = max(n, uint64(e.sent)) })
	return n
}

// eachEntry calls fn for every stored report entry, in commit order.
func (s *Store) eachEntry(fn func(*entry)) error {
	return queryEach(context.Background(), s.w, "SELECT ts, entries FROM reports ORDER BY id", nil,
		func(sc func(...any) error) error {
			var ts int64
			var blob []byte
			if err := sc(&ts, &blob); err != nil {
				return err
			}
			return decodeEntries(blob, ts, fn)
		})
}

// TestCrashRecovery kills a writing child process with SIGKILL (twice, at arbitrary points of
// its flush cycle) and checks that every report the child saw committed is there, that the
// reports form a gap-free prefix of what it sent, and that the database is intact and usable.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	var durable uint64
	for round := 0; round < 2; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		target := durable + 300 + uint64(round)*137
		for sc.Scan() {
			line := sc.Text()
			if n, ok := strings.CutPrefix(line, "durable "); ok {
				v, _ := strconv.ParseUint(n, 10, 64)
				durable = max(durable, v)
				if durable >= target {
					break
				}
			} else if strings.HasPrefix(line, "error") {
				t.Fatal(line)
			}
		}
		if err := cmd.Process.Kill(); err != nil { // SIGKILL, mid-write
			t.Fatal(err)
		}
		io.Copy(io.Discard, out) // what it printed before dying
		cmd.Wait()
		if durable < target {
			t.Fatalf("child stopped before committing %d reports (got %d)", target, durable)
		}

		c := &clock{t: time.Now()}
		s := openTest(t, path, c, Options{})
		var ok string
		if err := s.w.QueryRow("PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
			t.Fatalf("integrity_check: %q %v", ok, err)
		}
		var n, minSent, maxSent uint64
		sents := map[uint32]bool{}
		minSent = 1 << 63
		if err := s.eachEntry(func(e *entry) {
			n++
			sents[e.sent] = true
			minSent, maxSent = min(minSent, uint64(e.sent)), max(maxSent, uint64(e.sent))
		}); err != nil {
			t.Fatal(err)
		}
		distinct := uint64(len(sents))
		t.Logf("round %d: child confirmed %d reports committed; %d stored", round, durable, n)
		if n < durable {
			t.Fatalf("lost committed reports: %d stored, child confirmed %d", n, durable)
		}
		if minSent != 1 || maxSent != n || distinct != n {
			t.Fatalf("reports are not a gap-free prefix: count %d, sent %d..%d, distinct %d", n, minSent, maxSent, distinct)
		}
		// Summaries (written or rebuilt) count every stored report exactly once.
		h, err := s.History(context.Background(), "m", "a", "b", c.Now().Add(-24*time.Hour), c.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		var reports, sent int64
		for _, p := range h {
			reports += p.Reports
			sent += p.Sent
		}
		if reports != int64(n) || sent != int64(n) {
			t.Fatalf("summaries count %d reports / %d sent, want %d", reports, sent, n)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		durable = n
	}
}
