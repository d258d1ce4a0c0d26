// Package metrics is the one Prometheus writer of probekit's daemons (twampd, stampref,
// ptpserver): a registry of metrics that read counters the daemon already keeps, exposed
// with prometheus/client_golang.
//
// Nothing here runs on a packet path. Each metric is a function called at scrape time that
// reads the daemon's own atomic counters (per-worker or per-session counters are summed in
// that function), so counting costs the data path no lock and no allocation:
//
//	reg := metrics.New("stampref")
//	reg.Counter("received_packets_total", "Test packets received.", stats.Received.Load)
//	reg.Gauge("sessions", "Sessions in the table.", func() float64 { return float64(table.Len()) })
//	reg.CounterVec("dropped_packets_total", "Test packets dropped, by reason.", "reason",
//		func(emit func(label string, v uint64)) { emit("short", drops[0].Load()) })
//	reg.Histogram("residence_seconds", "Reflector residence time T3-T2.", bounds, readBuckets)
//	mux.Handle("GET /metrics", reg.Handler())   // or httpside.Config.Routes
//
// Conventions, checked when a metric is added (a violation is a programming error and
// panics, like prometheus.MustRegister): names are snake_case and get the namespace prefix
// ("stampref_"); counters end in _total; durations are in seconds and sizes in bytes (the
// name says which: _seconds, _bytes); HELP is one sentence starting with a capital letter
// and ending with a period. Process metrics (process_resident_memory_bytes, open fds, CPU)
// and the Go runtime's (goroutines, go_memstats_heap_inuse_bytes) come with every registry so an
// operator sees what an attack costs.
package metrics

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry holds a daemon's metrics under one namespace.
type Registry struct {
	ns  string
	reg *prometheus.Registry
}

// New returns a registry whose metric names start with namespace + "_" and which already
// holds the process and Go runtime collectors (process_*, go_* metrics of this process).
func New(namespace string) *Registry {
	checkName(namespace)
	r := &Registry{ns: namespace, reg: prometheus.NewRegistry()}
	r.reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	return r
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

func checkName(name string) {
	if !nameRE.MatchString(name) {
		panic(fmt.Sprintf("metrics: name %q is not snake_case", name))
	}
}

func checkHelp(name, help string) {
	if help == "" || !unicode.IsUpper([]rune(help)[0]) || !strings.HasSuffix(help, ".") || strings.Contains(help, "\n") {
		panic(fmt.Sprintf("metrics: HELP of %s must be one sentence with a capital and a period, got %q", name, help))
	}
}

func (r *Registry) desc(name, help string, counter bool, labels ...string) *prometheus.Desc {
	checkName(name)
	checkHelp(name, help)
	if counter != strings.HasSuffix(name, "_total") {
		panic(fmt.Sprintf("metrics: %s: counters and only counters end in _total", name))
	}
	return prometheus.NewDesc(r.ns+"_"+name, help, labels, nil)
}

// funcCollector emits the metrics of one Desc from a function at scrape time.
type funcCollector struct {
	desc    *prometheus.Desc
	collect func(d *prometheus.Desc, ch chan<- prometheus.Metric)
}

func (c *funcCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c *funcCollector) Collect(ch chan<- prometheus.Metric) { c.collect(c.desc, ch) }

func (r *Registry) add(d *prometheus.Desc, collect func(d *prometheus.Desc, ch chan<- prometheus.Metric)) {
	r.reg.MustRegister(&funcCollector{desc: d, collect: collect})
}

// Counter adds a counter read from value (a monotonic count, e.g. atomic.Uint64.Load).
func (r *Registry) Counter(name, help string, value func() uint64) {
	r.add(r.desc(name, help, true), func(d *prometheus.Desc, ch chan<- prometheus.Metric) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(value()))
	})
}

// Gauge adds a gauge read from value.
func (r *Registry) Gauge(name, help string, value func() float64) {
	r.add(r.desc(name, help, false), func(d *prometheus.Desc, ch chan<- prometheus.Metric) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, value())
	})
}

// CounterVec adds a counter with one label; values calls emit once per label value.
func (r *Registry) CounterVec(name, help, label string, values func(emit func(labelValue string, v uint64))) {
	checkName(label)
	r.add(r.desc(name, help, true, label), func(d *prometheus.Desc, ch chan<- prometheus.Metric) {
		values(func(lv string, v uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), lv)
		})
	})
}

// GaugeVec adds a gauge with one label; values calls emit once per label value.
func (r *Registry) GaugeVec(name, help, label string, values func(emit func(labelValue string, v float64))) {
	checkName(label)
	r.add(r.desc(name, help, false, label), func(d *prometheus.Desc, ch chan<- prometheus.Metric) {
		values(func(lv string, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv)
		})
	})
}

// Histogram adds a histogram with the given upper bucket bounds (ascending, +Inf implied).
// read returns the observation count of each bucket, not cumulative, len(bounds)+1 of them
// (the last one above every bound), and the sum of the observations.
func (r *Registry) Histogram(name, help string, bounds []float64, read func() (counts []uint64, sum float64)) {
	if !slices.IsSorted(bounds) {
		panic(fmt.Sprintf("metrics: %s: bounds not ascending", name))
	}
	bounds = slices.Clone(bounds)
	r.add(r.desc(name, help, false), func(d *prometheus.Desc, ch chan<- prometheus.Metric) {
		counts, sum := read()
		buckets := make(map[float64]uint64, len(bounds))
		var cum uint64
		for i, b := range bounds {
			if i < len(counts) {
				cum += counts[i]
			}
			buckets[b] = cum
		}
		if len(counts) > len(bounds) {
			cum += counts[len(bounds)]
		}
		ch <- prometheus.MustNewConstHistogram(d, cum, sum, buckets)
	})
}

// Prometheus returns the underlying registry, for collectors from client_golang itself.
func (r *Registry) Prometheus() *prometheus.Registry { return r.reg }

// Handler serves the registry in the Prometheus text format (or what the scraper asks for).
// Errors of one collector are reported in the response, never a panic of the daemon.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, MaxRequestsInFlight: 4})
}

// WriteText writes every metric in the Prometheus text exposition format (tests, dumps).
func (r *Registry) WriteText(w io.Writer) error {
	tw := &textWriter{w: w, h: http.Header{}}
	req, err := http.NewRequest(http.MethodGet, "/metrics", nil)
	if err != nil {
		return err
	}
	r.Handler().ServeHTTP(tw, req)
	if tw.code != 0 && tw.code != http.StatusOK {
		return fmt.Errorf("metrics: gather: HTTP %d", tw.code)
	}
	return tw.err
}

// textWriter is the http.ResponseWriter WriteText hands to the handler.
type textWriter struct {
	w    io.Writer
	h    http.Header
	code int
	err  error
}

func (t *textWriter) Header() http.Header  { return t.h }
func (t *textWriter) WriteHeader(code int) { t.code = code }
func (t *textWriter) Write(b []byte) (int, error) {
	n, err := t.w.Write(b)
	if err != nil && t.err == nil {
		t.err = err
	}
	return n, err
}
