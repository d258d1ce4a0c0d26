package tcpcraft

import (
	"net/netip"
	"testing"

	"golang.org/x/net/bpf"
)

// TestDstPortFilter runs the program in x/net/bpf's VM on network-layer packets; the VM has
// no EtherType metadata, so the dispatch is checked by the live responder tests and here the
// program is entered with A preset: run it on a copy whose first instruction is replaced.
func TestDstPortFilter(t *testing.T) {
	dst := netip.MustParseAddr("10.199.2.2")
	for _, c := range []struct {
		addr   netip.Addr
		seg    Segment
		accept bool
	}{
		{netip.Addr{}, Segment{Src: cAddr, Dst: dst, SrcPort: 1, DstPort: 34343}, true},
		{netip.Addr{}, Segment{Src: dst, Dst: cAddr, SrcPort: 34343, DstPort: 1}, false},
		{dst, Segment{Src: cAddr, Dst: dst, SrcPort: 1, DstPort: 34343}, true},
		{dst, Segment{Src: cAddr, Dst: cAddr, SrcPort: 1, DstPort: 34343}, false},
		{netip.Addr{}, Segment{Src: cAddr, Dst: dst, SrcPort: 1, DstPort: 34343, Protocol: 17}, false},
		{netip.Addr{}, Segment{Src: cAddr, Dst: dst, SrcPort: 1, DstPort: 34343, FragOff: 3}, false},
		{netip.Addr{}, Segment{Src: cAddr, Dst: dst, SrcPort: 1, DstPort: 34343, IPOptions: []byte{1, 1, 1, 0}}, true},
		{netip.Addr{}, Segment{Src: cAddr6, Dst: sAddr6, SrcPort: 1, DstPort: 34343}, true},
		{sAddr6, Segment{Src: cAddr6, Dst: sAddr6, SrcPort: 1, DstPort: 34343}, true},
		{sAddr6, Segment{Src: cAddr6, Dst: cAddr6, SrcPort: 1, DstPort: 34343}, false},
		{netip.Addr{}, Segment{Src: sAddr6, Dst: cAddr6, SrcPort: 34343, DstPort: 1}, false},
	} {
		prog := DstPortFilter(c.addr, 34343, 1000)
		pkt := c.seg.Bytes()
		et := uint32(0x0800)
		if c.seg.IsV6() {
			et = 0x86dd
		}
		prog[0] = bpf.LoadConstant{Dst: bpf.RegA, Val: et}
		vm, err := bpf.NewVM(prog)
		if err != nil {
			t.Fatal(err)
		}
		n, err := vm.Run(pkt)
		if err != nil {
			t.Fatal(err)
		}
		if (n > 0) != c.accept {
			t.Errorf("%v %s: returned %d", c.addr, c.seg.Line(), n)
		}
	}
}
