//go:build linux

package udpsock

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/probekit/probekit/shared/timestamp"
)

// ErrNoAddress is returned by WriteBatch for a message without a destination.
var ErrNoAddress = errors.New("udpsock: message has no destination address")

// ErrAddressFamily is returned by WriteBatch for an IPv6 destination on an IPv4 socket.
var ErrAddressFamily = errors.New("udpsock: IPv6 destination on an IPv4 socket")

// ErrSourceFamily is returned by WriteBatch for a message whose source address (Dst) is not in
// the family its destination (Addr) is sent over.
var ErrSourceFamily = errors.New("udpsock: source address (Message.Dst) and destination in different families")

// sockaddr is storage for a struct sockaddr_in or sockaddr_in6.
type sockaddr [unix.SizeofSockaddrInet6]byte

// batchState holds the syscall argument arrays for one direction, reused across calls.
// golang.org/x/net's ipv4.PacketConn.ReadBatch/WriteBatch issue the same recvmmsg/sendmmsg
// calls but convert every peer address to a *net.UDPAddr (two allocations per datagram);
// building the mmsghdr array here keeps the hot path allocation-free with netip.AddrPort.
type batchState struct {
	c     *Conn
	hs    []unix.Mmsghdr
	iov   []unix.Iovec
	names []sockaddr
	oob   []byte

	// Arguments and results of the bound syscall functions (method values are stored once
	// so RawConn.Read/Write does not allocate a closure per call).
	sysno uintptr
	// blocking: recvmmsg waits in the kernel (Options.Blocking) and wakes every BlockingPoll.
	blocking bool
	// raw: the call cannot block and is issued as a raw system call (Options.RawSyscalls).
	raw bool
	// spinUntil is the end of the busy-poll window of the current ReadBatch (Unix ns; 0: no
	// polling, or the window has passed).
	spinUntil int64
	n         int
	flags     int
	got       int
	errno     unix.Errno
	fn        func(fd uintptr) bool
}

func (s *batchState) init(c *Conn, n int, read bool) {
	s.c = c
	s.grow(n)
	s.sysno = unix.SYS_SENDMMSG
	if read {
		s.sysno = unix.SYS_RECVMMSG
		s.blocking = c.opts.Blocking
	}
	s.raw = c.opts.RawSyscalls && !c.opts.Blocking
	s.fn = s.call
}

func (s *batchState) grow(n int) {
	if n <= len(s.hs) {
		return
	}
	s.hs = make([]unix.Mmsghdr, n)
	s.iov = make([]unix.Iovec, n)
	s.names = make([]sockaddr, n)
	s.oob = make([]byte, n*oobSize)
}

// call issues recvmmsg or sendmmsg on the prepared headers; it reports false on EAGAIN so
// the runtime poller waits for readiness and calls again.
func (s *batchState) call(fd uintptr) bool {
	for {
		flags := s.flags
		if s.spinUntil != 0 {
			flags |= unix.MSG_DONTWAIT
		}
		var r uintptr
		var e unix.Errno
		if s.raw {
			r, _, e = unix.RawSyscall6(s.sysno, fd, uintptr(unsafe.Pointer(&s.hs[0])),
				uintptr(s.n), uintptr(flags), 0, 0)
		} else {
			r, _, e = unix.Syscall6(s.sysno, fd, uintptr(unsafe.Pointer(&s.hs[0])),
				uintptr(s.n), uintptr(flags), 0, 0)
		}
		if e == unix.EINTR {
			continue
		}
		if e == unix.EAGAIN && s.spinUntil != 0 {
			// Busy poll: try again until the window passes, then wait as usual. Close
			// and read deadlines end the window early.
			now := time.Now().UnixNano()
			d := s.c.rdeadline.Load()
			if now < s.spinUntil && !s.c.closing.Load() && (d == 0 || now < d) {
				continue
			}
			s.spinUntil = 0
			if !s.blocking {
				return false
			}
			continue
		}
		if e == unix.EAGAIN && s.blocking {
			// SO_RCVTIMEO expired: keep waiting unless the socket is closing or the read
			// deadline passed.
			if s.c.closing.Load() {
				s.got, s.errno = 0, unix.EBADF
				return true
			}
			if d := s.c.rdeadline.Load(); d != 0 && time.Now().UnixNano() >= d {
				s.got, s.errno = 0, unix.ETIMEDOUT
				return true
			}
			continue
		}
		if e == unix.EAGAIN {
			return false
		}
		s.got, s.errno = int(r), e
		return true
	}
}

// setHdr points one mmsghdr at its buffer, address storage and control space.
func setHdr(h *unix.Mmsghdr, iov *unix.Iovec, buf []byte, name *sockaddr, namelen uint32, oob []byte) {
	if len(buf) > 0 {
		iov.Base = &buf[0]
	} else {
		iov.Base = nil
	}
	iov.SetLen(len(buf))
	h.Hdr.Iov = iov
	h.Hdr.SetIovlen(1)
	h.Hdr.Name = &name[0]
	h.Hdr.Namelen = namelen
	if len(oob) > 0 {
		h.Hdr.Control = &oob[0]
	} else {
		h.Hdr.Control = nil
	}
	h.Hdr.SetControllen(len(oob))
	h.Hdr.Flags = 0
	h.Len = 0
}

// ReadBatch receives up to len(msgs) datagrams with one recvmmsg call, blocking until at least
// one is available (or the read deadline passes), and returns how many it filled. Each
// message gets its length, peer, receive time (kernel when enabled, else user space right
// after the call) and, when enabled, TOS and TTL.
func (c *Conn) ReadBatch(msgs []Message) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	s := &c.r
	s.grow(len(msgs))
	n := len(msgs)
	for i := 0; i < n; i++ {
		setHdr(&s.hs[i], &s.iov[i], msgs[i].Buf, &s.names[i], unix.SizeofSockaddrInet6, s.oob[i*oobSize:(i+1)*oobSize])
	}
	s.n, s.flags, s.spinUntil = n, 0, 0
	if s.blocking {
		s.flags = unix.MSG_WAITFORONE
	}
	if bp := c.busyPoll.Load(); bp > 0 {
		s.spinUntil = time.Now().UnixNano() + bp
	}
	if err := c.rc.Read(s.fn); err != nil {
		return 0, c.wrapErr("recvmmsg", err)
	}
	switch {
	case s.errno == 0:
	case s.blocking && s.errno == unix.EBADF:
		return 0, ErrClosed
	case s.blocking && s.errno == unix.ETIMEDOUT:
		return 0, fmt.Errorf("udpsock: recvmmsg: %w", os.ErrDeadlineExceeded)
	default:
		return 0, c.wrapErr("recvmmsg", s.errno)
	}
	var now time.Time
	for i := 0; i < s.got; i++ {
		h := &s.hs[i]
		m := &msgs[i]
		m.N = int(h.Len)
		m.Truncated = h.Hdr.Flags&unix.MSG_TRUNC != 0
		if m.N > len(m.Buf) {
			m.N = len(m.Buf)
		}
		m.Addr = c.parseSockaddr(s.names[i][:min(int(h.Hdr.Namelen), len(s.names[i]))])
		ctl := parseControl(s.oob[i*oobSize : i*oobSize+min(int(h.Hdr.Controllen), oobSize)])
		if ctl.rxSource != timestamp.SourceNone {
			m.RxTime, m.RxSource = ctl.rxTime, ctl.rxSource
		} else {
			if now.IsZero() {
				now = time.Now()
			}
			m.RxTime, m.RxSource = now, timestamp.SourceUser
		}
		m.TOS = ctl.tos
		m.TTL = ctl.ttl
		m.Dst, m.IfIndex = ctl.dst, ctl.ifIndex
		if m.IfIndex > 0 && m.Dst.Is6() && m.Dst.IsLinkLocalUnicast() {
			m.Dst = m.Dst.WithZone(c.zone(uint32(m.IfIndex)))
		}
		m.TxID = 0
	}
	return s.got, nil
}

// WriteBatch sends every message with sendmmsg (several calls if the socket buffer fills),
// each to its own Addr and with its own TOS byte: messages whose TOS differs from the socket
// default (SetTOS) carry an IP_TOS or IPV6_TCLASS control message, and messages with a valid
// Dst an IP_PKTINFO or IPV6_PKTINFO one naming their source address. It returns how many were
// sent; on error the count says which messages went out: sendmmsg stops at the first message
// the kernel refuses, and WriteBatch at the first it cannot encode (no or wrong-family
// address, ErrNoAddress, ErrAddressFamily, ErrSourceFamily) after sending those before it.
func (c *Conn) WriteBatch(msgs []Message) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	s := &c.w
	s.grow(len(msgs))
	def := uint8(c.tos.Load())
	// A message that cannot be sent (no address, wrong family) ends the batch like a
	// message the kernel refuses: the ones before it go out, and the count says so.
	var refused error
	for i := range msgs {
		m := &msgs[i]
		buf := m.Buf
		if m.N > 0 && m.N <= len(buf) {
			buf = buf[:m.N]
		}
		nl, v4, err := c.putSockaddr(&s.names[i], m.Addr)
		if err != nil {
			refused, msgs = fmt.Errorf("udpsock: sendmmsg: message %d: %w", i, err), msgs[:i]
			break
		}
		slot := s.oob[i*oobSize : (i+1)*oobSize]
		ol := 0
		if m.TOS != def {
			if v4 {
				ol += putCmsgInt(slot, unix.IPPROTO_IP, ipTOS, int32(m.TOS))
			} else {
				ol += putCmsgInt(slot, unix.IPPROTO_IPV6, ipv6TClass, int32(m.TOS))
			}
		}
		if m.Dst.IsValid() {
			k, err := putPktInfo(slot[ol:], m.Dst, v4)
			if err != nil {
				refused, msgs = fmt.Errorf("udpsock: sendmmsg: message %d: source %v to %v: %w", i, m.Dst, m.Addr, err), msgs[:i]
				break
			}
			ol += k
		}
		if m.NoTxStamp && c.opts.TxTimestamps {
			ol += putCmsgInt(slot[ol:], unix.SOL_SOCKET, unix.SO_TIMESTAMPING, 0)
		}
		setHdr(&s.hs[i], &s.iov[i], buf, &s.names[i], uint32(nl), slot[:ol])
	}
	sent := 0
	for sent < len(msgs) {
		s.n, s.flags = len(msgs)-sent, 0
		// Point the syscall at the unsent tail.
		hs := s.hs
		s.hs = s.hs[sent:]
		err := c.rc.Write(s.fn)
		s.hs = hs
		if err == nil && s.errno != 0 {
			err = s.errno
		}
		if err != nil {
			c.assignTxIDs(msgs[:sent])
			return sent, c.wrapErr("sendmmsg", err)
		}
		sent += s.got
	}
	c.assignTxIDs(msgs)
	return sent, refused
}

func (c *Conn) assignTxIDs(msgs []Message) {
	if !c.opts.TxTimestamps || len(msgs) == 0 {
		return
	}
	n := uint32(0)
	for i := range msgs {
		if !msgs[i].NoTxStamp {
			n++
		}
	}
	next := c.txNext.Add(n) - n
	for i := range msgs {
		if msgs[i].NoTxStamp {
			msgs[i].TxID = 0
			continue
		}
		msgs[i].TxID = next
		next++
	}
}

// parseSockaddr converts a kernel sockaddr to an AddrPort; v4-mapped IPv6 peers (dual-stack
// sockets) are unmapped so callers see plain IPv4.
func (c *Conn) parseSockaddr(b []byte) netip.AddrPort {
	if len(b) < 2 {
		return netip.AddrPort{}
	}
	switch binary.NativeEndian.Uint16(b[0:2]) {
	case unix.AF_INET:
		if len(b) < unix.SizeofSockaddrInet4 {
			return netip.AddrPort{}
		}
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), binary.BigEndian.Uint16(b[2:4]))
	case unix.AF_INET6:
		if len(b) < unix.SizeofSockaddrInet6 {
			return netip.AddrPort{}
		}
		a := netip.AddrFrom16([16]byte(b[8:24]))
		port := binary.BigEndian.Uint16(b[2:4])
		if a.Is4In6() {
			return netip.AddrPortFrom(a.Unmap(), port)
		}
		if scope := binary.NativeEndian.Uint32(b[24:28]); scope != 0 && a.IsLinkLocalUnicast() {
			a = a.WithZone(c.zone(scope))
		}
		return netip.AddrPortFrom(a, port)
	}
	return netip.AddrPort{}
}

// putSockaddr writes ap in the socket's family and returns the length and whether the packet
// travels over IPv4 (which decides the TOS cmsg level).
func (c *Conn) putSockaddr(sa *sockaddr, ap netip.AddrPort) (int, bool, error) {
	a := ap.Addr()
	if !a.IsValid() {
		return 0, false, ErrNoAddress
	}
	if c.family == unix.AF_INET {
		a = a.Unmap()
		if !a.Is4() {
			return 0, false, ErrAddressFamily
		}
		binary.NativeEndian.PutUint16(sa[0:2], unix.AF_INET)
		binary.BigEndian.PutUint16(sa[2:4], ap.Port())
		a4 := a.As4()
		copy(sa[4:8], a4[:])
		clear(sa[8:16])
		return unix.SizeofSockaddrInet4, true, nil
	}
	v4 := a.Is4() || a.Is4In6()
	binary.NativeEndian.PutUint16(sa[0:2], unix.AF_INET6)
	binary.BigEndian.PutUint16(sa[2:4], ap.Port())
	clear(sa[4:8])
	a16 := a.As16() // maps IPv4 to ::ffff:a.b.c.d
	copy(sa[8:24], a16[:])
	var scope uint32
	if z := a.Zone(); z != "" {
		scope = c.zoneIndex(z)
	}
	binary.NativeEndian.PutUint32(sa[24:28], scope)
	return unix.SizeofSockaddrInet6, v4, nil
}
