package pktid

import (
	"net/netip"
	"testing"

	"github.com/probekit/probekit/shared/capture"
	"github.com/probekit/probekit/spp/internal/engine"
)

// FuzzClassify runs packet-ID extraction over arbitrary frames of any link type and field
// code. The corpus in testdata/fuzz/FuzzClassify holds frames of the golden captures (ICMP
// echo, UDP echo, TCP bulk; Ethernet) between 10.71.1.1 and 10.71.2.1.
func FuzzClassify(f *testing.F) {
	f.Add(ipv4(a4, b4, 6, 1, tcpHdr), uint16(capture.RawIPv4), uint16(Default))
	f.Add(ipv6(b6, a6, 0, []byte{17, 0, 1, 4, 0, 0, 0, 0}, udpDgm), uint16(capture.Raw), uint16(All))
	a, b := netip.MustParseAddr("10.71.1.1"), netip.MustParseAddr("10.71.2.1")
	f.Fuzz(func(t *testing.T, frame []byte, lt uint16, code uint16) {
		c := uint32(code)%All + 1
		ip, _, err := capture.NetworkLayer(capture.LinkType(lt), frame)
		if err != nil {
			return
		}
		for _, cls := range []*Classifier{mustNew(t, a, b, c), mustNew(t, a6, b6, c), mustNew(t, b, a, c)} {
			dir, id, res := cls.Classify(ip)
			if res != Target {
				continue
			}
			if dir != engine.Out && dir != engine.In {
				t.Fatalf("direction %d", dir)
			}
			// Deterministic: the same bytes give the same ID.
			if d2, id2, _ := cls.Classify(ip); d2 != dir || id2 != id {
				t.Fatalf("unstable id")
			}
		}
	})
}

func mustNew(t *testing.T, a, b netip.Addr, code uint32) *Classifier {
	c, err := New(a, b, netip.Addr{}, netip.Addr{}, code)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
