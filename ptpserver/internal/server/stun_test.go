package server

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/pion/stun/v3"

	"github.com/probekit/probekit/shared/ptp"
)

// TestSTUNOtherAddress: on a real loopback socket the server answers STUN Binding on its own
// port (XOR-MAPPED-ADDRESS = the client, OTHER-ADDRESS = the alternate address) and a
// CHANGE-REQUEST for address and port is answered from the alternate address (RFC 5780).
func TestSTUNOtherAddress(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The alternate sockets take the kernel-chosen port P1 plus one, which another process on
	// this machine may hold: a new P1 then.
	var srv *Server
	var err error
	for try := 0; ; try++ {
		srv, err = New(ctx, Config{Addr: netip.MustParseAddrPort("127.0.0.1:0"), OtherAddress: netip.MustParseAddrPort("127.0.0.2:0")})
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || try == 20 {
			break
		}
	}
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

// TestDualStack: a server bound to [::] serves an IPv4 client (seen unmapped, 6-byte
// addresses) and an IPv6 client on one socket and lists them to each other; replies leave
// from the address each client sent to.
func TestDualStack(t *testing.T) {
	probe, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	probe.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := New(ctx, Config{Addr: netip.MustParseAddrPort("[::]:0")})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()
	port := srv.LocalAddr().Port()
	type cl struct {
		c   *net.UDPConn
		srv netip.AddrPort
	}
	mk := func(network string, ip net.IP, srvIP string) cl {
		c, err := net.ListenUDP(network, &net.UDPAddr{IP: ip})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return cl{c, netip.AddrPortFrom(netip.MustParseAddr(srvIP), port)}
	}
	a := mk("udp4", net.IPv4(127, 0, 0, 1), "127.0.0.1")
	b := mk("udp6", net.IPv6loopback, "::1")
	addrOf := func(x cl) netip.AddrPort { return x.c.LocalAddr().(*net.UDPAddr).AddrPort() }
	for i, x := range []cl{a, b} {
		pkt := beacon(3, 0, uuidN(byte(i+1)), addrOf(x).String(), "dual", vectorTime)
		if _, err := x.c.WriteToUDPAddrPort(pkt, x.srv); err != nil {
			t.Fatal(err)
		}
	}
	for i, x := range []cl{a, b} {
		other := addrOf([]cl{a, b}[1-i])
		for {
			buf := make([]byte, 2048)
			x.c.SetReadDeadline(time.Now().Add(20 * time.Second))
			n, from, err := x.c.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("client %d: %v", i, err)
			}
			if netip.AddrPortFrom(from.Addr().Unmap(), from.Port()) != x.srv {
				t.Fatalf("client %d: answer from %v, want %v", i, from, x.srv)
			}
			var m ptp.Message
			if err := m.UnmarshalBinary(buf[:n]); err != nil {
				t.Fatal(err)
			}
			if m.Has&ptp.FieldList != 0 && len(m.Entries) == 1 {
				if m.Entries[0].Ext != other || m.YourAddr != addrOf(x) {
					t.Fatalf("client %d: list %+v, want %v", i, m.Entries[0], other)
				}
				break
			}
		}
		// STUN on the wildcard socket answers from the address the request went to.
		req := stun.MustBuild(stun.TransactionID, stun.BindingRequest)
		x.c.WriteToUDPAddrPort(req.Raw, x.srv)
		for {
			buf := make([]byte, 2048)
			x.c.SetReadDeadline(time.Now().Add(20 * time.Second))
			n, from, err := x.c.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("client %d STUN: %v", i, err)
			}
			if !stun.IsMessage(buf[:n]) {
				continue
			}
			if netip.AddrPortFrom(from.Addr().Unmap(), from.Port()) != x.srv {
				t.Fatalf("client %d: STUN answer from %v, want %v", i, from, x.srv)
			}
			var xa stun.XORMappedAddress
			res := &stun.Message{Raw: buf[:n]}
			if err := res.Decode(); err != nil || xa.GetFrom(res) != nil || xa.Port != int(addrOf(x).Port()) {
				t.Fatalf("client %d: STUN %v %v", i, res, err)
			}
			break
		}
	}
}
