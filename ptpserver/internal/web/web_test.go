package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/probekit/probekit/ptpserver/internal/store"
	"github.com/probekit/probekit/shared/httpside"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

const (
	uA = "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a"
	uB = "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"
	uC = "0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c"
)

// truth is the ground truth the fixture reports: what each cell must show.
type truth struct {
	from, to   string
	path       store.Path
	reason     string
	sent, lost uint32
	rttAvgUS   uint32
}

var truths = []truth{
	{uA, uB, store.PathDirect, "", 1200, 0, 1234},
	{uB, uA, store.PathDirect, "", 1200, 12, 1250},
	{uA, uC, store.PathRelay, "peer's NAT maps per destination (address-and-port-dependent) and ours filters per address and port: relayed", 600, 90, 20500},
	{uC, uA, store.PathRelay, "our NAT maps per destination: relayed", 600, 0, 20400},
	{uB, uC, store.PathLAN, "same public address: LAN address", 300, 3, 310},
	{uC, uB, store.PathNone, "no reply on any candidate address", 300, 300, 0},
}

// fixture fills a store with a three-client mesh "lab" over 30 simulated minutes.
func fixture(t testing.TB) (*store.Store, *clock) {
	t.Helper()
	c := &clock{t: t0}
	s, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "web.db"), store.Options{Now: c.Now, NoBackground: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	pm := map[string]string{
		uA: `[{"protocol":"upnp-igd","gateway":"10.0.1.1","external":"45.71.0.101:41000","lifetime_s":3600},{"protocol":"nat-pmp","gateway":"10.0.1.1","external":"45.71.0.101:41000","lifetime_s":7200},{"protocol":"pcp","gateway":"10.0.1.1","error":"UNSUPP_VERSION"}]`,
		uB: `[{"protocol":"upnp-igd","gateway":"","error":"no IGD found"}]`,
		uC: `null`,
	}
	for i, u := range []string{uA, uB, uC} {
		s.SetClient(store.Client{Mesh: "lab", UUID: u, Seen: t0, Addr: "45.71.0.10" + string(rune('1'+i)) + ":23456",
			Public: "45.71.0.10" + string(rune('1'+i)) + ":23456", Version: 3, Mapping: "endpoint-independent",
			Filtering: "address-and-port-dependent", Hairpin: "no", PortMap: json.RawMessage(pm[u]), Online: true})
		s.AddEvent(store.Event{Time: t0.Add(time.Duration(i) * time.Second), Mesh: "lab", UUID: u, Kind: store.EventJoin, Addr: "45.71.0.10" + string(rune('1'+i)) + ":23456"})
	}
	s.SetClient(store.Client{Mesh: "other", UUID: uA, Online: true})
	for m := 1; m <= 30; m++ {
		at := t0.Add(time.Duration(m) * time.Minute)
		c.Set(at)
		for _, tr := range truths {
			f := uint32(m)
			s.AddReport(store.Report{Time: at, Mesh: "lab", From: tr.from, To: tr.to, Path: tr.path, Reason: tr.reason,
				Sent: tr.sent * f / 30, Received: (tr.sent - tr.lost) * f / 30, Lost: tr.lost * f / 30,
				RTTMin: tr.rttAvgUS * 9 / 10, RTTAvg: tr.rttAvgUS, RTTP50: tr.rttAvgUS, RTTP99: tr.rttAvgUS * 12 / 10,
				RTTMax: tr.rttAvgUS * 13 / 10, Jitter: tr.rttAvgUS / 20})
		}
		if err := s.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	s.AddEvent(store.Event{Time: c.Now(), Mesh: "lab", UUID: uB, Kind: store.EventAddress, Addr: "45.71.0.102:23999", Detail: "public port changed"})
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, c
}

func get(t *testing.T, h http.Handler, url string, hdr ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, url, nil)
	req.Host = "127.0.0.1:9000"
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Result()
}

func decode[T any](t *testing.T, r *http.Response) T {
	t.Helper()
	var v T
	if r.StatusCode != 200 {
		b, _ := io.ReadAll(r.Body)
		t.Fatalf("HTTP %d: %s", r.StatusCode, b)
	}
	if err := json.NewDecoder(r.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestAPI(t *testing.T) {
	s, c := fixture(t)
	h := Wrapped(New(Config{Source: s, Now: c.Now, Relay: func() (uint64, uint64) { return 42, 4200 }}), "127.0.0.1:9000")

	ms := decode[[]store.MeshInfo](t, get(t, h, "/api/meshes"))
	if len(ms) != 2 || ms[0] != (store.MeshInfo{Name: "lab", Clients: 3, Online: 3}) {
		t.Fatalf("meshes %+v", ms)
	}
	m := decode[MatrixJSON](t, get(t, h, "/api/matrix?mesh=lab"))
	if strings.Join(m.Peers, ",") != uA+","+uB+","+uC || len(m.Cells) != len(truths) {
		t.Fatalf("matrix peers %v, %d cells", m.Peers, len(m.Cells))
	}
	for _, tr := range truths {
		var got *CellJSON
		for i := range m.Cells {
			if m.Cells[i].From == tr.from && m.Cells[i].To == tr.to {
				got = &m.Cells[i]
			}
		}
		if got == nil {
			t.Fatalf("no cell %s→%s", tr.from, tr.to)
		}
		wantLoss := 100 * float64(tr.lost) / float64(tr.sent)
		if got.Path != tr.path.String() || got.Reason != tr.reason || got.Sent != tr.sent || got.Lost != tr.lost ||
			got.LossPct != wantLoss || got.RTTms.Avg != float64(tr.rttAvgUS)/1000 || got.RTTms.Max != float64(tr.rttAvgUS*13/10)/1000 ||
			!got.Time.Equal(t0.Add(30*time.Minute)) {
			t.Errorf("cell %s→%s: %+v, want path %s loss %.3f avg %.3f ms", short(tr.from), short(tr.to), *got, tr.path, wantLoss, float64(tr.rttAvgUS)/1000)
		}
	}
	cs := decode[[]ClientJSON](t, get(t, h, "/api/clients?mesh=lab"))
	if len(cs) != 3 || cs[0].NAT.Filtering != "address-and-port-dependent" || !strings.Contains(string(cs[0].PortMapping), `"external":"45.71.0.101:41000"`) ||
		string(cs[2].PortMapping) != "null" {
		t.Fatalf("clients %+v", cs)
	}
	es := decode[[]EventJSON](t, get(t, h, "/api/events?mesh=lab&range=2h"))
	if len(es) != 4 || es[0].Kind != "join" || es[3].Kind != "address" || es[3].Detail != "public port changed" {
		t.Fatalf("events %+v", es)
	}
	// History: 30 one-minute reports of a→c make 5-minute buckets 10:00 (minutes 1-4), 10:05,
	// ... 10:30 (minute 30); each full bucket's loss is the 15 % the cumulative counters grew by.
	hj := decode[HistoryJSON](t, get(t, h, "/api/history?mesh=lab&src="+uA+"&dst="+uC+"&range=1h"))
	if hj.Seconds != 300 || len(hj.Points) != 7 {
		t.Fatalf("history: %d s, %d points: %+v", hj.Seconds, len(hj.Points), hj.Points)
	}
	var reports, sent, lost int64
	for i, p := range hj.Points {
		reports += p.Reports
		sent += p.Sent
		lost += p.Lost
		if p.Path != "relay" || p.RTTAvg != 20.5 || p.RTTMax != 26.65 {
			t.Errorf("point %d: %+v", i, p)
		}
		if i > 0 && i < 6 && (p.Reports != 5 || p.Sent != 100 || p.Lost != 15 || p.LossPct != 15) {
			t.Errorf("point %d: %+v, want 5 reports, 100 sent, 15 lost", i, p)
		}
	}
	if reports != 30 || sent != 600 || lost != 90 {
		t.Fatalf("history totals %d reports, %d sent, %d lost; want 30, 600, 90", reports, sent, lost)
	}
	// The ASCII matrix (what make demo prints).
	tr := get(t, h, "/api/matrix.txt?mesh=lab")
	tb, _ := io.ReadAll(tr.Body)
	wantText := "from\\to    0a0a0a0a                 0b0b0b0b                 0c0c0c0c                \n" +
		"0a0a0a0a   .                        direct 1.23ms 0.0%       relay 20.50ms 15.0%     \n" +
		"0b0b0b0b   direct 1.25ms 1.0%       .                        lan 0.31ms 1.0%         \n" +
		"0c0c0c0c   relay 20.40ms 0.0%       none - 100.0%            .                       \n"
	if !strings.HasPrefix(string(tb), wantText) || !strings.Contains(string(tb), "0c0c0c0c -> 0b0b0b0b: no reply on any candidate address\n") {
		t.Errorf("matrix.txt:\n%s\nwant prefix:\n%s", tb, wantText)
	}
	all := decode[MeshJSON](t, get(t, h, "/api/mesh?mesh=lab"))
	if len(all.Matrix.Cells) != 6 || len(all.Clients) != 3 || len(all.Events) != 4 {
		t.Fatalf("mesh overview: %d cells, %d clients, %d events", len(all.Matrix.Cells), len(all.Clients), len(all.Events))
	}
	for _, bad := range []string{"/api/history?mesh=lab", "/api/history?mesh=lab&src=a&dst=b&range=x", "/api/events?mesh=lab&from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z"} {
		if r := get(t, h, bad); r.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: HTTP %d, want 400", bad, r.StatusCode)
		}
	}
	// The page and its assets are served from the binary.
	for _, p := range []string{"/", "/static/app.js", "/static/style.css"} {
		r := get(t, h, p)
		b, _ := io.ReadAll(r.Body)
		if r.StatusCode != 200 || len(b) < 100 {
			t.Errorf("%s: HTTP %d, %d bytes", p, r.StatusCode, len(b))
		}
		if p == "/" && (!strings.Contains(string(b), `data-refresh-ms="2000"`) || strings.Contains(string(b), "http")) {
			t.Errorf("page: refresh not filled in or an external URL: %s", b)
		}
	}
}

func TestMetrics(t *testing.T) {
	s, c := fixture(t)
	h := Wrapped(New(Config{Source: s, Now: c.Now, MaxPairSeries: 4, Relay: func() (uint64, uint64) { return 42, 4200 }}), "127.0.0.1:9000")
	r := get(t, h, "/metrics")
	b, _ := io.ReadAll(r.Body)
	text := string(b)
	for _, want := range []string{
		"ptpserver_clients 4\n", // three in lab, one in other
		"ptpserver_meshes 2\n",
		`ptpserver_paths{path="direct"} 2` + "\n",
		`ptpserver_paths{path="relay"} 2` + "\n",
		`ptpserver_paths{path="lan"} 1` + "\n",
		`ptpserver_paths{path="none"} 1` + "\n",
		"ptpserver_relayed_bytes_total 4200\n",
		"ptpserver_relayed_packets_total 42\n",
		"ptpserver_store_reports_total 180\n",
		// a→b: 1200 sent, 0 lost, avg 1.234 ms; quantiles from the newest report.
		`ptpserver_pair_rtt_seconds{dst="` + uB + `",mesh="lab",path="direct",src="` + uA + `",quantile="0.99"} 0.00148` + "\n",
		`ptpserver_pair_rtt_seconds_count{dst="` + uB + `",mesh="lab",path="direct",src="` + uA + `"} 1200` + "\n",
		// Five pairs received replies (c→b got none); the cap exports four.
		"ptpserver_pair_series_omitted 1\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if n := strings.Count(text, "ptpserver_pair_rtt_seconds_count{"); n != 4 {
		t.Errorf("%d pair series, want the cap of 4", n)
	}
	if t.Failed() {
		t.Log(text)
	}
}

func TestAccess(t *testing.T) {
	s, c := fixture(t)
	const tok = "s3cret-token-0123456789"
	// Loopback without a token: reads work, nothing changes state, foreign Host refused.
	h := Wrapped(New(Config{Source: s, Now: c.Now}), "127.0.0.1:9000")
	if r := get(t, h, "/api/meshes"); r.StatusCode != 200 {
		t.Fatalf("loopback read: HTTP %d", r.StatusCode)
	}
	if r := get(t, h, "/api/meshes", "Host", "evil.example:9000"); r.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("foreign Host: HTTP %d, want 421", r.StatusCode)
	}
	post := func(h http.Handler, hdr ...string) int {
		req := httptest.NewRequest(http.MethodPost, "/api/meshes", strings.NewReader("{}"))
		req.Host = "10.0.0.1:9000"
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	// Non-loopback with a token: 401 without it or with a wrong one, on every endpoint.
	h = Wrapped(New(Config{Source: s, Now: c.Now, Token: tok}), "10.0.0.1:9000")
	for _, p := range []string{"/", "/api/meshes", "/api/matrix?mesh=lab", "/api/history?mesh=lab&src=a&dst=b", "/metrics", "/static/app.js"} {
		if r := get(t, h, p, "Host", "10.0.0.1:9000"); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s without token: HTTP %d, want 401", p, r.StatusCode)
		}
		if r := get(t, h, p, "Host", "10.0.0.1:9000", "Authorization", "Bearer wrong-token-0123456789"); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s with a wrong token: HTTP %d, want 401", p, r.StatusCode)
		}
		if r := get(t, h, p, "Host", "10.0.0.1:9000", "Cookie", cookieName+"=nope"); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s with a wrong cookie: HTTP %d, want 401", p, r.StatusCode)
		}
	}
	if r := get(t, h, "/api/meshes", "Host", "10.0.0.1:9000", "Authorization", "Bearer "+tok); r.StatusCode != 200 {
		t.Fatalf("bearer token: HTTP %d", r.StatusCode)
	}
	// The page accepts ?token= once, keeps it in a cookie and removes it from the address.
	r := get(t, h, "/?mesh=lab&token="+tok, "Host", "10.0.0.1:9000")
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/?mesh=lab" {
		t.Fatalf("?token=: HTTP %d to %q", r.StatusCode, r.Header.Get("Location"))
	}
	var cookie string
	for _, ck := range r.Cookies() {
		if ck.Name == cookieName && ck.HttpOnly && ck.SameSite == http.SameSiteStrictMode {
			cookie = ck.Value
		}
	}
	if cookie != tok {
		t.Fatalf("cookie %q", cookie)
	}
	if r := get(t, h, "/api/matrix?mesh=lab", "Host", "10.0.0.1:9000", "Cookie", cookieName+"="+cookie); r.StatusCode != 200 {
		t.Fatalf("cookie: HTTP %d", r.StatusCode)
	}
	// No endpoint changes state: without the token 401, with it still refused (read-only).
	if code := post(h); code != http.StatusUnauthorized {
		t.Errorf("POST without token: HTTP %d, want 401", code)
	}
	if code := post(h, "Authorization", "Bearer "+tok); code != http.StatusMethodNotAllowed {
		t.Errorf("POST with token: HTTP %d, want 405", code)
	}
	// Listening on a non-loopback address without a token is refused.
	if _, err := Listen(context.Background(), "0.0.0.0:0", New(Config{Source: s}), nil); !errors.Is(err, httpside.ErrTokenRequired) {
		t.Fatalf("Listen 0.0.0.0 without token: %v", err)
	}
}

func short(u string) string { return u[:8] }
