package ptp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/probekit/probekit/shared/checksum"
)

func seal(t testing.TB, h string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(h, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return Seal(b)
}

func TestDecodeErrors(t *testing.T) {
	good := seal(t, "01 0203 02")
	bad := bytes.Clone(good)
	bad[len(bad)-1] ^= 1
	cases := []struct {
		name string
		pkt  []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"two bytes", []byte{1, 0}, ErrShort},
		{"checksum", bad, ErrChecksum},
		{"len 0", seal(t, "01 0200"), ErrMalformed},
		{"len 1", seal(t, "01 0201 00"), ErrMalformed},
		{"overrun", seal(t, "01 0205 0203"), ErrMalformed},
		{"stray byte", seal(t, "01 020302 07"), ErrMalformed},
		{"uint of 9", seal(t, "01 030b 000000000000000001"), ErrMalformed},
		{"uint of 0", seal(t, "01 0302"), ErrMalformed},
		{"uuid of 15", seal(t, "01 0411 000102030405060708090a0b0c0d0e"), ErrMalformed},
		{"address of 7", seal(t, "01 2009 0a00010200009c"), ErrMalformed},
		{"reach short", seal(t, "01 0c04 0000"), ErrMalformed},
		{"listpage 3", seal(t, "01 0605 000102"), ErrMalformed},
	}
	for _, c := range cases {
		var m Message
		if err := m.UnmarshalBinary(c.pkt); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

// TestLiberal: any uint size 1–8, unknown TLVs skipped (kept in Extra), IPv6 addresses.
func TestLiberal(t *testing.T) {
	pkt := seal(t, "01 0204 0003 030a 0000000000000007 6305 aabbcc 0803 05 1a02 2014 20010db8000000000000000000000001 5ba0")
	var m Message
	if err := m.UnmarshalBinary(pkt); err != nil {
		t.Fatal(err)
	}
	if m.Version != 3 || m.Sequence != 7 || m.MyTS != 5 || m.PTPAddr != netip.MustParseAddrPort("[2001:db8::1]:23456") {
		t.Fatalf("%+v", m)
	}
	if len(m.Extra) != 2 || m.Extra[0].Type != 0x63 || !bytes.Equal(m.Extra[0].Value, []byte{0xaa, 0xbb, 0xcc}) || m.Extra[1].Type != 0x1a || len(m.Extra[1].Value) != 0 {
		t.Fatalf("extra %+v", m.Extra)
	}
	// A version above 255 in 2 bytes saturates.
	if err := m.UnmarshalBinary(seal(t, "01 0104 0100")); err != nil || m.Version != 255 || m.Role != RoleServer {
		t.Fatalf("%v %+v", err, m)
	}
}

func v3Sample() *Message {
	u := func(b byte) UUID {
		var x UUID
		for i := range x {
			x[i] = b + byte(i)
		}
		return x
	}
	return &Message{
		Role: RoleServer, Version: 3,
		Has:      FieldSequence | FieldUUID | FieldMyTS | FieldYourAddr | FieldMesh | FieldListPage | FieldList | FieldNATInfo | FieldEchoSeq,
		Sequence: 1 << 31, UUID: u(1), MyTS: 0x6666998080000000, EchoSeq: 77,
		YourAddr: netip.MustParseAddrPort("198.51.100.7:40000"),
		Mesh:     []byte("lab-α"),
		NAT:      NATInfo{Mapping: BehaviorAddressAndPortDependent, Filtering: BehaviorEndpointIndependent, Hairpin: HairpinNo, Public: netip.MustParseAddrPort("[2001:db8::7]:9")},
		Page:     1, Pages: 3,
		Candidates: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.9:1000")},
		Reach:      []Reach{{Peer: u(50), Path: PathRelay, Sent: 10, Received: 9, Lost: 1, RTTMin: 100, RTTAvg: 200, RTTP50: 190, RTTP99: 400, RTTMax: 401, Jitter: 12}},
		Entries: []Entry{
			{Ext: netip.MustParseAddrPort("203.0.113.9:50001"), UUID: u(20), HasUUID: true, Candidates: [4]netip.AddrPort{netip.MustParseAddrPort("203.0.113.9:6000"), netip.MustParseAddrPort("[2001:db8::2]:6001")}, NCand: 2},
			{Ext: netip.MustParseAddrPort("198.51.100.7:40001"), Int: netip.MustParseAddrPort("10.0.1.3:40001"), UUID: u(30), HasUUID: true},
			{Ext: netip.MustParseAddrPort("[2001:db8::3]:1")},
		},
		Extra: []TLV{{Type: TypePathInfo, Value: []byte{1, 2}}, {Type: 22, Value: []byte("bulk")}},
		Meta:  []byte(`{}`),
	}
}

func TestV3RoundTrip(t *testing.T) {
	m := v3Sample()
	m.Has |= FieldMeta
	pkt, err := m.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkt) != m.Size() {
		t.Errorf("Size %d, len %d", m.Size(), len(pkt))
	}
	var d Message
	if err := d.UnmarshalBinary(pkt); err != nil {
		t.Fatal(err)
	}
	again, err := d.AppendTo(nil)
	if err != nil || !bytes.Equal(again, pkt) {
		t.Fatalf("re-encoded differs: %v\n%x\n%x", err, again, pkt)
	}
	if string(d.Mesh) != "lab-α" || d.NAT != m.NAT || d.Reach[0] != m.Reach[0] || d.Entries[0] != m.Entries[0] ||
		d.Entries[1] != m.Entries[1] || d.Entries[2] != m.Entries[2] || d.Candidates[0] != m.Candidates[0] ||
		d.Page != 1 || d.Pages != 3 || d.EchoSeq != 77 || !d.ListComplete() || d.Sequence != 1<<31 {
		t.Fatalf("decoded %+v", d)
	}
	// TLV order of the contract: EXT, PEERUUID, INT, CANDIDATE within an entry.
	var types []Type
	b, _ := Open(pkt)
	for len(b) > 0 {
		tl, rest, _ := NextTLV(b)
		types = append(types, tl.Type)
		b = rest
	}
	want := []Type{TypeServerVer, TypeSequence, TypeUUID, TypeMyTS, TypeEchoSeq, TypeYourAddr, TypeMesh, TypeNATInfo, TypeCandidate, TypeReach, TypeListPage,
		TypeClientListExt, TypePeerUUID, TypeCandidate, TypeCandidate, TypeClientListExt, TypePeerUUID, TypeClientListInt, TypeClientListExt, TypeClientLen, TypePathInfo, 22, TypeMeta}
	if len(types) != len(want) {
		t.Fatalf("order %v\nwant %v", types, want)
	}
	for i := range want {
		if types[i] != want[i] {
			t.Fatalf("order %v\nwant %v", types, want)
		}
	}
}

func TestEncodeRules(t *testing.T) {
	m := v3Sample()
	m.Version = 2
	if _, err := m.AppendTo(nil); !errors.Is(err, ErrV3Field) {
		t.Errorf("v3 TLVs to a v2 message: %v", err)
	}
	// B4: a META over 253 bytes is left out, the rest is sent.
	legacy := &Message{Role: RoleClient, Version: 2, Has: FieldSequence | FieldMeta, Meta: bytes.Repeat([]byte("x"), 254)}
	pkt, err := legacy.AppendTo(nil)
	if err != nil || len(pkt) != 1+3+6+2 {
		t.Errorf("long META: %x %v", pkt, err)
	}
	legacy.Meta = legacy.Meta[:253]
	if pkt, err = legacy.AppendTo(nil); err != nil || len(pkt) != 1+3+6+255+2 {
		t.Errorf("253-byte META: %d %v", len(pkt), err)
	}
	long := &Message{Role: RoleServer, Version: 3, Has: FieldMesh, Mesh: bytes.Repeat([]byte("m"), 65)}
	if _, err := long.AppendTo(nil); !errors.Is(err, ErrValueTooLong) {
		t.Errorf("long mesh: %v", err)
	}
	big := &Message{Role: RoleServer, Version: 2, Has: FieldList}
	for i := 0; i < 200; i++ {
		big.Entries = append(big.Entries, Entry{Ext: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 1)})
	}
	if out, err := big.AppendTo([]byte{9}); !errors.Is(err, ErrTooLarge) || len(out) != 1 {
		t.Errorf("oversized list: %v, %d bytes left", err, len(out))
	}
}

func TestRewriteRelay(t *testing.T) {
	var to, origin UUID
	to[0], origin[0] = 0xAA, 0xBB
	m := &Message{Role: RoleClient, Version: 3, Has: FieldSequence | FieldUUID | FieldRelayTo | FieldMyTS, Sequence: 5, UUID: origin, RelayTo: to, MyTS: 42}
	pkt, _ := m.AppendTo(nil)
	got, err := RewriteRelay(pkt, origin)
	if err != nil || got != to {
		t.Fatalf("%v %v", got, err)
	}
	var d Message
	if err := d.UnmarshalBinary(pkt); err != nil {
		t.Fatal(err)
	}
	if d.Has&FieldRelayTo != 0 || d.Has&FieldRelayFrom == 0 || d.RelayFrom != origin || d.MyTS != 42 || d.Sequence != 5 {
		t.Fatalf("%+v", d)
	}
	if _, err := RewriteRelay(pkt, origin); !errors.Is(err, ErrNoRelayTo) {
		t.Errorf("second rewrite: %v", err)
	}
	if n := testing.AllocsPerRun(100, func() {
		pkt[1+3+6+18] = byte(TypeRelayTo)
		pkt[len(pkt)-2], pkt[len(pkt)-1] = 0, 0
		copy(pkt[len(pkt)-2:], []byte{byte(checksum.Checksum(pkt[:len(pkt)-2]) >> 8), byte(checksum.Checksum(pkt[:len(pkt)-2]))})
		RewriteRelay(pkt, origin)
	}); n != 0 {
		t.Errorf("%v allocs per rewrite", n)
	}
}

func TestDecodeAllocs(t *testing.T) {
	vec := loadVectors(t)
	var m Message
	for _, name := range []string{"c2c_beacon", "c2c_yourts", "s2c_beacon", "c2s_register"} {
		pkt, _ := hex.DecodeString(vec[name].Hex)
		m.UnmarshalBinary(pkt) // grows Entries once
		if n := testing.AllocsPerRun(100, func() { m.UnmarshalBinary(pkt) }); n != 0 {
			t.Errorf("%s: %v allocs per decode", name, n)
		}
	}
}

func BenchmarkDecodeProbe(b *testing.B) {
	pkt, _ := hex.DecodeString(loadVectors(b)["c2c_beacon"].Hex)
	var m Message
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		if err := m.UnmarshalBinary(pkt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeReply(b *testing.B) {
	m := &Message{Role: RoleClient, Version: 3, Has: FieldSequence | FieldUUID | FieldYourTS | FieldEchoSeq}
	buf := make([]byte, 0, MaxPacket)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = m.AppendTo(buf[:0])
	}
}

// fuzzSeeds: every vector and the v3 sample (testdata/fuzz/FuzzDecode holds the same bytes).
func fuzzSeeds(f testing.TB) [][]byte {
	var out [][]byte
	for _, v := range loadVectors(f) {
		b, _ := hex.DecodeString(v.Hex)
		out = append(out, b)
	}
	m := v3Sample()
	m.Has |= FieldMeta
	b, _ := m.AppendTo(nil)
	return append(out, b)
}

// FuzzDecode: no input panics; whatever decodes re-encodes to a packet that decodes the same.
func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		var m Message
		if err := m.UnmarshalBinary(pkt); err != nil {
			return
		}
		var to UUID
		RewriteRelay(bytes.Clone(pkt), to)
		if m.Version < 3 && m.IsV3() {
			m.Version = 3
			if m.Role == RoleNone {
				m.Role = RoleClient
			}
		}
		out, err := m.AppendTo(nil)
		if err != nil {
			return // e.g. a decoded list entry count over 255 or a re-encoded size over 1400
		}
		var d Message
		if err := d.UnmarshalBinary(out); err != nil {
			t.Fatalf("re-encoded packet does not decode: %v\n%x", err, out)
		}
		again, err := d.AppendTo(nil)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not stable: %v\n%x\n%x", err, out, again)
		}
	})
}

// FuzzRoundTrip builds a message from fuzzed fields, encodes and decodes it.
func FuzzRoundTrip(f *testing.F) {
	f.Add(uint8(2), uint32(0), []byte("0123456789abcdef"), uint64(0x6666998080000000), []byte{10, 0, 1, 2, 0x9c, 0x40}, []byte("mesh"), uint8(3), []byte{})
	f.Add(uint8(3), uint32(99), []byte("fedcba9876543210"), uint64(1), bytes.Repeat([]byte{0x20}, 18), []byte{}, uint8(0), bytes.Repeat([]byte{7}, 53))
	f.Fuzz(func(t *testing.T, ver uint8, seq uint32, uuid []byte, ts uint64, addr, mesh []byte, nEntries uint8, reach []byte) {
		m := &Message{Role: RoleClient, Version: ver, Has: FieldSequence | FieldMyTS | FieldList, Sequence: seq}
		if len(uuid) == 16 {
			m.UUID, m.Has = UUID(uuid), m.Has|FieldUUID
		}
		m.MyTS = 0
		if a, ok := Address(addr); ok {
			m.PTPAddr, m.Has = a, m.Has|FieldPTPAddr
			for i := 0; i < int(nEntries%40); i++ {
				m.Entries = append(m.Entries, Entry{Ext: a, Int: a})
			}
		}
		if ver >= 3 {
			m.Mesh, m.Has = mesh, m.Has|FieldMesh
			var r Reach
			if r.UnmarshalBinary(reach) == nil {
				m.Reach = append(m.Reach, r)
			}
		}
		_ = ts
		pkt, err := m.AppendTo(nil)
		if err != nil {
			if len(mesh) > MaxMesh || m.Size() > MaxPacket {
				return
			}
			t.Fatalf("encode: %v", err)
		}
		var d Message
		if err := d.UnmarshalBinary(pkt); err != nil {
			t.Fatalf("decode: %v", err)
		}
		if d.Sequence != seq || d.UUID != m.UUID || d.PTPAddr != m.PTPAddr || len(d.Entries) != len(m.Entries) || !bytes.Equal(d.Mesh, m.Mesh) || len(d.Reach) != len(m.Reach) || !d.ListComplete() {
			t.Fatalf("round trip %+v\n%+v", d, m)
		}
	})
}
