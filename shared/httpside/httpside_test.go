package httpside

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/keyfile"
)

const tok = "0123456789abcdef-token"

// echo answers 200 with the method and the body it could read.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	fmt.Fprintf(w, "%s %d", r.Method, len(b))
})

func tcpAddr(s string) net.Addr {
	a, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		panic(err)
	}
	return a
}

type req struct {
	method, host, auth, ctype, body string
}

func do(h http.Handler, q req) int {
	r := httptest.NewRequest(q.method, "http://x/p", strings.NewReader(q.body))
	r.Host = q.host
	if q.auth != "" {
		r.Header.Set("Authorization", q.auth)
	}
	if q.ctype != "" {
		r.Header.Set("Content-Type", q.ctype)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code
}

// Every request rule, on a loopback listener with and without a token and on a
// non-loopback one.
func TestRules(t *testing.T) {
	bearer := "Bearer " + tok
	json := "application/json; charset=utf-8"
	loop, _ := Wrap(Config{}, tcpAddr("127.0.0.1:8862"), echo)
	loopTok, st := Wrap(Config{Token: tok, MaxBody: 100}, tcpAddr("127.0.0.1:8862"), echo)
	lan, _ := Wrap(Config{Token: tok, Hosts: []string{"probe.example.net"}}, tcpAddr("192.0.2.7:9862"), echo)
	for _, tc := range []struct {
		name string
		h    http.Handler
		q    req
		code int
	}{
		{"loopback GET", loop, req{"GET", "127.0.0.1:8862", "", "", ""}, 200},
		{"localhost GET", loop, req{"GET", "localhost:8862", "", "", ""}, 200},
		{"[::1] GET", loop, req{"GET", "[::1]:8862", "", "", ""}, 200},
		{"rebinding Host", loop, req{"GET", "evil.example:8862", "", "", ""}, 421},
		{"other IP Host", loop, req{"GET", "10.1.1.1:8862", "", "", ""}, 421},
		{"empty Host", loop, req{"GET", "", "", "", ""}, 421},
		{"POST without token configured", loop, req{"POST", "localhost", bearer, json, "{}"}, 403},
		{"DELETE without token configured", loop, req{"DELETE", "localhost", "", "", ""}, 403},
		{"OPTIONS preflight", loopTok, req{"OPTIONS", "localhost", "", "", ""}, 405},
		{"POST without token", loopTok, req{"POST", "localhost", "", json, "{}"}, 401},
		{"POST wrong token", loopTok, req{"POST", "localhost", "Bearer nope", json, "{}"}, 401},
		{"POST text/plain", loopTok, req{"POST", "localhost", bearer, "text/plain", "{}"}, 415},
		{"POST form", loopTok, req{"POST", "localhost", bearer, "application/x-www-form-urlencoded", "a=1"}, 415},
		{"POST no type", loopTok, req{"POST", "localhost", bearer, "", "{}"}, 415},
		{"POST ok", loopTok, req{"POST", "localhost", bearer, json, "{}"}, 200},
		{"DELETE ok", loopTok, req{"DELETE", "localhost", bearer, "application/json", ""}, 200},
		{"DELETE text", loopTok, req{"DELETE", "localhost", bearer, "", ""}, 415},
		{"POST too large", loopTok, req{"POST", "localhost", bearer, json, strings.Repeat("x", 101)}, 413},
		{"loopback GET with token configured", loopTok, req{"GET", "localhost", "", "", ""}, 200},
		{"LAN GET without token", lan, req{"GET", "192.0.2.7:9862", "", "", ""}, 401},
		{"LAN GET with token", lan, req{"GET", "192.0.2.7:9862", bearer, "", ""}, 200},
		{"LAN GET by name", lan, req{"GET", "PROBE.example.net", bearer, "", ""}, 200},
		{"LAN GET localhost Host", lan, req{"GET", "localhost", bearer, "", ""}, 421},
	} {
		if got := do(tc.h, tc.q); got != tc.code {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.code)
		}
	}
	r := st.Refused()
	if r["token"] != 2 || r["content_type"] != 4 || r["method"] != 1 || r["body"] != 1 {
		t.Errorf("refusals %v", r)
	}
}

// A wildcard listener answers for the host's own addresses only.
func TestWildcardHost(t *testing.T) {
	h, _ := Wrap(Config{Token: tok}, tcpAddr("0.0.0.0:9862"), echo)
	if c := do(h, req{"GET", "127.0.0.1:9862", "Bearer " + tok, "", ""}); c != 200 {
		t.Errorf("loopback Host on wildcard: %d", c)
	}
	if c := do(h, req{"GET", "203.0.113.9", "Bearer " + tok, "", ""}); c != 421 {
		t.Errorf("foreign IP Host on wildcard: %d", c)
	}
}

func TestListen(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := Listen(ctx, Config{Addr: "0.0.0.0:0"}, echo); !errors.Is(err, ErrTokenRequired) {
		t.Errorf("wildcard without token: %v", err)
	}
	if _, err := Listen(ctx, Config{Addr: "localhost:0"}, echo); err == nil {
		t.Error("host name accepted as listen address")
	}
	// Slow clients from one address: each holds a connection without finishing its
	// headers; the per-address cap closes the rest at once and another address is served
	// at once. The split (4 refused by the cap, 4 by the header timeout) holds when the 8
	// connections are made within the 1 s header timeout; a test stalled longer (the first
	// ones may time out before the last arrive) tries again with a new server.
	for attempt := 1; ; attempt++ {
		refused, closed, dialing := slowClients(t)
		if closed == 8 && refused == 4 {
			break
		}
		if dialing < time.Second || attempt == 5 {
			t.Fatalf("%d slow connections closed, %d refused by the cap (connections made in %v, attempt %d)", closed, refused, dialing, attempt)
		}
		t.Logf("attempt %d: the 8 connections took %v (the test stalled); again", attempt, dialing)
	}
}

// slowClients runs a server with MaxConnsPerHost 4 and a 1 s header timeout, holds 8
// connections from 127.0.0.2 without finishing their headers, checks that another address
// is served meanwhile, and returns the refusals by the cap, the slow connections closed, and
// how long making them took.
func slowClients(t *testing.T) (refused uint64, closed int, dialing time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := Listen(ctx, Config{Addr: "127.0.0.1:0", MaxConns: 6, MaxConnsPerHost: 4, ReadHeaderTimeout: time.Second}, echo)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(srv.Addr().String())
	var slow []net.Conn
	defer func() {
		for _, c := range slow {
			c.Close()
		}
	}()
	start := time.Now()
	for range 8 {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
		c, err := d.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: localhost\r\n")) // never finished
		slow = append(slow, c)
	}
	dialing = time.Since(start)
	cl := &http.Client{Timeout: 20 * time.Second}
	resp, err := cl.Get("http://127.0.0.1:" + port + "/")
	if err != nil {
		t.Fatalf("GET while 8 slow clients hold connections: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "GET 0" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("GET: %d %q %v", resp.StatusCode, b, resp.Header)
	}
	// Four slow connections were closed at once (cap), the others by the header timeout.
	for _, c := range slow {
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		if line == "" || strings.Contains(line, "408") {
			closed++
		}
	}
	refused = srv.Stats.Refused()["conns"]
	cancel()
	select {
	case <-srv.Done():
	case <-time.After(30 * time.Second): // hang guard
		t.Error("server did not stop")
	}
	return refused, closed, dialing
}

func TestLoadToken(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if got, err := LoadToken(write("ok", tok+"\n", 0o600)); err != nil || got != tok {
		t.Errorf("LoadToken = %q, %v", got, err)
	}
	if got, err := LoadToken(""); err != nil || got != "" {
		t.Errorf("no file: %q %v", got, err)
	}
	if _, err := LoadToken(write("open", tok, 0o644)); !errors.Is(err, keyfile.ErrPermissions) {
		t.Errorf("0644: %v", err)
	}
	for _, bad := range []string{"short", "two words here-and-long", ""} {
		if _, err := LoadToken(write("bad", bad, 0o600)); err == nil {
			t.Errorf("token %q accepted", bad)
		}
	}
}

func TestPage(t *testing.T) {
	for q, want := range map[string][2]int{"": {0, 100}, "?offset=5": {5, 100}, "?limit=3": {0, 3},
		"?limit=99999": {0, 1000}, "?offset=2&limit=7": {2, 7}} {
		o, l, err := Page(httptest.NewRequest("GET", "/s"+q, nil), 100, 1000)
		if err != nil || o != want[0] || l != want[1] {
			t.Errorf("%q: %d %d %v", q, o, l, err)
		}
	}
	for _, q := range []string{"?offset=-1", "?limit=0", "?limit=x"} {
		if _, _, err := Page(httptest.NewRequest("GET", "/s"+q, nil), 100, 1000); err == nil {
			t.Errorf("%q accepted", q)
		}
	}
	if s, e := Slice(10, 8, 5); s != 8 || e != 10 {
		t.Errorf("Slice = %d %d", s, e)
	}
	if s, e := Slice(10, 20, 5); s != 10 || e != 10 {
		t.Errorf("Slice past end = %d %d", s, e)
	}
}

// A client that sends its headers and then stalls in the body is cut off by ReadTimeout
// (issue 11 H9: bodies read with no timeout held 300 connections), and a body over MaxBody
// is refused, on a real listener.
func TestSlowAndLargeBodies(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := Listen(ctx, Config{Addr: "127.0.0.1:0", Token: tok, ReadTimeout: 2 * time.Second, MaxBody: 1000}, echo)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /x HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{", tok)
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	b, _ := io.ReadAll(c) // the server answers (or not) and closes
	if strings.Contains(string(b), "POST 100") {
		t.Errorf("stalled body was read whole: %q", b)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+srv.Addr().String()+"/x", strings.NewReader(strings.Repeat("x", 1001)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("1001-octet body: %d", resp.StatusCode)
	}
	// Chunked (no Content-Length): MaxBytesReader stops the handler's read.
	req, _ = http.NewRequest(http.MethodPost, "http://"+srv.Addr().String()+"/x", io.MultiReader(strings.NewReader(strings.Repeat("y", 2000))))
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("2000-octet chunked body: %d", resp.StatusCode)
	}
}

// The idle keep-alive timeout closes a connection that finished a request and sent nothing
// more; the write timeout ends a response the client does not read. Both are set far below
// the other timeouts (a minute) and the 30 s hang guard, so the test fails if either is not
// applied.
func TestIdleAndWriteTimeouts(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	writeErr := make(chan error, 1)
	h := http.NewServeMux()
	h.Handle("/x", echo)
	h.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 64<<10)
		for range 1 << 14 { // 1 GiB at most: far more than the socket buffers hold
			if _, err := w.Write(chunk); err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- nil
	})
	srv, err := Listen(ctx, Config{Addr: "127.0.0.1:0", ReadHeaderTimeout: time.Minute, ReadTimeout: time.Minute,
		WriteTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond}, h)
	if err != nil {
		t.Fatal(err)
	}
	// Idle: one request answered on a keep-alive connection, then silence.
	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("keep-alive request: %d, close %v", resp.StatusCode, resp.Close)
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := br.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("idle keep-alive connection: read %d, %v; want the server to close it (EOF)", n, err)
	}
	// Write: the client asks for a large response and never reads it.
	c2, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	fmt.Fprintf(c2, "GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n")
	select {
	case err := <-writeErr:
		if err == nil {
			t.Error("1 GiB written to a client that reads nothing")
		}
	case <-time.After(30 * time.Second):
		t.Error("the response to a client that reads nothing is still being written after 30 s")
	}
}
