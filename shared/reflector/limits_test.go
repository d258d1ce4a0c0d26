package reflector

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/testpkt"
)

func TestReplayWindow(t *testing.T) {
	var w replayWindow
	steps := []struct {
		seq  uint32
		want bool
	}{
		{1000, true}, {1000, false}, {1001, true}, {999, true}, {999, false}, {1002, true},
		{1002 - 63, true}, {1002 - 64, false}, // the window holds 64 numbers back from the top
		{1200, true}, {1137, true}, {1136, false}, {1199, true}, {1199, false},
		{1200 + 1<<31, false}, // half the sequence space away counts as behind
	}
	for i, s := range steps {
		if got := w.check(s.seq); got != s.want {
			t.Errorf("step %d: check(%d) = %v, want %v", i, s.seq, got, s.want)
		}
	}
	// Wrap-around: 2^32−1 followed by 0 moves forward.
	w = replayWindow{}
	if !w.check(0xFFFFFFFF) || !w.check(0) || w.check(0xFFFFFFFF) || !w.check(1) {
		t.Error("sequence wrap-around")
	}
}

// H4: an authenticated packet is answered once; replays in its session are dropped and
// counted, do not advance the session's counters, and the next fresh one is answered.
func TestReplayDropped(t *testing.T) {
	r, w := newWorker(t, Config{Mode: auth, Key: []byte(interopKey)})
	sig := testpkt.NewSigner([]byte(interopKey))
	req := sender(auth, 7, 3, nil)
	sig.Sign(req)
	if _, _, rp, ok := reflect1(t, w, pkt(req, peerA), auth); !ok || rp.Seq != 0 {
		t.Fatalf("first: %v seq %d", ok, rp.Seq)
	}
	for range 5 {
		if _, _, _, ok := reflect1(t, w, pkt(req, peerA), auth); ok {
			t.Fatal("replay answered")
		}
	}
	if got := r.Stats.Drops[DropReplay].Load(); got != 5 {
		t.Errorf("replay drops %d, want 5", got)
	}
	next := sender(auth, 8, 3, nil)
	sig.Sign(next)
	if _, _, rp, ok := reflect1(t, w, pkt(next, peerA), auth); !ok || rp.Seq != 1 {
		t.Errorf("fresh packet after replays: %v seq %d (replays must not advance the counter)", ok, rp.Seq)
	}
	if s := r.Table().Snapshot(); len(s) != 1 || s[0].Received != 2 {
		t.Errorf("session counters %+v", s)
	}
	// Stateless mode keeps no per-session state and cannot tell a replay: answered.
	_, w = newWorker(t, Config{Mode: auth, Key: []byte(interopKey), Stateless: true})
	for range 2 {
		if _, _, _, ok := reflect1(t, w, pkt(req, peerA), auth); !ok {
			t.Error("stateless mode dropped a valid packet")
		}
	}
}

// H8: a reply is never longer than its request unless the RFC layout requires it; those
// replies are limited per source address (burst then rate), StrictSize refuses them, and
// provisioned sessions are exempt.
func TestAmplification(t *testing.T) {
	short := sender(unauth, 1, 0, nil)[:testpkt.TWAMPSenderLen]
	for _, tc := range []struct {
		name  string
		cfg   Config
		burst int // replies to short requests at one instant
	}{
		{"default", Config{}, DefaultShortReplyRate},
		{"rate-10", Config{ShortReplyRate: 10}, 10},
		{"strict", Config{StrictSize: true}, 0},
		{"twamp", Config{Format: FormatTWAMP, ShortReplyRate: 5}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, w := newWorker(t, tc.cfg)
			got := 0
			for i := range tc.burst + 50 {
				p := pkt(short, netip.AddrPortFrom(peerA.Addr(), uint16(30000+i%7)))
				if out, _, ok := w.Reflect(p, make([]byte, 0, 2048)); ok {
					got++
					if len(out) <= len(short) {
						t.Fatalf("reply %d octets to %d", len(out), len(short))
					}
				}
			}
			if got != tc.burst || r.Stats.Drops[DropAmplification].Load() != 50 {
				t.Errorf("%d replies to short requests (want %d), %d amplification drops", got, tc.burst, r.Stats.Drops[DropAmplification].Load())
			}
			// Another source has its own allowance; a full-size request is never limited.
			if _, _, ok := w.Reflect(pkt(short, peerC4), make([]byte, 0, 2048)); ok != (tc.burst > 0) {
				t.Errorf("other source: reflected %v", ok)
			}
			full := sender(unauth, 1, 0, nil)
			for range 3 {
				out, _, ok := w.Reflect(pkt(full, peerA), make([]byte, 0, 2048))
				if !ok || len(out) != len(full) {
					t.Fatalf("full-size request: %v, %d octets", ok, len(out))
				}
			}
			// The allowance refills at the configured rate (time from the packets' T2).
			if tc.burst > 0 {
				p := pkt(short, peerA)
				p.RxTime = t2Time.Add(time.Second)
				if _, _, ok := w.Reflect(p, make([]byte, 0, 2048)); !ok {
					t.Error("no refill after a second")
				}
			}
		})
	}
	// Provisioned sessions (operator or TWAMP-Control) are exempt.
	r, w := newWorker(t, Config{StrictSize: true, ProvisionedOnly: true, Format: FormatTWAMP})
	if err := r.Table().Provision(&Session{Key: SessionKey{Peer: peerA, Local: local}, Format: FormatTWAMP}, false); err != nil {
		t.Fatal(err)
	}
	if out, _, ok := w.Reflect(pkt(short, peerA), make([]byte, 0, 2048)); !ok || len(out) != testpkt.TWAMPReflectedLen {
		t.Errorf("provisioned TWAMP session: %v %d octets", ok, len(out))
	}
}

var peerC4 = netip.MustParseAddrPort("192.0.2.7:5000")

// H3: new sessions per source prefix are limited (burst, then rate): a flood of SSIDs from one
// host cannot fill the table, and another prefix still gets in.
func TestSessionRateLimit(t *testing.T) {
	r, w := newWorker(t, Config{SessionRate: 10, SessionBurst: 20, MaxSessions: 1000})
	ok := 0
	for i := range 500 {
		// Same /24, distinct addresses, ports and SSIDs.
		peer := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), uint16(1000+i))
		if _, _, good := w.Reflect(pkt(sender(unauth, 0, uint16(i), nil), peer), make([]byte, 0, 2048)); good {
			ok++
		}
	}
	if ok != 20 || r.Table().Learned() != 20 || r.Stats.Drops[DropRateLimited].Load() != 480 {
		t.Errorf("%d sessions admitted (%d learned, %d refused), want the burst of 20", ok, r.Table().Learned(), r.Stats.Drops[DropRateLimited].Load())
	}
	// Existing sessions are not limited; other prefixes are not affected.
	for range 50 {
		peer := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, 0}), 1000)
		if _, _, good := w.Reflect(pkt(sender(unauth, 0, 0, nil), peer), make([]byte, 0, 2048)); !good {
			t.Fatal("existing session refused")
		}
	}
	if _, _, good := w.Reflect(pkt(sender(unauth, 0, 0, nil), peerC4), make([]byte, 0, 2048)); !good {
		t.Error("other prefix refused")
	}
	// A second later the prefix has 10 more.
	ok = 0
	for i := range 50 {
		peer := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, 200}), uint16(5000+i))
		p := pkt(sender(unauth, 0, 0, nil), peer)
		p.RxTime = t2Time.Add(time.Second)
		if _, _, good := w.Reflect(p, make([]byte, 0, 2048)); good {
			ok++
		}
	}
	if ok != 10 {
		t.Errorf("after 1 s: %d new sessions, want 10", ok)
	}
	// IPv6 prefixes are /64.
	r, w = newWorker(t, Config{SessionRate: 1, SessionBurst: 2})
	for i, a := range []string{"[2001:db8::1]:1", "[2001:db8::2]:1", "[2001:db8::3]:1", "[2001:db8:0:1::1]:1"} {
		_, _, good := w.Reflect(pkt(sender(unauth, 0, 0, nil), netip.MustParseAddrPort(a)), make([]byte, 0, 2048))
		if good != (i != 2) {
			t.Errorf("%s: admitted %v", a, good)
		}
	}
	_ = r
}

// SessionBytes measures the memory a learned session costs, as documented in the README:
// the heap growth over n sessions, divided by n.
func TestSessionBytes(t *testing.T) {
	const n = 50000
	r, w := newWorker(t, Config{MaxSessions: n, SessionRate: -1})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	req := sender(unauth, 0, 0, nil)
	p := pkt(req, peerA)
	out := make([]byte, 0, 2048)
	for i := range n {
		p.Peer = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 4000)
		if _, _, ok := w.Reflect(p, out); !ok {
			t.Fatal("dropped")
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if r.Table().Learned() != n {
		t.Fatalf("%d sessions", r.Table().Learned())
	}
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%.0f bytes of heap per learned session", per)
	if per > SessionBytes {
		t.Errorf("%.0f bytes per session, documented bound SessionBytes = %d", per, SessionBytes)
	}
}

// Provisioned sessions count against MaxSessions with the learned ones: learned plus
// provisioned never exceed the limit; a learned newcomer evicts the least recently used
// learned session but never a provisioned one; Provision into a full table is refused (it
// never evicts a sender that is measuring).
func TestProvisionedCountAgainstMax(t *testing.T) {
	const max = 3
	tab := NewTable(max)
	now := t2Time
	key := func(port uint16) SessionKey {
		return SessionKey{Peer: netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), port), Local: local}
	}
	learn := func(port uint16) bool {
		now = now.Add(time.Millisecond)
		k := key(port)
		_, _, ok := tab.learn(&k, FormatSTAMP, testpkt.ModeUnauthenticated, now)
		return ok
	}
	has := func(port uint16) bool {
		k := key(port)
		sh := tab.shard(&k)
		sh.mu.Lock()
		defer sh.mu.Unlock()
		_, ok := sh.m[k]
		return ok
	}
	check := func(step string, total, learned int) {
		t.Helper()
		if tab.Len() != total || tab.Learned() != learned {
			t.Fatalf("%s: %d sessions (%d learned), want %d (%d learned)", step, tab.Len(), tab.Learned(), total, learned)
		}
	}
	for p := uint16(101); p <= 102; p++ {
		if err := tab.Provision(&Session{Key: key(p)}, false); err != nil {
			t.Fatalf("provision %d: %v", p, err)
		}
	}
	if !learn(1) {
		t.Fatal("learn into the last free place refused")
	}
	check("two provisioned, one learned", 3, 1)
	if !learn(2) || has(1) || !has(101) || !has(102) {
		t.Errorf("learn in a full table: port 1 kept %v, provisioned kept %v %v", has(1), has(101), has(102))
	}
	check("learned newcomer evicted the learned one", 3, 1)
	if err := tab.Provision(&Session{Key: key(103)}, false); err != ErrTableFull || !has(2) {
		t.Errorf("provision into a full table: %v (learned session kept %v), want ErrTableFull", err, has(2))
	}
	// Re-provisioning an existing key, or turning a learned session into a provisioned one,
	// needs no room.
	if err := tab.Provision(&Session{Key: key(101)}, true); err != nil {
		t.Errorf("replace in a full table: %v", err)
	}
	if err := tab.Provision(&Session{Key: key(2)}, false); err != nil {
		t.Errorf("provision the learned key: %v", err)
	}
	check("all provisioned", 3, 0)
	if learn(5) {
		t.Error("a learned session got into a table full of provisioned ones")
	}
	check("after refusals", 3, 0)
	if !tab.Remove(key(101)) || !learn(6) {
		t.Error("no room after removing a provisioned session")
	}
	check("after removal", 3, 1)
}
