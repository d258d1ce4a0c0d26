package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/reflector"
	"github.com/probekit/probekit/shared/testpkt"
)

// FuzzParseSessionID: ParseSessionID never panics, rejects with a zero key, and on success
// SessionID re-formats the key into an id that parses back to the same key (the id GET
// /sessions lists is the one DELETE accepts).
func FuzzParseSessionID(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseSessionID(s)
		if err != nil {
			if k != (reflector.SessionKey{}) {
				t.Fatalf("ParseSessionID(%q) failed (%v) but returned %+v", s, err, k)
			}
			return
		}
		if k.Peer.Addr().Is4In6() {
			t.Fatalf("ParseSessionID(%q): peer %v not unmapped", s, k.Peer)
		}
		id := SessionID(k)
		k2, err := ParseSessionID(id)
		if err != nil {
			t.Fatalf("ParseSessionID(%q) = %+v, but its SessionID %q does not parse: %v", s, k, id, err)
		}
		if k2 != k {
			t.Fatalf("ParseSessionID(%q) = %+v, round trip via %q = %+v", s, k, id, k2)
		}
		if SessionID(k2) != id {
			t.Fatalf("SessionID not canonical: %q then %q", id, SessionID(k2))
		}
	})
}

// monitorFixture is the minimal state the monitoring handler needs: a reflector (never
// serving sockets) with a session table, and the listener addresses.
type monitorFixture struct {
	m    *Monitor
	h    http.Handler
	base reflector.SessionKey
}

func newMonitorFixture(t testing.TB, listen ...netip.AddrPort) *monitorFixture {
	t.Helper()
	r, err := reflector.New(reflector.Config{Mode: testpkt.ModeUnauthenticated})
	if err != nil {
		t.Fatal(err)
	}
	m := &Monitor{R: r, Listen: listen, Started: time.Now()}
	fx := &monitorFixture{m: m, h: m.Handler(),
		base: reflector.SessionKey{Peer: netip.MustParseAddrPort("192.0.2.7:40000"), Local: listen[0], SSID: 7}}
	fx.restore(t)
	return fx
}

// restore puts the table back to its baseline: one provisioned session fx.base.
func (fx *monitorFixture) restore(t testing.TB) {
	t.Helper()
	for _, s := range fx.m.R.Table().Snapshot() {
		fx.m.R.Table().Remove(infoKey(s))
	}
	if fx.m.R.Table().Len() != 0 {
		t.Fatalf("table not emptied: %+v", fx.m.R.Table().Snapshot())
	}
	if err := fx.m.R.Table().Provision(&reflector.Session{Key: fx.base}, false); err != nil {
		t.Fatal(err)
	}
}

// keys lists the session keys in the table (the comparable part of GET /sessions).
func (fx *monitorFixture) keys() []string {
	var out []string
	for _, s := range fx.m.R.Table().Snapshot() {
		out = append(out, SessionID(infoKey(s)))
	}
	return out
}

func (fx *monitorFixture) serve(req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	fx.h.ServeHTTP(rec, req)
	return rec
}

// FuzzMonitorPostSessions drives POST /sessions of the real handler with arbitrary bodies,
// against a monitor with one listener and one with two. A rejected body (400, 409) leaves
// the table unchanged and explains itself in a JSON error; an accepted one (201) adds exactly
// the session its reply describes, a second identical POST conflicts, and DELETE with the
// returned id removes it again.
func FuzzMonitorPostSessions(f *testing.F) {
	one := newMonitorFixture(f, netip.MustParseAddrPort("127.0.0.1:862"))
	two := newMonitorFixture(f, netip.MustParseAddrPort("127.0.0.1:862"), netip.MustParseAddrPort("[::1]:862"))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, fx := range []*monitorFixture{one, two} {
			before := fx.keys()
			post := func() *httptest.ResponseRecorder {
				req := httptest.NewRequest(http.MethodPost, "/sessions", strings.NewReader(string(body)))
				req.Header.Set("Content-Type", "application/json")
				return fx.serve(req)
			}
			rec := post()
			switch rec.Code {
			case http.StatusBadRequest, http.StatusConflict:
				var e map[string]string
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e["error"] == "" {
					t.Fatalf("POST %q: %d with body %q", body, rec.Code, rec.Body)
				}
				if after := fx.keys(); !reflect.DeepEqual(before, after) {
					t.Fatalf("POST %q rejected (%d) but table changed: %v -> %v", body, rec.Code, before, after)
				}
				continue
			case http.StatusCreated:
			default:
				t.Fatalf("POST %q: unexpected status %d %q", body, rec.Code, rec.Body)
			}
			var created struct {
				ID, Peer, Local string
				SSID            uint16
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &created); err != nil {
				t.Fatalf("POST %q: reply %q: %v", body, rec.Body, err)
			}
			k, err := ParseSessionID(created.ID)
			if err != nil {
				t.Fatalf("POST %q: returned id %q does not parse: %v", body, created.ID, err)
			}
			if k.Peer.String() != created.Peer || k.Local.String() != created.Local || k.SSID != created.SSID {
				t.Fatalf("POST %q: id %q disagrees with reply %+v", body, created.ID, created)
			}
			if !containsAddr(fx.m.Listen, k.Local) {
				t.Fatalf("POST %q: session on %v, not a listener %v", body, k.Local, fx.m.Listen)
			}
			after := fx.keys()
			if len(after) != len(before)+1 || !contains(after, sessionKeyString(k)) {
				t.Fatalf("POST %q created %q but table %v -> %v", body, created.ID, before, after)
			}
			if rec2 := post(); rec2.Code != http.StatusConflict {
				t.Fatalf("second POST %q: %d, want 409", body, rec2.Code)
			}
			del := fx.serve(httptest.NewRequest(http.MethodDelete, "/sessions/"+url.PathEscape(created.ID), nil))
			if del.Code != http.StatusNoContent {
				t.Fatalf("POST %q then DELETE %q: %d %q", body, created.ID, del.Code, del.Body)
			}
			if final := fx.keys(); !reflect.DeepEqual(before, final) {
				t.Fatalf("POST %q then DELETE: table %v, want %v", body, final, before)
			}
		}
	})
}

// FuzzMonitorDeleteSession drives DELETE /sessions/{id} of the real handler with arbitrary
// request targets (what the server would accept on a request line). Only a 204 may change the
// table, and then exactly the session whose id the path names was removed; anything else
// leaves the table as it was.
func FuzzMonitorDeleteSession(f *testing.F) {
	fx := newMonitorFixture(f, netip.MustParseAddrPort("127.0.0.1:862"))
	f.Fuzz(func(t *testing.T, id string) {
		target := "/sessions/" + id
		u, err := url.ParseRequestURI(target)
		if err != nil || strings.ContainsAny(target, " \r\n\t") {
			return // net/http answers 400 before any handler runs
		}
		req := &http.Request{Method: http.MethodDelete, URL: u, RequestURI: target, Proto: "HTTP/1.1",
			ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{}, Host: "127.0.0.1", Body: http.NoBody,
			RemoteAddr: "127.0.0.1:50000"}
		before := fx.keys()
		rec := fx.serve(req)
		after := fx.keys()
		switch rec.Code {
		case http.StatusNoContent:
			seg, ok := strings.CutPrefix(u.Path, "/sessions/")
			k, err := ParseSessionID(seg)
			if !ok || err != nil || k != fx.base {
				t.Fatalf("DELETE %q: 204 but path names %q (%v), not %+v", target, seg, err, fx.base)
			}
			if len(after) != len(before)-1 || contains(after, sessionKeyString(fx.base)) {
				t.Fatalf("DELETE %q: 204 but table %v -> %v", target, before, after)
			}
			fx.restore(t)
			return
		case http.StatusBadRequest:
			var e map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e["error"] == "" {
				t.Fatalf("DELETE %q: %d with body %q", target, rec.Code, rec.Body)
			}
		case http.StatusNotFound:
			// "no such session" from the handler, or the mux's own 404 for paths the
			// route does not match (empty id, more segments)
		case http.StatusMethodNotAllowed, http.StatusMovedPermanently, http.StatusTemporaryRedirect,
			http.StatusPermanentRedirect:
			// the mux's own answers: no route for that path, or a redirect to the cleaned path
		default:
			t.Fatalf("DELETE %q: unexpected status %d %q", target, rec.Code, rec.Body)
		}
		if !reflect.DeepEqual(before, after) {
			t.Fatalf("DELETE %q answered %d but table changed: %v -> %v", target, rec.Code, before, after)
		}
	})
}

func sessionKeyString(k reflector.SessionKey) string { return SessionID(k) }

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func containsAddr(list []netip.AddrPort, a netip.AddrPort) bool {
	for _, v := range list {
		if v == a {
			return true
		}
	}
	return false
}
