package server

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/probekit/probekit/shared/ptp"
	"github.com/probekit/probekit/shared/testsupport/syncbuf"
	"github.com/probekit/probekit/shared/timestamp"
	"github.com/probekit/probekit/shared/udpsock"
)

func fixed(t time.Time) timestamp.Fixed32 { return timestamp.Fixed32FromTime(t) }

// TestLegacyClients: three protocol-v2 clients laid out as the golden s2c_beacon's mesh. The
// list the server sends A, with its SEQUENCE set to the vector's, is the vector byte for byte
// (MYTS = the clock, UUID = A's own, YOURADDR, EXT B, EXT C + INT C because C shares A's
// public IP, CLIENTLEN 2); its reply to A's MYTS is s2c_yourts the same way.
func TestLegacyClients(t *testing.T) {
	r := newRig(t, nil)
	r.clock.Add(-3 * time.Second) // the list to A goes out at the vector's MYTS
	vec := vectors(t)
	a := r.net.listen("198.51.100.7:40000")
	b := r.net.listen("203.0.113.9:50001")
	c := r.net.listen("198.51.100.7:40001")

	b.send(t, r.addr, beacon(2, 0, uuidN(0xb), "10.9.9.9:50001", "", vectorTime))
	b.recvMsg(t) // YOURTS
	c.send(t, r.addr, beacon(2, 0, uuidN(0xc), "10.0.1.3:40001", "", vectorTime))
	c.recvMsg(t)
	waitFor(t, "two clients", func() bool { return len(r.srv.Snapshot().Clients) == 2 })
	// B's join gave a round at once, C's waits for the coalescing window: let it pass and
	// wait for that round before A joins.
	waitFor(t, "first round", func() bool { return r.srv.Stats().MeshBeacons >= 1 })
	r.clock.Add(2 * time.Second)
	waitFor(t, "no pending round", r.srv.idle)
	// One more second: A joins when the coalescing window has passed, so its round goes out
	// at this clock reading (the vector's MYTS) whenever the server's real-time tick runs;
	// moving the clock after the join raced that tick.
	r.clock.Add(time.Second)
	b.drain()
	c.drain()
	a.send(t, r.addr, vec["c2s_register_first"])
	// The reply (reader) and the join's list round (timer) leave from two goroutines: either
	// may arrive first.
	var reply, list *ptp.Message
	for reply == nil || list == nil {
		m, _ := a.recvMsg(t)
		if m.Has&ptp.FieldList != 0 && list == nil {
			list = m
		} else if m.Has&ptp.FieldList == 0 && reply == nil {
			reply = m
		} else {
			t.Fatalf("A got a third datagram %+v", m)
		}
	}
	reply.Sequence = 101
	if got, _ := reply.AppendTo(nil); !bytes.Equal(got, vec["s2c_yourts"]) {
		t.Fatalf("reply\n%x\nwant s2c_yourts\n%x", got, vec["s2c_yourts"])
	}
	// The join is a membership change: a list round.
	list.Sequence = 100
	if got, _ := list.AppendTo(nil); !bytes.Equal(got, vec["s2c_beacon"]) {
		t.Fatalf("list\n%x\nwant s2c_beacon\n%x", got, vec["s2c_beacon"])
	}
	// B is told about A and C, without INT entries (other public IP); C about B and A with A's INT.
	lb := b.recvListN(t, 2)
	if len(lb.Entries) != 2 || lb.Entries[0].Int.IsValid() || lb.Entries[1].Int.IsValid() || !lb.ListComplete() || lb.Version != 2 {
		t.Fatalf("B's list %+v", lb.Entries)
	}
	lc := c.recvListN(t, 2)
	if len(lc.Entries) != 2 || lc.Entries[1].Ext != a.addr || lc.Entries[1].Int != netip.MustParseAddrPort("10.0.1.2:40000") || lc.Entries[0].Int.IsValid() {
		t.Fatalf("C's list %+v", lc.Entries)
	}
	if lc.IsV3() {
		t.Error("v3 TLVs sent to a legacy client")
	}
	// A answers the list's MYTS: RTT from the server's clock.
	r.clock.Add(20 * time.Millisecond)
	ack := &ptp.Message{Role: ptp.RoleClient, Version: 2, Has: ptp.FieldSequence | ptp.FieldUUID | ptp.FieldYourTS, Sequence: 9, UUID: list.UUID, YourTS: list.MyTS}
	pkt, _ := ack.AppendTo(nil)
	a.send(t, r.addr, pkt)
	waitFor(t, "ack", func() bool {
		for _, cs := range r.srv.Snapshot().Clients {
			if cs.Addr == a.addr {
				return cs.Acked == 1
			}
		}
		return false
	})
	for _, cs := range r.srv.Snapshot().Clients {
		if cs.Addr == a.addr && (cs.RTTLast != 20*time.Millisecond || cs.Sent != 1 || cs.Lost != 0) {
			// The list went out at clock T (its MYTS), the answer came at T+20 ms.
			t.Errorf("A: rtt %v sent %d lost %d", cs.RTTLast, cs.Sent, cs.Lost)
		}
	}
}

// TestChecksumDoesNotEvict (B2) and SHUTDOWN removes at once; silence expires after 30 s.
func TestChecksumShutdownExpiry(t *testing.T) {
	r := newRig(t, nil)
	vec := vectors(t)
	a := r.net.listen("198.51.100.7:40000")
	b := r.net.listen("203.0.113.9:50001")
	a.send(t, r.addr, vec["c2s_register"])
	a.recvMsg(t)
	b.send(t, r.addr, beacon(2, 0, uuidN(0xb), "10.9.9.9:50001", "", vectorTime))
	b.recvMsg(t)
	bad := bytes.Clone(vec["c2s_yourts"])
	bad[len(bad)-1] ^= 0xff
	a.send(t, r.addr, bad)
	a.send(t, r.addr, ptp.Seal([]byte{1, 2, 0})) // len 0 TLV: malformed, must not stop the loop
	waitFor(t, "drops counted", func() bool { s := r.srv.Stats(); return s.BadChecksum == 1 && s.Malformed == 1 })
	if n := len(r.srv.Snapshot().Clients); n != 2 {
		t.Fatalf("%d clients after a bad checksum, want 2", n)
	}
	a.send(t, r.addr, vec["c2s_shutdown"])
	waitFor(t, "shutdown", func() bool { return len(r.srv.Snapshot().Clients) == 1 })
	r.clock.Add(2 * time.Second)
	for {
		l, _ := b.recvList(t)
		if len(l.Entries) == 0 && l.ListComplete() {
			break
		}
	}
	r.clock.Add(27 * time.Second) // B was last heard at T0; now T0+29 s
	r.swept(t)
	if n := len(r.srv.Snapshot().Clients); n != 1 {
		t.Fatalf("expired early: %d clients", n)
	}
	r.clock.Add(2 * time.Second)
	waitFor(t, "expiry", func() bool { return len(r.srv.Snapshot().Clients) == 0 })
	// The observer hears of it after the server's lock is released: wait for the event.
	waitFor(t, "expiry event", func() bool { r.obs.mu.Lock(); defer r.obs.mu.Unlock(); return len(r.obs.left) >= 2 })
	r.obs.mu.Lock()
	defer r.obs.mu.Unlock()
	if len(r.obs.left) != 2 || r.obs.left[0] != "198.51.100.7:40000 shutdown" || r.obs.left[1] != "203.0.113.9:50001 expired" {
		t.Errorf("left events %v", r.obs.left)
	}
	if s := r.srv.Stats(); s.Expired != 1 || s.Joined != 2 {
		t.Errorf("stats %+v", s)
	}
}

// TestMeshes: v3 clients are grouped by MESH, legacy ones share the default mesh, and v3 lists
// carry PEERUUID, candidates, LISTPAGE; replies carry ECHOSEQ.
func TestMeshes(t *testing.T) {
	r := newRig(t, nil)
	x1 := r.net.listen("198.51.100.1:1000")
	x2 := r.net.listen("198.51.100.2:1000")
	y1 := r.net.listen("198.51.100.3:1000")
	leg := r.net.listen("198.51.100.4:1000")
	x1.send(t, r.addr, beacon(3, 41, uuidN(1), "10.0.0.1:1000", "x", vectorTime))
	rep, _ := x1.recvReply(t) // its join's list (x1 alone) may come first
	if rep.Has&ptp.FieldEchoSeq == 0 || rep.EchoSeq != 41 || rep.Version != 3 {
		t.Fatalf("v3 reply %+v", rep)
	}
	cand := &ptp.Message{Role: ptp.RoleClient, Version: 3, Has: ptp.FieldSequence | ptp.FieldUUID | ptp.FieldPTPAddr | ptp.FieldMyTS | ptp.FieldMesh,
		UUID: uuidN(2), PTPAddr: netip.MustParseAddrPort("10.0.0.2:1000"), Mesh: []byte("x"), Candidates: []netip.AddrPort{netip.MustParseAddrPort("198.51.100.2:5000")}}
	pkt, _ := cand.AppendTo(nil)
	x2.send(t, r.addr, pkt)
	y1.send(t, r.addr, beacon(3, 0, uuidN(3), "10.0.0.3:1000", "y", vectorTime))
	leg.send(t, r.addr, beacon(2, 0, uuidN(4), "10.0.0.4:1000", "", vectorTime))
	waitFor(t, "4 clients", func() bool { return len(r.srv.Snapshot().Clients) == 4 })
	r.clock.Add(2 * time.Second)
	l := x1.recvListN(t, 1)
	if len(l.Entries) != 1 || l.Entries[0].Ext != x2.addr || !l.Entries[0].HasUUID || l.Entries[0].UUID != uuidN(2) ||
		l.Entries[0].NCand != 1 || l.Entries[0].Candidates[0] != netip.MustParseAddrPort("198.51.100.2:5000") ||
		l.Has&ptp.FieldListPage == 0 || l.Pages != 1 {
		t.Fatalf("x1's list %+v", l)
	}
	l, _ = y1.recvList(t)
	if len(l.Entries) != 0 { // alone in mesh y whatever the round
		t.Fatalf("y1 sees %+v", l.Entries)
	}
	l, _ = leg.recvList(t)
	if len(l.Entries) != 0 || l.IsV3() || l.Version != 2 {
		t.Fatalf("legacy sees %+v", l)
	}
}

// TestPaging: a v3 mesh of 300 gets its list in pages; a legacy client in a mesh of 300 gets
// the entries that fit in one packet, CLIENTLEN matching them.
func TestPaging(t *testing.T) {
	var logBuf syncbuf.Buffer
	r := newRig(t, func(c *Config) {
		l := logrus.New()
		l.SetOutput(&logBuf)
		c.Log = l
	})
	var conns []*memConn
	for i := 0; i < 300; i++ {
		c := r.net.listen(fmt.Sprintf("198.51.%d.%d:%d", 100+i/200, i%200+1, 2000+i))
		ver := uint8(3)
		if i == 0 {
			ver = 2
		}
		u := uuidN(byte(i))
		u[0] = byte(i >> 8)
		b := beacon(ver, 0, u, fmt.Sprintf("10.0.%d.%d:1", i/200, i%200+1), "", vectorTime)
		c.send(t, r.addr, b)
		if ver == 3 {
			c.send(t, r.addr, b) // a v3 client joins the default mesh with its re-registration
		}
		conns = append(conns, c)
	}
	waitFor(t, "300 clients", func() bool { return len(r.srv.Snapshot().Clients) == 300 })
	// The first join's round went out at the start clock with however many members had joined
	// by then (any number up to 300, as the goroutines ran). Once it has, the periodic round
	// one BeaconInterval later lists all 300, whether or not later joins were still pending;
	// its lists are told apart by their MYTS (the timer sends rounds in order).
	waitFor(t, "first round", func() bool { return r.srv.Stats().MeshBeacons >= 1 })
	r.clock.Add(DefaultBeaconInterval)
	roundTS := fixed(vectorTime.Add(DefaultBeaconInterval))
	// Legacy client 0.
	var l *ptp.Message
	var raw []byte
	for l == nil || l.MyTS != roundTS {
		l, raw = conns[0].recvList(t)
	}
	if !l.ListComplete() || len(l.Entries) == 0 || len(l.Entries) >= 299 || len(raw) > ptp.MaxPacket {
		t.Fatalf("legacy list: %d entries, %d bytes, complete %v", len(l.Entries), len(raw), l.ListComplete())
	}
	// What fits, by hand: 1400 bytes less version 1, SERVERVER 3, SEQUENCE 6, UUID 18, MYTS 10,
	// YOURADDR 8, CLIENTLEN 3 and the checksum 2 = 1349 bytes for 8-byte EXT entries (every
	// client has its own public IP: no INT entries) = 168 entries, 1395 bytes.
	if len(l.Entries) != 168 || len(raw) != 1395 {
		t.Errorf("legacy list: %d entries in %d bytes, want 168 in 1395", len(l.Entries), len(raw))
	}
	waitFor(t, "truncation counted", func() bool { return r.srv.Stats().Truncated > 0 })
	waitFor(t, "truncation logged", func() bool {
		return strings.Contains(logBuf.String(), "legacy client gets the entries that fit") && strings.Contains(logBuf.String(), "sent=168")
	})
	// v3 client 1: pages with every other member exactly once.
	seen := map[netip.AddrPort]int{}
	pages := -1
	for got := 0; pages < 0 || got < pages; got++ {
		l, raw := conns[1].recvList(t)
		if got == 0 && (l.Has&ptp.FieldMyTS == 0 || l.MyTS != roundTS) {
			got--
			continue // a page of the first round
		}
		if len(raw) > ptp.MaxPacket || !l.ListComplete() || l.Has&ptp.FieldListPage == 0 || int(l.Page) != got {
			t.Fatalf("page %d: %d bytes, complete %v, page %d/%d", got, len(raw), l.ListComplete(), l.Page, l.Pages)
		}
		pages = int(l.Pages)
		if (l.Has&ptp.FieldMyTS != 0) != (got == 0) {
			t.Errorf("page %d: MYTS present %v", got, l.Has&ptp.FieldMyTS != 0)
		}
		for _, e := range l.Entries {
			seen[e.Ext]++
			if !e.HasUUID {
				t.Fatal("entry without PEERUUID")
			}
		}
	}
	if pages < 2 || len(seen) != 299 {
		t.Fatalf("%d pages, %d distinct entries", pages, len(seen))
	}
	for a, n := range seen {
		if n != 1 || a == conns[1].addr {
			t.Fatalf("%v listed %d times", a, n)
		}
	}
}

func relayPacket(from, to ptp.UUID, seq uint32) []byte {
	m := &ptp.Message{Role: ptp.RoleClient, Version: 3, Has: ptp.FieldSequence | ptp.FieldUUID | ptp.FieldRelayTo | ptp.FieldMyTS,
		Sequence: seq, UUID: from, RelayTo: to, MyTS: 0x1234}
	b, _ := m.AppendTo(nil)
	return b
}

// TestRelay: RELAYTO reaches a v3 peer of the same mesh as RELAYFROM with every other TLV
// unchanged; other meshes, legacy peers and traffic over the rate are dropped and counted.
func TestRelay(t *testing.T) {
	r := newRig(t, func(c *Config) { c.RelayRate = 1; c.RelayBurst = 3 })
	p := r.net.listen("198.51.100.1:1000")
	q := r.net.listen("198.51.100.2:1000")
	o := r.net.listen("198.51.100.3:1000")
	leg := r.net.listen("198.51.100.4:1000")
	p.send(t, r.addr, beacon(3, 0, uuidN(1), "10.0.0.1:1", "m", vectorTime))
	q.send(t, r.addr, beacon(3, 0, uuidN(2), "10.0.0.2:1", "m", vectorTime))
	o.send(t, r.addr, beacon(3, 0, uuidN(3), "10.0.0.3:1", "other", vectorTime))
	leg.send(t, r.addr, beacon(2, 0, uuidN(4), "10.0.0.4:1", "", vectorTime))
	waitFor(t, "4 clients", func() bool { return len(r.srv.Snapshot().Clients) == 4 })
	q.drain()
	in := relayPacket(uuidN(1), uuidN(2), 7)
	p.send(t, r.addr, in)
	var got *ptp.Message
	var raw []byte
	for {
		got, raw = q.recvMsg(t)
		if got.Has&ptp.FieldRelayFrom != 0 {
			break
		}
	}
	if got.RelayFrom != uuidN(1) || got.Has&ptp.FieldRelayTo != 0 || got.MyTS != 0x1234 || got.Sequence != 7 || got.UUID != uuidN(1) || len(raw) != len(in) {
		t.Fatalf("relayed %+v", got)
	}
	p.send(t, r.addr, relayPacket(uuidN(1), uuidN(3), 8)) // other mesh
	p.send(t, r.addr, relayPacket(uuidN(1), uuidN(4), 9)) // legacy, default mesh
	p.send(t, r.addr, relayPacket(uuidN(1), uuidN(9), 9)) // unknown
	waitFor(t, "relay drops", func() bool { return r.srv.Stats().RelayDropped == 3 })
	for i := 0; i < 5; i++ {
		p.send(t, r.addr, relayPacket(uuidN(1), uuidN(2), uint32(10+i)))
	}
	// Burst 3, one used above, the clock stands still: 2 pass, 3 limited.
	waitFor(t, "rate limit", func() bool { s := r.srv.Stats(); return s.Relayed == 3 && s.RelayLimited == 3 })
	if s := r.srv.Stats(); s.RelayedBytes != uint64(3*len(in)) {
		t.Errorf("relayed bytes %d", s.RelayedBytes)
	}
}

// TestReports: REACH and NATINFO build the mesh matrix with reasons; reports about clients of
// another mesh are ignored.
func TestReports(t *testing.T) {
	r := newRig(t, nil)
	p := r.net.listen("198.51.100.1:1000")
	q := r.net.listen("198.51.100.2:1000")
	o := r.net.listen("198.51.100.3:1000")
	p.send(t, r.addr, beacon(3, 0, uuidN(1), "10.0.0.1:1", "m", vectorTime))
	q.send(t, r.addr, beacon(3, 0, uuidN(2), "10.0.0.2:1", "m", vectorTime))
	o.send(t, r.addr, beacon(3, 0, uuidN(3), "10.0.0.3:1", "n", vectorTime))
	waitFor(t, "3 clients", func() bool { return len(r.srv.Snapshot().Clients) == 3 })
	sym := ptp.NATInfo{Mapping: ptp.BehaviorAddressAndPortDependent, Filtering: ptp.BehaviorAddressAndPortDependent, Hairpin: ptp.HairpinNo, Public: netip.MustParseAddrPort("198.51.100.2:1000")}
	nat := &ptp.Message{Role: ptp.RoleClient, Version: 3, Has: ptp.FieldSequence | ptp.FieldUUID | ptp.FieldNATInfo, UUID: uuidN(2), NAT: sym}
	b, _ := nat.AppendTo(nil)
	q.send(t, r.addr, b)
	rep := &ptp.Message{Role: ptp.RoleClient, Version: 3, Has: ptp.FieldSequence | ptp.FieldUUID | ptp.FieldNATInfo, UUID: uuidN(1), NAT: sym,
		Reach: []ptp.Reach{{Peer: uuidN(2), Path: ptp.PathRelay, Sent: 100, Received: 97, Lost: 3, RTTAvg: 1500}, {Peer: uuidN(3), Path: ptp.PathDirect}}}
	b, _ = rep.AppendTo(nil)
	p.send(t, r.addr, b)
	waitFor(t, "report", func() bool { r.obs.mu.Lock(); defer r.obs.mu.Unlock(); return len(r.obs.reports) == 2 })
	r.obs.mu.Lock()
	last := r.obs.reports[1]
	r.obs.mu.Unlock()
	if len(last.Peers) != 1 || last.Peers[0].Peer != uuidN(2) || last.Peers[0].PeerAddr != q.addr || last.NAT == nil {
		t.Fatalf("report %+v", last)
	}
	if want := "both NATs map per destination (ours address-and-port-dependent, the peer's address-and-port-dependent): neither side can learn the port the other uses towards it: relayed"; last.Peers[0].Reason != want {
		t.Errorf("reason %q", last.Peers[0].Reason)
	}
	snap := r.srv.Snapshot()
	mx := snap.Matrix("m")
	if len(mx[uuidN(1)]) != 1 || mx[uuidN(1)][0].Lost != 3 || mx[uuidN(1)][0].Path != ptp.PathRelay {
		t.Fatalf("matrix %+v", mx)
	}
}

func TestReason(t *testing.T) {
	eim := &ptp.NATInfo{Mapping: ptp.BehaviorEndpointIndependent, Filtering: ptp.BehaviorAddressAndPortDependent}
	apdm := &ptp.NATInfo{Mapping: ptp.BehaviorAddressAndPortDependent, Filtering: ptp.BehaviorAddressAndPortDependent}
	cases := []struct {
		path       ptp.Path
		self, peer *ptp.NATInfo
		want       string
	}{
		{ptp.PathDirect, eim, apdm, ""},
		{ptp.PathLAN, nil, nil, "same public address: reached on its LAN address (CLIENTLIST_INT)"},
		// The example wording.
		{ptp.PathRelay, eim, apdm, "peer's NAT maps per destination (address-and-port-dependent) and ours filters per address and port: relayed"},
		{ptp.PathRelay, apdm, eim, "our NAT maps per destination (address-and-port-dependent) and the peer's filters per address and port: relayed"},
		{ptp.PathNone, nil, eim, "our NAT behaviour is unknown (no STUN answer): no path"},
		{ptp.PathHairpin, eim, eim, "same public address: reached through the NAT's hairpin"},
	}
	for _, c := range cases {
		if got := Reason(c.path, c.self, c.peer); got != c.want {
			t.Errorf("%v: %q\nwant %q", c.path, got, c.want)
		}
	}
}

// TestCoalesce: joins within one second give one list round for the mesh, not one per join.
func TestCoalesce(t *testing.T) {
	r := newRig(t, nil)
	var cs []*memConn
	for i := 0; i < 5; i++ {
		c := r.net.listen(fmt.Sprintf("198.51.100.%d:1000", i+1))
		c.send(t, r.addr, beacon(3, 0, uuidN(byte(i+1)), "10.0.0.1:1", "m", vectorTime))
		cs = append(cs, c)
	}
	waitFor(t, "5 clients", func() bool { return len(r.srv.Snapshot().Clients) == 5 })
	r.clock.Add(1100 * time.Millisecond)
	// No change pending: every round the joins asked for has run (a fixed sleep here let a
	// slow timer goroutine miss the second round: 1 round + 3 coalesced).
	waitFor(t, "rounds done", r.srv.idle)
	s := r.srv.Stats()
	// The first join may have triggered a round on its own (the clock allowed one); at most
	// one more followed for the others, every other change folded into it.
	if s.MeshBeacons > 2 || s.MeshBeacons+s.Coalesced != 5 {
		t.Fatalf("%d rounds, %d coalesced for 5 joins", s.MeshBeacons, s.Coalesced)
	}
	// Periodic: one round per BeaconInterval.
	before := r.srv.Stats().MeshBeacons
	r.clock.Add(13 * time.Second)
	waitFor(t, "periodic round", func() bool { return r.srv.Stats().MeshBeacons == before+1 })
}

// TestNotClient: server packets and unversioned packets create nothing.
func TestNotClient(t *testing.T) {
	r := newRig(t, nil)
	vec := vectors(t)
	a := r.net.listen("198.51.100.7:40000")
	a.send(t, r.addr, vec["s2c_beacon"])
	a.send(t, r.addr, vec["ipv6_addr_tlv_only"])
	waitFor(t, "not-client drops", func() bool { return r.srv.Stats().NotClient == 2 })
	if n := len(r.srv.Snapshot().Clients); n != 0 {
		t.Fatalf("%d clients", n)
	}
}

// newDirect returns a server not running, on a discarding transport, for direct handleBatch calls.
func newDirect(tb testing.TB) (*Server, *discard) {
	d := &discard{}
	s, err := New(nil, Config{Transport: d, NoSTUN: true, Now: func() time.Time { return vectorTime }})
	if err != nil {
		tb.Fatal(err)
	}
	return s, d
}

func deliver(s *Server, from string, pkt []byte) {
	m := []udpsock.Message{{Buf: append(make([]byte, 0, 2048), pkt...), N: len(pkt), Addr: netip.MustParseAddrPort(from)}}
	s.handleBatch(m)
}

// relayBench sets up two v3 clients in a mesh and returns a packet P relays to Q.
func relayBench(tb testing.TB) (*Server, *discard, []udpsock.Message, []byte) {
	s, d := newDirect(tb)
	s.cfg.RelayRate, s.cfg.RelayBurst = 1e12, 1<<30
	deliver(s, "198.51.100.1:1000", beacon(3, 0, uuidN(1), "10.0.0.1:1", "m", vectorTime))
	deliver(s, "198.51.100.2:1000", beacon(3, 0, uuidN(2), "10.0.0.2:1", "m", vectorTime))
	for _, c := range s.clients {
		c.tokens = 1 << 30
	}
	tmpl := relayPacket(uuidN(1), uuidN(2), 1)
	msgs := make([]udpsock.Message, batch)
	for i := range msgs {
		msgs[i] = udpsock.Message{Buf: make([]byte, 2048), N: len(tmpl), Addr: netip.MustParseAddrPort("198.51.100.1:1000")}
	}
	return s, d, msgs, tmpl
}

// TestRelayAllocs: no allocation per relayed packet (issue 14 target, same code as TestRelay).
func TestRelayAllocs(t *testing.T) {
	s, d, msgs, tmpl := relayBench(t)
	before := s.Stats().Relayed
	n := testing.AllocsPerRun(50, func() {
		for i := range msgs {
			copy(msgs[i].Buf, tmpl)
		}
		s.handleBatch(msgs)
	})
	if n != 0 {
		t.Errorf("%v allocs per batch of %d relayed packets", n, len(msgs))
	}
	if got := s.Stats().Relayed - before; got < 50*uint64(len(msgs)) || d.n == 0 {
		t.Errorf("relayed %d", got)
	}
}

// BenchmarkRelay: relayed packets per second through the receive path (no socket).
func BenchmarkRelay(b *testing.B) {
	s, _, msgs, tmpl := relayBench(b)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		for i := range msgs {
			copy(msgs[i].Buf, tmpl)
		}
		s.handleBatch(msgs)
		n += len(msgs)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "pkts/s")
	b.ReportMetric(0, "ns/op")
}

// TestProbeReplyAllocs: answering a client's MYTS allocates nothing.
func TestProbeReplyAllocs(t *testing.T) {
	s, d := newDirect(t)
	pkt := beacon(3, 0, uuidN(1), "10.0.0.1:1", "m", vectorTime)
	deliver(s, "198.51.100.1:1000", pkt)
	probe := &ptp.Message{Role: ptp.RoleClient, Version: 3, Has: ptp.FieldSequence | ptp.FieldUUID | ptp.FieldMyTS, UUID: uuidN(1), MyTS: 5}
	pb, _ := probe.AppendTo(nil)
	msgs := []udpsock.Message{{Buf: append(make([]byte, 0, 2048), pb...), N: len(pb), Addr: netip.MustParseAddrPort("198.51.100.1:1000")}}
	before := d.n
	if n := testing.AllocsPerRun(100, func() { s.handleBatch(msgs) }); n != 0 {
		t.Errorf("%v allocs per probe", n)
	}
	if d.n-before < 100 {
		t.Errorf("%d replies", d.n-before)
	}
}

// FuzzReceive: any datagram through the whole receive path (after a few real clients joined)
// neither panics nor breaks the membership invariants.
func FuzzReceive(f *testing.F) {
	for _, v := range vectors(f) {
		f.Add(v)
	}
	f.Add(relayPacket(uuidN(1), uuidN(2), 1))
	f.Add(beacon(3, 0, uuidN(1), "10.0.0.1:1", "other", vectorTime))
	stun, _ := hex.DecodeString("000100002112a442b7e7a701bc34d686fa87dfae")
	f.Add(stun)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		s, _ := newDirect(t)
		deliver(s, "198.51.100.1:1000", beacon(3, 0, uuidN(1), "10.0.0.1:1", "m", vectorTime))
		deliver(s, "198.51.100.2:1000", beacon(3, 0, uuidN(2), "10.0.0.2:1", "m", vectorTime))
		deliver(s, "198.51.100.1:1000", pkt)
		deliver(s, "198.51.100.3:1000", pkt)
		s.tick()
		n := 0
		for _, c := range s.clients {
			if c.mesh == nil {
				n++ // waiting for its v3 re-registration
			}
		}
		for _, ms := range s.meshes {
			for i, c := range ms.members {
				if c.idx != i || c.mesh != ms || s.clients[c.addr] != c {
					t.Fatalf("inconsistent member %+v", c)
				}
			}
			n += len(ms.members)
		}
		if n != len(s.clients) {
			t.Fatalf("%d members, %d clients", n, len(s.clients))
		}
	})
}

// idle reports that no mesh waits for a membership round.
func (s *Server) idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ms := range s.meshes {
		if ms.changed {
			return false
		}
	}
	return true
}

// TestV3JoinWaitsForMesh: a v3 client's first beacon (CLIENTVER=3, v2 TLVs only, as PTP-W5
// makes a client do before it knows the server's version) is answered with SERVERVER=3 but
// joins no mesh; its re-registration with MESH joins that mesh, with one join event.
func TestV3JoinWaitsForMesh(t *testing.T) {
	r := newRig(t, nil)
	d := r.net.listen("198.51.100.9:1000")
	leg := r.net.listen("198.51.100.8:1000")
	leg.send(t, r.addr, beacon(2, 0, uuidN(8), "10.0.0.8:1", "", vectorTime))
	leg.recvMsg(t)
	d.send(t, r.addr, beacon(3, 0, uuidN(9), "10.0.0.9:1", "", vectorTime))
	rep, _ := d.recvMsg(t)
	if rep.Role != ptp.RoleServer || rep.Version != 3 || rep.Has&ptp.FieldYourTS == 0 {
		t.Fatalf("reply %+v", rep)
	}
	if n := len(r.srv.Snapshot().Clients); n != 1 {
		t.Fatalf("%d members before the re-registration", n)
	}
	d.send(t, r.addr, beacon(3, 1, uuidN(9), "10.0.0.9:1", "lab", vectorTime))
	waitFor(t, "join", func() bool { return len(r.srv.Snapshot().Clients) == 2 })
	// The observer hears of it after the server's lock is released: wait for the event.
	waitFor(t, "join event", func() bool { r.obs.mu.Lock(); defer r.obs.mu.Unlock(); return len(r.obs.joined) >= 2 })
	r.obs.mu.Lock()
	defer r.obs.mu.Unlock()
	if len(r.obs.joined) != 2 || r.obs.joined[1].Mesh != "lab" || len(r.obs.left) != 0 {
		t.Fatalf("joined %+v left %v", r.obs.joined, r.obs.left)
	}
}

// flaky returns read errors (as ICMP port-unreachable does on Linux) before delegating.
type flaky struct {
	Transport
	errs int
}

func (f *flaky) ReadBatch(m []udpsock.Message) (int, error) {
	if f.errs > 0 {
		f.errs--
		return 0, syscall.ECONNREFUSED
	}
	return f.Transport.ReadBatch(m)
}

// TestReadErrorsDoNotStop: read errors are logged and the loop goes on.
func TestReadErrorsDoNotStop(t *testing.T) {
	n := newMemNet()
	srvAddr := netip.MustParseAddrPort("192.0.2.1:23456")
	tr := &flaky{Transport: PacketConn(n.listen(srvAddr.String())), errs: 25}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := New(ctx, Config{Transport: tr, NoSTUN: true})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	c := n.listen("198.51.100.1:1000")
	c.send(t, srvAddr, beacon(2, 0, uuidN(1), "10.0.0.1:1", "", vectorTime))
	if m, _ := c.recvMsg(t); m.Role != ptp.RoleServer {
		t.Fatalf("%+v", m)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestIPv6: a v3 client on IPv6 is listed to v3 clients with an 18-byte address; a legacy
// client (whose original decoder breaks on 18-byte addresses, B9) is not told about it.
func TestIPv6(t *testing.T) {
	r := newRig(t, nil)
	v6 := r.net.listen("[2001:db8::9]:1000")
	v4 := r.net.listen("198.51.100.1:1000")
	leg := r.net.listen("198.51.100.2:1000")
	v6.send(t, r.addr, beacon(3, 0, uuidN(1), "[fd00::9]:1000", "", vectorTime))
	v6.send(t, r.addr, beacon(3, 1, uuidN(1), "[fd00::9]:1000", "", vectorTime))
	v4.send(t, r.addr, beacon(3, 0, uuidN(2), "10.0.0.1:1000", "", vectorTime))
	v4.send(t, r.addr, beacon(3, 1, uuidN(2), "10.0.0.1:1000", "", vectorTime))
	leg.send(t, r.addr, beacon(2, 0, uuidN(3), "10.0.0.2:1000", "", vectorTime))
	waitFor(t, "3 clients", func() bool { return len(r.srv.Snapshot().Clients) == 3 })
	r.clock.Add(2 * time.Second)
	l := v4.recvListN(t, 2)
	if l.Entries[0].Ext != v6.addr && l.Entries[1].Ext != v6.addr {
		t.Fatalf("v3 list lacks the IPv6 client: %+v", l.Entries)
	}
	l = v6.recvListN(t, 2)
	if l.YourAddr != v6.addr {
		t.Fatalf("YOURADDR %v", l.YourAddr)
	}
	ll := leg.recvListN(t, 1)
	if ll.Entries[0].Ext != v4.addr || ll.IsV3() {
		t.Fatalf("legacy list %+v", ll.Entries)
	}
}

// TestAckLoss: a list not answered within AckTimeout counts as lost (not while in flight), an
// answered one as acked with its RTT on the server's clock.
func TestAckLoss(t *testing.T) {
	r := newRig(t, nil)
	a := r.net.listen("198.51.100.1:1000")
	a.send(t, r.addr, beacon(2, 0, uuidN(1), "10.0.0.1:1", "", vectorTime))
	first, _ := a.recvList(t)
	state := func() ClientState {
		for _, c := range r.srv.Snapshot().Clients {
			if c.Addr == a.addr {
				return c
			}
		}
		t.Fatal("client gone")
		return ClientState{}
	}
	r.clock.Add(4 * time.Second)
	r.swept(t)
	if s := state(); s.Lost != 0 || s.Sent != 1 {
		t.Fatalf("in flight counted: %+v", s)
	}
	r.clock.Add(2 * time.Second) // 6 s > AckTimeout
	waitFor(t, "loss", func() bool { return state().Lost == 1 })
	a.send(t, r.addr, beacon(2, 1, uuidN(1), "10.0.0.1:1", "", vectorTime)) // keep alive
	r.clock.Add(8 * time.Second)                                            // 14 s: the periodic round
	var second *ptp.Message
	for second == nil || second.MyTS == first.MyTS {
		second, _ = a.recvList(t)
	}
	r.clock.Add(3 * time.Millisecond)
	ack := &ptp.Message{Role: ptp.RoleClient, Version: 2, Has: ptp.FieldSequence | ptp.FieldUUID | ptp.FieldYourTS, UUID: uuidN(1), YourTS: second.MyTS}
	b, _ := ack.AppendTo(nil)
	a.send(t, r.addr, b)
	waitFor(t, "ack", func() bool { return state().Acked == 1 })
	if s := state(); s.Lost != 1 || s.Sent != 2 || s.RTTLast != 3*time.Millisecond || s.RTTAvg != 3*time.Millisecond {
		t.Fatalf("%+v", s)
	}
}

// TestDebugHexdump: --debug logs every packet received and sent, --hexdump adds the bytes sent.
func TestDebugHexdump(t *testing.T) {
	var buf bytes.Buffer
	log := logrus.New()
	log.SetOutput(&buf)
	log.SetLevel(logrus.DebugLevel)
	s, err := New(nil, Config{Transport: &discard{}, NoSTUN: true, Now: func() time.Time { return vectorTime }, Debug: true, Hexdump: true, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	vec := vectors(t)
	deliver(s, "198.51.100.7:40000", vec["c2s_register_first"])
	out := buf.String()
	// The reply to the vector's MYTS, SEQUENCE 1: s2c_yourts with its SEQUENCE 101 -> 1.
	want := strings.Replace(hex.EncodeToString(vec["s2c_yourts"]), "0306"+"00000065", "0306"+"00000001", 1)
	want = want[:len(want)-4] // checksum differs with the sequence
	if !strings.Contains(out, "packet received") || !strings.Contains(out, "packet sent") || !strings.Contains(out, want) {
		t.Errorf("debug log lacks the packets (want hex prefix %s):\n%s", want, out)
	}
}

// TestEventOrder: a client that expires (timer goroutine) and is heard again (reader) before
// the timer has delivered its events is seen leaving, then joining: the observer (the store
// marks a client offline on Left) must not get the join first. The hook runs the reader's
// batch exactly in that window.
func TestEventOrder(t *testing.T) {
	clock := &fakeClock{t: vectorTime}
	var got []string
	obs := ObserverFuncs{
		OnJoined: func(c ClientInfo) { got = append(got, "joined "+c.Addr.String()) },
		OnLeft:   func(c ClientInfo, why string) { got = append(got, "left "+c.Addr.String()+" "+why) },
	}
	s, err := New(nil, Config{Transport: &discard{}, NoSTUN: true, Now: clock.Now, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	const x = "198.51.100.1:1000"
	deliver(s, x, beacon(2, 0, uuidN(1), "10.0.0.1:1", "", vectorTime))
	clock.Add(DefaultExpiry + time.Second)
	s.afterTickUnlock = func() {
		s.afterTickUnlock = nil
		deliver(s, x, beacon(2, 1, uuidN(1), "10.0.0.1:1", "", vectorTime))
	}
	s.tick()
	want := []string{"joined " + x, "left " + x + " expired", "joined " + x}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events %q\nwant %q", got, want)
	}
}
