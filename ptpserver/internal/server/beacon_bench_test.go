package server

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/probekit/probekit/shared/ptp"
	"github.com/probekit/probekit/shared/udpsock"
)

// BenchmarkBeacon: a v3 client's beacon (NATINFO and a REACH per peer of its mesh of 10)
// through the receive path, with an observer attached.
func BenchmarkBeacon(b *testing.B) {
	s, _ := newDirect(b)
	s.disp.obs = ObserverFuncs{}
	var pkts [][]byte
	for i := 0; i < 10; i++ {
		m := &ptp.Message{Role: ptp.RoleClient, Version: 3, Has: ptp.FieldSequence | ptp.FieldUUID | ptp.FieldPTPAddr | ptp.FieldMyTS | ptp.FieldMesh | ptp.FieldNATInfo,
			UUID: uuidN(byte(i + 1)), PTPAddr: netip.MustParseAddrPort("10.0.0.1:1"), Mesh: []byte("m"), MyTS: 1,
			NAT: ptp.NATInfo{Mapping: 1, Filtering: 3, Public: netip.MustParseAddrPort("198.51.100.1:1")}}
		for j := 0; j < 10; j++ {
			if j != i {
				m.Reach = append(m.Reach, ptp.Reach{Peer: uuidN(byte(j + 1)), Path: ptp.PathDirect})
			}
		}
		pkt, _ := m.AppendTo(nil)
		pkts = append(pkts, pkt)
		deliver(s, fmt.Sprintf("198.51.100.%d:1000", i+1), pkt)
	}
	msgs := make([]udpsock.Message, 1)
	msgs[0].Buf = make([]byte, 2048)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := i % 10
		n := copy(msgs[0].Buf, pkts[k])
		msgs[0].N = n
		msgs[0].Addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(k + 1)}), 1000)
		s.handleBatch(msgs)
		i++
	}
}
