package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/reflector"
	"github.com/probekit/probekit/shared/testpkt"
)

// Issue 11 H9 against the running daemon's real listener: no token configured means
// read-only; with one, POST needs it and application/json; a foreign Host is refused; the
// refusals show in /metrics.
func TestMonitorRules(t *testing.T) {
	readOnly := startReadOnly(t)
	resp, err := http.Post(readOnly+"/sessions", "application/json", strings.NewReader(`{"peer": "127.0.0.1:9", "ssid": 1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST without a token file configured: %s", resp.Status)
	}
	r := start(t, Config{})
	for _, tc := range []struct {
		name, ctype, auth, host string
		code                    int
	}{
		{"no token", "application/json", "", "", http.StatusUnauthorized},
		{"text/plain (cross-site form)", "text/plain", "Bearer " + testToken, "", http.StatusUnsupportedMediaType},
		{"foreign Host (DNS rebinding)", "application/json", "Bearer " + testToken, "attacker.example", http.StatusMisdirectedRequest},
		{"authorised", "application/json", "Bearer " + testToken, "", http.StatusCreated},
	} {
		req, _ := http.NewRequest(http.MethodPost, r.url+"/sessions", strings.NewReader(`{"peer": "127.0.0.1:9", "ssid": 1}`))
		req.Header.Set("Content-Type", tc.ctype)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		if tc.host != "" {
			req.Host = tc.host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("%s: %s, want %d", tc.name, resp.Status, tc.code)
		}
	}
	resp, err = http.Get(r.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`stampref_api_refused_requests_total{rule="token"} 1`, `stampref_api_refused_requests_total{rule="content_type"} 1`,
		`stampref_api_refused_requests_total{rule="host"} 1`, "stampref_provisioned_sessions 1\n",
		"# HELP stampref_received_packets_total Test packets received.\n", "process_resident_memory_bytes"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// startReadOnly runs stampref with the monitor but no token and returns the monitor URL.
func startReadOnly(t *testing.T) string {
	t.Helper()
	r := start(t, Config{MonitorToken: noToken})
	return r.url
}

// Provisioned sessions count against --max-sessions and expire (H9: 200 k POSTs held 328 MB).
func TestProvisionedLimitsAndExpiry(t *testing.T) {
	listen := netip.MustParseAddrPort("127.0.0.1:8620")
	r, err := reflector.New(reflector.Config{Mode: testpkt.ModeUnauthenticated, MaxSessions: 3})
	if err != nil {
		t.Fatal(err)
	}
	m := &Monitor{R: r, Listen: []netip.AddrPort{listen}, Started: time.Now(), ProvisionedIdle: time.Minute}
	h := m.Handler()
	postN := func(i int) int {
		req := httptest.NewRequest(http.MethodPost, "/sessions", strings.NewReader(fmt.Sprintf(`{"peer": "192.0.2.1:%d", "ssid": 1}`, 1000+i)))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	for i := range 3 {
		if c := postN(i); c != http.StatusCreated {
			t.Fatalf("POST %d: %d", i, c)
		}
	}
	if c := postN(3); c != http.StatusInsufficientStorage {
		t.Errorf("POST beyond --max-sessions: %d", c)
	}
	if m.Provisioned() != 3 || m.refusedFull.Load() != 1 {
		t.Errorf("provisioned %d refused %d", m.Provisioned(), m.refusedFull.Load())
	}
	// Pagination: ?limit=2 returns two, X-Total-Count the total.
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/sessions?limit=2&offset=1", nil))
	var page []SessionJSON
	if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil || len(page) != 2 || w.Header().Get("X-Total-Count") != "3" ||
		page[0].Peer != "192.0.2.1:1001" {
		t.Errorf("page: %v %d %q %+v", err, len(page), w.Header().Get("X-Total-Count"), page)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/sessions?limit=0", nil))
	if w.Code != http.StatusBadRequest {
		t.Errorf("limit=0: %d", w.Code)
	}
	// Not yet idle for a minute: kept; after: removed, and the table has room again.
	if n := m.ExpireProvisioned(time.Now().Add(30 * time.Second)); n != 0 {
		t.Errorf("expired %d early", n)
	}
	if n := m.ExpireProvisioned(time.Now().Add(2 * time.Minute)); n != 3 || r.Table().Len() != 0 || m.Provisioned() != 0 {
		t.Errorf("expired %d, table %d, provisioned %d", n, r.Table().Len(), m.Provisioned())
	}
	if c := postN(9); c != http.StatusCreated {
		t.Errorf("POST after expiry: %d", c)
	}
	// An operator-provisioned session outside the API (none here) and one the API removed
	// by DELETE are not counted.
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodDelete, "/sessions/1@192.0.2.1:1009@127.0.0.1:8620", nil))
	if w.Code != http.StatusNoContent || m.Provisioned() != 0 {
		t.Errorf("DELETE: %d, provisioned %d", w.Code, m.Provisioned())
	}
}

// Provisioned and learned sessions share --max-sessions: learned sessions cannot grow the
// table past the limit beside provisioned ones (they evict only each other), and a POST into
// a full table answers 507 without evicting a measuring sender.
func TestProvisionedAndLearnedShareMax(t *testing.T) {
	listen := netip.MustParseAddrPort("127.0.0.1:8620")
	r, err := reflector.New(reflector.Config{Mode: testpkt.ModeUnauthenticated, MaxSessions: 3})
	if err != nil {
		t.Fatal(err)
	}
	m := &Monitor{R: r, Listen: []netip.AddrPort{listen}, Started: time.Now(), ProvisionedIdle: time.Minute}
	h := m.Handler()
	w := r.NewWorker()
	now := time.Now()
	learn := func(port uint16) bool {
		now = now.Add(time.Millisecond)
		sp := testpkt.SenderPacket{Mode: testpkt.ModeUnauthenticated, Seq: 1, Timestamp: testpkt.Stamp(now, false)}
		p := &reflector.Packet{Data: sp.AppendTo(nil), Peer: netip.AddrPortFrom(netip.MustParseAddr("192.0.2.9"), port),
			Local: listen, Listener: listen, RxTime: now}
		_, _, ok := w.Reflect(p, make([]byte, 0, 2048))
		return ok
	}
	post := func(port int) int {
		req := httptest.NewRequest(http.MethodPost, "/sessions", strings.NewReader(fmt.Sprintf(`{"peer": "192.0.2.1:%d", "ssid": 1}`, port)))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	for i := range 2 {
		if c := post(1000 + i); c != http.StatusCreated {
			t.Fatalf("POST %d: %d", i, c)
		}
	}
	// Before the fix the learned sessions had a limit of their own: 2 + 3 here.
	for p := uint16(1); p <= 3; p++ {
		if !learn(p) {
			t.Fatalf("learned session %d refused", p)
		}
		if n := r.Table().Len(); n != 3 {
			t.Fatalf("after learning %d: %d sessions, want the limit 3", p, n)
		}
	}
	if r.Table().Learned() != 1 || r.Stats.Evicted.Load() != 2 {
		t.Errorf("%d learned, %d evicted; want 1 learned beside 2 provisioned, 2 evicted", r.Table().Learned(), r.Stats.Evicted.Load())
	}
	if c := post(2000); c != http.StatusInsufficientStorage || m.refusedFull.Load() != 1 || r.Table().Learned() != 1 {
		t.Errorf("POST into a full table: %d, refused %d, learned %d", c, m.refusedFull.Load(), r.Table().Learned())
	}
}
