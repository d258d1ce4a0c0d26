package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/net/ipv4"

	"github.com/probekit/probekit/shared/netlab"
	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/timestamp"
	"github.com/probekit/probekit/shared/twampctl"
)

var testKeys = twampctl.KeyFile{"testuser": []byte("testsecret")}

type testServer struct {
	*Server
	ctl, metrics string
	cancel       context.CancelFunc
	done         chan error
	logs         *bytes.Buffer
}

func startServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	if len(cfg.Listen) == 0 {
		cfg.Listen = []string{"127.0.0.1:0"}
	}
	if cfg.Keys == nil {
		cfg.Keys = testKeys
	}
	if cfg.Modes == 0 {
		cfg.Modes = twampctl.SecurityModes
	}
	if cfg.MetricsAddr == "" {
		cfg.MetricsAddr = "127.0.0.1:0"
	}
	cfg.Count = 1024
	l := logrus.New()
	l.SetOutput(io.Discard)
	cfg.Logger = l
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{Server: s, cancel: cancel, done: make(chan error, 1)}
	ready := make(chan []net.Addr, 1)
	go func() { ts.done <- s.Run(ctx, func(a []net.Addr) { ready <- a }) }()
	select {
	case a := <-ready:
		ts.ctl, ts.metrics = a[0].String(), a[len(a)-1].String()
	case err := <-ts.done:
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-ts.done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return ts
}

func dial(t *testing.T, addr string, cfg twampctl.ClientConfig) (*twampctl.Conn, error) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	return twampctl.ClientHandshake(nc, cfg)
}

func clientCfg(m twampctl.Mode) twampctl.ClientConfig {
	return twampctl.ClientConfig{Modes: m, Identity: "testuser", Secret: []byte("testsecret")}
}

// sender is a minimal Session-Sender used to check the reflector against ground truth.
type sender struct {
	conn   *net.UDPConn
	remote *net.UDPAddr
	mode   twampctl.Mode
	tc     *twampctl.TestCrypto
	pad    int
	wait   time.Duration // reply timeout (2 s when 0)
	sentAt time.Time     // clock read just after the last exchange's request left
}

func newSender(t *testing.T, ctl *twampctl.Conn, pad int, dscp uint8) (*sender, twampctl.AcceptSession) {
	t.Helper()
	local := ctl.NetConn().LocalAddr().(*net.TCPAddr)
	uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: local.IP})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { uc.Close() })
	lp := uint16(uc.LocalAddr().(*net.UDPAddr).Port)
	ipvn := uint8(4)
	if local.IP.To4() == nil {
		ipvn = 6
	}
	// Zero addresses, zero start time (TW-C5).
	rq := twampctl.RequestTWSession{IPVN: ipvn, SenderPort: lp, ReceiverPort: 0, PaddingLength: uint32(pad),
		Timeout: 1 << 31, TypeP: twampctl.TypePFromDSCP(dscp)}
	as, err := ctl.RequestSession(&rq)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	s := &sender{conn: uc, remote: &net.UDPAddr{IP: ctl.NetConn().RemoteAddr().(*net.TCPAddr).IP, Port: int(as.Port)},
		mode: ctl.Mode().TestSecurity(), pad: pad}
	if s.mode == twampctl.ModeAuthenticated || s.mode == twampctl.ModeEncrypted {
		if s.tc, err = twampctl.NewTestCrypto(s.mode, as.SID, ctl.Keys()); err != nil {
			t.Fatal(err)
		}
	}
	return s, as
}

func (s *sender) pktMode() testpkt.Mode {
	if s.tc == nil {
		return testpkt.ModeUnauthenticated
	}
	return testpkt.ModeTWAMPAuthenticated
}

// exchange sends one packet and returns the decoded reply and its wire size.
func (s *sender) exchange(t *testing.T, seq uint32) (testpkt.ReflectedPacket, int, error) {
	rp, n, _, err := s.exchangeRaw(t, seq)
	return rp, n, err
}

// exchangeRaw is exchange that also returns the decrypted reply octets.
func (s *sender) exchangeRaw(t *testing.T, seq uint32) (testpkt.ReflectedPacket, int, []byte, error) {
	t.Helper()
	sp := testpkt.SenderPacket{Mode: s.pktMode(), Seq: seq, Timestamp: testpkt.Stamp(time.Now(), false),
		ErrorEstimate: timestamp.NewErrorEstimate(false, false, time.Millisecond)}
	b := sp.AppendTo(nil)
	base := testpkt.TWAMPSenderLen
	if s.tc != nil {
		base = testpkt.TWAMPAuthSenderLen
	}
	b = append(b[:min(len(b), base)], make([]byte, base+s.pad-min(len(b), base))...)
	for i := base; i < len(b); i++ {
		b[i] = byte(i) // recognisable padding
	}
	if s.tc != nil {
		if err := s.tc.SealSender(b); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.conn.WriteToUDP(b, s.remote); err != nil {
		t.Fatal(err)
	}
	s.sentAt = time.Now()
	wait := s.wait
	if wait == 0 {
		wait = 2 * time.Second
	}
	_ = s.conn.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 2048)
	n, _, err := s.conn.ReadFromUDP(buf)
	var rp testpkt.ReflectedPacket
	if err != nil {
		return rp, 0, nil, err
	}
	if s.tc != nil {
		if err := s.tc.OpenReflector(buf[:n]); err != nil {
			t.Fatalf("reply HMAC: %v", err)
		}
	}
	rp.Mode = s.pktMode()
	if err := rp.UnmarshalBinary(buf[:n]); err != nil {
		t.Fatal(err)
	}
	return rp, n, buf[:n], nil
}

// Every mode end to end at the protocol level, IPv4 and IPv6: sizes, copied fields, own
// sequence numbers from 0, TTL 255 (TW-T1, TW-T2, TW-T5, TW-C5, TW-C8).
func TestModesEndToEnd(t *testing.T) {
	for _, fam := range []string{"127.0.0.1:0", "[::1]:0"} {
		ts := startServer(t, Config{Listen: []string{fam}})
		for _, m := range []twampctl.Mode{twampctl.ModeUnauthenticated, twampctl.ModeAuthenticated, twampctl.ModeEncrypted, twampctl.ModeMixed} {
			t.Run(fmt.Sprintf("%s/%s", fam, m), func(t *testing.T) {
				ctl, err := dial(t, ts.ctl, clientCfg(m))
				if err != nil {
					t.Fatal(err)
				}
				pad := 27
				if m == twampctl.ModeAuthenticated || m == twampctl.ModeEncrypted {
					pad = 64
				}
				s1, as1 := newSender(t, ctl, pad, 0)
				s2, _ := newSender(t, ctl, pad+100, 0)
				// Before Start-Sessions nothing is reflected.
				s1.wait = 200 * time.Millisecond
				if _, _, err := s1.exchange(t, 99); err == nil {
					t.Fatal("reflected before Start-Sessions")
				}
				s1.wait = 0
				if err := ctl.StartSessions(); err != nil {
					t.Fatal(err)
				}
				for seq := uint32(10); seq < 15; seq++ {
					for i, s := range []*sender{s1, s2} {
						rp, n, err := s.exchange(t, seq)
						if err != nil {
							t.Fatalf("session %d seq %d: %v", i, seq, err)
						}
						want := testpkt.TWAMPSenderLen + s.pad
						if s.tc != nil {
							want = max(testpkt.TWAMPAuthSenderLen+s.pad, testpkt.AuthBaseLen)
						}
						want = max(want, testpkt.TWAMPReflectedLen)
						if n != want {
							t.Errorf("reply %d octets, want %d", n, want)
						}
						if rp.SenderSeq != seq || rp.Seq != seq-10 {
							t.Errorf("sender seq %d reflector seq %d, want %d/%d", rp.SenderSeq, rp.Seq, seq, seq-10)
						}
						if rp.SenderTTL != 255 && rp.SenderTTL != 64 {
							t.Errorf("sender TTL %d", rp.SenderTTL)
						}
						if rp.ErrorEstimate.Multiplier() == 0 {
							t.Error("reflector EE multiplier 0")
						}
						if r := rp.Residence(); r < 0 || r > time.Second {
							t.Errorf("residence %v", r)
						}
					}
				}
				st := ts.Status()
				var found bool
				for _, ss := range st.Sessions {
					if ss.SID == fmt.Sprintf("%x", as1.SID) {
						found = true
						if ss.Received != 5 || ss.Reflected != 5 || ss.State != "running" {
							t.Errorf("status %+v, want 5/5 running", ss)
						}
					}
				}
				if !found {
					t.Error("session missing from status")
				}
				if err := ctl.StopSessions(2, twampctl.AcceptOK); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// A wrong key fails cleanly on both sides and leaves no session (issue proof).
func TestWrongKey(t *testing.T) {
	ts := startServer(t, Config{})
	for _, m := range []twampctl.Mode{twampctl.ModeAuthenticated, twampctl.ModeEncrypted, twampctl.ModeMixed} {
		_, err := dial(t, ts.ctl, twampctl.ClientConfig{Modes: m, Identity: "testuser", Secret: []byte("wrong")})
		var rej *twampctl.RejectError
		if !errors.As(err, &rej) || rej.Accept != twampctl.AcceptFailure {
			t.Errorf("%s: %v, want rejection accept=1", m, err)
		}
	}
	waitFor(t, func() bool { return ts.m.authFailures.Load() == 3 })
	if n := len(ts.Status().Sessions); n != 0 {
		t.Errorf("%d sessions left", n)
	}
}

// waitFor polls cond; the 30 s limit is only a hang guard (what it waits for happens in
// milliseconds on an idle machine, but a loaded CI machine may stall the server for longer).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	if !cond() {
		t.Fatal("condition not reached")
	}
}

// Requests the server must refuse with the right Accept value (TW-C6, limits).
func TestRequestValidation(t *testing.T) {
	ts := startServer(t, Config{MaxSessions: 3, Limits: LimitsFile{"open": {MaxSessions: 2, MaxPadding: 1000}, "testuser": {Deny: true}}})
	ctl, err := dial(t, ts.ctl, clientCfg(twampctl.ModeUnauthenticated))
	if err != nil {
		t.Fatal(err)
	}
	base := twampctl.RequestTWSession{IPVN: 4, SenderPort: 40000, PaddingLength: 27}
	for _, tc := range []struct {
		name   string
		mod    func(*twampctl.RequestTWSession)
		accept twampctl.Accept
	}{
		{"conf-sender", func(r *twampctl.RequestTWSession) { r.ConfSender = 1 }, twampctl.AcceptNotSupported},
		{"conf-receiver", func(r *twampctl.RequestTWSession) { r.ConfReceiver = 1 }, twampctl.AcceptNotSupported},
		{"slots", func(r *twampctl.RequestTWSession) { r.ScheduleSlots = 1 }, twampctl.AcceptNotSupported},
		{"packets", func(r *twampctl.RequestTWSession) { r.Packets = 5 }, twampctl.AcceptNotSupported},
		{"ipvn", func(r *twampctl.RequestTWSession) { r.IPVN = 5 }, twampctl.AcceptNotSupported},
		{"phb-id", func(r *twampctl.RequestTWSession) { r.TypeP = 1 << 30 }, twampctl.AcceptNotSupported},
		{"reflect-octets", func(r *twampctl.RequestTWSession) { r.OctetsToBeReflected = 2 }, twampctl.AcceptNotSupported},
		{"padding-limit", func(r *twampctl.RequestTWSession) { r.PaddingLength = 1001 }, twampctl.AcceptPermanentResource},
		{"ok1", func(r *twampctl.RequestTWSession) {}, twampctl.AcceptOK},
		{"ok2", func(r *twampctl.RequestTWSession) { r.SenderPort++ }, twampctl.AcceptOK},
		{"user-limit", func(r *twampctl.RequestTWSession) { r.SenderPort += 2 }, twampctl.AcceptTemporaryResource},
	} {
		rq := base
		tc.mod(&rq)
		as, err := ctl.RequestSession(&rq)
		if as.Accept != tc.accept {
			t.Errorf("%s: accept %d (%v), want %d", tc.name, as.Accept, err, tc.accept)
		}
		if tc.accept != twampctl.AcceptOK && as.Port != 0 {
			t.Errorf("%s: rejected with port %d", tc.name, as.Port)
		}
	}
	// Denied identity.
	ctl2, err := dial(t, ts.ctl, clientCfg(twampctl.ModeEncrypted))
	if err != nil {
		t.Fatal(err)
	}
	if as, _ := ctl2.RequestSession(&base); as.Accept != twampctl.AcceptFailure {
		t.Errorf("denied identity: accept %d", as.Accept)
	}
	// Global --max-sessions.
	ts2 := startServer(t, Config{MaxSessions: 1})
	c1, err := dial(t, ts2.ctl, twampctl.ClientConfig{Modes: twampctl.ModeUnauthenticated})
	if err != nil {
		t.Fatal(err)
	}
	if as, _ := c1.RequestSession(&base); as.Accept != twampctl.AcceptOK {
		t.Errorf("first session: accept %d", as.Accept)
	}
	c2, _ := dial(t, ts2.ctl, twampctl.ClientConfig{Modes: twampctl.ModeUnauthenticated})
	if as, _ := c2.RequestSession(&base); as.Accept != twampctl.AcceptTemporaryResource {
		t.Errorf("beyond --max-sessions: accept %d", as.Accept)
	}
}

// The requested port is used when free, otherwise the range (TW-C3).
func TestPortAllocation(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	busy := uint16(pc.LocalAddr().(*net.UDPAddr).Port)
	free, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freePort := uint16(free.LocalAddr().(*net.UDPAddr).Port)
	free.Close()
	defer pc.Close()
	lo := uint16(20000 + time.Now().UnixNano()%20000)
	ts := startServer(t, Config{TestPorts: PortRange{Lo: lo, Hi: lo + 20}})
	ctl, err := dial(t, ts.ctl, clientCfg(twampctl.ModeUnauthenticated))
	if err != nil {
		t.Fatal(err)
	}
	as, err := ctl.RequestSession(&twampctl.RequestTWSession{IPVN: 4, SenderPort: 1, ReceiverPort: freePort})
	if err != nil || as.Port != freePort {
		t.Errorf("free requested port: got %d (%v), want %d", as.Port, err, freePort)
	}
	as, err = ctl.RequestSession(&twampctl.RequestTWSession{IPVN: 4, SenderPort: 2, ReceiverPort: busy})
	if err != nil || as.Port < lo || as.Port > lo+20 {
		t.Errorf("busy requested port: got %d (%v), want from %d-%d", as.Port, err, lo, lo+20)
	}
}

// Stop-Sessions with the wrong count closes the connection in strict mode (TW-C7); unknown
// commands get Accept=3 (TW-C6).
func TestStopMismatchAndUnknownCommand(t *testing.T) {
	ts := startServer(t, Config{StrictStop: true})
	ctl, err := dial(t, ts.ctl, clientCfg(twampctl.ModeEncrypted))
	if err != nil {
		t.Fatal(err)
	}
	newSender(t, ctl, 27, 0)
	if err := ctl.StartSessions(); err != nil {
		t.Fatal(err)
	}
	if err := ctl.StopSessions(0, twampctl.AcceptOK); err != nil {
		t.Fatal(err)
	}
	if _, err := ctl.NetConn().Read(make([]byte, 1)); err == nil {
		t.Error("connection still open after miscounted Stop-Sessions")
	}
	waitFor(t, func() bool { return ts.m.stopMismatch.Load() == 1 && len(ts.Status().Sessions) == 0 })

	ctl2, err := dial(t, ts.ctl, clientCfg(twampctl.ModeUnauthenticated))
	if err != nil {
		t.Fatal(err)
	}
	msg := append([]byte{byte(twampctl.CmdForbidden)}, make([]byte, 111)...)
	if _, err := ctl2.NetConn().Write(msg); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, twampctl.AcceptSessionLen)
	if _, err := io.ReadFull(ctl2.NetConn(), b); err != nil {
		t.Fatal(err)
	}
	if b[0] != byte(twampctl.AcceptNotSupported) {
		t.Errorf("accept %d for a forbidden command, want 3", b[0])
	}
}

// SERVWAIT closes idle control connections; REFWAIT ends idle sessions (TW-C9); Timeout
// after Stop-Sessions ends reflection (TW-T4).
func TestTimers(t *testing.T) {
	ts := startServer(t, Config{ServWait: 300 * time.Millisecond, RefWait: 300 * time.Millisecond, MaxTimeout: 200 * time.Millisecond})
	ctl, err := dial(t, ts.ctl, clientCfg(twampctl.ModeUnauthenticated))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = ctl.NetConn().SetReadDeadline(time.Now().Add(60 * time.Second)) // hang guard
	var ne net.Error
	if _, err := ctl.NetConn().Read(make([]byte, 1)); err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("idle connection not closed by SERVWAIT: %v", err)
	}
	// Never before SERVWAIT (what the server guarantees); no upper bound, since a loaded
	// machine may deliver the close late.
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("SERVWAIT closed after %v, want ≥ 300ms (less the timer's slack)", d)
	}
	// REFWAIT: a started session without packets ends.
	ctl, err = dial(t, ts.ctl, clientCfg(twampctl.ModeUnauthenticated))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newSender(t, ctl, 27, 0)
	if err := ctl.StartSessions(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.exchange(t, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return ts.m.refwaitExpired.Load() == 1 })
	// Timeout after Stop-Sessions: reflects within it, not after (the requested 0.5 s capped
	// at 200ms). The test can vouch for "within" only when its request left less than the
	// Timeout after Stop-Sessions was sent (the server's timer starts later still); a test
	// stalled past that tries again with a new session.
	const timeout = 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ctl, err = dial(t, ts.ctl, clientCfg(twampctl.ModeUnauthenticated))
		if err != nil {
			t.Fatal(err)
		}
		s, _ = newSender(t, ctl, 27, 0)
		if err := ctl.StartSessions(); err != nil {
			t.Fatal(err)
		}
		ts.mu.Lock()
		n := len(ts.sessions)
		for _, ss := range ts.sessions {
			if ss.timeout != timeout {
				t.Errorf("session Timeout %v, want the requested 0.5 s capped at %v", ss.timeout, timeout)
			}
		}
		ts.mu.Unlock()
		if n == 0 {
			t.Fatal("no session to check the Timeout of")
		}
		stopSent := time.Now()
		if err := ctl.StopSessions(1, twampctl.AcceptOK); err != nil {
			t.Fatal(err)
		}
		_, _, err := s.exchange(t, 0)
		if err == nil {
			break
		}
		if late := s.sentAt.Sub(stopSent); late < timeout || attempt == 5 {
			t.Fatalf("no reflection within Timeout (request sent %v after Stop-Sessions, attempt %d): %v", late, attempt, err)
		} else {
			t.Logf("attempt %d: request sent %v after Stop-Sessions (the test stalled); again", attempt, late)
		}
	}
	// Not after: requests every 50 ms (well inside REFWAIT, so only the Timeout can end the
	// session) go unanswered once the Timeout's timer has ended it. When that happens is not
	// bounded (a loaded machine may fire the timer late) beyond a hang guard.
	s.wait = 300 * time.Millisecond
	for seq := uint32(1); ; seq++ {
		if _, _, err := s.exchange(t, seq); err != nil {
			t.Logf("request %d after Stop-Sessions unanswered", seq)
			break
		}
		if seq == 400 {
			t.Fatal("still reflecting 400 requests after Stop-Sessions (Timeout 200ms)")
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitFor(t, func() bool { return len(ts.Status().Sessions) == 0 })
	if _, _, err := s.exchange(t, 0); err == nil {
		t.Error("reflected after Stop-Sessions + Timeout")
	}
}

// The session records the Type-P DSCP the reflector applies (the DS field of the replies
// themselves is checked end to end in twampc's TestE2EDSCPECN, TW-T3), and a zero Padding
// Length is accepted (TW-C5).
func TestDSCP(t *testing.T) {
	ts := startServer(t, Config{})
	ctl, err := dial(t, ts.ctl, clientCfg(twampctl.ModeUnauthenticated))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newSender(t, ctl, 27, 46)
	zero, _ := newSender(t, ctl, 0, 0) // Padding Length 0: 14-octet requests (TW-C5)
	if err := ctl.StartSessions(); err != nil {
		t.Fatal(err)
	}
	if rp, n, err := zero.exchange(t, 7); err != nil || n != testpkt.TWAMPReflectedLen || rp.SenderSeq != 7 {
		t.Errorf("zero padding: reply of %d octets (%v), want 41", n, err)
	}
	if _, _, err := s.exchange(t, 0); err != nil {
		t.Fatal(err)
	}
	st := ts.Status()
	var found bool
	for _, ss := range st.Sessions {
		found = found || (ss.DSCP == 46 && ss.Padding == 27)
	}
	if len(st.Sessions) != 2 || !found {
		t.Fatalf("status %+v", st.Sessions)
	}
}

// Garbage, stalled and 1,000 parallel connections do not disturb a running session.
func TestRobustness(t *testing.T) {
	ts := startServer(t, Config{ServWait: 2 * time.Second})
	ctl, err := dial(t, ts.ctl, clientCfg(twampctl.ModeEncrypted))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newSender(t, ctl, 64, 0)
	if err := ctl.StartSessions(); err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	n := 1000
	if testing.Short() {
		n = 200
	}
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", ts.ctl)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
		switch i % 3 {
		case 0: // garbage instead of Set-Up-Response
			_, _ = c.Write(bytes.Repeat([]byte{0xff}, 200))
		case 1: // half a Set-Up-Response, then stall
			_, _ = c.Write(make([]byte, 80))
		}
	}
	for seq := uint32(0); seq < 20; seq++ {
		if _, _, err := s.exchange(t, seq); err != nil {
			t.Fatalf("session disturbed at seq %d: %v", seq, err)
		}
	}
	// A new client still gets through.
	ctl2, err := dial(t, ts.ctl, clientCfg(twampctl.ModeAuthenticated))
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	ctl2.Close()
	if err := ctl.StopSessions(1, twampctl.AcceptOK); err != nil {
		t.Fatal(err)
	}
}

// TWAMP Light reflects the twampy sender packets from the capture (TW-L1).
func TestLightTwampyPackets(t *testing.T) {
	ts := startServer(t, Config{Light: true, Modes: twampctl.ModeUnauthenticated, Keys: twampctl.KeyFile{}})
	// Sender packets of twamp-light-twampy.pcap: 14 octets, EE 0x3fff.
	pkts := [][]byte{
		{0, 0, 0, 0, 0xeb, 0x1b, 0xc4, 0x63, 0x1c, 0x20, 0x00, 0x00, 0x3f, 0xff},
		{0, 0, 0, 1, 0xeb, 0x1b, 0xc4, 0x63, 0x2c, 0x20, 0x00, 0x00, 0x3f, 0xff},
	}
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	dst := netip.MustParseAddrPort(ts.ctl)
	for i, p := range pkts {
		rp, n, _ := lightExchange(t, uc, dst, p)
		if n != testpkt.TWAMPReflectedLen {
			t.Errorf("reply %d octets, want 41", n)
		}
		if rp.Seq != uint32(i) || rp.SenderSeq != uint32(i) || rp.SenderTimestamp != binary.BigEndian.Uint64(p[4:]) || rp.SenderErrorEstimate != 0x3fff {
			t.Errorf("reply %d: %+v", i, rp)
		}
	}
	if st := ts.Status(); len(st.LightSessions) != 1 || st.LightSessions[0].Reflected != 2 {
		t.Errorf("light sessions %+v", st.LightSessions)
	}
}

// lightExchange sends req from uc to a TWAMP Light reflector and returns the decoded reply,
// its length and its source address.
func lightExchange(t *testing.T, uc *net.UDPConn, dst netip.AddrPort, req []byte) (testpkt.ReflectedPacket, int, netip.AddrPort) {
	t.Helper()
	if _, err := uc.WriteToUDPAddrPort(req, dst); err != nil {
		t.Fatal(err)
	}
	_ = uc.SetReadDeadline(time.Now().Add(2 * time.Second))
	b := make([]byte, 1500)
	n, from, err := uc.ReadFromUDPAddrPort(b)
	if err != nil {
		t.Fatalf("request to %v: %v", dst, err)
	}
	var rp testpkt.ReflectedPacket
	if err := rp.UnmarshalBinary(b[:n]); err != nil {
		t.Fatal(err)
	}
	return rp, n, from
}

func TestMetricsEndpoint(t *testing.T) {
	ts := startServer(t, Config{})
	_, _ = dial(t, ts.ctl, twampctl.ClientConfig{Modes: twampctl.ModeEncrypted, Identity: "nobody", Secret: []byte("x")})
	waitFor(t, func() bool { return ts.m.authFailures.Load() == 1 })
	resp, err := http.Get("http://" + ts.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"twampd_auth_failures_total 1\n", "twampd_control_connections_total 1\n",
		`twampd_dropped_packets_total{reason="auth"}`, "twampd_residence_seconds_bucket{le=\"+Inf\"}"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	resp, err = http.Get("http://" + ts.metrics + "/status")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"modes": "unauthenticated|authenticated|encrypted|mixed|individual-session-control|reflect-octets|symmetrical-size|dscp-ecn"`) {
		t.Errorf("status: %s", body)
	}
}

func TestParsers(t *testing.T) {
	lf, err := ParseLimits(strings.NewReader("# limits\nopen sessions=1\ntestuser sessions=4 padding=1400\nmallory deny\n* sessions=2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if lf.For("").MaxSessions != 1 || lf.For("testuser").MaxPadding != 1400 || !lf.For("mallory").Deny || lf.For("bob").MaxSessions != 2 {
		t.Errorf("limits %+v", lf)
	}
	for _, bad := range []string{"u sessions=x", "u foo=1", "u deny\nu deny"} {
		if _, err := ParseLimits(strings.NewReader(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if err := (&Config{Modes: twampctl.ModeEncrypted}).Validate(); err == nil {
		t.Error("encrypted mode without keys accepted")
	}
}

// RFC 7750: with DSCP and ECN monitoring negotiated, the reply carries the DS field the
// reflector received, right after Sender TTL, in open and encrypted layouts.
func TestDSCPECNMonitoring(t *testing.T) {
	ts := startServer(t, Config{})
	for _, m := range []twampctl.Mode{twampctl.ModeUnauthenticated, twampctl.ModeEncrypted} {
		cfg := clientCfg(m)
		cfg.Extensions = twampctl.ModeDSCPECN
		ctl, err := dial(t, ts.ctl, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if ctl.Mode()&twampctl.ModeDSCPECN == 0 {
			t.Fatalf("server did not accept DSCP-ECN monitoring: %s", ctl.Mode())
		}
		// RFC 7750 §2: "Sender DSCP and ECN" follows Sender TTL, at 41 in the open reflector
		// layout and 81 in the authenticated/encrypted one (inside the encrypted span).
		pad, off := 28, 41
		if m == twampctl.ModeEncrypted {
			pad, off = 64, 81
		}
		s, _ := newSender(t, ctl, pad, 0)
		const tos = 46<<2 | 1 // EF, ECT(1)
		if err := ipv4.NewConn(s.conn).SetTOS(tos); err != nil {
			t.Fatal(err)
		}
		if err := ctl.StartSessions(); err != nil {
			t.Fatal(err)
		}
		_, n, raw, err := s.exchangeRaw(t, 0)
		if err != nil {
			t.Fatal(err)
		}
		if raw[off] != tos {
			t.Errorf("%s: DS field in reply %#x, want %#x", m, raw[off], tos)
		}
		if want := max(testpkt.TWAMPSenderLen+pad, off+1); m == twampctl.ModeUnauthenticated && n != want {
			t.Errorf("open reply %d octets, want %d", n, want)
		}
	}
}

// twping's and twamp-protocol's real client streams (open mode, from the captures) played
// against twampd: every message is accepted and answered like owamp's twampd did, with the
// requested port tried first (TW-C3) and Stop-Sessions counting one session.
func TestPeerClientStreams(t *testing.T) {
	for _, name := range []string{"twamp-owamp-open.pcap", "twamp-twamp-protocol-client-vs-owamp.pcap"} {
		pkts, err := netlab.ReadCapture(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		var c2s []byte
		for _, p := range pkts {
			if p.TCP != nil && p.Dst.Port() == 8620 {
				c2s = append(c2s, p.Payload...)
			}
		}
		if len(c2s) != twampctl.SetUpResponseLen+twampctl.RequestTWSessionLen+twampctl.StartSessionsLen+twampctl.StopSessionsLen {
			t.Fatalf("%s: client stream of %d octets", name, len(c2s))
		}
		ts := startServer(t, Config{Modes: twampctl.ModeUnauthenticated | twampctl.ModeAuthenticated, MaxTimeout: 100 * time.Millisecond})
		nc, err := net.Dial("tcp", ts.ctl)
		if err != nil {
			t.Fatal(err)
		}
		_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
		read := func(n int) []byte {
			b := make([]byte, n)
			if _, err := io.ReadFull(nc, b); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return b
		}
		var g twampctl.ServerGreeting
		if err := g.UnmarshalBinary(read(twampctl.ServerGreetingLen)); err != nil || g.Modes != 3|SupportedExtensions || twampctl.ValidCount(g.Count) != nil {
			t.Fatalf("greeting %+v %v", g, err)
		}
		off := 0
		send := func(n int) {
			if _, err := nc.Write(c2s[off : off+n]); err != nil {
				t.Fatal(err)
			}
			off += n
		}
		send(twampctl.SetUpResponseLen)
		var st twampctl.ServerStart
		if err := st.UnmarshalBinary(read(twampctl.ServerStartLen)); err != nil || st.Accept != twampctl.AcceptOK {
			t.Fatalf("server start %+v %v", st, err)
		}
		var rq twampctl.RequestTWSession
		_ = rq.UnmarshalBinary(c2s[off : off+twampctl.RequestTWSessionLen])
		send(twampctl.RequestTWSessionLen)
		var as twampctl.AcceptSession
		if err := as.UnmarshalBinary(read(twampctl.AcceptSessionLen)); err != nil || as.Accept != twampctl.AcceptOK {
			t.Fatalf("accept %+v %v", as, err)
		}
		if as.Port != rq.ReceiverPort {
			t.Logf("%s: requested port %d busy, got %d", name, rq.ReceiverPort, as.Port)
		}
		send(twampctl.StartSessionsLen)
		var ack twampctl.StartAck
		if err := ack.UnmarshalBinary(read(twampctl.StartAckLen)); err != nil || ack.Accept != twampctl.AcceptOK {
			t.Fatalf("start ack %+v %v", ack, err)
		}
		send(twampctl.StopSessionsLen)
		nc.Close()
		waitFor(t, func() bool { return ts.m.stopMismatch.Load() == 0 && len(ts.Status().Sessions) == 0 })
	}
}

// The default dual-stack listener serves IPv4 clients (IPv4-mapped control addresses become
// plain IPv4 test sessions) and IPv6 clients.
func TestDualStackListener(t *testing.T) {
	ts := startServer(t, Config{Listen: []string{"[::]:0"}})
	port := netip.MustParseAddrPort(ts.ctl).Port()
	for _, host := range []string{"127.0.0.1", "::1"} {
		ctl, err := dial(t, netip.AddrPortFrom(netip.MustParseAddr(host), port).String(), clientCfg(twampctl.ModeUnauthenticated))
		if err != nil {
			t.Fatal(err)
		}
		s, _ := newSender(t, ctl, 27, 0)
		if err := ctl.StartSessions(); err != nil {
			t.Fatal(err)
		}
		if rp, _, err := s.exchange(t, 3); err != nil || rp.SenderSeq != 3 {
			t.Errorf("%s: %v", host, err)
		}
	}
}

// --busy-poll, --realtime (with the blocking reads it implies) and --blocking apply to the
// TWAMP Light socket and to negotiated sessions' sockets: both keep reflecting, with Sender
// TTL and sequence numbers intact, and REFWAIT still ends an idle session under busy polling.
func TestSocketScheduling(t *testing.T) {
	for _, tc := range []struct {
		name     string
		busyPoll time.Duration
		realtime int
		blocking bool
	}{
		{"busy-poll", 100 * time.Microsecond, 0, false},
		{"realtime", 0, 5, true},
		{"blocking", 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			light := startServer(t, Config{Light: true, Modes: twampctl.ModeUnauthenticated, Keys: twampctl.KeyFile{},
				BusyPoll: tc.busyPoll, Realtime: tc.realtime, Blocking: tc.blocking})
			uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer uc.Close()
			dst := netip.MustParseAddrPort(light.ctl)
			for i := range 10 {
				req := binary.BigEndian.AppendUint32(nil, uint32(100+i))
				rp, n, _ := lightExchange(t, uc, dst, append(req, make([]byte, 10)...))
				if n != testpkt.TWAMPReflectedLen || rp.Seq != uint32(i) || rp.SenderSeq != uint32(100+i) || rp.SenderTTL != 64 {
					t.Fatalf("light reply %d (%d octets): %+v", i, n, rp)
				}
			}

			ts := startServer(t, Config{BusyPoll: tc.busyPoll, Realtime: tc.realtime, Blocking: tc.blocking,
				RefWait: 400 * time.Millisecond})
			ctl, err := dial(t, ts.ctl, clientCfg(twampctl.ModeEncrypted))
			if err != nil {
				t.Fatal(err)
			}
			s, _ := newSender(t, ctl, 64, 0)
			if err := ctl.StartSessions(); err != nil {
				t.Fatal(err)
			}
			for seq := range uint32(10) {
				rp, n, err := s.exchange(t, seq)
				if err != nil || n != testpkt.AuthBaseLen || rp.Seq != seq || rp.SenderSeq != seq || rp.SenderTTL != 64 {
					t.Fatalf("session packet %d: %d octets %+v %v", seq, n, rp, err)
				}
			}
			waitFor(t, func() bool { return ts.m.refwaitExpired.Load() == 1 })
		})
	}
}

// A TWAMP Light reflector on a wildcard address answers from the address each request was
// sent to, so a sender that talks to 127.0.0.2 gets its reply from 127.0.0.2.
func TestLightWildcard(t *testing.T) {
	ts := startServer(t, Config{Light: true, Listen: []string{"0.0.0.0:0"}, Modes: twampctl.ModeUnauthenticated, Keys: twampctl.KeyFile{}})
	port := netip.MustParseAddrPort(ts.ctl).Port()
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	for i, a := range []string{"127.0.0.2", "127.0.0.1"} {
		to := netip.AddrPortFrom(netip.MustParseAddr(a), port)
		req := append(binary.BigEndian.AppendUint32(nil, uint32(i)), make([]byte, 10)...)
		_, n, from := lightExchange(t, uc, to, req)
		if from != to || n != testpkt.TWAMPReflectedLen {
			t.Errorf("request to %v: %d-octet reply from %v", to, n, from)
		}
	}
}
