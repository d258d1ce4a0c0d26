package pktid

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/probekit/probekit/shared/checksum"
	"github.com/probekit/probekit/spp/internal/engine"
)

var (
	a4 = netip.MustParseAddr("10.71.1.1")
	b4 = netip.MustParseAddr("10.71.2.1")
	a6 = netip.MustParseAddr("2001:db8::1")
	b6 = netip.MustParseAddr("2001:db8:2::1")
)

func ipv4(src, dst netip.Addr, proto uint8, id uint16, l4 []byte) []byte {
	b := make([]byte, 20, 20+len(l4))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(20+len(l4)))
	binary.BigEndian.PutUint16(b[4:], id)
	b[8] = 64
	b[9] = proto
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	return append(b, l4...)
}

func ipv6(src, dst netip.Addr, next uint8, ext, l4 []byte) []byte {
	b := make([]byte, 40, 40+len(ext)+len(l4))
	b[0], b[1], b[2], b[3] = 0x60, 0x0a, 0xbc, 0xde // flow label 0xabcde
	binary.BigEndian.PutUint16(b[4:], uint16(len(ext)+len(l4)))
	b[6] = next
	b[7] = 64
	s, d := src.As16(), dst.As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	return append(append(b, ext...), l4...)
}

var (
	tcpHdr  = []byte{0x9c, 0x40, 0x14, 0x51, 1, 2, 3, 4, 5, 6, 7, 8, 0x50, 0x18, 0x01, 0xf5, 0xab, 0xcd, 0, 0, 'd', 'a', 't', 'a'}
	udpDgm  = []byte{0xa4, 0xcc, 0, 7, 0, 28, 0x12, 0x34, 'p', 'a', 'y', 'l', 'o', 'a', 'd', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'}
	icmpMsg = []byte{8, 0, 0x12, 0x34, 0, 1, 0, 9, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', 'p'}
)

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// TestFieldBytes checks, bit by bit, which wire bytes enter the packet ID (spp.md §3, SPP-R2).
func TestFieldBytes(t *testing.T) {
	tcp := ipv4(a4, b4, 6, 0x1234, tcpHdr)
	udp := ipv4(b4, a4, 17, 0xbeef, udpDgm[:20]) // UDP length 28 claims more than present: payload clipped
	udpFull := ipv4(a4, b4, 17, 7, udpDgm)
	icmp := ipv4(a4, b4, 1, 9, icmpMsg)
	sa, sb := a4.As4(), b4.As4()
	tests := []struct {
		name string
		pkt  []byte
		code uint32
		dir  engine.Dir
		want []byte
	}{
		{"default tcp", tcp, Default, engine.Out, cat(sa[:], sb[:], []byte{6}, []byte{0x12, 0x34}, tcpHdr[0:4])},
		{"default udp reverse", udp, Default, engine.In, cat(sb[:], sa[:], []byte{17}, []byte{0xbe, 0xef}, udpDgm[0:4])},
		{"tcp seq ack flags csum", tcp, TCPSeq | TCPAck | TCPFlags | TCPCsum, engine.Out, tcpHdr[4:20]},
		{"udp fields on tcp ignored", tcp, UDPLenCsum | UDPPayload | OtherL4 | IPID, engine.Out, []byte{0x12, 0x34}},
		{"udp len csum payload", udpFull, UDPLenCsum | UDPPayload, engine.Out, cat(udpDgm[4:8], udpDgm[8:20])},
		{"icmp 20 bytes", icmp, Protocol | OtherL4, engine.Out, cat([]byte{1}, icmpMsg[:20])},
		{"ports absent for icmp", icmp, SrcPort | DstPort | IPID, engine.Out, []byte{0, 9}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(a4, b4, netip.Addr{}, netip.Addr{}, tc.code)
			if err != nil {
				t.Fatal(err)
			}
			dir, id, res := c.Classify(tc.pkt)
			if res != Target || dir != tc.dir {
				t.Fatalf("result %v dir %v, want target %v", res, dir, tc.dir)
			}
			if want := checksum.SPPHash(tc.want); id != want {
				t.Fatalf("id %#x, want hash of % x = %#x", id, tc.want, want)
			}
		})
	}
}

func TestUDPPayloadClipped(t *testing.T) {
	c, _ := New(a4, b4, netip.Addr{}, netip.Addr{}, UDPPayload)
	_, id, res := c.Classify(ipv4(b4, a4, 17, 1, udpDgm[:14]))
	if res != Target || id != checksum.SPPHash(udpDgm[8:14]) || c.Truncated != 1 {
		t.Fatalf("res %v id %#x truncated %d", res, id, c.Truncated)
	}
}

func TestNAT(t *testing.T) {
	natA := netip.MustParseAddr("192.0.2.7")
	c, err := New(a4, b4, natA, netip.Addr{}, Default)
	if err != nil {
		t.Fatal(err)
	}
	// Behind the NAT the packet has source natA; addresses are not hashed, so both copies
	// of the packet get the same ID.
	d1, id1, r1 := c.Classify(ipv4(a4, b4, 17, 5, udpDgm))
	d2, id2, r2 := c.Classify(ipv4(natA, b4, 17, 5, udpDgm))
	d3, id3, r3 := c.Classify(ipv4(b4, natA, 17, 6, udpDgm))
	if r1 != Target || r2 != Target || r3 != Target || d1 != engine.Out || d2 != engine.Out || d3 != engine.In {
		t.Fatalf("classification %v/%v %v/%v %v/%v", r1, d1, r2, d2, r3, d3)
	}
	if id1 != id2 || id1 == id3 {
		t.Fatalf("ids %#x %#x %#x", id1, id2, id3)
	}
	if want := checksum.SPPHash(cat([]byte{17, 0, 5}, udpDgm[:4])); id1 != want {
		t.Fatalf("id %#x want %#x", id1, want)
	}
}

func TestClassifyResults(t *testing.T) {
	c, _ := New(a4, b4, netip.Addr{}, netip.Addr{}, Default)
	other := netip.MustParseAddr("10.0.0.9")
	unreach := ipv4(b4, a4, 1, 1, []byte{3, 1, 0, 0, 0, 0, 0, 0})
	ssfPkt := ipv4(a4, b4, 17, 1, []byte{0x26, 0x5e, 0x26, 0x5e, 0, 8, 0, 0})
	bad := ipv4(a4, b4, 6, 1, tcpHdr)
	bad[0] = 0x43
	tests := []struct {
		name string
		pkt  []byte
		want Result
	}{
		{"empty", nil, Malformed},
		{"short v4", ipv4(a4, b4, 6, 1, nil)[:19], Malformed},
		{"ihl < 5", bad, Malformed},
		{"arp-ish", []byte{0x00, 1, 2}, NotIP},
		{"other host", ipv4(a4, other, 6, 1, tcpHdr), Other},
		{"same direction both a", ipv4(a4, a4, 6, 1, tcpHdr), Other},
		{"icmp unreachable excluded", unreach, Other},
		{"ssf port excluded", ssfPkt, Other},
		{"v6 packet for v4 targets", ipv6(a6, b6, 17, nil, udpDgm), Other},
		{"l4 beyond capture", ipv4(a4, b4, 6, 1, tcpHdr)[:22], Target},
	}
	for _, tc := range tests {
		if _, _, got := c.Classify(tc.pkt); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestIPv6(t *testing.T) {
	c, err := New(a6, b6, netip.Addr{}, netip.Addr{}, DefaultIPv6)
	if err != nil {
		t.Fatal(err)
	}
	s, d := a6.As16(), b6.As16()
	// Hop-by-hop options (8 bytes) before UDP.
	hbh := []byte{17, 0, 1, 4, 0, 0, 0, 0}
	p := ipv6(a6, b6, 0, hbh, udpDgm)
	dir, id, res := c.Classify(p)
	want := cat(s[:], d[:], []byte{17}, []byte{0x0a, 0xbc, 0xde, 0, byte(len(hbh) + len(udpDgm))}, udpDgm[0:4], udpDgm[8:20])
	if res != Target || dir != engine.Out || id != checksum.SPPHash(want) {
		t.Fatalf("res %v dir %v id %#x want %#x", res, dir, id, checksum.SPPHash(want))
	}
	// A fragment header's identification replaces flow label + length; later fragments
	// have no transport header.
	frag := []byte{17, 0, 0x00, 0x08, 0xde, 0xad, 0xbe, 0xef}
	_, id, res = c.Classify(ipv6(b6, a6, 44, frag, udpDgm))
	if want := cat(d[:], s[:], []byte{17}, []byte{0xde, 0xad, 0xbe, 0xef}); res != Target || id != checksum.SPPHash(want) {
		t.Fatalf("fragment: res %v id %#x", res, id)
	}
	// ICMPv6 destination unreachable is excluded like ICMP type 3.
	if _, _, res := c.Classify(ipv6(b6, a6, 58, nil, []byte{1, 0, 0, 0})); res != Other {
		t.Fatalf("icmpv6 unreachable: %v", res)
	}
	if _, _, res := c.Classify(ipv6(b6, a6, 58, nil, []byte{129, 0, 0, 0})); res != Target {
		t.Fatalf("icmpv6 echo reply: %v", res)
	}
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		a, b, n netip.Addr
		code    uint32
	}{
		{netip.Addr{}, b4, netip.Addr{}, 63},
		{a4, b6, netip.Addr{}, 63},
		{a4, a4, netip.Addr{}, 63},
		{a4, b4, a6, 63},
		{a4, b4, netip.Addr{}, 0},
		{a4, b4, netip.Addr{}, All + 1},
	} {
		if _, err := New(tc.a, tc.b, tc.n, netip.Addr{}, tc.code); err == nil {
			t.Errorf("New(%v, %v, %v, %d) accepted", tc.a, tc.b, tc.n, tc.code)
		}
	}
}

func TestClassifyNoAlloc(t *testing.T) {
	c, _ := New(a4, b4, netip.Addr{}, netip.Addr{}, All)
	p := ipv4(a4, b4, 6, 1, tcpHdr)
	if n := testing.AllocsPerRun(100, func() { c.Classify(p) }); n != 0 {
		t.Fatalf("%v allocs", n)
	}
}

func BenchmarkClassify(b *testing.B) {
	c, _ := New(a4, b4, netip.Addr{}, netip.Addr{}, Default)
	p := ipv4(a4, b4, 6, 1, tcpHdr)
	b.ReportAllocs()
	for b.Loop() {
		c.Classify(p)
	}
}

// TestLeadingZerosKeepHash: the SPP CRC (initial value 0, no inversion) ignores leading zero
// bytes, which sppHash relies on to reach hash/crc32's fast path.
func TestLeadingZerosKeepHash(t *testing.T) {
	for n := 0; n <= 60; n++ {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*37 + 11)
		}
		want := checksum.SPPHash(b)
		for pad := 0; pad <= hashPad; pad++ {
			if got := checksum.SPPHash(append(make([]byte, pad), b...)); got != want {
				t.Fatalf("%d bytes with %d leading zeros: %#x, want %#x", n, pad, got, want)
			}
		}
		var c Classifier
		buf := append(c.scratch[:hashPad], b...)
		if got := c.sppHash(buf); got != want {
			t.Fatalf("sppHash of %d bytes: %#x, want %#x", n, got, want)
		}
	}
}
