package tcpcraft

import (
	"net/netip"
	"testing"
)

// TestFlow: a handshake and data exchange keep ISN, next sequence numbers, peer ISN, TS
// bases and window scales as the segments say.
func TestFlow(t *testing.T) {
	local := netip.AddrPortFrom(cAddr, 40001)
	remote := netip.AddrPortFrom(sAddr, 34343)
	f := NewFlow(local, remote, 252001, 8064, 13572468)
	syn := f.Segment(FlagSYN, []Option{MSS(512), WindowScale(2), f.TS()}, nil)
	if syn.Seq != 252001 || syn.Ack != 0 || syn.Window != 8064 || syn.Src != cAddr || syn.DstPort != 34343 {
		t.Fatalf("SYN %s", syn.Line())
	}
	f.Sent(syn)
	if f.SndNxt != 252002 || f.WScale != 2 {
		t.Errorf("after SYN: nxt %d ws %d", f.SndNxt, f.WScale)
	}
	synack := &Segment{Src: sAddr, Dst: cAddr, SrcPort: 34343, DstPort: 40001, Seq: 0xabcdef, Ack: 252002, Flags: FlagSYN | FlagACK,
		Options: []Option{MSS(512), Timestamps(12345678, 13572468), WindowScale(6)}}
	if !f.FromPeer(synack) || f.ToPeer(synack) || !f.ToPeer(syn) {
		t.Error("direction")
	}
	f.Received(synack)
	if f.PeerISN != 0xabcdef || f.RcvNxt != 0xabcdf0 || f.PeerMSS != 512 || f.PeerWScale != 6 || !f.HaveTS || f.PeerTSBase != 12345678 || !f.Established {
		t.Errorf("after SYN/ACK: %+v", f)
	}
	ts := f.TS()
	if v, e, _ := ts.TimestampsValue(); v != 13572469 || e != 12345678 {
		t.Errorf("TS %d %d", v, e)
	}
	d := f.Segment(FlagACK|FlagPSH, nil, make([]byte, 100))
	if d.Seq != 252002 || d.Ack != 0xabcdf0 {
		t.Errorf("data %s", d.Line())
	}
	f.Sent(d)
	reply := &Segment{Src: sAddr, Dst: cAddr, SrcPort: 34343, DstPort: 40001, Seq: 0xabcdf0, Ack: 252102, Flags: FlagACK,
		Payload: make([]byte, 80), Options: []Option{Timestamps(12345679, 13572469)}}
	f.Received(reply)
	if f.SndNxt != 252102 || f.RcvNxt != 0xabcdf0+80 || f.PeerTSLast != 12345679 {
		t.Errorf("after data: %+v", f)
	}
	// A retransmission does not move SndNxt back.
	f.Sent(d)
	if f.SndNxt != 252102 {
		t.Errorf("retransmission moved SndNxt to %d", f.SndNxt)
	}
}
