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
	// WriteBatch sends msgs[i].Buf[:N] to msgs[i].Addr (setting TxID) and returns how many went.
	WriteBatch(msgs []udpsock.Message) (int, error)
	// LocalAddr is the bound address.
	LocalAddr() netip.AddrPort
	// TxStamps reports whether WaitTxTimestamps delivers kernel send times.
	TxStamps() bool
	// TxTimestamps calls fn for each kernel send time that is ready, without blocking.
	TxTimestamps(fn func(id uint32, t time.Time)) error
	Close() error
}

// UDPTransport is a kernel UDP socket with receive and transmit timestamps.
type UDPTransport struct {
	c       *udpsock.Conn
	tx      bool
	wm      udpsock.Message
	cb      func(uint32, time.Time)
	adapter func(uint32, time.Time, timestamp.Source)
}

// NewUDPTransport opens the socket on network ("udp" dual stack, "udp4", "udp6") and addr.
func NewUDPTransport(ctx context.Context, network, addr string) (*UDPTransport, error) {
	// Large buffers: a mesh of hundreds of peers answers in bursts, and the transmit stamps
	// queue on the same socket's error queue, which counts against the receive buffer.
	// The runtime's poller with raw non-blocking calls, not Blocking reads: with a datagram or
	// two per wake-up, a thread blocked in recvmmsg kept the runtime's monitor thread polling
	// every 20 µs, and ordinary system calls woke it from its sleep; that thread cost more
	// than the socket calls (scripts/bench.d/ptp.sh, 250 peers: 6.3–8.6 % of a core with
	// Blocking, 4.1–4.6 % with RawSyscalls, same loaded machine).
	opts := udpsock.Options{RxTimestamps: true, TxTimestamps: true, Batch: 64, ReadBuffer: 4 << 20, WriteBuffer: 1 << 20, RawSyscalls: true}
	c, err := udpsock.Listen(ctx, network, addr, opts)
	if err != nil {
		// Some kernels refuse SO_TIMESTAMPING; fall back to receive stamps only.
		opts.TxTimestamps = false
		c, err = udpsock.Listen(ctx, network, addr, opts)
		if err != nil {
			return nil, err
		}
	}
	t := &UDPTransport{c: c, tx: c.Features().TxTimestamps}
	t.adapter = func(id uint32, ts time.Time, _ timestamp.Source) { t.cb(id, ts) }
	return t, nil
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

// WriteBatch sends with one sendmmsg.
func (t *UDPTransport) WriteBatch(msgs []udpsock.Message) (int, error) { return t.c.WriteBatch(msgs) }

// TxTimestamps drains the error queue (one recvmmsg per 32 stamps). Not concurrent with itself.
func (t *UDPTransport) TxTimestamps(fn func(id uint32, t time.Time)) error {
	t.cb = fn
	_, err := t.c.TxTimestamps(t.adapter)
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

func (t PacketConnTransport) WriteBatch(msgs []udpsock.Message) (int, error) {
	for i := range msgs {
		m := &msgs[i]
		n := m.N
		if n == 0 {
			n = len(m.Buf)
		}
		if _, err := t.WriteTo(m.Buf[:n], m.Addr); err != nil {
			return i, err
		}
	}
	return len(msgs), nil
}

func (t PacketConnTransport) TxStamps() bool                                  { return false }
func (t PacketConnTransport) Close() error                                    { return t.C.Close() }
func (t PacketConnTransport) TxTimestamps(func(id uint32, t time.Time)) error { return nil }
