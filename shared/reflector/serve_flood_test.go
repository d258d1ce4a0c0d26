package reflector

import (
	"context"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/udpsock"
)

// floodFixture serves a reflector on 127.0.0.1 and gives a legitimate sender on 127.1.0.1
// (another /24 than the attackers) that sends one request and waits for its reply.
type floodFixture struct {
	t     *testing.T
	r     *Reflector
	to    netip.AddrPort
	legit *udpsock.Conn
	seq   uint32
	in    udpsock.Message
	done  chan error
}

func newFlood(t *testing.T, cfg Config) *floodFixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	conn, r, done := serveSocket(t, ctx, "udp4", "127.0.0.1:0", cfg, ServeOptions{})
	legit, err := udpsock.Listen(ctx, "udp4", "127.1.0.1:0", udpsock.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { legit.Close() })
	return &floodFixture{t: t, r: r, to: conn.LocalAddr(), legit: legit, in: udpsock.Message{Buf: make([]byte, 2048)}, done: done}
}

// exchange sends the legitimate sender's next request and reads its reply; the deadline only
// keeps a lost reply from hanging the test (a lost reply fails it).
func (f *floodFixture) exchange(mode testpkt.Mode, key []byte) testpkt.ReflectedPacket {
	f.t.Helper()
	req := sender(mode, f.seq, 77, nil)
	if key != nil {
		testpkt.NewSigner(key).Sign(req)
	}
	f.seq++
	if err := f.legit.WriteTo(&udpsock.Message{Buf: req, Addr: f.to}); err != nil {
		f.t.Fatal(err)
	}
	_ = f.legit.SetReadDeadline(time.Now().Add(20 * time.Second))
	if err := f.legit.ReadFrom(&f.in); err != nil {
		f.t.Fatalf("legitimate sender, request %d: no reply: %v", f.seq-1, err)
	}
	rp := testpkt.ReflectedPacket{Mode: mode}
	if err := rp.UnmarshalBinary(f.in.Buf[:f.in.N]); err != nil {
		f.t.Fatal(err)
	}
	if rp.SenderSeq != f.seq-1 {
		f.t.Fatalf("reply to %d, want %d", rp.SenderSeq, f.seq-1)
	}
	return rp
}

// attacker is a socket on the wildcard address that can send from any 127/8 source (IP_PKTINFO).
func attacker(t *testing.T) *udpsock.Conn {
	t.Helper()
	c, err := udpsock.Listen(context.Background(), "udp4", "0.0.0.0:0", udpsock.Options{Batch: 64, WriteBuffer: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// H3: 20,000 requests with distinct SSIDs from one host while a legitimate sender on another
// prefix keeps going: the flood is refused at the per-prefix session rate, the table stays
// small, the legitimate sender loses nothing and its session keeps counting.
func TestFloodSSIDs(t *testing.T) {
	f := newFlood(t, Config{MaxSessions: 4096})
	att := attacker(t)
	msgs := make([]udpsock.Message, 64)
	for round := range 100 {
		for i := range msgs {
			ssid := uint16(round*len(msgs) + i)
			msgs[i] = udpsock.Message{Buf: sender(unauth, 0, ssid, nil), Addr: f.to, Dst: netip.MustParseAddr("127.0.0.1")}
		}
		for i := 0; i < 3; i++ {
			if _, err := att.WriteBatch(msgs); err != nil {
				t.Fatal(err)
			}
		}
		if rp := f.exchange(unauth, nil); rp.Seq != uint32(round) {
			t.Fatalf("legitimate session's sequence %d at request %d: its state was lost", rp.Seq, round)
		}
	}
	st := &f.r.Stats
	refused := st.Drops[DropRateLimited].Load()
	if refused == 0 || f.r.Table().Learned() > DefaultSessionBurst+1+int(DefaultSessionRate*60) {
		t.Errorf("%d sessions learned, %d refused: the flood was not limited", f.r.Table().Learned(), refused)
	}
	t.Logf("flood of %d requests: %d sessions learned, %d refused (session_rate_limited), %d evicted",
		st.Received.Load()-100, f.r.Table().Learned(), refused, st.Evicted.Load())
}

// H5: new sessions from 6,000 distinct source prefixes (what a spoofing attacker achieves) fill
// a 1,000-session table: the least recently used sessions are evicted, the table and the heap
// stay bounded, and the legitimate sender, active throughout, is never evicted nor refused.
func TestFloodSources(t *testing.T) {
	const max = 1000
	f := newFlood(t, Config{MaxSessions: max})
	att := attacker(t)
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	msgs := make([]udpsock.Message, 60)
	req := sender(unauth, 0, 1, nil)
	n := 0
	for round := range 100 {
		for i := range msgs {
			src := netip.AddrFrom4([4]byte{127, byte(2 + n/250), byte(n % 250), 1})
			msgs[i] = udpsock.Message{Buf: req, Addr: f.to, Dst: src}
			n++
		}
		if _, err := att.WriteBatch(msgs); err != nil {
			t.Fatal(err)
		}
		if rp := f.exchange(unauth, nil); rp.Seq != uint32(round) {
			t.Fatalf("legitimate session's sequence %d at request %d: it was evicted", rp.Seq, round)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&ms1)
	st := &f.r.Stats
	if l := f.r.Table().Learned(); l > max {
		t.Errorf("%d learned sessions, limit %d", l, max)
	}
	if ev := st.Evicted.Load(); ev < uint64(n-max) {
		t.Errorf("%d evictions for %d attack sessions in a %d-session table", ev, n, max)
	}
	if st.Drops[DropTableFull].Load() != 0 {
		t.Errorf("%d newcomers refused by a full table", st.Drops[DropTableFull].Load())
	}
	if grow := int64(ms1.HeapAlloc) - int64(ms0.HeapAlloc); grow > int64(2*max*SessionBytes) {
		t.Errorf("heap grew by %d bytes for a %d-session table", grow, max)
	}
}

// H4 on the socket: a captured authenticated packet replayed 1,000 times in its session gets
// no reply; replayed from 2,000 other source ports, it opens at most the prefix's session
// burst. The legitimate sender is served throughout.
func TestFloodReplay(t *testing.T) {
	key := []byte(interopKey)
	f := newFlood(t, Config{Mode: auth, Key: key, SessionBurst: 100, SessionRate: 10})
	captured := sender(auth, 5, 9, nil)
	testpkt.NewSigner(key).Sign(captured)
	victim, err := udpsock.Listen(context.Background(), "udp4", "127.0.0.1:0", udpsock.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close()
	if err := victim.WriteTo(&udpsock.Message{Buf: captured, Addr: f.to}); err != nil {
		t.Fatal(err)
	}
	in := udpsock.Message{Buf: make([]byte, 2048)}
	_ = victim.SetReadDeadline(time.Now().Add(20 * time.Second))
	if err := victim.ReadFrom(&in); err != nil {
		t.Fatal("original packet not answered:", err)
	}
	for range 10 {
		for range 100 {
			if err := victim.WriteTo(&udpsock.Message{Buf: captured, Addr: f.to}); err != nil {
				t.Fatal(err)
			}
		}
		f.exchange(auth, key)
	}
	others := make([]*udpsock.Conn, 0, 200)
	for range 200 {
		c, err := udpsock.Listen(context.Background(), "udp4", "127.0.0.1:0", udpsock.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		others = append(others, c)
	}
	for round := range 10 {
		for _, c := range others {
			if err := c.WriteTo(&udpsock.Message{Buf: captured, Addr: f.to}); err != nil {
				t.Fatal(err)
			}
		}
		f.exchange(auth, key)
		_ = round
	}
	st := &f.r.Stats
	if got := st.Drops[DropReplay].Load(); got < 1000 {
		t.Errorf("%d replays dropped in the captured packet's session, want ≥ 1000", got)
	}
	if got := f.r.Table().Learned(); got > 100+1+1+10*60 {
		t.Errorf("%d sessions from replays on other ports", got)
	}
	// The captured session answered exactly once.
	_ = victim.SetReadDeadline(time.Now())
	if err := victim.ReadFrom(&in); err == nil {
		t.Error("a replay was answered")
	}
}
