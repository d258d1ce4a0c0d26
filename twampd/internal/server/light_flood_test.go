package server

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/timestamp"
)

// firstReply sends req and returns the first datagram that comes back (the deadline only
// keeps a lost reply from hanging the test).
func firstReply(t *testing.T, uc *net.UDPConn, dst netip.AddrPort, req []byte) []byte {
	t.Helper()
	if _, err := uc.WriteToUDPAddrPort(req, dst); err != nil {
		t.Fatal(err)
	}
	_ = uc.SetReadDeadline(time.Now().Add(20 * time.Second))
	b := make([]byte, 1500)
	n, from, err := uc.ReadFromUDPAddrPort(b)
	if err != nil {
		t.Fatalf("request to %v: %v", dst, err)
	}
	if from != dst {
		t.Fatalf("reply from %v, want %v", from, dst)
	}
	return b[:n]
}

func lightReq(seq uint32) []byte {
	p := testpkt.SenderPacket{Mode: testpkt.ModeUnauthenticated, Seq: seq, Timestamp: testpkt.Stamp(time.Now(), false),
		ErrorEstimate: timestamp.NewErrorEstimate(false, false, time.Millisecond)}
	return p.AppendTo(nil)
}

// --light --workers 3: three SO_REUSEPORT sockets on one address; every session is answered
// from that address with its own sequence. --strict-size: a 14-octet request (reply: 41
// octets) is dropped, a 41-octet one answered; without it the short one is answered.
func TestLightWorkersStrictSize(t *testing.T) {
	ts := startServer(t, Config{Light: true, Workers: 3})
	dst := netip.MustParseAddrPort(ts.ctl)
	for i := range 10 {
		uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer uc.Close()
		for seq := range 3 {
			var rp testpkt.ReflectedPacket
			if err := rp.UnmarshalBinary(firstReply(t, uc, dst, lightReq(uint32(seq)))); err != nil || rp.Seq != uint32(seq) {
				t.Fatalf("session %d request %d: %+v %v", i, seq, rp, err)
			}
		}
	}
	for _, strict := range []bool{true, false} {
		ts := startServer(t, Config{Light: true, StrictSize: strict})
		dst := netip.MustParseAddrPort(ts.ctl)
		uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer uc.Close()
		if _, err := uc.WriteToUDPAddrPort(lightReq(1)[:testpkt.TWAMPSenderLen], dst); err != nil {
			t.Fatal(err)
		}
		// One flow's replies come back in order: the first tells whether the short
		// request was answered.
		rep := firstReply(t, uc, dst, lightReq(2)[:testpkt.TWAMPReflectedLen])
		var rp testpkt.ReflectedPacket
		if err := rp.UnmarshalBinary(rep); err != nil {
			t.Fatal(err)
		}
		if answered := rp.SenderSeq == 1; answered == strict {
			t.Errorf("strict %v: 14-octet request answered %v", strict, answered)
		}
		if len(rep) != testpkt.TWAMPReflectedLen {
			t.Errorf("reply of %d octets", len(rep))
		}
	}
}
