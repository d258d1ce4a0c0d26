package server

import (
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/probekit/probekit/shared/udpsock"
)

// Transport is the server's socket in batches; *udpsock.Conn implements it, and PacketConn
// adapts any net.PacketConn (tests, in-memory networks).
type Transport interface {
	// ReadBatch blocks for at least one datagram and fills msgs[i].N, Addr, RxTime, Dst.
	ReadBatch(msgs []udpsock.Message) (int, error)
	// WriteBatch sends msgs[i].Buf[:N] to msgs[i].Addr, from msgs[i].Dst when valid.
	WriteBatch(msgs []udpsock.Message) (int, error)
	LocalAddr() netip.AddrPort
	Close() error
}

type addrPortConn interface {
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
}

// PacketConn adapts a net.PacketConn to a Transport of one datagram per read. When the conn
// has ReadFromUDPAddrPort/WriteToUDPAddrPort (net.UDPConn, the test fakes) it allocates
// nothing per datagram.
func PacketConn(c net.PacketConn) Transport {
	t := &pcTransport{c: c}
	t.ap, _ = c.(addrPortConn)
	return t
}

type pcTransport struct {
	c  net.PacketConn
	ap addrPortConn
}

func (t *pcTransport) ReadBatch(msgs []udpsock.Message) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	m := &msgs[0]
	var n int
	var from netip.AddrPort
	var err error
	if t.ap != nil {
		n, from, err = t.ap.ReadFromUDPAddrPort(m.Buf)
	} else {
		var a net.Addr
		n, a, err = t.c.ReadFrom(m.Buf)
		if ua, ok := a.(*net.UDPAddr); ok {
			from = ua.AddrPort()
		} else if a != nil {
			from, _ = netip.ParseAddrPort(a.String())
		}
	}
	if err != nil {
		return 0, err
	}
	m.N, m.Addr, m.RxTime, m.Dst = n, netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), time.Time{}, netip.Addr{}
	m.Truncated = n > len(m.Buf)
	return 1, nil
}

func (t *pcTransport) WriteBatch(msgs []udpsock.Message) (int, error) {
	for i := range msgs {
		m := &msgs[i]
		b := m.Buf
		if m.N > 0 {
			b = b[:m.N]
		}
		var err error
		if t.ap != nil {
			_, err = t.ap.WriteToUDPAddrPort(b, m.Addr)
		} else {
			_, err = t.c.WriteTo(b, net.UDPAddrFromAddrPort(m.Addr))
		}
		if err != nil {
			return i, err
		}
	}
	return len(msgs), nil
}

func (t *pcTransport) LocalAddr() netip.AddrPort {
	if ua, ok := t.c.LocalAddr().(*net.UDPAddr); ok {
		return ua.AddrPort()
	}
	a, _ := netip.ParseAddrPort(t.c.LocalAddr().String())
	return a
}

func (t *pcTransport) Close() error { return t.c.Close() }

// isClosed reports an error that means the socket is gone (end the read loop).
func isClosed(err error) bool {
	return errors.Is(err, net.ErrClosed)
}
