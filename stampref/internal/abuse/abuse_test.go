// Package abuse replays issue 11's attacks on stampref's monitoring API (H9) and key files
// (H11), and issue 10's two daemons on one host, against the real binary on loopback in a
// bounded form that runs in `make test` (seconds). PROBEKIT_ABUSE_LONG=1 runs the issue's
// full sizes (make bench).
package abuse

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/testsupport/daemontest"
	"github.com/probekit/probekit/shared/testsupport/gobuild"
)

// rssBound is the resident memory stampref may reach under the bounded attacks: the Go
// runtime and binary (~15 MB) plus a table of at most 300 provisioned sessions. Before the
// fix 200 k POSTs held 328 MB.
const rssBound = 80 << 20

const token = "stampref-abuse-token-0123456789"

func long() bool { return os.Getenv("PROBEKIT_ABUSE_LONG") != "" }

// TestMain removes the binary gobuild built (a failed build fails every test that needs it).
func TestMain(m *testing.M) {
	code := m.Run()
	gobuild.Cleanup()
	os.Exit(code)
}

func stampref(t *testing.T) string {
	t.Helper()
	return gobuild.Binary(t, "../..")
}

// start runs stampref on loopback with JSON logs; it returns the UDP address and the
// monitoring URL.
func start(t *testing.T, args ...string) (*daemontest.Daemon, string, string) {
	t.Helper()
	d := daemontest.Start(t, stampref(t), append([]string{"--log-format", "json", "--listen", "127.0.0.1:0"}, args...)...)
	udp := d.WaitMsg(30*time.Second, "stampref: serving").Str("listen")
	if strings.Contains(strings.Join(args, " "), "--no-monitor") {
		return d, udp, ""
	}
	r := d.Wait(30*time.Second, "monitoring up or unavailable", func(r daemontest.Record) bool {
		return r.Str("msg") == "stampref: monitoring" || strings.Contains(r.Str("msg"), "monitoring API unavailable")
	})
	return d, udp, r.Str("url")
}

// legit sends n unauthenticated STAMP packets from 127.0.0.1, one at a time, and returns
// how many replies carry the right sequence number.
func legit(t *testing.T, addr string, n int) int {
	t.Helper()
	uc, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	got := 0
	buf := make([]byte, 2048)
	for i := range n {
		sp := testpkt.SenderPacket{Mode: testpkt.ModeUnauthenticated, Seq: uint32(i), SSID: 77, Timestamp: testpkt.Stamp(time.Now(), false)}
		if _, err := uc.Write(sp.AppendTo(nil)); err != nil {
			t.Fatal(err)
		}
		_ = uc.SetReadDeadline(time.Now().Add(2 * time.Second))
		m, err := uc.Read(buf)
		if err != nil {
			continue
		}
		var rp testpkt.ReflectedPacket
		rp.Mode = testpkt.ModeUnauthenticated
		if rp.UnmarshalBinary(buf[:m]) == nil && rp.SenderSeq == uint32(i) {
			got++
		}
	}
	return got
}

func request(t *testing.T, method, url, ctype, auth, host, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	return daemontest.Scrape(t, url+"/metrics")
}

// H9: unauthenticated and cross-site mutations, a foreign Host, a flood of provisioning
// POSTs and slow connections, while a legitimate sender measures.
func TestMonitorAbuse(t *testing.T) {
	posts, slow := 1000, 100
	if long() {
		posts, slow = 200000, 300
	}
	tok := daemontest.WriteFile(t, "token", token+"\n", 0o600)
	d, udp, url := start(t, "--monitor", "127.0.0.1:0", "--monitor-token-file", tok, "--max-sessions", "300",
		"--provisioned-idle-timeout", "2s")
	if got := legit(t, udp, 100); got != 100 {
		t.Fatalf("baseline: %d of 100 replies", got)
	}
	body := `{"peer": "192.0.2.1:4000", "ssid": 1}`
	for _, tc := range []struct {
		name, ctype, auth, host string
		code                    int
	}{
		{"no token", "application/json", "", "", http.StatusUnauthorized},
		{"text/plain (cross-site form)", "text/plain", token, "", http.StatusUnsupportedMediaType},
		{"foreign Host (DNS rebinding)", "application/json", token, "attacker.example:8862", http.StatusMisdirectedRequest},
	} {
		if c := request(t, http.MethodPost, url+"/sessions", tc.ctype, tc.auth, tc.host, body); c != tc.code {
			t.Errorf("POST %s: %d, want %d", tc.name, c, tc.code)
		}
	}
	// A flood of authorised POSTs: the table (learned + provisioned) stops at --max-sessions.
	created, full := 0, 0
	for i := range posts {
		b := fmt.Sprintf(`{"peer": "192.0.2.%d:%d", "ssid": %d}`, 1+i%250, 1024+i/250%60000, i%65536)
		switch c := request(t, http.MethodPost, url+"/sessions", "application/json", token, "", b); c {
		case http.StatusCreated:
			created++
		case http.StatusInsufficientStorage:
			full++
		default:
			t.Fatalf("POST %d: %d", i, c)
		}
	}
	// 300 minus the legitimate sender's learned session fit at once; sessions idle for 2 s
	// expire meanwhile and make room for a few more on a slow run.
	if created < 299 || full == 0 || created+full != posts {
		t.Errorf("provisioned %d, refused %d of %d; want ≥ 299 and the rest refused", created, full, posts)
	}
	if n := scrape(t, url)["stampref_sessions"]; n > 300 {
		t.Errorf("table holds %v sessions, above --max-sessions 300", n)
	}
	// Slow connections from 127.0.0.2: headers never finished.
	var conns []net.Conn
	host := strings.TrimPrefix(url, "http://")
	for range slow {
		dl := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
		c, err := dl.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write([]byte("POST /sessions HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n"))
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// During the attack: the API answers another address, the legitimate sender loses nothing.
	if c := request(t, http.MethodGet, url+"/stats", "", "", "", ""); c != http.StatusOK {
		t.Errorf("GET /stats during the attack: %d", c)
	}
	if got := legit(t, udp, 100); got != 100 {
		t.Errorf("during the attack: %d of 100 replies", got)
	}
	rss := d.RSS()
	t.Logf("RSS during the attack: %.1f MB (bound %d MB)", float64(rss)/(1<<20), rssBound>>20)
	if rss > rssBound {
		t.Errorf("RSS %d MB above %d MB", rss>>20, rssBound>>20)
	}
	m := scrape(t, url)
	for name, want := range map[string]float64{
		`stampref_api_refused_requests_total{rule="token"}`:        1,
		`stampref_api_refused_requests_total{rule="content_type"}`: 1,
		`stampref_api_refused_requests_total{rule="host"}`:         1,
		"stampref_provision_refused_full_total":                    float64(full),
	} {
		if m[name] != want {
			t.Errorf("%s = %v, want %v", name, m[name], want)
		}
	}
	// The per-address cap (16) closed most of the slow connections at once (a few more may
	// have got in as the header timeout freed slots on a slow run).
	if n := m[`stampref_api_refused_requests_total{rule="conns"}`]; n < 1 || n > float64(slow-16) {
		t.Errorf("slow connections refused by the cap: %v, want 1…%d", n, slow-16)
	}
	// Provisioned sessions expire (idle 2 s here) and the expiry is logged.
	d.WaitMsg(30*time.Second, "API-provisioned sessions expired")
	deadline := time.Now().Add(30 * time.Second)
	for scrape(t, url)["stampref_provisioned_sessions"] != 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if v := scrape(t, url)["stampref_provisioned_sessions"]; v != 0 {
		t.Errorf("provisioned sessions after expiry: %v", v)
	}
	if !d.Alive() {
		t.Fatal("stampref died")
	}
	if got := legit(t, udp, 100); got != 100 {
		t.Errorf("after the attack: %d of 100 replies", got)
	}
}

// H11: a key file or token file other accounts can read is refused naming chmod 600; a key
// file alone selects authenticated mode (issue 10).
func TestKeyFiles(t *testing.T) {
	key := daemontest.WriteFile(t, "stamp.key", "abuse-key-0123456789\n", 0o644)
	code, _, stderr := daemontest.Run(t, 30*time.Second, stampref(t), "--listen", "127.0.0.1:0", "--no-monitor", "--key-file", key)
	if code != 1 || !strings.Contains(stderr, "chmod 600 "+key) || strings.Count(stderr, "\n") != 1 {
		t.Errorf("0644 key file: exit %d, %q", code, stderr)
	}
	tok := daemontest.WriteFile(t, "token", token, 0o640)
	code, _, stderr = daemontest.Run(t, 30*time.Second, stampref(t), "--listen", "127.0.0.1:0", "--monitor-token-file", tok)
	if code != 1 || !strings.Contains(stderr, "chmod 600 "+tok) {
		t.Errorf("0640 token file: exit %d, %q", code, stderr)
	}
	code, _, stderr = daemontest.Run(t, 30*time.Second, stampref(t), "--listen", "127.0.0.1:0", "--monitor", "0.0.0.0:0")
	if code != 2 || !strings.Contains(stderr, "--monitor-token-file") {
		t.Errorf("--monitor 0.0.0.0:0 without a token: exit %d, %q", code, stderr)
	}
	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}
	d, udp, _ := start(t, "--no-monitor", "--key-file", key)
	if r := d.WaitMsg(10*time.Second, "stampref: serving"); r.Str("mode") != testpkt.ModeAuthenticated.String() {
		t.Errorf("--key-file alone serves mode %q", r.Str("mode"))
	}
	if got := legit(t, udp, 1); got != 0 {
		t.Errorf("an unauthenticated sender got %d replies from a keyed reflector", got)
	}
}

// Issue 10: two stampref on one host with the default monitoring port: the second warns
// and reflects.
func TestTwoDaemons(t *testing.T) {
	_, udp1, url := start(t, "--monitor", "127.0.0.1:0")
	mon := strings.TrimPrefix(url, "http://")
	second, udp2, _ := start(t, "--monitor", mon)
	second.WaitMsg(10*time.Second, "monitoring API unavailable")
	var wg sync.WaitGroup
	for _, a := range []string{udp1, udp2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got := legit(t, a, 10); got != 10 {
				t.Errorf("%s: %d of 10 replies", a, got)
			}
		}()
	}
	wg.Wait()
}
