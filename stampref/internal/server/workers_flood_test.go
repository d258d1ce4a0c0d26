package server

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/reflector"
	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/udpsock"
)

// exchange sends pkt and returns the first datagram that comes back; the long deadline only
// keeps a lost reply from hanging the test.
func exchange(t *testing.T, c *udpsock.Conn, to netip.AddrPort, pkt []byte) []byte {
	t.Helper()
	if err := c.WriteTo(&udpsock.Message{Buf: pkt, Addr: to}); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	in := udpsock.Message{Buf: make([]byte, 2048)}
	if err := c.ReadFrom(&in); err != nil {
		t.Fatalf("no reply: %v", err)
	}
	if in.Addr != to {
		t.Fatalf("reply from %v, want %v", in.Addr, to)
	}
	return in.Buf[:in.N]
}

// --workers 3 serves one address from three SO_REUSEPORT sockets: sessions from many source
// ports are all answered, from the listen address, each with its own sequence.
func TestWorkersListener(t *testing.T) {
	r := start(t, Config{Workers: 3})
	for i := range 12 {
		c, err := udpsock.Listen(context.Background(), "udp4", "127.0.0.1:0", udpsock.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for seq := range 5 {
			var rp testpkt.ReflectedPacket
			if err := rp.UnmarshalBinary(exchange(t, c, r.udp, stampPkt(testpkt.ModeUnauthenticated, uint32(seq), uint16(i), nil))); err != nil {
				t.Fatal(err)
			}
			if rp.Seq != uint32(seq) || rp.SSID != uint16(i) {
				t.Fatalf("client %d request %d: reply seq %d ssid %d", i, seq, rp.Seq, rp.SSID)
			}
		}
	}
}

// --strict-size: a request shorter than the 44-octet reply is dropped (no amplification);
// a full-size one is answered. Without it, the short request gets the RFC 8762 §4.6 reply.
func TestStrictSize(t *testing.T) {
	short := stampPkt(testpkt.ModeUnauthenticated, 1, 0, nil)[:testpkt.TWAMPSenderLen]
	for _, strict := range []bool{true, false} {
		r := start(t, Config{Reflector: reflector.Config{StrictSize: strict}})
		c := newClient(t)
		if err := c.conn.WriteTo(&udpsock.Message{Buf: short, Addr: r.udp}); err != nil {
			t.Fatal(err)
		}
		// Replies of one flow come back in order: the first one tells whether the short
		// request was answered.
		first := exchange(t, c.conn, r.udp, stampPkt(testpkt.ModeUnauthenticated, 2, 0, nil))
		var rp testpkt.ReflectedPacket
		if err := rp.UnmarshalBinary(first); err != nil {
			t.Fatal(err)
		}
		answered := rp.SenderSeq == 1
		if answered == strict {
			t.Errorf("strict %v: short request answered %v (%d octets)", strict, answered, len(first))
		}
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
	}
}
