package checksum

import (
	"encoding/binary"
	"net/netip"
	"os"
	"testing"
)

// frame is one Ethernet frame from a classic pcap file.
type frame struct {
	data    []byte
	origLen int
}

// readPcap is a minimal classic-pcap reader for these tests only (shared/capture is the real
// one; checksum must not depend on it). It accepts µs/ns magic in either byte order and
// Ethernet link type.
func readPcap(t *testing.T, path string) []frame {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 24 {
		t.Fatalf("%s: short pcap", path)
	}
	var bo binary.ByteOrder
	switch binary.LittleEndian.Uint32(b) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		bo = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
	default:
		t.Fatalf("%s: not a pcap file", path)
	}
	if lt := bo.Uint32(b[20:]); lt != 1 {
		t.Fatalf("%s: link type %d, want Ethernet", path, lt)
	}
	var out []frame
	for p := b[24:]; len(p) > 0; {
		if len(p) < 16 {
			t.Fatalf("%s: truncated record header", path)
		}
		incl, orig := int(bo.Uint32(p[8:])), int(bo.Uint32(p[12:]))
		if len(p) < 16+incl {
			t.Fatalf("%s: truncated record", path)
		}
		out = append(out, frame{p[16 : 16+incl], orig})
		p = p[16+incl:]
	}
	return out
}

type pktCounts struct{ ipv4Hdr, udp, tcp, icmp, partial6 int }

// checkFrame verifies every checksum in one Ethernet frame whose capture is complete. For each
// it also zeroes the field, recomputes it and compares with what the sender's stack wrote.
func checkFrame(t *testing.T, name string, i int, f frame, c *pktCounts) {
	t.Helper()
	d := f.data
	if len(d) < 14 {
		return
	}
	et := binary.BigEndian.Uint16(d[12:])
	ip := d[14:]
	truncated := len(d) < f.origLen
	var src, dst netip.Addr
	var proto uint8
	var l4 []byte
	switch et {
	case 0x0800:
		ihl := int(ip[0]&0x0f) * 4
		hdr := ip[:ihl]
		if Checksum(hdr) != 0 {
			t.Errorf("%s #%d: IPv4 header checksum does not verify", name, i+1)
		}
		stored := binary.BigEndian.Uint16(hdr[10:])
		h := append([]byte(nil), hdr...)
		h[10], h[11] = 0, 0
		if got := Checksum(h); got != stored {
			t.Errorf("%s #%d: IPv4 header checksum %#04x, stack wrote %#04x", name, i+1, got, stored)
		}
		c.ipv4Hdr++
		src, dst = netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
		proto = ip[9]
		if !truncated {
			l4 = ip[ihl:int(binary.BigEndian.Uint16(ip[2:]))]
		}
	case 0x86dd:
		src, dst = netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
		proto = ip[6] // the captures carry no extension headers
		if !truncated {
			l4 = ip[40 : 40+int(binary.BigEndian.Uint16(ip[4:]))]
		}
	default:
		return
	}
	if truncated {
		return // snaplen cut the segment: its checksum cannot be recomputed
	}
	var off int
	switch proto {
	case ProtoUDP:
		off = 6
	case ProtoTCP:
		off = 16
	case ProtoICMP:
		if Checksum(l4) != 0 {
			t.Errorf("%s #%d: ICMP checksum does not verify", name, i+1)
		}
		c.icmp++
		return
	default:
		return
	}
	stored := binary.BigEndian.Uint16(l4[off:])
	seg := append([]byte(nil), l4...)
	seg[off], seg[off+1] = 0, 0
	recomputed := Transport(src, dst, proto, seg)
	if Verify(src, dst, proto, l4) {
		if recomputed != stored {
			t.Errorf("%s #%d: proto %d checksum %#04x, stack wrote %#04x", name, i+1, proto, recomputed, stored)
		}
		if proto == ProtoUDP {
			c.udp++
		} else {
			c.tcp++
		}
		return
	}
	// Loopback captures hold CHECKSUM_PARTIAL segments: the stack leaves the folded,
	// uncomplemented pseudo-header sum in the field for the NIC to finish. That is an
	// independent vector for PseudoHeader.
	if want := Fold(PseudoHeader(src, dst, proto, len(l4))); stored != want {
		t.Errorf("%s #%d: proto %d checksum %#04x is neither correct (%#04x) nor the partial pseudo-header sum %#04x",
			name, i+1, proto, stored, recomputed, want)
		return
	}
	c.partial6++
}

// Real packets written by the Linux stack with offloads off (spp captures, veth) or on
// loopback (twamp IPv6, partial checksums). testdata/README.md lists the frames; the minimum
// counts make sure the test checked what it claims.
func TestCapturedPackets(t *testing.T) {
	tests := []struct {
		file string
		want pktCounts
	}{
		{"spp-udpecho-ref-20.pcap", pktCounts{ipv4Hdr: 20, udp: 20}},
		{"spp-ping-ref-10.pcap", pktCounts{ipv4Hdr: 10, icmp: 10}},
		// 40 frames, 18 of them cut by snaplen 200 (iperf3 bulk data): 22 complete TCP segments.
		{"spp-tcpbulk-ref-40.pcap", pktCounts{ipv4Hdr: 40, tcp: 22}},
		// IPv6 loopback: TCP control connection and UDP test packets, all CHECKSUM_PARTIAL.
		{"twamp-owamp-ipv6.pcap", pktCounts{partial6: 27}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			var c pktCounts
			for i, f := range readPcap(t, "testdata/"+tc.file) {
				checkFrame(t, tc.file, i, f, &c)
			}
			if c != tc.want {
				t.Errorf("verified %+v, want %+v", c, tc.want)
			}
		})
	}
}
