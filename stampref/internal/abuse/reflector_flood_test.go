package abuse

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/testsupport/daemontest"
	"github.com/probekit/probekit/shared/timestamp"
	"github.com/probekit/probekit/shared/udpsock"
)

// sender is a legitimate STAMP Session-Sender on 127.1.0.1 (another /24 than the attackers on
// 127.0.0.0/8's other prefixes) that sends one request at a time and waits for its reply.
type sender struct {
	t    *testing.T
	c    *udpsock.Conn
	to   netip.AddrPort
	key  []byte
	mode testpkt.Mode
	seq  uint32
	in   udpsock.Message
}

func newSender(t *testing.T, to string, key []byte) *sender {
	t.Helper()
	c, err := udpsock.Listen(context.Background(), "udp4", "127.1.0.1:0", udpsock.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s := &sender{t: t, c: c, to: netip.MustParseAddrPort(to), key: key, mode: testpkt.ModeUnauthenticated, in: udpsock.Message{Buf: make([]byte, 2048)}}
	if key != nil {
		s.mode = testpkt.ModeAuthenticated
	}
	return s
}

// send does n exchanges and fails the test on a lost reply or a broken session: the
// reflector's sequence must continue where it left off (the session was neither evicted nor
// reset). The read deadline only keeps a lost reply from hanging the test.
func (s *sender) send(n int) {
	s.t.Helper()
	for range n {
		sp := testpkt.SenderPacket{Mode: s.mode, Seq: s.seq, SSID: 77, Timestamp: testpkt.Stamp(time.Now(), false),
			ErrorEstimate: timestamp.NewErrorEstimate(false, false, time.Millisecond)}
		b := sp.AppendTo(nil)
		if s.key != nil {
			testpkt.NewSigner(s.key).Sign(b)
		}
		if err := s.c.WriteTo(&udpsock.Message{Buf: b, Addr: s.to}); err != nil {
			s.t.Fatal(err)
		}
		_ = s.c.SetReadDeadline(time.Now().Add(20 * time.Second))
		if err := s.c.ReadFrom(&s.in); err != nil {
			s.t.Fatalf("legitimate sender: request %d lost: %v", s.seq, err)
		}
		rp := testpkt.ReflectedPacket{Mode: s.mode}
		if err := rp.UnmarshalBinary(s.in.Buf[:s.in.N]); err != nil || rp.SenderSeq != s.seq || rp.Seq != s.seq {
			s.t.Fatalf("legitimate sender: request %d: reply %+v (%v): session lost or reset", s.seq, rp, err)
		}
		s.seq++
	}
}

// floodSocket can send from any 127/8 address (IP_PKTINFO source), like a spoofing attacker.
func floodSocket(t *testing.T) *udpsock.Conn {
	t.Helper()
	c, err := udpsock.Listen(context.Background(), "udp4", "0.0.0.0:0", udpsock.Options{Batch: 100, WriteBuffer: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func checkAlive(t *testing.T, d *daemontest.Daemon, phase string) {
	t.Helper()
	if !d.Alive() {
		t.Fatalf("%s: stampref died: %s", phase, d.Stderr())
	}
	if rss := d.RSS(); rss <= 0 || rss > rssBound {
		t.Errorf("%s: RSS %d bytes, bound %d", phase, rss, rssBound)
	} else {
		t.Logf("%s: RSS %.1f MB", phase, float64(rss)/(1<<20))
	}
}

// H3 and H5 on the real binary: a flood of new STAMP sessions, first as distinct SSIDs from
// one host, then from thousands of source prefixes (what spoofing achieves), while a
// legitimate sender on another prefix keeps measuring. The per-prefix session rate refuses
// the first, the bounded table evicts the least recently used for the second; stampref stays
// up with bounded memory, the legitimate session never loses a reply nor its state, and
// the counters and (rate-limited) warnings show the attack.
func TestSessionFlood(t *testing.T) {
	ssids, sources := 20000, 6000
	if long() {
		ssids, sources = 65536, 200000
	}
	d, udp, mon := start(t, "--monitor", "127.0.0.1:0", "--max-sessions", "2000")
	leg := newSender(t, udp, nil)
	leg.send(10)
	att := floodSocket(t)
	to := netip.MustParseAddrPort(udp)
	batch := make([]udpsock.Message, 100)
	send := func(n int, fill func(i int, m *udpsock.Message)) {
		for i := 0; i < n; i += len(batch) {
			k := min(len(batch), n-i)
			for j := range k {
				fill(i+j, &batch[j])
			}
			if _, err := att.WriteBatch(batch[:k]); err != nil {
				t.Fatal(err)
			}
			if (i/len(batch))%10 == 9 {
				leg.send(1) // keeps the reflector's queue short and the session warm
			}
		}
	}
	src1 := netip.MustParseAddr("127.0.0.1")
	send(ssids, func(i int, m *udpsock.Message) {
		sp := testpkt.SenderPacket{Mode: testpkt.ModeUnauthenticated, SSID: uint16(i)}
		*m = udpsock.Message{Buf: sp.AppendTo(nil), Addr: to, Dst: src1}
	})
	leg.send(20)
	checkAlive(t, d, "SSID flood")
	m := scrape(t, mon)
	if v := m[`stampref_dropped_packets_total{reason="session_rate_limited"}`]; v < float64(ssids)/2 {
		t.Errorf("SSID flood of %d: %v refused by the session rate", ssids, v)
	}
	d.WaitMsg(30*time.Second, "new sessions from one source prefix rate-limited")

	req := (&testpkt.SenderPacket{Mode: testpkt.ModeUnauthenticated, SSID: 1}).AppendTo(nil)
	send(sources, func(i int, m *udpsock.Message) {
		src := netip.AddrFrom4([4]byte{127, byte(2 + i/250%250), byte(i % 250), byte(1 + i/62500)})
		*m = udpsock.Message{Buf: req, Addr: to, Dst: src}
	})
	leg.send(20)
	checkAlive(t, d, "source flood")
	m = scrape(t, mon)
	if v := m["stampref_sessions"]; v > 2000+1 {
		t.Errorf("%v sessions, --max-sessions 2000", v)
	}
	if v := m["stampref_evicted_sessions_total"]; v < float64(sources-2000) {
		t.Errorf("%v evictions after %d new sessions into a 2000-session table", v, sources)
	}
	if v := m[`stampref_dropped_packets_total{reason="table_full"}`]; v != 0 {
		t.Errorf("%v newcomers refused by the full table", v)
	}
	d.WaitMsg(30*time.Second, "session table full, least recently used sessions evicted")
	if n := d.Count("rate-limited") + d.Count("evicted"); n > 20 {
		t.Errorf("%d warnings: not rate-limited", n)
	}
}

// H4: a captured authenticated packet replayed in its session gets no reply and is counted;
// H8: requests shorter than the 44-octet reply get at most the per-source allowance, none with
// --strict-size. The legitimate (authenticated) sender is served throughout.
func TestReplayAndAmplification(t *testing.T) {
	key := []byte("stampref-flood-key-0123456789")
	kf := daemontest.WriteFile(t, "stamp.key", string(key), 0o600)
	d, udp, mon := start(t, "--monitor", "127.0.0.1:0", "--key-file", kf)
	leg := newSender(t, udp, key)
	leg.send(5)
	// The attacker "captured" a packet of a session of its own source address and replays it.
	att := floodSocket(t)
	to := netip.MustParseAddrPort(udp)
	sp := testpkt.SenderPacket{Mode: testpkt.ModeAuthenticated, Seq: 1, SSID: 9}
	captured := sp.AppendTo(nil)
	testpkt.NewSigner(key).Sign(captured)
	replays := 1000
	if long() {
		replays = 100000
	}
	src := netip.MustParseAddr("127.0.0.5")
	for i := 0; i <= replays; i++ {
		if err := att.WriteTo(&udpsock.Message{Buf: captured, Addr: to, Dst: src}); err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			leg.send(1)
		}
	}
	leg.send(10)
	checkAlive(t, d, "replay")
	m := scrape(t, mon)
	if v := m[`stampref_dropped_packets_total{reason="replay"}`]; v != float64(replays) {
		t.Errorf("%v replays dropped, want %d (the first copy is answered)", v, replays)
	}
	if v := m["stampref_reflected_packets_total"]; v != float64(leg.seq+1) {
		t.Errorf("%v replies, want the legitimate sender's %d and the captured packet's first copy", v, leg.seq)
	}

	for _, strict := range []bool{false, true} {
		args := []string{"--monitor", "127.0.0.1:0"}
		if strict {
			args = append(args, "--strict-size")
		}
		d, udp, mon := start(t, args...)
		to := netip.MustParseAddrPort(udp)
		// 14-octet requests "from" one victim address (IP_PKTINFO source): each answered
		// one would send the victim 44 octets.
		short := (&testpkt.SenderPacket{Mode: testpkt.ModeUnauthenticated}).AppendTo(nil)[:testpkt.TWAMPSenderLen]
		victim := netip.MustParseAddr("127.0.0.9")
		const n = 3000
		start := time.Now()
		for range n {
			if err := att.WriteTo(&udpsock.Message{Buf: short, Addr: to, Dst: victim}); err != nil {
				t.Fatal(err)
			}
		}
		leg := newSender(t, udp, nil)
		leg.send(20)
		elapsed := time.Since(start)
		checkAlive(t, d, fmt.Sprintf("short requests, strict %v", strict))
		m := scrape(t, mon)
		answered := m["stampref_reflected_packets_total"] - 20
		limited := m[`stampref_dropped_packets_total{reason="amplification"}`]
		allowance := 1000 + 1000*elapsed.Seconds() // burst + rate × time, per source address
		switch {
		case strict && (answered != 0 || limited != n):
			t.Errorf("--strict-size: %v short requests answered, %v dropped", answered, limited)
		// (limited may be 0 only when a test stalled ≥ 2 s while sending made the allowance
		// cover all n.)
		case !strict && (answered > allowance || answered+limited != n || limited == 0 && allowance < n):
			t.Errorf("%v short requests answered (allowance %.0f), %v dropped", answered, allowance, limited)
		}
		if !strict && limited > 0 {
			d.WaitMsg(30*time.Second, "replies to short requests rate-limited")
		}
	}
}
