// Package abuse replays issue 11's attacks on twampd (H1, H2, H10, H11, and issue 10's two
// daemons on one host) against the real binary on loopback, in a bounded form that runs in
// `make test` (seconds). PROBEKIT_ABUSE_LONG=1 runs the full sizes (make bench).
package abuse

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/testsupport/daemontest"
	"github.com/probekit/probekit/shared/testsupport/gobuild"
	"github.com/probekit/probekit/shared/timestamp"
	"github.com/probekit/probekit/shared/twampctl"
)

// rssBound is the resident memory twampd may reach under the bounded attacks: the Go
// runtime and binary (~15 MB) plus at most 96 requested sessions of a few KB each and the
// socket state of the refused connections. Before the fix one attack connection with 1000
// requests alone held 1.1 GB.
const rssBound = 80 << 20

// heapBound is the Go heap in use under the same attack: 96 requested sessions at ~21 KB
// each and the runtime's own (~2 MB). Before the fix the 96 held 113 MB of batch buffers.
const heapBound = 24 << 20

func long() bool { return os.Getenv("PROBEKIT_ABUSE_LONG") != "" }

// TestMain removes the binary gobuild built (a failed build fails every test that needs it).
func TestMain(m *testing.M) {
	code := m.Run()
	gobuild.Cleanup()
	os.Exit(code)
}

func twampd(t *testing.T) string {
	t.Helper()
	return gobuild.Binary(t, "../..")
}

// start runs twampd on loopback with JSON logs and returns it with its control and
// metrics addresses.
func start(t *testing.T, args ...string) (*daemontest.Daemon, string, string) {
	t.Helper()
	d := daemontest.Start(t, twampd(t), append([]string{"--log-format", "json", "-S", "127.0.0.1:0", "--metrics", "127.0.0.1:0"}, args...)...)
	ctl := d.WaitMsg(30*time.Second, "TWAMP-Control listening").Str("addr")
	met := ""
	if !strings.Contains(strings.Join(args, " "), "--metrics") {
		met = d.WaitMsg(30*time.Second, "metrics and status listening").Str("addr")
	}
	return d, ctl, met
}

// legit runs a real open-mode test session from 127.0.0.1 with n packets, each waiting for
// its reply, and returns how many came back (with the right sequence numbers).
func legit(t *testing.T, ctlAddr string, n int) int {
	t.Helper()
	nc, err := net.DialTimeout("tcp", ctlAddr, 10*time.Second)
	if err != nil {
		t.Fatalf("legitimate client: dial: %v", err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	ctl, err := twampctl.ClientHandshake(nc, twampctl.ClientConfig{Modes: twampctl.ModeUnauthenticated})
	if err != nil {
		t.Fatalf("legitimate client: handshake: %v", err)
	}
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	// Timeout 0: the session ends at Stop-Sessions, so the gauges below count only the attack.
	as, err := ctl.RequestSession(&twampctl.RequestTWSession{IPVN: 4, SenderPort: uint16(uc.LocalAddr().(*net.UDPAddr).Port)})
	if err != nil {
		t.Fatalf("legitimate client: request: %v", err)
	}
	if err := ctl.StartSessions(); err != nil {
		t.Fatalf("legitimate client: start: %v", err)
	}
	dst := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(as.Port)}
	got := 0
	buf := make([]byte, 2048)
	for i := range n {
		sp := testpkt.SenderPacket{Mode: testpkt.ModeUnauthenticated, Seq: uint32(i), Timestamp: testpkt.Stamp(time.Now(), false),
			ErrorEstimate: timestamp.NewErrorEstimate(false, false, time.Millisecond)}
		if _, err := uc.WriteToUDP(sp.AppendTo(nil), dst); err != nil {
			t.Fatal(err)
		}
		_ = uc.SetReadDeadline(time.Now().Add(2 * time.Second))
		m, _, err := uc.ReadFromUDP(buf)
		if err != nil {
			continue
		}
		var rp testpkt.ReflectedPacket
		rp.Mode = testpkt.ModeUnauthenticated
		if rp.UnmarshalBinary(buf[:m]) == nil && rp.SenderSeq == uint32(i) && rp.Seq == uint32(i) {
			got++
		}
	}
	_ = ctl.StopSessions(1, twampctl.AcceptOK)
	return got
}

// scrape returns the metrics as name{labels} → value.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	return daemontest.Scrape(t, "http://"+addr+"/metrics")
}

func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// H1 (requested sessions never started) and H2 (idle connections) at once, from attacker
// addresses 127.0.0.2 and 127.0.0.3, while a legitimate client on 127.0.0.1 measures.
func TestControlAbuse(t *testing.T) {
	requests, idle := 200, 20
	if long() {
		requests, idle = 1000, 200
	}
	t0 := time.Now()
	d, ctlAddr, met := start(t, "--handshake-timeout", "2s")
	t.Logf("started in %v", time.Since(t0))
	if got := legit(t, ctlAddr, 100); got != 100 {
		t.Fatalf("baseline: %d of 100 replies", got)
	}

	// H1: three open-mode connections, each asking for `requests` sessions, never started.
	accepted, rejected := 0, 0
	for range 3 {
		nc := dialFrom(t, "127.0.0.2", ctlAddr)
		_ = nc.SetDeadline(time.Now().Add(60 * time.Second))
		ctl, err := twampctl.ClientHandshake(nc, twampctl.ClientConfig{Modes: twampctl.ModeUnauthenticated})
		if err != nil {
			t.Fatalf("attack connection: %v", err)
		}
		for range requests {
			_, err := ctl.RequestSession(&twampctl.RequestTWSession{IPVN: 4, SenderPort: 9, Timeout: 1 << 32})
			var re *twampctl.RejectError
			switch {
			case err == nil:
				accepted++
			case errors.As(err, &re) && re.Accept == twampctl.AcceptTemporaryResource:
				rejected++
			default:
				t.Fatalf("request: %v", err)
			}
		}
	}
	if accepted != 3*32 || rejected != 3*(requests-32) {
		t.Errorf("H1: %d requests accepted, %d rejected; want %d and %d (--max-sessions-per-connection 32)",
			accepted, rejected, 3*32, 3*(requests-32))
	}

	t.Logf("H1 done at %v", time.Since(t0))
	// H2: idle TCP connections that never answer the greeting. Eight are served (one
	// address's share), the rest get a Modes 0 greeting at once.
	refused := 0
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range idle {
		c := dialFrom(t, "127.0.0.3", ctlAddr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var g [twampctl.ServerGreetingLen]byte
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.ReadFull(c, g[:]); err != nil {
				return
			}
			if binary.BigEndian.Uint32(g[12:16]) == 0 { // Modes (RFC 4656 §3.1)
				mu.Lock()
				refused++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if refused != idle-8 {
		t.Errorf("H2: %d of %d idle connections refused with Modes 0, want %d (--max-connections-per-host 8)", refused, idle, idle-8)
	}

	t.Logf("H2 done at %v", time.Since(t0))
	// During the attack a legitimate client is served with no loss.
	if got := legit(t, ctlAddr, 100); got != 100 {
		t.Errorf("during the attack: %d of 100 replies", got)
	}
	rss := d.RSS()
	t.Logf("RSS during the attack: %.1f MB (bound %d MB)", float64(rss)/(1<<20), rssBound>>20)
	if rss > rssBound {
		t.Errorf("RSS %d MB above %d MB", rss>>20, rssBound>>20)
	}
	// The idle connections are closed by the handshake timeout (2 s), not SERVWAIT (900 s).
	deadline := time.Now().Add(30 * time.Second)
	var m map[string]float64
	for {
		m = scrape(t, met)
		if (m["twampd_handshake_timeouts_total"] >= 8 && m["twampd_sessions"] == 3*32) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	// RSS does not show Go memory that was allocated but never touched (the 1.1 MB of batch
	// buffers per requested session before the fix were mostly untouched zero pages): the
	// heap in use does.
	heap := m["go_memstats_heap_inuse_bytes"]
	t.Logf("Go heap in use during the attack: %.1f MB (bound %d MB)", heap/(1<<20), heapBound>>20)
	if heap <= 0 || heap > heapBound {
		t.Errorf("go_memstats_heap_inuse_bytes = %v, want (0, %d]", heap, heapBound)
	}
	for name, want := range map[string]float64{
		"twampd_handshake_timeouts_total":                   8,
		"twampd_control_connections_refused_per_host_total": float64(idle - 8),
		"twampd_sessions_rejected_total":                    float64(3 * (requests - 32)),
	} {
		if m[name] < want {
			t.Errorf("%s = %v, want ≥ %v", name, m[name], want)
		}
	}
	if m["twampd_sessions"] != 3*32 {
		t.Errorf("twampd_sessions = %v, want %d requested sessions held", m["twampd_sessions"], 3*32)
	}
	for _, msg := range []string{"control connection refused", "Request-TW-Session rejected", "no Set-Up-Response within --handshake-timeout"} {
		if d.Count(msg) == 0 {
			t.Errorf("no log line %q", msg)
		}
	}
	if !d.Alive() {
		t.Fatal("twampd died")
	}
	// Right after: still served.
	if got := legit(t, ctlAddr, 100); got != 100 {
		t.Errorf("after the attack: %d of 100 replies", got)
	}
}

// H10: a metrics address off loopback needs a token; with one, /status answers only with
// it. H11: a key file other accounts can read is refused naming chmod 600.
func TestSidePortAndKeyFile(t *testing.T) {
	bin := twampd(t)
	code, _, stderr := daemontest.Run(t, 30*time.Second, bin, "-S", "127.0.0.1:0", "--metrics", "0.0.0.0:0")
	if code != 2 || !strings.Contains(stderr, "needs a token") {
		t.Errorf("--metrics 0.0.0.0:0 without a token: exit %d, %q", code, stderr)
	}
	tok := daemontest.WriteFile(t, "token", "abuse-test-token-0123456789\n", 0o600)
	d := daemontest.Start(t, bin, "--log-format", "json", "-S", "127.0.0.1:0", "--metrics", "0.0.0.0:0", "--metrics-token-file", tok)
	met := d.WaitMsg(30*time.Second, "metrics and status listening").Str("addr")
	_, port, _ := net.SplitHostPort(met)
	for _, tc := range []struct {
		auth string
		code int
	}{{"", 401}, {"Bearer wrong-token-wrong-token", 401}, {"Bearer abuse-test-token-0123456789", 200}} {
		req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+port+"/status", nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("/status with %q: %d, want %d", tc.auth, resp.StatusCode, tc.code)
		}
	}
	key := daemontest.WriteFile(t, "twampd.pfs", "alice\t736563726574\n", 0o644)
	code, _, stderr = daemontest.Run(t, 30*time.Second, bin, "-S", "127.0.0.1:0", "--metrics=", "-k", key)
	if code != 1 || !strings.Contains(stderr, "chmod 600 "+key) || strings.Count(stderr, "\n") != 1 {
		t.Errorf("0644 key file: exit %d, %q", code, stderr)
	}
}

// Issue 10: twampd and twampd --light on one host with the same metrics port: the second
// warns and serves.
func TestTwoDaemons(t *testing.T) {
	_, ctlAddr, met := start(t)
	bin := twampd(t)
	light := daemontest.Start(t, bin, "--log-format", "json", "--light", "-S", "127.0.0.1:0", "--metrics", met)
	addr := light.WaitMsg(30*time.Second, "TWAMP Light reflector listening").Str("addr")
	light.WaitMsg(30*time.Second, "metrics and status endpoint unavailable")
	uc, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	sp := testpkt.SenderPacket{Mode: testpkt.ModeUnauthenticated, Seq: 5, Timestamp: testpkt.Stamp(time.Now(), false)}
	if _, err := uc.Write(sp.AppendTo(nil)); err != nil {
		t.Fatal(err)
	}
	_ = uc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	if _, err := uc.Read(buf); err != nil {
		t.Errorf("second daemon (--light) does not answer: %v", err)
	}
	if got := legit(t, ctlAddr, 10); got != 10 {
		t.Errorf("first daemon: %d of 10 replies", got)
	}
	if !regexp.MustCompile(`^127\.0\.0\.1:\d+$`).MatchString(met) {
		t.Errorf("metrics address %q", met)
	}
}
