package cliutil

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// golden compares got with testdata/name, rewriting it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

var emitterColumns = []string{"seq", "peer", "sent", "rtt", "rtt_us", "ttl", "lost", "note"}

func emitterRecords() [][]any {
	t0 := time.Date(2026, 11, 23, 7, 30, 0, 123456789, time.FixedZone("CET", 3600))
	peer := netip.MustParseAddrPort("192.0.2.1:862")
	return [][]any{
		{0, peer, t0, 1500 * time.Microsecond, 1500.25, uint8(64), false, "first"},
		{uint32(1), peer, t0.Add(time.Second), 250 * time.Microsecond, 250.0, uint8(63), false, `comma, "quote"`},
		{int64(2), peer, t0.Add(2 * time.Second), nil, math.NaN(), nil, true, ""},
		{uint64(3), netip.MustParseAddrPort("[2001:db8::1]:862"), t0.Add(3 * time.Second), time.Duration(0), math.Inf(1), 1, true, "line\nbreak"},
	}
}

func TestEmitterGolden(t *testing.T) {
	for _, f := range []Format{FormatText, FormatJSON, FormatCSV} {
		t.Run(string(f), func(t *testing.T) {
			var buf bytes.Buffer
			e := NewEmitter(&buf, f, emitterColumns...)
			for _, r := range emitterRecords() {
				if err := e.Emit(r...); err != nil {
					t.Fatal(err)
				}
			}
			if buf.Len() != 0 {
				t.Errorf("emitter wrote %d bytes before Flush/Close (want buffering)", buf.Len())
			}
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			golden(t, "emitter."+string(f), buf.Bytes())
		})
	}
}

func TestEmitterJSONIsValidAndOrdered(t *testing.T) {
	var buf bytes.Buffer
	e := NewEmitter(&buf, FormatJSON, emitterColumns...)
	for _, r := range emitterRecords() {
		if err := e.Emit(r...); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines", len(lines))
	}
	for i, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %d %q: %v", i, l, err)
		}
		dec := json.NewDecoder(strings.NewReader(l))
		dec.Token() // {
		for j := 0; dec.More(); j++ {
			k, _ := dec.Token()
			if k != emitterColumns[j] {
				t.Errorf("line %d key %d = %v, want %s", i, j, k, emitterColumns[j])
			}
			var skip json.RawMessage
			dec.Decode(&skip)
		}
	}
	var m map[string]any
	json.Unmarshal([]byte(lines[0]), &m)
	if m["rtt"] != 1.5e6 || m["rtt_us"] != 1500.25 || m["sent"] != "2026-11-23T06:30:00.123456789Z" || m["peer"] != "192.0.2.1:862" {
		t.Errorf("record 0 = %v", m)
	}
	json.Unmarshal([]byte(lines[2]), &m)
	if m["rtt_us"] != nil || m["ttl"] != nil {
		t.Errorf("NaN/nil not null: %v", m)
	}
}

func TestEmitterCSVParses(t *testing.T) {
	var buf bytes.Buffer
	e := NewEmitter(&buf, FormatCSV, emitterColumns...)
	for _, r := range emitterRecords() {
		e.Emit(r...)
	}
	e.Close()
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 5 || strings.Join(rows[0], ",") != strings.Join(emitterColumns, ",") {
		t.Fatalf("rows %q", rows)
	}
	if rows[2][7] != `comma, "quote"` || rows[4][7] != "line\nbreak" || rows[1][3] != "1500000" || rows[3][4] != "" {
		t.Errorf("rows %q", rows)
	}
}

func TestEmitterCSVHeaderWithoutRecords(t *testing.T) {
	var buf bytes.Buffer
	e := NewEmitter(&buf, FormatCSV, "a", "b")
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "a,b\n" {
		t.Errorf("got %q", buf.String())
	}
}

func TestEmitterAutoFlushAndTextFunc(t *testing.T) {
	var buf bytes.Buffer
	e := NewEmitter(&buf, FormatText, "seq", "rtt")
	e.AutoFlush = true
	e.Text = func(v []any) string { return "reply seq=" + plainString(v[0]) + " time=" + plainString(v[1]) }
	if err := e.Emit(1, 2*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "reply seq=1 time=2ms\n" {
		t.Errorf("got %q", buf.String())
	}
}

func plainString(v any) string { s, _ := plain(v, true); return s }

type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	w.n++
	return 0, errors.New("disk full")
}

func TestEmitterErrors(t *testing.T) {
	e := NewEmitter(&bytes.Buffer{}, FormatJSON, "a", "b")
	if err := e.Emit(1); err == nil {
		t.Error("wrong value count accepted")
	}
	if err := e.Emit(1, make(chan int)); err == nil {
		t.Error("unencodable value accepted")
	}
	e = NewEmitter(&failWriter{}, FormatText, "a")
	e.AutoFlush = true
	if err := e.Emit(1); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("write error lost: %v", err)
	}
	if err := e.Close(); err == nil {
		t.Error("Close after a write error returned nil")
	}
	e = NewEmitter(&bytes.Buffer{}, FormatCSV, "a")
	e.Close()
	if err := e.Emit(1); !errors.Is(err, ErrEmitterClosed) {
		t.Errorf("Emit after Close: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"text": FormatText, "JSON": FormatJSON, "csv": FormatCSV} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseFormat("yaml"); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("yaml: %v", err)
	}
}

// An Emitter over a writer that already contains an OutputWriter (a tee of the app's Writer)
// nests two of them: writes must not deadlock.
func TestEmitterNestedOutputWriter(t *testing.T) {
	var a, b bytes.Buffer
	e := NewEmitter(io.MultiWriter(OutputWriter(&a), &b), FormatJSON, "seq")
	e.AutoFlush = true
	done := make(chan error, 1)
	go func() { done <- e.Emit(1) }()
	select {
	case err := <-done:
		if err != nil || a.String() != "{\"seq\":1}\n" || b.String() != a.String() {
			t.Errorf("err %v, outputs %q %q", err, a.String(), b.String())
		}
	case <-time.After(30 * time.Second): // hang guard
		t.Fatal("Emit deadlocked on nested OutputWriters")
	}
}
