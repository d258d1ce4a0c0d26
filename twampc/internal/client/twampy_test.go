package client

import (
	"net/netip"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/netlab"
	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/twampctl"
	"github.com/probekit/probekit/shared/udpsock"
)

// The 38-octet replies of the twampy TWAMP-Light responder are accepted (TW-T7) and give
// RTT = capture time of the reply − T1, since twampy writes T3 == T2.
func TestTwampyReplies(t *testing.T) {
	pkts, err := netlab.ReadCapture("testdata/twamp-light-twampy.pcap")
	if err != nil {
		t.Fatal(err)
	}
	remote := netip.MustParseAddrPort("127.0.0.1:20862")
	s := &session{remote: remote, mode: twampctl.ModeUnauthenticated, count: 10,
		records: make([]Record, 10), res: &Result{}}
	offline(t, s)
	var rp testpkt.ReflectedPacket
	want := map[uint32]time.Duration{}
	for _, pk := range pkts {
		if pk.UDP != nil && pk.Dst == remote {
			// The request as captured: its T1 is the sender's departure.
			var sp testpkt.SenderPacket
			if err := sp.UnmarshalBinary(pk.Payload); err != nil {
				t.Fatal(err)
			}
			s.sendAt(sp.Seq, sp.Time())
		}
		if pk.UDP == nil || pk.Src != remote {
			continue
		}
		if len(pk.Payload) != 38 {
			t.Fatalf("twampy reply of %d octets, capture says 38", len(pk.Payload))
		}
		var p testpkt.ReflectedPacket
		if err := p.UnmarshalBinary(pk.Payload); err != nil {
			t.Fatal(err)
		}
		want[p.SenderSeq] = pk.Time.Sub(p.SenderTime())
		m := udpsock.Message{Buf: append([]byte(nil), pk.Payload...), N: len(pk.Payload), Addr: pk.Src, RxTime: pk.Time}
		s.handleReply(&m, &rp)
	}
	s.finishOffline()
	if got := s.res.Seq.Received(); got != 10 || s.res.Invalid != 0 {
		t.Fatalf("received %d, invalid %d; want 10, 0", got, s.res.Invalid)
	}
	for seq, w := range want {
		r := &s.records[seq]
		if r.T2 != r.T3 {
			t.Errorf("seq %d: T2 %d != T3 %d", seq, r.T2, r.T3)
		}
		if got := r.RTT(); got != w {
			t.Errorf("seq %d: RTT %v, want %v from the capture", seq, got, w)
		}
	}
	// A reply from another address is not counted.
	m := udpsock.Message{Buf: make([]byte, 41), N: 41, Addr: netip.MustParseAddrPort("127.0.0.1:9")}
	s.handleReply(&m, &rp)
	if s.finishOffline(); s.res.Invalid != 1 {
		t.Error("reply from a foreign address accepted")
	}
}
