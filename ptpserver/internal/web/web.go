// Package web serves ptpserver's mesh analytics over HTTP: a page per mesh (peer × peer matrix
// with reasons, clients' NAT behaviour and port mappings, per-pair RTT/loss history, membership
// timeline, live refresh), the same data as JSON under /api/, and Prometheus metrics at
// /metrics. Assets are embedded (no CDN); the port is hardened by shared/httpside (loopback by
// default, bearer token elsewhere, Host check, timeouts) and every endpoint is read-only.
package web

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/probekit/probekit/ptpserver/internal/store"
	"github.com/probekit/probekit/shared/httpside"
	"github.com/probekit/probekit/shared/metrics"
)

//go:embed assets
var assets embed.FS

// Source is what the page shows; *store.Store implements it.
type Source interface {
	Meshes(ctx context.Context) ([]store.MeshInfo, error)
	Matrix(ctx context.Context, mesh string) (store.Matrix, error)
	Clients(ctx context.Context, mesh string) ([]store.Client, error)
	Events(ctx context.Context, mesh string, from, to time.Time, limit int) ([]store.Event, error)
	History(ctx context.Context, mesh, src, dst string, from, to time.Time) ([]store.Point, error)
	Totals(ctx context.Context, since time.Time) (store.Totals, error)
	Stats() store.Stats
}

// Relay reports the server's relay counters (packets, bytes).
type Relay func() (packets, bytes uint64)

// Config configures the handler.
type Config struct {
	Source Source
	Relay  Relay // nil: no relay metrics
	// Token, when set, is accepted from the page's ?token= (then kept in a cookie) as well as
	// the Authorization header; httpside decides where it is required.
	Token string
	// MaxPairSeries caps the per-pair RTT summaries on /metrics (label cardinality); default 500.
	MaxPairSeries int
	// Window is how recent a report must be to count in the path totals (default 5 min).
	Window time.Duration
	// Refresh is the page's live refresh period (default 2 s).
	Refresh time.Duration
	Now     func() time.Time
	Log     logrus.FieldLogger
}

// Handler serves the page, the API and the metrics.
type Handler struct {
	cfg Config
	mux *http.ServeMux
	reg *metrics.Registry
}

const cookieName = "ptpserver_token"

// New returns the handler (without the side-port rules: see Listen).
func New(cfg Config) *Handler {
	if cfg.MaxPairSeries <= 0 {
		cfg.MaxPairSeries = 500
	}
	if cfg.Window <= 0 {
		cfg.Window = 5 * time.Minute
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 2 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		l := logrus.New()
		l.SetLevel(logrus.PanicLevel)
		cfg.Log = l
	}
	h := &Handler{cfg: cfg, mux: http.NewServeMux()}
	h.reg = h.metrics()
	static, _ := fs.Sub(assets, "assets")
	files := http.FileServerFS(static)
	h.mux.HandleFunc("GET /{$}", h.page)
	h.mux.Handle("GET /static/", http.StripPrefix("/static/", files))
	h.mux.HandleFunc("GET /api/meshes", h.apiMeshes)
	h.mux.HandleFunc("GET /api/mesh", h.apiMesh)
	h.mux.HandleFunc("GET /api/matrix", h.apiMatrix)
	h.mux.HandleFunc("GET /api/matrix.txt", h.apiMatrixText)
	h.mux.HandleFunc("GET /api/clients", h.apiClients)
	h.mux.HandleFunc("GET /api/events", h.apiEvents)
	h.mux.HandleFunc("GET /api/history", h.apiHistory)
	h.mux.Handle("GET /metrics", h.reg.Handler())
	return h
}

// ServeHTTP serves a request that passed the side-port rules. Every route is read-only:
// nothing on this port changes the server's state.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if httpside.StateChanging(r.Method) {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "read-only")
		return
	}
	// A token that arrived as ?token= was accepted (we only run after the rules): keep it in a
	// cookie so the page's own requests carry it, and drop it from the address bar.
	if t := r.URL.Query().Get("token"); t != "" && h.cfg.Token != "" &&
		subtle.ConstantTimeCompare([]byte(t), []byte(h.cfg.Token)) == 1 {
		http.SetCookie(w, &http.Cookie{Name: cookieName, Value: t, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
		if r.URL.Path == "/" {
			q := r.URL.Query()
			q.Del("token")
			u := *r.URL
			u.RawQuery = q.Encode()
			http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
			return
		}
	}
	h.mux.ServeHTTP(w, r)
}

// bridge lets a browser present the token: ?token= or the cookie become the bearer header
// that httpside checks.
func bridge(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			if t := r.URL.Query().Get("token"); t != "" {
				r.Header.Set("Authorization", "Bearer "+t)
			} else if c, err := r.Cookie(cookieName); err == nil && c.Value != "" {
				r.Header.Set("Authorization", "Bearer "+c.Value)
			}
		}
		next.ServeHTTP(w, r)
	})
}

// Listen serves the handler on addr behind httpside's rules (a non-loopback address needs a
// token) until ctx ends.
func Listen(ctx context.Context, addr string, h *Handler, log logrus.FieldLogger) (*httpside.Server, error) {
	return httpside.Listen(ctx, httpside.Config{Addr: addr, Token: h.cfg.Token, Logger: log, Hosts: []string{"localhost"}}, bridge(h))
}

// Wrapped is the handler behind the side-port rules of a listener on addr (for tests).
func Wrapped(h *Handler, addr string) http.Handler {
	a, _ := netipTCP(addr)
	wrapped, _ := httpside.Wrap(httpside.Config{Token: h.cfg.Token}, a, h)
	return bridge(wrapped)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// The client went away; nothing to tell it.
		return
	}
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, "{\"error\": %q}\n", msg)
}

func (h *Handler) fail(w http.ResponseWriter, err error) {
	h.cfg.Log.WithError(err).Warn("web: query failed")
	writeError(w, http.StatusInternalServerError, "query failed")
}

func (h *Handler) page(w http.ResponseWriter, r *http.Request) {
	b, err := assets.ReadFile("assets/index.html")
	if err != nil {
		h.fail(w, err)
		return
	}
	page := strings.ReplaceAll(string(b), "{{REFRESH_MS}}", strconv.FormatInt(h.cfg.Refresh.Milliseconds(), 10))
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
	w.Header().Set("X-Frame-Options", "DENY")
	fmt.Fprint(w, page)
}

// MatrixJSON is /api/matrix.
type MatrixJSON struct {
	Mesh    string     `json:"mesh"`
	Peers   []string   `json:"peers"`
	Cells   []CellJSON `json:"cells"`
	Updated time.Time  `json:"updated"`
}

// CellJSON is one matrix cell in milliseconds.
type CellJSON struct {
	From     string    `json:"from"`
	To       string    `json:"to"`
	Time     time.Time `json:"time"`
	Path     string    `json:"path"`
	Reason   string    `json:"reason"`
	Sent     uint32    `json:"sent"`
	Received uint32    `json:"received"`
	Lost     uint32    `json:"lost"`
	LossPct  float64   `json:"loss_pct"`
	RTTms    RTTms     `json:"rtt_ms"`
	JitterMs float64   `json:"jitter_ms"`
}

// RTTms are the RTT statistics of a cell in milliseconds.
type RTTms struct {
	Min float64 `json:"min"`
	Avg float64 `json:"avg"`
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func ms(us uint32) float64 { return float64(us) / 1000 }

func matrixJSON(m store.Matrix, now time.Time) MatrixJSON {
	out := MatrixJSON{Mesh: m.Mesh, Peers: m.Peers, Cells: make([]CellJSON, 0, len(m.Cells)), Updated: now.UTC()}
	for _, c := range m.Cells {
		out.Cells = append(out.Cells, CellJSON{From: c.From, To: c.To, Time: c.Time, Path: c.Path.String(),
			Reason: c.Reason, Sent: c.Sent, Received: c.Received, Lost: c.Lost, LossPct: c.LossPct,
			RTTms:    RTTms{Min: ms(c.RTTMin), Avg: ms(c.RTTAvg), P50: ms(c.RTTP50), P99: ms(c.RTTP99), Max: ms(c.RTTMax)},
			JitterMs: ms(c.Jitter)})
	}
	return out
}

// ClientJSON is one client in /api/clients.
type ClientJSON struct {
	UUID        string          `json:"uuid"`
	Seen        time.Time       `json:"seen"`
	Online      bool            `json:"online"`
	Address     string          `json:"address"`
	Public      string          `json:"public"`
	Version     int             `json:"version"`
	NAT         NATJSON         `json:"nat"`
	PortMapping json.RawMessage `json:"port_mapping"`
}

// NATJSON is a client's NAT behaviour as it measured it.
type NATJSON struct {
	Mapping   string `json:"mapping"`
	Filtering string `json:"filtering"`
	Hairpin   string `json:"hairpin"`
}

func clientsJSON(cs []store.Client) []ClientJSON {
	out := make([]ClientJSON, 0, len(cs))
	for _, c := range cs {
		pm := c.PortMap
		if len(pm) == 0 {
			pm = json.RawMessage("null")
		}
		out = append(out, ClientJSON{UUID: c.UUID, Seen: c.Seen, Online: c.Online, Address: c.Addr, Public: c.Public,
			Version: c.Version, NAT: NATJSON{c.Mapping, c.Filtering, c.Hairpin}, PortMapping: pm})
	}
	return out
}

// EventJSON is one membership event.
type EventJSON struct {
	Time   time.Time `json:"time"`
	UUID   string    `json:"uuid"`
	Kind   string    `json:"kind"`
	Addr   string    `json:"address"`
	Detail string    `json:"detail,omitempty"`
}

func eventsJSON(es []store.Event) []EventJSON {
	out := make([]EventJSON, 0, len(es))
	for _, e := range es {
		out = append(out, EventJSON{e.Time, e.UUID, e.Kind, e.Addr, e.Detail})
	}
	return out
}

// MeshJSON is /api/mesh: everything the page refreshes at once.
type MeshJSON struct {
	Mesh    string       `json:"mesh"`
	Matrix  MatrixJSON   `json:"matrix"`
	Clients []ClientJSON `json:"clients"`
	Events  []EventJSON  `json:"events"`
}

func (h *Handler) apiMeshes(w http.ResponseWriter, r *http.Request) {
	ms, err := h.cfg.Source.Meshes(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, ms)
}

func (h *Handler) apiMatrix(w http.ResponseWriter, r *http.Request) {
	m, err := h.cfg.Source.Matrix(r.Context(), r.URL.Query().Get("mesh"))
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, matrixJSON(m, h.cfg.Now()))
}

// apiMatrixText is the matrix as an ASCII table (curl-friendly; make demo prints it).
func (h *Handler) apiMatrixText(w http.ResponseWriter, r *http.Request) {
	m, err := h.cfg.Source.Matrix(r.Context(), r.URL.Query().Get("mesh"))
	if err != nil {
		h.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	WriteMatrixText(w, m)
}

// WriteMatrixText writes the matrix as a table: a row per reporter, a column per peer, each
// cell "path avg-RTT-ms loss%", then the reasons of the cells that are not direct.
func WriteMatrixText(w io.Writer, m store.Matrix) {
	cells := map[[2]string]store.Cell{}
	for _, c := range m.Cells {
		cells[[2]string{c.From, c.To}] = c
	}
	short := func(u string) string {
		if len(u) > 8 {
			return u[:8]
		}
		return u
	}
	const colw = 24
	fmt.Fprintf(w, "%-10s", "from\\to")
	for _, p := range m.Peers {
		fmt.Fprintf(w, " %-*s", colw, short(p))
	}
	fmt.Fprintln(w)
	var reasons []string
	for _, a := range m.Peers {
		fmt.Fprintf(w, "%-10s", short(a))
		for _, b := range m.Peers {
			txt := "-"
			if a == b {
				txt = "."
			} else if c, ok := cells[[2]string{a, b}]; ok {
				txt = fmt.Sprintf("%s %.2fms %.1f%%", c.Path, float64(c.RTTAvg)/1000, c.LossPct)
				if c.Received == 0 {
					txt = fmt.Sprintf("%s - %.1f%%", c.Path, c.LossPct)
				}
				if c.Reason != "" {
					reasons = append(reasons, fmt.Sprintf("%s -> %s: %s", short(a), short(b), c.Reason))
				}
			}
			fmt.Fprintf(w, " %-*s", colw, txt)
		}
		fmt.Fprintln(w)
	}
	if len(m.Peers) == 0 {
		fmt.Fprintln(w, "(no reports)")
	}
	for _, r := range reasons {
		fmt.Fprintln(w, r)
	}
}

func (h *Handler) apiClients(w http.ResponseWriter, r *http.Request) {
	cs, err := h.cfg.Source.Clients(r.Context(), r.URL.Query().Get("mesh"))
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, clientsJSON(cs))
}

// timeRange reads ?range=1h|6h|24h|7d|30d (default def) or ?from=&to= (RFC 3339 or Unix
// seconds).
func (h *Handler) timeRange(r *http.Request, def time.Duration) (time.Time, time.Time, error) {
	q := r.URL.Query()
	to := h.cfg.Now()
	if v := q.Get("to"); v != "" {
		t, err := parseTime(v)
		if err != nil {
			return time.Time{}, time.Time{}, fmt.Errorf("to: %w", err)
		}
		to = t
	}
	span := def
	if v := q.Get("range"); v != "" {
		d, err := parseRange(v)
		if err != nil {
			return time.Time{}, time.Time{}, err
		}
		span = d
	}
	from := to.Add(-span)
	if v := q.Get("from"); v != "" {
		t, err := parseTime(v)
		if err != nil {
			return time.Time{}, time.Time{}, fmt.Errorf("from: %w", err)
		}
		from = t
	}
	if !from.Before(to) {
		return time.Time{}, time.Time{}, errors.New("from must be before to")
	}
	return from, to, nil
}

func parseTime(v string) (time.Time, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	return time.Parse(time.RFC3339, v)
}

func parseRange(v string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 || n > 366 {
			return 0, fmt.Errorf("range %q: want e.g. 1h, 24h, 7d", v)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("range %q: want e.g. 1h, 24h, 7d", v)
	}
	return d, nil
}

func (h *Handler) apiEvents(w http.ResponseWriter, r *http.Request) {
	from, to, err := h.timeRange(r, 24*time.Hour)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	_, limit, err := httpside.Page(r, 500, 5000)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	es, err := h.cfg.Source.Events(r.Context(), r.URL.Query().Get("mesh"), from, to, limit)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, eventsJSON(es))
}

// HistoryJSON is /api/history.
type HistoryJSON struct {
	Mesh    string      `json:"mesh"`
	From    string      `json:"src"`
	To      string      `json:"dst"`
	Start   time.Time   `json:"from"`
	End     time.Time   `json:"to"`
	Seconds int         `json:"resolution_s"`
	Points  []PointJSON `json:"points"`
}

// PointJSON is one history bucket in milliseconds.
type PointJSON struct {
	Time     time.Time `json:"time"`
	Reports  int64     `json:"reports"`
	RTTAvg   float64   `json:"rtt_avg_ms"`
	RTTMin   float64   `json:"rtt_min_ms"`
	RTTMax   float64   `json:"rtt_max_ms"`
	RTTP99   float64   `json:"rtt_p99_ms"`
	JitterMs float64   `json:"jitter_ms"`
	Sent     int64     `json:"sent"`
	Lost     int64     `json:"lost"`
	LossPct  float64   `json:"loss_pct"`
	Path     string    `json:"path"`
}

func (h *Handler) apiHistory(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	src, dst := q.Get("src"), q.Get("dst")
	if src == "" || dst == "" {
		writeError(w, http.StatusBadRequest, "src and dst are required")
		return
	}
	from, to, err := h.timeRange(r, time.Hour)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ps, err := h.cfg.Source.History(r.Context(), q.Get("mesh"), src, dst, from, to)
	if err != nil {
		h.fail(w, err)
		return
	}
	out := HistoryJSON{Mesh: q.Get("mesh"), From: src, To: dst, Start: from.UTC(), End: to.UTC(),
		Seconds: int(store.ResolutionFor(to.Sub(from)) / time.Second), Points: make([]PointJSON, 0, len(ps))}
	for _, p := range ps {
		out.Points = append(out.Points, PointJSON{Time: p.Time, Reports: p.Reports, RTTAvg: p.RTTAvg / 1000,
			RTTMin: float64(p.RTTMin) / 1000, RTTMax: float64(p.RTTMax) / 1000, RTTP99: float64(p.RTTP99) / 1000,
			JitterMs: p.Jitter / 1000, Sent: p.Sent, Lost: p.Lost, LossPct: p.LossPct, Path: p.Path.String()})
	}
	writeJSON(w, out)
}

func (h *Handler) apiMesh(w http.ResponseWriter, r *http.Request) {
	mesh := r.URL.Query().Get("mesh")
	ctx := r.Context()
	m, err := h.cfg.Source.Matrix(ctx, mesh)
	if err != nil {
		h.fail(w, err)
		return
	}
	cs, err := h.cfg.Source.Clients(ctx, mesh)
	if err != nil {
		h.fail(w, err)
		return
	}
	now := h.cfg.Now()
	es, err := h.cfg.Source.Events(ctx, mesh, now.Add(-24*time.Hour), now.Add(time.Second), 200)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, MeshJSON{Mesh: mesh, Matrix: matrixJSON(m, now), Clients: clientsJSON(cs), Events: eventsJSON(es)})
}

// metrics builds the /metrics registry: every value is read from the store at scrape time.
func (h *Handler) metrics() *metrics.Registry {
	reg := metrics.New("ptpserver")
	totals := func() store.Totals {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		t, err := h.cfg.Source.Totals(ctx, h.cfg.Now().Add(-h.cfg.Window))
		if err != nil {
			h.cfg.Log.WithError(err).Warn("web: metrics")
		}
		return t
	}
	reg.Gauge("clients", "Clients online.", func() float64 { return float64(totals().Clients) })
	reg.Gauge("meshes", "Meshes with a client online.", func() float64 { return float64(totals().Meshes) })
	reg.GaugeVec("paths", "Peer pairs by the path their newest report names (reports of the last five minutes).", "path",
		func(emit func(string, float64)) {
			t := totals()
			for _, p := range store.Paths() {
				emit(p.String(), float64(t.Paths[p]))
			}
		})
	if h.cfg.Relay != nil {
		reg.Counter("relayed_packets_total", "Packets the server relayed between clients.", func() uint64 { p, _ := h.cfg.Relay(); return p })
		reg.Counter("relayed_bytes_total", "Bytes the server relayed between clients.", func() uint64 { _, b := h.cfg.Relay(); return b })
	}
	reg.Counter("store_reports_total", "Reachability reports committed to the store.", func() uint64 { return h.cfg.Source.Stats().Reports })
	reg.Counter("store_dropped_total", "Reachability reports dropped because the store's queue was full.", func() uint64 { return h.cfg.Source.Stats().Dropped })
	reg.Counter("store_errors_total", "Failed store commits (retried).", func() uint64 { return h.cfg.Source.Stats().Errors })
	pc := &pairCollector{h: h,
		desc: prometheus.NewDesc("ptpserver_pair_rtt_seconds", "Round-trip time a client measured to a peer (newest report; count is replies received).",
			[]string{"mesh", "src", "dst", "path"}, nil),
		omitted: prometheus.NewDesc("ptpserver_pair_series_omitted", "Peer pairs left out of ptpserver_pair_rtt_seconds by the label cardinality cap.",
			nil, nil)}
	reg.Prometheus().MustRegister(pc)
	return reg
}

// pairCollector exports each pair's newest RTT figures as a summary, for at most
// MaxPairSeries pairs (the first by mesh, src, dst); the rest are counted, not exported.
type pairCollector struct {
	h             *Handler
	desc, omitted *prometheus.Desc
}

func (c *pairCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc; ch <- c.omitted }

func (c *pairCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ms, err := c.h.cfg.Source.Meshes(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
	n, omitted := 0, 0
	cut := c.h.cfg.Now().Add(-c.h.cfg.Window)
	for _, mi := range ms {
		m, err := c.h.cfg.Source.Matrix(ctx, mi.Name)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(c.desc, err)
			return
		}
		for _, cell := range m.Cells {
			if cell.Time.Before(cut) || cell.Received == 0 {
				continue
			}
			if n >= c.h.cfg.MaxPairSeries {
				omitted++
				continue
			}
			n++
			ch <- prometheus.MustNewConstSummary(c.desc, uint64(cell.Received), float64(cell.RTTAvg)/1e6*float64(cell.Received),
				map[float64]float64{0: float64(cell.RTTMin) / 1e6, 0.5: float64(cell.RTTP50) / 1e6, 0.99: float64(cell.RTTP99) / 1e6,
					1: float64(cell.RTTMax) / 1e6}, mi.Name, cell.From, cell.To, cell.Path.String())
		}
	}
	ch <- prometheus.MustNewConstMetric(c.omitted, prometheus.GaugeValue, float64(omitted))
}

func netipTCP(addr string) (*net.TCPAddr, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, err
	}
	return net.TCPAddrFromAddrPort(ap), nil
}
