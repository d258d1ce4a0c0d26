//go:build linux

package udpsock

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/probekit/probekit/shared/timestamp"
)

// DefaultBatch is the number of messages the internal buffers are sized for when Options.Batch
// is zero. Larger slices passed to ReadBatch/WriteBatch grow the buffers once.
const DefaultBatch = 64

// oobSize is the control-message space reserved per message. The largest set a receive can
// produce is SO_TIMESTAMPING (16+48) plus TOS, TTL (and their IPv6 twins on dual-stack
// sockets), each 16+8, plus IP_PKTINFO (16+16) and IPV6_PKTINFO (16+24), which a dual-stack
// socket delivers both of for an IPv4 datagram: 64 + 4*24 + 32 + 40 = 232 bytes; error-queue
// reads carry a sock_extended_err (16+48 with an IPv6 offender address) next to the stamp.
// A send needs at most a TOS (24) and a PKTINFO (40). 320 leaves room for kernels that add more.
const oobSize = 320

// Options select the socket features; every feature is off by default.
type Options struct {
	// RxTimestamps asks the kernel for a receive timestamp per datagram (SO_TIMESTAMPNS_NEW,
	// or SO_TIMESTAMPING when TxTimestamps is also set). Without it, or when a datagram
	// arrives without one, Message.RxTime is read in user space after the syscall.
	RxTimestamps bool
	// TxTimestamps enables software transmit timestamps on the error queue
	// (SO_TIMESTAMPING TX_SOFTWARE|SOFTWARE|OPT_ID|OPT_TSONLY); read them with TxTimestamps.
	TxTimestamps bool
	// RecvTOS delivers the received DSCP/ECN byte in Message.TOS (IP_RECVTOS, IPV6_RECVTCLASS).
	RecvTOS bool
	// RecvTTL delivers the received TTL or hop limit in Message.TTL (IP_RECVTTL,
	// IPV6_RECVHOPLIMIT).
	RecvTTL bool
	// RecvDst delivers each datagram's destination address and arrival interface in
	// Message.Dst and Message.IfIndex (IP_PKTINFO on IPv4 and dual-stack sockets,
	// IPV6_RECVPKTINFO on IPv6 ones). A server bound to a wildcard address needs it to answer
	// from the address the client sent to (write the reply with that Dst): otherwise the kernel
	// picks the route's preferred source, which on a multi-homed host may be another address,
	// and clients, firewalls and NATs drop a reply from an address they did not send to.
	RecvDst bool
	// ReusePort sets SO_REUSEPORT so several sockets can bind the same address and the
	// kernel spreads flows across them.
	ReusePort bool
	// Batch sizes the internal recvmmsg/sendmmsg buffers (DefaultBatch when 0).
	Batch int
	// ReadBuffer and WriteBuffer set SO_RCVBUF/SO_SNDBUF in bytes when non-zero (with the
	// *FORCE variants first, which succeed for root beyond the sysctl limits).
	ReadBuffer, WriteBuffer int
	// HardwareTimestamps also asks for NIC hardware stamps (SO_TIMESTAMPING RX_HARDWARE,
	// TX_HARDWARE, RAW_HARDWARE; implies the SO_TIMESTAMPING receive path). They only appear
	// once the interface timestamps packets (EnableHardwareTimestamps, CAP_NET_ADMIN); they
	// are in the NIC's clock (PHC), fine for RTTs, not for one-way delays without PTP. A
	// datagram with a hardware stamp reports it (SourceHardware) in place of the software one;
	// TX reports come separately for each kind, with the same id.
	HardwareTimestamps bool
	// Blocking makes ReadBatch wait inside recvmmsg (MSG_WAITFORONE on a blocking socket)
	// instead of the runtime's network poller: the kernel wakes the reading thread directly,
	// which costs less CPU and latency per wake-up, but each blocked reader holds an OS
	// thread. The wait is cut every BlockingPoll to notice Close and read deadlines, so
	// Close may take that long and deadlines have that granularity.
	Blocking bool
	// BusyPoll, when positive, makes ReadBatch poll the socket (recvmmsg with MSG_DONTWAIT)
	// without sleeping for up to this long before it waits as usual (SetBusyPoll changes it).
	// A datagram arriving within the window is read with no scheduler wake-up, which on a
	// virtual machine takes tens of µs; the price is a CPU spinning for the window on every
	// read that finds the socket empty.
	BusyPoll time.Duration
	// RawSyscalls issues the socket calls that cannot block (recvmmsg and sendmmsg on a
	// non-Blocking socket, error-queue reads) as raw system calls, without telling the Go
	// scheduler. Every ordinary system call wakes the runtime's monitor thread when the
	// process was idle, and it then polls every 20 µs for a while: with a datagram or two
	// per wake-up (a mesh client answering probes spread in time) that thread cost more CPU
	// than the socket calls. The price: a goroutine keeps its P for the length of the call,
	// which for a non-blocking call is µs. No effect on the reads of a Blocking socket, nor
	// on its writes (a blocking socket's sendmmsg may wait for buffer space).
	RawSyscalls bool
}

// BlockingPoll is how often a Blocking ReadBatch wakes (SO_RCVTIMEO) to check for Close and
// its read deadline.
const BlockingPoll = 50 * time.Millisecond

// Message is one datagram for ReadBatch/WriteBatch.
//
// On read, Buf is the caller's buffer and N, Addr, RxTime, RxSource, TOS, TTL, Dst, IfIndex
// and Truncated are filled. On write, Buf[:N] is sent to Addr (Buf whole when N is 0) with TOS
// as its DSCP/ECN byte and, when Dst is valid, from source address Dst; TxID receives the
// identifier its transmit timestamp will carry. A message read with RecvDst and written back
// as the reply therefore leaves from the address the request was sent to.
type Message struct {
	// Buf is the datagram buffer; N the received length, or on write the length to send.
	Buf []byte
	N   int
	// Addr is the peer: the source on read (IPv4 unmapped on dual-stack sockets), the
	// destination on write.
	Addr netip.AddrPort
	// RxTime is the receive time and RxSource where it came from (SourceKernel with
	// RxTimestamps, SourceUser when the kernel gave none).
	RxTime   time.Time
	RxSource timestamp.Source
	// TOS is the DSCP/ECN byte: received (0 without RecvTOS) or to send.
	TOS uint8
	// TTL is the received TTL or hop limit; 0 without RecvTTL.
	TTL int
	// Dst is, on read, the address the datagram was sent to (the IP header's destination;
	// IPv4 unmapped on dual-stack sockets, IPv6 link-local with the arrival interface as
	// zone), or the zero Addr without RecvDst. On write, a valid Dst is the source address
	// to send from (IP_PKTINFO ipi_spec_dst, or IPV6_PKTINFO ipi6_addr); it must be an
	// address of this host in the destination's family (a multicast or broadcast Dst, as a
	// datagram sent to a group reports, is refused by the kernel with EINVAL). The zero Addr
	// lets the kernel choose, as without this field. The outgoing interface is always left
	// to routing (pktinfo ifindex 0): the arrival interface is not necessarily the way back
	// (asymmetric routes, or lo for a datagram to one of this host's own addresses), and a
	// link-local peer's interface comes from its zone in Addr.
	Dst netip.Addr
	// IfIndex is, on read, the index of the interface the datagram arrived on (0 unknown or
	// without RecvDst). It is not used on write.
	IfIndex int
	// Truncated is set when the datagram was longer than Buf (MSG_TRUNC).
	Truncated bool
	// TxID is set by WriteBatch/WriteTo on a socket with TxTimestamps: the OPT_ID counter
	// value the kernel reports with this datagram's transmit timestamp (0 and meaningless
	// with NoTxStamp).
	TxID uint32
	// NoTxStamp sends this datagram without a transmit timestamp on a socket with
	// TxTimestamps (a per-message SO_TIMESTAMPING control message of 0): bulk payload that
	// nobody times then costs no error-queue report to read. The kernel advances its OPT_ID
	// counter only for timestamped datagrams, and so does WriteBatch.
	NoTxStamp bool
}

// Conn is a UDP socket with batched, timestamped I/O. ReadBatch, WriteBatch and TxTimestamps
// may be called concurrently with each other; TX identifiers are only meaningful when a
// single goroutine writes.
type Conn struct {
	uc       *net.UDPConn
	rc       syscall.RawConn
	opts     Options
	family   int  // unix.AF_INET or unix.AF_INET6
	dual     bool // AF_INET6 socket that also carries IPv4 (v4-mapped) traffic
	local    netip.AddrPort
	rxTS     rxStampKind
	newABI   bool // the _NEW timestamping option variant was accepted
	features Features

	tos       atomic.Uint32 // the socket's default TOS (SetTOS); messages differing get a cmsg
	rdeadline atomic.Int64  // read deadline in Unix ns for Blocking reads and busy polling (0: none)
	busyPoll  atomic.Int64  // Options.BusyPoll in ns (SetBusyPoll)
	txNext    atomic.Uint32 // next OPT_ID the kernel will assign
	closing   atomic.Bool
	stop      atomic.Pointer[func() bool] // stops the context watcher

	rmu sync.Mutex
	r   batchState
	wmu sync.Mutex
	w   batchState
	emu sync.Mutex
	e   errqState

	zmu   sync.Mutex
	zones map[uint32]string
}

// rxStampKind records which timestamping option the socket got, for Features.
type rxStampKind uint8

const (
	rxStampNone rxStampKind = iota
	rxStampNS
	rxStampTimestamping
)

// Features reports what the kernel accepted, for tools that print their timestamp source.
type Features struct {
	// RxTimestamp names the receive timestamp option in use ("", "SO_TIMESTAMPNS",
	// "SO_TIMESTAMPING").
	RxTimestamp string
	// NewABI is true when the y2038-safe _NEW option variants were accepted.
	NewABI bool
	// TxTimestamps is true when error-queue transmit timestamps are enabled.
	TxTimestamps bool
	// DualStack is true for an IPv6 socket that also carries IPv4.
	DualStack bool
}

// ErrClosed is returned by operations on a closed Conn (it wraps net.ErrClosed).
var ErrClosed = fmt.Errorf("udpsock: %w", net.ErrClosed)

// ErrNoTxTimestamps is returned by TxTimestamps on a socket opened without them.
var ErrNoTxTimestamps = errors.New("udpsock: transmit timestamps not enabled")

// Listen opens a UDP socket on network ("udp", "udp4", "udp6") and addr (":0" style) with the
// options applied. When ctx is cancelled the socket closes, which unblocks pending reads.
func Listen(ctx context.Context, network, addr string, opts Options) (*Conn, error) {
	switch network {
	case "udp", "udp4", "udp6":
	default:
		return nil, fmt.Errorf("udpsock: listen: unsupported network %q", network)
	}
	if opts.Batch <= 0 {
		opts.Batch = DefaultBatch
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if opts.ReusePort {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			}
		})
		if err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("SO_REUSEPORT: %w", serr)
		}
		return nil
	}}
	pc, err := lc.ListenPacket(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("udpsock: listen %s %s: %w", network, addr, err)
	}
	c, err := newConn(pc.(*net.UDPConn), opts)
	if err != nil {
		pc.Close()
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	c.stop.Store(&stop)
	if c.closing.Load() {
		// Cancelled before the watcher was stored: Close ran without it.
		stop()
	}
	if c.rxTS != rxStampNone {
		warmRxTimestamps(c.rxTS)
	}
	return c, nil
}

// warmRxTimestamps waits until the kernel stamps received packets. Enabling the first
// timestamping socket on a host flips a static key from a workqueue (net_enable_timestamp),
// so packets arriving in the next moments carry no stamp. A private loopback probe with the
// same option shows when stamping is live; it gives up after 200 ms (ReadBatch then falls
// back to user-space time, labelled SourceUser). With SO_TIMESTAMPNS the kernel does not
// leave an unstamped packet without a stamp: recvmsg stamps it with the time of the read
// (__sock_recv_timestamp). So the probe waits 2 ms between send and read, and counts
// stamping as live only when the stamp is from before the read.
func warmRxTimestamps(kind rxStampKind) {
	opts := Options{RxTimestamps: true, TxTimestamps: kind == rxStampTimestamping, Batch: 1}
	for _, network := range []string{"udp4", "udp6"} {
		addr := "127.0.0.1:0"
		if network == "udp6" {
			addr = "[::1]:0"
		}
		uc, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
		if err != nil {
			continue
		}
		p, err := newConn(uc, opts)
		if err != nil {
			uc.Close()
			return
		}
		defer p.Close()
		m := Message{Buf: make([]byte, 1)}
		deadline := time.Now().Add(200 * time.Millisecond)
		for time.Now().Before(deadline) {
			out := Message{Buf: []byte{0}, Addr: p.LocalAddr()}
			if p.WriteTo(&out) != nil {
				return
			}
			time.Sleep(2 * time.Millisecond)
			read := time.Now()
			p.SetReadDeadline(read.Add(20 * time.Millisecond))
			if p.ReadFrom(&m) == nil && m.RxSource == timestamp.SourceKernel && m.RxTime.Before(read.Add(-time.Millisecond)) {
				return
			}
		}
		return
	}
}

func newConn(uc *net.UDPConn, opts Options) (*Conn, error) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("udpsock: %w", err)
	}
	c := &Conn{uc: uc, rc: rc, opts: opts}
	c.SetBusyPoll(opts.BusyPoll)
	if la, ok := uc.LocalAddr().(*net.UDPAddr); ok {
		c.local = la.AddrPort()
	}
	var cerr error
	err = rc.Control(func(fd uintptr) {
		if cerr = c.setup(int(fd)); cerr == nil {
			c.features = c.readFeatures()
		}
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("udpsock: %w", err)
	}
	c.r.init(c, opts.Batch, true)
	c.w.init(c, opts.Batch, false)
	c.e.init(opts.RawSyscalls)
	return c, nil
}

// setup reads the socket family and applies the receive and timestamp options.
func (c *Conn) setup(fd int) error {
	dom, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return fmt.Errorf("SO_DOMAIN: %w", err)
	}
	c.family = dom
	if dom == unix.AF_INET6 {
		v6only, err := unix.GetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY)
		c.dual = err == nil && v6only == 0
	}
	if c.opts.RecvTOS {
		if err := c.setIPOpt(fd, unix.IP_RECVTOS, unix.IPV6_RECVTCLASS, 1); err != nil {
			return err
		}
	}
	if c.opts.RecvTTL {
		if err := c.setIPOpt(fd, unix.IP_RECVTTL, unix.IPV6_RECVHOPLIMIT, 1); err != nil {
			return err
		}
	}
	if c.opts.RecvDst {
		if err := c.setIPOpt(fd, unix.IP_PKTINFO, unix.IPV6_RECVPKTINFO, 1); err != nil {
			return err
		}
	}
	if c.opts.Blocking {
		tv := unix.NsecToTimeval(BlockingPoll.Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return fmt.Errorf("SO_RCVTIMEO: %w", err)
		}
		if err := unix.SetNonblock(fd, false); err != nil {
			return fmt.Errorf("blocking mode: %w", err)
		}
	}
	if c.opts.ReadBuffer > 0 {
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, c.opts.ReadBuffer) != nil {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, c.opts.ReadBuffer); err != nil {
				return fmt.Errorf("SO_RCVBUF: %w", err)
			}
		}
	}
	if c.opts.WriteBuffer > 0 {
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, c.opts.WriteBuffer) != nil {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, c.opts.WriteBuffer); err != nil {
				return fmt.Errorf("SO_SNDBUF: %w", err)
			}
		}
	}
	if c.opts.TxTimestamps || c.opts.HardwareTimestamps {
		flags := unix.SOF_TIMESTAMPING_SOFTWARE
		if c.opts.TxTimestamps {
			flags |= unix.SOF_TIMESTAMPING_TX_SOFTWARE | unix.SOF_TIMESTAMPING_OPT_ID | unix.SOF_TIMESTAMPING_OPT_TSONLY
		}
		if c.opts.RxTimestamps || c.opts.HardwareTimestamps {
			flags |= unix.SOF_TIMESTAMPING_RX_SOFTWARE
			c.rxTS = rxStampTimestamping
		}
		if c.opts.HardwareTimestamps {
			flags |= unix.SOF_TIMESTAMPING_RX_HARDWARE | unix.SOF_TIMESTAMPING_RAW_HARDWARE
			if c.opts.TxTimestamps {
				flags |= unix.SOF_TIMESTAMPING_TX_HARDWARE
			}
		}
		newABI, err := setOption(fd, unix.SO_TIMESTAMPING_NEW, unix.SO_TIMESTAMPING_OLD, flags)
		if err != nil {
			return fmt.Errorf("SO_TIMESTAMPING: %w", err)
		}
		c.newABI = newABI
		// Setting OPT_ID resets the kernel's per-socket counter to 0.
		c.txNext.Store(0)
	} else if c.opts.RxTimestamps {
		newABI, err := setOption(fd, unix.SO_TIMESTAMPNS_NEW, unix.SO_TIMESTAMPNS_OLD, 1)
		if err != nil {
			return fmt.Errorf("SO_TIMESTAMPNS: %w", err)
		}
		c.rxTS, c.newABI = rxStampNS, newABI
	}
	return nil
}

// setOption sets the y2038-safe _NEW variant of a timestamping option, falling back to the
// old one on kernels before 5.1, and reports which took.
func setOption(fd, newOpt, oldOpt, value int) (newABI bool, err error) {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, newOpt, value); err == nil {
		return true, nil
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, oldOpt, value); err != nil {
		return false, err
	}
	return false, nil
}

// Features reports the options in effect (computed once when the socket was opened).
func (c *Conn) Features() Features { return c.features }

// readFeatures summarises what setup enabled.
func (c *Conn) readFeatures() Features {
	f := Features{TxTimestamps: c.opts.TxTimestamps, DualStack: c.dual, NewABI: c.newABI}
	switch c.rxTS {
	case rxStampNS:
		f.RxTimestamp = "SO_TIMESTAMPNS"
	case rxStampTimestamping:
		f.RxTimestamp = "SO_TIMESTAMPING"
	}
	return f
}

// LocalAddr is the bound address (with the port the kernel chose for port 0).
func (c *Conn) LocalAddr() netip.AddrPort { return c.local }

// UDPConn exposes the underlying socket for operations this package does not wrap.
func (c *Conn) UDPConn() *net.UDPConn { return c.uc }

// Close closes the socket; blocked reads and writes return ErrClosed.
func (c *Conn) Close() error {
	if c.closing.Swap(true) {
		return nil
	}
	if stop := c.stop.Load(); stop != nil {
		(*stop)()
	}
	return c.uc.Close()
}

// SetDeadline, SetReadDeadline and SetWriteDeadline bound blocking batch calls like net.Conn's.
func (c *Conn) SetDeadline(t time.Time) error {
	c.storeReadDeadline(t)
	return c.uc.SetDeadline(t)
}
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.storeReadDeadline(t)
	return c.uc.SetReadDeadline(t)
}
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.uc.SetWriteDeadline(t) }

func (c *Conn) storeReadDeadline(t time.Time) {
	if t.IsZero() {
		c.rdeadline.Store(0)
	} else {
		c.rdeadline.Store(t.UnixNano())
	}
}

// SetBusyPoll sets how long ReadBatch polls an empty socket before it waits (Options.BusyPoll);
// zero or negative turns polling off. It applies from the next ReadBatch.
func (c *Conn) SetBusyPoll(d time.Duration) { c.busyPoll.Store(max(int64(d), 0)) }

// SetTOS sets the socket's default DSCP/ECN byte (IP_TOS, and IPV6_TCLASS on IPv6 sockets).
// WriteBatch adds a per-message cmsg only for messages whose TOS differs from it.
func (c *Conn) SetTOS(tos uint8) error {
	if err := c.control(unix.IP_TOS, unix.IPV6_TCLASS, int(tos)); err != nil {
		return fmt.Errorf("udpsock: set tos: %w", err)
	}
	c.tos.Store(uint32(tos))
	return nil
}

// SetTTL sets the unicast TTL (IPv4) and hop limit (IPv6) of sent datagrams.
func (c *Conn) SetTTL(ttl int) error {
	if err := c.control(unix.IP_TTL, unix.IPV6_UNICAST_HOPS, ttl); err != nil {
		return fmt.Errorf("udpsock: set ttl: %w", err)
	}
	return nil
}

// control applies setIPOpt on the socket.
func (c *Conn) control(v4opt, v6opt, value int) error {
	var serr error
	if err := c.rc.Control(func(fd uintptr) { serr = c.setIPOpt(int(fd), v4opt, v6opt, value) }); err != nil {
		return err
	}
	return serr
}

// setIPOpt sets the IPv4 option (IPPROTO_IP) on sockets that carry IPv4 — AF_INET and
// dual-stack AF_INET6 — and the IPv6 option (IPPROTO_IPV6) on AF_INET6 sockets.
func (c *Conn) setIPOpt(fd, v4opt, v6opt, value int) error {
	if c.family == unix.AF_INET || c.dual {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, v4opt, value); err != nil {
			return fmt.Errorf("setsockopt IPPROTO_IP %d: %w", v4opt, err)
		}
	}
	if c.family == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, v6opt, value); err != nil {
			return fmt.Errorf("setsockopt IPPROTO_IPV6 %d: %w", v6opt, err)
		}
	}
	return nil
}

// ReadFrom reads one datagram into m (a one-message ReadBatch).
func (c *Conn) ReadFrom(m *Message) error {
	_, err := c.ReadBatch(unsafe.Slice(m, 1))
	return err
}

// WriteTo sends one datagram (a one-message WriteBatch).
func (c *Conn) WriteTo(m *Message) error {
	_, err := c.WriteBatch(unsafe.Slice(m, 1))
	return err
}

// wrapErr maps closed-socket errors to ErrClosed and wraps the rest with the operation
// (deadline errors still match os.ErrDeadlineExceeded).
func (c *Conn) wrapErr(op string, err error) error {
	if errors.Is(err, net.ErrClosed) {
		return ErrClosed
	}
	return fmt.Errorf("udpsock: %s: %w", op, err)
}

// zone returns the interface name for an IPv6 scope id, cached so steady-state reads of
// link-local peers do not allocate.
func (c *Conn) zone(idx uint32) string {
	c.zmu.Lock()
	defer c.zmu.Unlock()
	if z, ok := c.zones[idx]; ok {
		return z
	}
	z := fmt.Sprint(idx)
	if ifi, err := net.InterfaceByIndex(int(idx)); err == nil {
		z = ifi.Name
	}
	if c.zones == nil {
		c.zones = make(map[uint32]string)
	}
	c.zones[idx] = z
	return z
}

// ListenGroup opens n sockets bound to the same address with SO_REUSEPORT, so the kernel
// spreads flows across them (one reader goroutine each uses several cores). Port 0 picks a
// free port for the first socket and binds the rest to it.
func ListenGroup(ctx context.Context, network, addr string, n int, opts Options) ([]*Conn, error) {
	if n < 1 {
		return nil, fmt.Errorf("udpsock: listen group: %d sockets", n)
	}
	opts.ReusePort = true
	first, err := Listen(ctx, network, addr, opts)
	if err != nil {
		return nil, err
	}
	conns := []*Conn{first}
	bound := first.LocalAddr().String()
	for len(conns) < n {
		c, err := Listen(ctx, network, bound, opts)
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, err
		}
		conns = append(conns, c)
	}
	return conns, nil
}

// EnableHardwareTimestamps switches NIC hardware timestamping on for iface (SIOCSHWTSTAMP:
// all received packets, transmit on). It needs CAP_NET_ADMIN and a driver that supports it;
// loopback and veth do not (the error wraps unix.EOPNOTSUPP or EINVAL).
func EnableHardwareTimestamps(iface string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("udpsock: hardware timestamps on %s: %w", iface, err)
	}
	defer unix.Close(fd)
	cfg := unix.HwTstampConfig{Tx_type: unix.HWTSTAMP_TX_ON, Rx_filter: unix.HWTSTAMP_FILTER_ALL}
	if err := unix.IoctlSetHwTstamp(fd, iface, &cfg); err != nil {
		return fmt.Errorf("udpsock: hardware timestamps on %s: %w", iface, err)
	}
	return nil
}
