package client

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/probekit/probekit/shared/timestamp"
	"github.com/probekit/probekit/shared/udpsock"
)

// Transport is the client's one UDP socket: the kernel socket (NewUDPTransport) in production,
// any net.PacketConn (PacketConnTransport, e.g. the in-memory NAT simulator) in tests (PTP-T1).
type Transport interface {
	// ReadBatch fills msgs (Buf, N, Addr, RxTime, RxSource) and returns how many it filled.
	ReadBatch(msgs []udpsock.Message) (int, error)
	// WriteTo sends b to addr and returns the transmit-timestamp id when TxStamps is true.
	WriteTo(b []byte, addr netip.AddrPort) (txID uint32, err error)
	// LocalAddr is the bound address.
	LocalAddr() netip.AddrPort
	// TxStamps reports whether WaitTxTimestamps delivers kernel send times.
	TxStamps() bool
	// WaitTxTimestamps waits up to timeout and calls fn for each send time that is ready.
	WaitTxTimestamps(timeout time.Duration, fn func(id uint32, t time.Time)) error
	Close() error
}

// UDPTransport is a kernel UDP socket with receive and transmit timestamps.
type UDPTransport struct {
	c  *udpsock.Conn
	tx bool
	wm udpsock.Message
}

// NewUDPTransport opens the socket on network ("udp" dual stack, "udp4", "udp6") and addr.
func NewUDPTransport(ctx context.Context, network, addr string) (*UDPTransport, error) {
	c, err := udpsock.Listen(ctx, network, addr, udpsock.Options{RxTimestamps: true, TxTimestamps: true, Batch: 32})
	if err != nil {
		// Some kernels refuse SO_TIMESTAMPING; fall back to receive stamps only.
		c, err = udpsock.Listen(ctx, network, addr, udpsock.Options{RxTimestamps: true, Batch: 32})
		if err != nil {
			return nil, err
		}
	}
	return &UDPTransport{c: c, tx: c.Features().TxTimestamps}, nil
}

// Conn exposes the udpsock connection.
func (t *UDPTransport) Conn() *udpsock.Conn { return t.c }

func (t *UDPTransport) ReadBatch(msgs []udpsock.Message) (int, error) { return t.c.ReadBatch(msgs) }

// WriteTo sends one datagram. Only one goroutine may call it at a time (the client's send lock).
func (t *UDPTransport) WriteTo(b []byte, addr netip.AddrPort) (uint32, error) {
	t.wm = udpsock.Message{Buf: b, N: len(b), Addr: addr}
	err := t.c.WriteTo(&t.wm)
	return t.wm.TxID, err
}

func (t *UDPTransport) LocalAddr() netip.AddrPort { return t.c.LocalAddr() }
func (t *UDPTransport) TxStamps() bool            { return t.tx }
func (t *UDPTransport) Close() error              { return t.c.Close() }

func (t *UDPTransport) WaitTxTimestamps(timeout time.Duration, fn func(id uint32, t time.Time)) error {
	_, err := t.c.WaitTxTimestamps(timeout, func(id uint32, ts time.Time, _ timestamp.Source) { fn(id, ts) })
	return err
}

// PacketConnTransport adapts a net.PacketConn; receive times are taken in user space.
type PacketConnTransport struct {
	C net.PacketConn
}

func (t PacketConnTransport) ReadBatch(msgs []udpsock.Message) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	n, a, err := t.C.ReadFrom(msgs[0].Buf)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, err
		}
		return 0, err
	}
	m := &msgs[0]
	m.N = n
	m.RxTime = time.Now()
	m.RxSource = timestamp.SourceUser
	if ua, ok := a.(*net.UDPAddr); ok {
		ap := ua.AddrPort()
		m.Addr = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return 1, nil
}

func (t PacketConnTransport) WriteTo(b []byte, addr netip.AddrPort) (uint32, error) {
	_, err := t.C.WriteTo(b, net.UDPAddrFromAddrPort(addr))
	return 0, err
}

func (t PacketConnTransport) LocalAddr() netip.AddrPort {
	if ua, ok := t.C.LocalAddr().(*net.UDPAddr); ok {
		return ua.AddrPort()
	}
	return netip.AddrPort{}
}

func (t PacketConnTransport) TxStamps() bool { return false }
func (t PacketConnTransport) Close() error   { return t.C.Close() }
func (t PacketConnTransport) WaitTxTimestamps(timeout time.Duration, _ func(uint32, time.Time)) error {
	time.Sleep(timeout)
	return nil
}
