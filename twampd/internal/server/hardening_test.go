package server

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/reflector"
	"github.com/probekit/probekit/shared/twampctl"
)

// dialFrom connects from a chosen loopback source address (127.0.0.2 …) and runs the
// client handshake.
func dialFrom(t *testing.T, src, addr string) (*twampctl.Conn, error) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	return twampctl.ClientHandshake(nc, clientCfg(twampctl.ModeUnauthenticated))
}

// Issue 11 H2: a client beyond --max-connections or --max-connections-per-host is told it
// is refused (Modes 0 greeting), not left with an EOF; other addresses are still served.
func TestConnectionLimits(t *testing.T) {
	ts := startServer(t, Config{Modes: twampctl.ModeUnauthenticated, MaxConnections: 3, MaxConnectionsPerHost: 2})
	for i := range 2 {
		if _, err := dialFrom(t, "127.0.0.2", ts.ctl); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	_, err := dialFrom(t, "127.0.0.2", ts.ctl)
	if !errors.Is(err, twampctl.ErrRejected) || !strings.Contains(err.Error(), "refuses service") {
		t.Errorf("third connection from one address: %v, want a refusal", err)
	}
	if _, err := dialFrom(t, "127.0.0.1", ts.ctl); err != nil {
		t.Errorf("another address: %v", err)
	}
	if _, err := dialFrom(t, "127.0.0.3", ts.ctl); !errors.Is(err, twampctl.ErrRejected) {
		t.Errorf("fourth connection overall: %v, want a refusal", err)
	}
	waitFor(t, func() bool { return ts.m.connsRefusedHost.Load() == 1 && ts.m.connsRejected.Load() == 1 })
}

// Issue 11 H2: a connection that never answers the greeting is closed after the handshake
// timeout, not after SERVWAIT, and frees its slot.
func TestHandshakeTimeout(t *testing.T) {
	ts := startServer(t, Config{Modes: twampctl.ModeUnauthenticated, MaxConnections: 1,
		HandshakeTimeout: 2 * time.Second, ServWait: time.Hour})
	idle, err := net.Dial("tcp", ts.ctl)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	// The greeting arrives, then (with no Set-Up-Response) the server closes: EOF long
	// before SERVWAIT (an hour).
	_ = idle.SetReadDeadline(time.Now().Add(time.Minute))
	n, err := io.Copy(io.Discard, idle)
	if err != nil || n != twampctl.ServerGreetingLen {
		t.Fatalf("idle connection: read %d octets, %v; want the greeting then EOF", n, err)
	}
	waitFor(t, func() bool { return ts.m.handshakeTimeouts.Load() == 1 })
	// The slot is free again, and an established connection is not cut by the handshake
	// timeout.
	waitFor(t, func() bool {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		return len(ts.conns) == 0
	})
	ctl, err := dial(t, ts.ctl, clientCfg(twampctl.ModeUnauthenticated))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2200 * time.Millisecond) // past the handshake timeout
	s, _ := newSender(t, ctl, 0, 0)
	if err := ctl.StartSessions(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.exchange(t, 1); err != nil {
		t.Errorf("established connection after the handshake timeout: %v", err)
	}
}

// Issue 11 H1: sessions per connection and in total are bounded; a requested session costs
// kilobytes (its reflector loop and buffers start at Start-Sessions) and is released when
// the connection ends.
func TestSessionLimitsAndCost(t *testing.T) {
	const perConn, n = 300, 250
	ts := startServer(t, Config{Modes: twampctl.ModeUnauthenticated, MaxSessionsPerConnection: perConn, MaxSessions: n + 1})
	ctl, err := dial(t, ts.ctl, clientCfg(twampctl.ModeUnauthenticated))
	if err != nil {
		t.Fatal(err)
	}
	request := func(c *twampctl.Conn) error {
		rq := twampctl.RequestTWSession{IPVN: 4, SenderPort: 9, Timeout: 1 << 32, TypeP: 0}
		_, err := c.RequestSession(&rq)
		return err
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	goBefore := runtime.NumGoroutine()
	for i := range n {
		if err := request(ctl); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (int64(after.HeapInuse) - int64(before.HeapInuse)) / n
	// Before the fix each requested session held 1.18 MB of batch buffers; the bound leaves
	// room for the socket's batch state and bookkeeping.
	if per > 64<<10 {
		t.Errorf("a requested session holds %d octets of heap, want < 64 KiB", per)
	}
	if g := runtime.NumGoroutine() - goBefore; g > 10 {
		t.Errorf("%d goroutines for %d requested sessions", g, n)
	}
	t.Logf("requested session: %d octets of heap", per)
	// Total bound: one more fits, the next is refused with Accept=4 (temporary resource).
	other, err := dial(t, ts.ctl, clientCfg(twampctl.ModeUnauthenticated))
	if err != nil {
		t.Fatal(err)
	}
	if err := request(other); err != nil {
		t.Fatal(err)
	}
	var re *twampctl.RejectError
	if err := request(other); !errors.As(err, &re) || re.Accept != twampctl.AcceptTemporaryResource {
		t.Errorf("request beyond --max-sessions: %v", err)
	}
	// Closing the connection releases its requested sessions.
	ctl.Close()
	waitFor(t, func() bool {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		return len(ts.sessions) == 1
	})
	// Per-connection bound.
	ts2 := startServer(t, Config{Modes: twampctl.ModeUnauthenticated, MaxSessionsPerConnection: 2})
	c2, err := dial(t, ts2.ctl, clientCfg(twampctl.ModeUnauthenticated))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := request(c2); err != nil {
			t.Fatal(err)
		}
	}
	if err := request(c2); !errors.As(err, &re) || re.Accept != twampctl.AcceptTemporaryResource {
		t.Errorf("request beyond --max-sessions-per-connection: %v", err)
	}
}

// Datagrams sent to a requested session before Start-Sessions get no reply; after it the
// session reflects from sequence 0.
func TestLazyStart(t *testing.T) {
	ts := startServer(t, Config{Modes: twampctl.ModeUnauthenticated})
	ctl, err := dial(t, ts.ctl, clientCfg(twampctl.ModeUnauthenticated))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newSender(t, ctl, 0, 0)
	s.wait = 300 * time.Millisecond
	if _, _, err := s.exchange(t, 1); err == nil {
		t.Error("reply before Start-Sessions")
	}
	if err := ctl.StartSessions(); err != nil {
		t.Fatal(err)
	}
	s.wait = 0
	rp, _, err := s.exchange(t, 7)
	if err != nil || rp.Seq != 0 || rp.SenderSeq != 7 {
		t.Errorf("after Start-Sessions: %+v %v", rp, err)
	}
}

func TestHostKey(t *testing.T) {
	for in, want := range map[string]string{"192.0.2.7": "192.0.2.7", "::ffff:192.0.2.7": "192.0.2.7",
		"2001:db8:1:2:aaaa::1": "2001:db8:1:2::", "2001:db8:1:2:bbbb::9": "2001:db8:1:2::", "::1": "::"} {
		if got := hostKey(netip.MustParseAddr(in)); got.String() != want {
			t.Errorf("hostKey(%s) = %s, want %s", in, got, want)
		}
	}
}

// Issue 11 H2: when every connection slot is held by clients that requested nothing for
// longer than the handshake timeout, a newcomer takes the oldest one's slot; connections
// holding sessions are never evicted, nor idle ones younger than the handshake timeout.
func TestIdleConnectionEviction(t *testing.T) {
	// Young: evictable only after an hour, nothing is old enough.
	young := startServer(t, Config{Modes: twampctl.ModeUnauthenticated, MaxConnections: 1, EvictIdleAfter: time.Hour})
	if _, err := dialFrom(t, "127.0.0.3", young.ctl); err != nil {
		t.Fatal(err)
	}
	if _, err := dialFrom(t, "127.0.0.4", young.ctl); !errors.Is(err, twampctl.ErrRejected) {
		t.Fatalf("newcomer with a young idle connection: %v, want a refusal", err)
	}
	// Old: evictable after 1 ms, the idle connection and the one hoarding a requested session
	// it never starts are old by the time newcomers arrive (50 ms later).
	ts := startServer(t, Config{Modes: twampctl.ModeUnauthenticated, MaxConnections: 2, EvictIdleAfter: time.Millisecond})
	hoarder, err := dialFrom(t, "127.0.0.5", ts.ctl)
	if err != nil {
		t.Fatal(err)
	}
	if as, err := hoarder.RequestSession(&twampctl.RequestTWSession{IPVN: 4, SenderPort: 10}); err != nil || as.Accept != twampctl.AcceptOK {
		t.Fatal(as.Accept, err)
	}
	idle, err := dialFrom(t, "127.0.0.3", ts.ctl)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	for _, src := range []string{"127.0.0.1", "127.0.0.6"} {
		if _, err := dialFrom(t, src, ts.ctl); err != nil {
			t.Fatalf("newcomer %s with old connections without test traffic: %v", src, err)
		}
	}
	for name, c := range map[string]*twampctl.Conn{"idle": idle, "hoarding": hoarder} {
		_ = c.NetConn().SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := c.NetConn().Read(make([]byte, 1)); err == nil {
			t.Errorf("the %s connection was not closed", name)
		}
	}
	// The hoarded session ended with its connection.
	waitFor(t, func() bool { return len(ts.Status().Sessions) == 0 })
	if ts.m.connsEvicted.Load() != 2 || young.m.connsEvicted.Load() != 0 {
		t.Errorf("evicted %d and %d", ts.m.connsEvicted.Load(), young.m.connsEvicted.Load())
	}
}

// A connection keeps its slot at --max-connections only while its started sessions get test
// packets: one that started a session and sends nothing is evicted like an idle one, one
// whose session received a packet within EvictIdleAfter is kept, and loses the slot once its
// traffic is older than that. The clock is passed to the eviction, so no timing is judged.
func TestEvictionNeedsTestTraffic(t *testing.T) {
	const after = 10 * time.Second
	ts := startServer(t, Config{Modes: twampctl.ModeUnauthenticated, MaxConnections: 2, EvictIdleAfter: after})
	measuring, err := dialFrom(t, "127.0.0.2", ts.ctl)
	if err != nil {
		t.Fatal(err)
	}
	silent, err := dialFrom(t, "127.0.0.3", ts.ctl)
	if err != nil {
		t.Fatal(err)
	}
	snd, _ := newSender(t, measuring, 0, 0)
	if s2, _ := newSender(t, silent, 0, 0); s2 == nil {
		t.Fatal("no session")
	}
	for _, c := range []*twampctl.Conn{measuring, silent} {
		if err := c.StartSessions(); err != nil {
			t.Fatal(err)
		}
	}
	// Both connections and the silent session's start lie more than a second before the
	// measuring session's packet (a loaded machine only widens the gap).
	time.Sleep(1100 * time.Millisecond)
	if _, _, err := snd.exchange(t, 0); err != nil {
		t.Fatalf("test packet: %v", err)
	}
	var key reflector.SessionKey
	ts.mu.Lock()
	for _, ss := range ts.sessions {
		if ss.owner.nc.RemoteAddr().(*net.TCPAddr).IP.Equal(net.ParseIP("127.0.0.2")) {
			key = ss.rs.Key
		}
	}
	ts.mu.Unlock()
	last, ok := ts.refl.Table().LastSeen(key)
	if !ok || last.IsZero() {
		t.Fatalf("measuring session: last packet %v, %v", last, ok)
	}
	evict := func(now time.Time) bool {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		return ts.evictIdleLocked(now)
	}
	closed := func(c *twampctl.Conn) bool {
		_ = c.NetConn().SetReadDeadline(time.Now().Add(20 * time.Second))
		_, err := c.NetConn().Read(make([]byte, 1))
		return err != nil
	}
	// 9 s after the packet: the silent connection (started > 10 s before) goes, the
	// measuring one stays; nothing else is evictable.
	if !evict(last.Add(after-time.Second)) || !closed(silent) {
		t.Fatal("the connection whose started session got no packet was not evicted")
	}
	if evict(last.Add(after - time.Second)) {
		t.Error("the measuring connection was evicted within EvictIdleAfter of its last packet")
	}
	// 11 s after the packet: it has been silent too long.
	if !evict(last.Add(after+time.Second)) || !closed(measuring) {
		t.Error("the connection silent for longer than EvictIdleAfter kept its slot")
	}
}

// --max-sessions 0 leaves control sessions unlimited: the reflector table that holds them
// (provisioned sessions count against its bound) is not capped at the learned-session
// default; with --light, 0 means that default.
func TestUnlimitedSessionsTable(t *testing.T) {
	full := startServer(t, Config{Modes: twampctl.ModeUnauthenticated})
	if full.cfg.MaxSessions != 0 {
		t.Fatalf("startServer set MaxSessions %d", full.cfg.MaxSessions)
	}
	if got := full.refl.Table().Max(); got <= reflector.DefaultMaxSessions {
		t.Errorf("full mode, --max-sessions 0: table bound %d", got)
	}
	capped := startServer(t, Config{Modes: twampctl.ModeUnauthenticated, MaxSessions: 5})
	if got := capped.refl.Table().Max(); got != 5 {
		t.Errorf("--max-sessions 5: table bound %d", got)
	}
}
