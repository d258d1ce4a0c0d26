package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestExposition(t *testing.T) {
	var rx atomic.Uint64
	var drops [2]atomic.Uint64
	reg := New("probe")
	reg.Counter("received_packets_total", "Test packets received.", rx.Load)
	reg.Gauge("sessions", "Sessions in the table.", func() float64 { return 3 })
	reg.CounterVec("dropped_packets_total", "Test packets dropped, by reason.", "reason", func(emit func(string, uint64)) {
		emit("short", drops[0].Load())
		emit("auth", drops[1].Load())
	})
	reg.GaugeVec("peers", "Peers by state.", "state", func(emit func(string, float64)) { emit("up", 2) })
	reg.Histogram("residence_seconds", "Reflector residence time T3-T2.", []float64{1e-6, 1e-5},
		func() ([]uint64, float64) { return []uint64{1, 2, 4}, 0.5 })
	rx.Add(41)
	rx.Add(1)
	drops[1].Add(7)
	var b strings.Builder
	if err := reg.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"# HELP probe_received_packets_total Test packets received.\n# TYPE probe_received_packets_total counter\nprobe_received_packets_total 42\n",
		"# TYPE probe_sessions gauge\nprobe_sessions 3\n",
		`probe_dropped_packets_total{reason="auth"} 7` + "\n",
		`probe_dropped_packets_total{reason="short"} 0` + "\n",
		`probe_peers{state="up"} 2` + "\n",
		// cumulative buckets from per-bucket counts 1, 2, 4
		`probe_residence_seconds_bucket{le="1e-06"} 1` + "\n",
		`probe_residence_seconds_bucket{le="1e-05"} 3` + "\n",
		`probe_residence_seconds_bucket{le="+Inf"} 7` + "\n",
		"probe_residence_seconds_sum 0.5\nprobe_residence_seconds_count 7\n",
		"process_resident_memory_bytes ",
		"go_memstats_heap_inuse_bytes ",
		"go_goroutines ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	srv := httptest.NewServer(reg.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") || !strings.Contains(string(body), "probe_received_packets_total 42") {
		t.Errorf("handler: %s %s", resp.Header.Get("Content-Type"), body)
	}
}

// The conventions are enforced when a metric is added.
func TestConventions(t *testing.T) {
	for name, add := range map[string]func(r *Registry){
		"counter without _total": func(r *Registry) { r.Counter("received", "Received.", func() uint64 { return 0 }) },
		"gauge with _total":      func(r *Registry) { r.Gauge("x_total", "X.", func() float64 { return 0 }) },
		"help without period":    func(r *Registry) { r.Gauge("x", "X", func() float64 { return 0 }) },
		"help lower case":        func(r *Registry) { r.Gauge("x", "x.", func() float64 { return 0 }) },
		"camel case":             func(r *Registry) { r.Gauge("fooBar", "X.", func() float64 { return 0 }) },
		"duplicate": func(r *Registry) {
			r.Gauge("x", "X.", func() float64 { return 0 })
			r.Gauge("x", "X.", func() float64 { return 0 })
		},
		"unsorted bounds": func(r *Registry) {
			r.Histogram("h_seconds", "H.", []float64{2, 1}, func() ([]uint64, float64) { return nil, 0 })
		},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: accepted", name)
				}
			}()
			add(New("probe"))
		}()
	}
}

// Reading the counters at scrape time costs the counting side nothing: incrementing is one
// atomic add, with no allocation.
func TestNoAllocOnCount(t *testing.T) {
	var rx atomic.Uint64
	New("probe").Counter("rx_total", "Received.", rx.Load)
	if n := testing.AllocsPerRun(1000, func() { rx.Add(1) }); n != 0 {
		t.Errorf("%v allocations per count", n)
	}
}
