package client

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/ptp"
)

// In legacy mode the client's packets are byte-identical to the original's (vectors.json).
func TestGoldenLegacyPackets(t *testing.T) {
	vec := vectors(t)
	c, tr := newTestClient(t, true)
	// The server's beacon (s2c_beacon) carries MYTS: the reply is c2s_yourts when our server
	// counter is at 9.
	c.srv.seqOut = 9
	feed(c, vec["s2c_beacon"], "192.0.2.1:23456")
	sent := tr.take()
	if len(sent) != 1 || !bytes.Equal(sent[0].b, vec["c2s_yourts"]) || sent[0].to.String() != "192.0.2.1:23456" {
		t.Fatalf("reply to the server's MYTS:\n got %v\nwant %x", sent, vec["c2s_yourts"])
	}
	// s2c_beacon lists 203.0.113.9:50001 and 198.51.100.7:40001 (INT 10.0.1.3:40001): PTP-C3.
	if len(c.peers) != 2 || c.public.String() != "198.51.100.7:40000" {
		t.Fatalf("peers %d, public %v", len(c.peers), c.public)
	}
	if p := c.byAddr[mustAP("10.0.1.3:40001")]; p == nil || p.lan.String() != "10.0.1.3:40001" {
		t.Errorf("CLIENTLIST_INT not attached: %+v", p)
	}
	// A peer's probe (c2c_beacon) is answered with c2c_yourts (its first packet to that peer).
	feed(c, vec["c2c_beacon"], "203.0.113.9:50001")
	sent = tr.take()
	if len(sent) != 1 || !bytes.Equal(sent[0].b, vec["c2c_yourts"]) || sent[0].to.String() != "203.0.113.9:50001" {
		t.Fatalf("reply to a peer's MYTS:\n got %v\nwant %x", sent, vec["c2c_yourts"])
	}
	// SHUTDOWN (PTP-C4) as the original sends it, with our server counter at 8.
	c.srv.seqOut = 8
	c.sendShutdown()
	sent = tr.take()
	if len(sent) != 1 || !bytes.Equal(sent[0].b, vec["c2s_shutdown"]) {
		t.Fatalf("SHUTDOWN:\n got %v\nwant %x", sent, vec["c2s_shutdown"])
	}
}

// A list whose CLIENTLEN does not match is ignored (PTP-C3); an unlisted sender is dropped
// as "Unknown client"; a bad checksum is counted, not fatal (B2).
func TestListSemanticsAndDrops(t *testing.T) {
	vec := vectors(t)
	c, tr := newTestClient(t, true)
	bad := append([]byte(nil), vec["s2c_beacon"]...)
	// CLIENTLEN value is the byte before the checksum: make it 3 and re-seal.
	bad = bad[:len(bad)-2]
	bad[len(bad)-1] = 3
	bad = ptp.Seal(bad)
	feed(c, bad, "192.0.2.1:23456")
	if len(c.peers) != 0 {
		t.Fatalf("list with CLIENTLEN 3 and 2 entries applied")
	}
	feed(c, vec["s2c_beacon"], "192.0.2.1:23456")
	tr.take()
	feed(c, vec["c2c_beacon"], "203.0.113.77:1")
	if c.Counters().Unknown != 1 || len(tr.take()) != 0 {
		t.Errorf("unlisted sender answered: %+v", c.Counters())
	}
	corrupt := append([]byte(nil), vec["c2c_beacon"]...)
	corrupt[len(corrupt)-1] ^= 1
	feed(c, corrupt, "203.0.113.9:50001")
	if c.Counters().BadChecksum != 1 || len(c.peers) != 2 {
		t.Errorf("bad checksum: %+v, %d peers", c.Counters(), len(c.peers))
	}
	// A later list without a peer removes it (the server's list is authoritative).
	m := ptp.Message{Role: ptp.RoleServer, Version: 2, Has: ptp.FieldSequence | ptp.FieldUUID | ptp.FieldList,
		UUID: vecUUID, Entries: []ptp.Entry{{Ext: mustAP("203.0.113.9:50001")}}}
	b, err := m.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	feed(c, b, "192.0.2.1:23456")
	if len(c.peers) != 1 || c.byAddr[mustAP("10.0.1.3:40001")] != nil {
		t.Errorf("removal: %d peers", len(c.peers))
	}
}

// Timers (PTP-C1): a server beacon every 7 s and a probe to every peer every 0.5 s, on the
// client's own tick with synthetic times.
func TestTimers(t *testing.T) {
	vec := vectors(t)
	c, tr := newTestClient(t, true)
	feed(c, vec["s2c_beacon"], "192.0.2.1:23456")
	tr.take()
	t0 := time.Now() // the peers' first probes are spread over the first interval from now
	for d := time.Duration(0); d < 14*time.Second; d += tick {
		c.onTick(t0.Add(d))
	}
	var beacons int
	probes := map[string]int{}
	var m ptp.Message
	for _, s := range tr.take() {
		if err := m.UnmarshalBinary(s.b); err != nil || m.Has&ptp.FieldMyTS == 0 {
			t.Fatalf("unexpected packet %x", s.b)
		}
		if s.to.String() == "192.0.2.1:23456" {
			beacons++
			if m.Has&ptp.FieldPTPAddr == 0 || m.PTPAddr.String() != "10.0.1.2:40000" || m.IsV3() {
				t.Errorf("server beacon %+v", m)
			}
		} else {
			probes[s.to.String()]++
		}
	}
	// Beacons at 0 s and 7 s; every candidate address of the two peers (the same-NAT peer's
	// LAN address and its public one, the other peer's public one) probed every 0.5 s from a
	// phase within the first interval: 27 or 28 times in 14 s.
	if beacons != 2 {
		t.Errorf("%d server beacons in 14 s, want 2", beacons)
	}
	if len(probes) != 3 {
		t.Errorf("probed %v, want 3 addresses", probes)
	}
	for a, n := range probes {
		if n < 27 || n > 28 {
			t.Errorf("%s probed %d times in 14 s, want 27 or 28", a, n)
		}
	}
}

func mustAP(s string) netipAddrPort { return mustParseAP(s) }

// TestGoldenLegacyRegistration: the registration beacon a legacy (version 2) client sends is the
// original's c2s_register without its META TLV, byte for byte (MYTS is the clock: the vector's
// value is put in before comparing). META is left out on purpose (reference §4, PTP-W6, B4):
// the original server only logs it (server.py: `self.ui.log("Meta received: ...")`), it carries
// floats whose repr must match CPython's, and it can outgrow a TLV.
func TestGoldenLegacyRegistration(t *testing.T) {
	vec := vectors(t)
	reg := vec["c2s_register"]
	// c2s_register: 01 | CLIENTVER 3 | SEQUENCE 6 | UUID 18 | PTPADDR 8 | MYTS 10 | META … | csum.
	const mytsAt, metaAt = 36, 46
	if reg[mytsAt] != 8 || reg[mytsAt+1] != 10 || reg[metaAt] != 35 {
		t.Fatalf("vector layout: %x", reg)
	}
	want := ptp.Seal(append([]byte(nil), reg[:metaAt]...))
	c, tr := newTestClient(t, true)
	c.srv.seqOut = 7
	c.onTick(time.Now())
	sent := tr.take()
	if len(sent) != 1 || sent[0].to.String() != "192.0.2.1:23456" || len(sent[0].b) != len(want) {
		t.Fatalf("registration: %v, want one packet of %d bytes to the server", sent, len(want))
	}
	got := append([]byte(nil), sent[0].b[:len(sent[0].b)-2]...)
	copy(got[mytsAt+2:metaAt], reg[mytsAt+2:metaAt])
	if got = ptp.Seal(got); !bytes.Equal(got, want) {
		t.Fatalf("registration (vector's MYTS):\n got %x\nwant %x", got, want)
	}
	if _, err := ptp.Open(sent[0].b); err != nil {
		t.Error("checksum of the packet as sent")
	}
	// A version-3 client (with a mesh name) registers with the same TLVs, announcing
	// CLIENTVER=3: nothing of version 3 goes to a server before it announced SERVERVER ≥ 3
	// (PTP-W5; the original server would die on an unknown TLV, B3).
	mem := newMem("10.0.1.2:40000")
	c3, err := New(Config{Server: netip.MustParseAddrPort("192.0.2.1:23456"), Transport: mem, UUID: vecUUID, Mesh: "lab", NoSTUN: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := c3.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	c3.srv.seqOut = 7
	c3.onTick(time.Now())
	sent = mem.take()
	if len(sent) != 1 || len(sent[0].b) != len(want) {
		t.Fatalf("v3 registration: %v", sent)
	}
	got = append([]byte(nil), sent[0].b[:len(sent[0].b)-2]...)
	copy(got[mytsAt+2:metaAt], reg[mytsAt+2:metaAt])
	want3 := append([]byte(nil), want[:len(want)-2]...)
	want3[3] = 3 // CLIENTVER's value
	if got, want3 = ptp.Seal(got), ptp.Seal(want3); !bytes.Equal(got, want3) {
		t.Fatalf("v3 registration (vector's MYTS):\n got %x\nwant %x", got, want3)
	}
}
