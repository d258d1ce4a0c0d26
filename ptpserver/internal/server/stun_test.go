package server

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v3"
)

// TestSTUNOtherAddress: on a real loopback socket the server answers STUN Binding on its own
// port (XOR-MAPPED-ADDRESS = the client, OTHER-ADDRESS = the alternate address) and a
// CHANGE-REQUEST for address and port is answered from the alternate address (RFC 5780).
func TestSTUNOtherAddress(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := New(ctx, Config{Addr: netip.MustParseAddrPort("127.0.0.1:0"), OtherAddress: netip.MustParseAddrPort("127.0.0.2:0")})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()
	primary := srv.LocalAddr()
	other := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), primary.Port()+1)

	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	me := c.LocalAddr().(*net.UDPAddr).AddrPort()
	ask := func(change byte) (*stun.Message, netip.AddrPort) {
		t.Helper()
		setters := []stun.Setter{stun.TransactionID, stun.BindingRequest}
		if change != 0 {
			setters = append(setters, stun.RawAttribute{Type: stun.AttrChangeRequest, Value: []byte{0, 0, 0, change}})
		}
		req := stun.MustBuild(setters...)
		if _, err := c.WriteToUDPAddrPort(req.Raw, primary); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1500)
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatal(err)
		}
		res := &stun.Message{Raw: buf[:n]}
		if err := res.Decode(); err != nil || res.TransactionID != req.TransactionID || res.Type != stun.BindingSuccess {
			t.Fatalf("answer %v: %v", res, err)
		}
		return res, netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	}
	res, from := ask(0)
	var xa stun.XORMappedAddress
	var oa stun.OtherAddress
	if err := xa.GetFrom(res); err != nil || xa.Port != int(me.Port()) || from != primary {
		t.Fatalf("plain Binding: %v %v from %v", xa, err, from)
	}
	if err := oa.GetFrom(res); err != nil || oa.Port != int(other.Port()) || !oa.IP.Equal(net.IPv4(127, 0, 0, 2)) {
		t.Fatalf("OTHER-ADDRESS %v %v", oa, err)
	}
	if _, from = ask(0x06); from != other {
		t.Fatalf("CHANGE-REQUEST ip+port answered from %v, want %v", from, other)
	}
	if _, from = ask(0x02); from != netip.AddrPortFrom(primary.Addr(), other.Port()) {
		t.Fatalf("CHANGE-REQUEST port answered from %v", from)
	}
	if srv.Stats().STUN != 3 {
		t.Errorf("stun counter %d", srv.Stats().STUN)
	}
}
