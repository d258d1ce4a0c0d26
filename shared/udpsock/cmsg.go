//go:build linux

package udpsock

import (
	"encoding/binary"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/probekit/probekit/shared/timestamp"
)

// Control-message numbers, named as in the Linux headers. The values are stable ABI; they are
// spelled out so the parser does not depend on which of the OLD/NEW aliases x/sys maps the
// unsuffixed names to on a given architecture.
const (
	soTimestampOld    = 29 // SO_TIMESTAMP_OLD: struct timeval (long, long)
	soTimestampNSOld  = 35 // SO_TIMESTAMPNS_OLD: struct timespec (long, long)
	soTimestampingOld = 37 // SO_TIMESTAMPING_OLD: struct timespec[3]
	soTimestampNew    = 63 // SO_TIMESTAMP_NEW: struct __kernel_sock_timeval (s64, s64)
	soTimestampNSNew  = 64 // SO_TIMESTAMPNS_NEW: struct __kernel_timespec (s64, s64)
	soTimestampingNew = 65 // SO_TIMESTAMPING_NEW: struct __kernel_timespec[3]

	ipTOS       = 1  // IP_TOS: 1 byte on receive (IP_RECVTOS), int on send
	ipTTL       = 2  // IP_TTL: int
	ipPktInfo   = 8  // IP_PKTINFO: struct in_pktinfo {int ifindex; in_addr spec_dst, addr}
	ipRecvErr   = 11 // IP_RECVERR: struct sock_extended_err
	ipv6RecvErr = 25 // IPV6_RECVERR
	ipv6PktInfo = 50 // IPV6_PKTINFO: struct in6_pktinfo {in6_addr addr; int ifindex}
	ipv6HopLim  = 52 // IPV6_HOPLIMIT: int
	ipv6TClass  = 67 // IPV6_TCLASS: int

	sizeofInet4Pktinfo = 12
	sizeofInet6Pktinfo = 20

	soEEOriginTimestamping = 4 // SO_EE_ORIGIN_TIMESTAMPING
	scmTstampSnd           = 0 // SCM_TSTAMP_SND: ee_info of a software/hardware send stamp
)

// cmsgHdrLen is sizeof(struct cmsghdr) and cmsgAlign its alignment (sizeof(long)).
const (
	cmsgHdrLen = unix.SizeofCmsghdr
	cmsgAlign  = unix.SizeofPtr
)

func cmsgAlignUp(n int) int { return (n + cmsgAlign - 1) &^ (cmsgAlign - 1) }

// control is what one datagram's control messages said. The zero value means "nothing".
type control struct {
	rxTime   time.Time
	rxSource timestamp.Source
	tos      uint8
	hasTOS   bool
	ttl      int
	// dst is the datagram's destination address (IPv4 unmapped), ifIndex its arrival
	// interface (IP_PKTINFO, IPV6_PKTINFO).
	dst     netip.Addr
	ifIndex int
	// Error-queue fields (transmit timestamps).
	txID    uint32
	hasTxID bool
}

// parseControl decodes the control messages the kernel returned. The bytes are untrusted in
// the sense that a malformed buffer must never panic: a header whose length runs past the
// buffer or below the header size ends the walk, and payloads of unexpected size are ignored.
func parseControl(b []byte) control {
	var c control
	for len(b) >= cmsgHdrLen {
		var l int
		if cmsgHdrLen == 16 {
			v := binary.NativeEndian.Uint64(b[0:8])
			if v > uint64(len(b)) {
				return c
			}
			l = int(v)
		} else {
			l = int(binary.NativeEndian.Uint32(b[0:4]))
		}
		if l < cmsgHdrLen || l > len(b) {
			return c
		}
		level := int32(binary.NativeEndian.Uint32(b[cmsgHdrLen-8 : cmsgHdrLen-4]))
		typ := int32(binary.NativeEndian.Uint32(b[cmsgHdrLen-4 : cmsgHdrLen]))
		data := b[cmsgHdrLen:l]
		switch level {
		case unix.SOL_SOCKET:
			c.socketLevel(typ, data)
		case unix.IPPROTO_IP:
			switch typ {
			case ipTOS:
				if len(data) >= 1 {
					// Linux delivers one byte; read the low byte of an int as well in case a
					// kernel sends 4 (little-endian hosts put it first, big-endian last).
					if len(data) == 4 {
						c.tos = uint8(binary.NativeEndian.Uint32(data))
					} else {
						c.tos = data[0]
					}
					c.hasTOS = true
				}
			case ipTTL:
				if len(data) >= 4 {
					c.ttl = int(int32(binary.NativeEndian.Uint32(data)))
				} else if len(data) == 1 {
					c.ttl = int(data[0])
				}
			case ipPktInfo:
				// ipi_addr is the header's destination; ipi_spec_dst the local address
				// routing would answer from, which differs only for broadcast and multicast.
				if len(data) >= sizeofInet4Pktinfo {
					c.setDst(netip.AddrFrom4([4]byte(data[8:12])), data[0:4])
				}
			case ipRecvErr:
				c.extendedErr(data)
			}
		case unix.IPPROTO_IPV6:
			switch typ {
			case ipv6TClass:
				if len(data) >= 4 {
					c.tos = uint8(binary.NativeEndian.Uint32(data))
					c.hasTOS = true
				}
			case ipv6HopLim:
				if len(data) >= 4 {
					c.ttl = int(int32(binary.NativeEndian.Uint32(data)))
				}
			case ipv6PktInfo:
				// A dual-stack socket reports an IPv4 datagram's destination v4-mapped.
				if len(data) >= sizeofInet6Pktinfo {
					c.setDst(netip.AddrFrom16([16]byte(data[0:16])).Unmap(), data[16:20])
				}
			case ipv6RecvErr:
				c.extendedErr(data)
			}
		}
		next := cmsgAlignUp(l)
		if next >= len(b) {
			return c
		}
		b = b[next:]
	}
	return c
}

func (c *control) socketLevel(typ int32, data []byte) {
	// _NEW payloads use 64-bit fields everywhere; _OLD ones use the kernel's long.
	const newElem, oldElem = 16, 2 * unix.SizeofLong
	switch typ {
	case soTimestampNSNew, soTimestampNSOld:
		elem := newElem
		if typ == soTimestampNSOld {
			elem = oldElem
		}
		if sec, nsec, ok := timespecAt(data, elem, 1, 0); ok {
			c.setRx(sec, nsec, timestamp.SourceKernel)
		}
	case soTimestampNew, soTimestampOld:
		elem := newElem
		if typ == soTimestampOld {
			elem = oldElem
		}
		if sec, usec, ok := timespecAt(data, elem, 1, 0); ok && usec < 1e6 {
			c.setRx(sec, usec*1000, timestamp.SourceKernel)
		}
	case soTimestampingNew, soTimestampingOld:
		elem := newElem
		if typ == soTimestampingOld {
			elem = oldElem
		}
		// struct scm_timestamping: ts[0] software, ts[1] deprecated, ts[2] raw hardware.
		// A hardware stamp, present only when asked for, is the better one.
		if sec, nsec, ok := timespecAt(data, elem, 3, 2); ok && (sec != 0 || nsec != 0) {
			c.setRx(sec, nsec, timestamp.SourceHardware)
		} else if sec, nsec, ok := timespecAt(data, elem, 3, 0); ok && (sec != 0 || nsec != 0) {
			c.setRx(sec, nsec, timestamp.SourceKernel)
		}
	}
}

// timespecAt reads element i of an array of count {sec, nsec} pairs with elem-byte elements
// (16 for 64-bit fields, 8 for 32-bit longs); the payload must be exactly that array.
func timespecAt(data []byte, elem, count, i int) (sec, nsec int64, ok bool) {
	if len(data) != elem*count {
		return 0, 0, false
	}
	off := i * elem
	if elem == 16 {
		sec = int64(binary.NativeEndian.Uint64(data[off:]))
		nsec = int64(binary.NativeEndian.Uint64(data[off+8:]))
	} else {
		sec = int64(int32(binary.NativeEndian.Uint32(data[off:])))
		nsec = int64(int32(binary.NativeEndian.Uint32(data[off+4:])))
	}
	if nsec < 0 || nsec >= 1e9 || sec < 0 {
		return 0, 0, false
	}
	return sec, nsec, true
}

func (c *control) setRx(sec, nsec int64, src timestamp.Source) {
	c.rxTime = time.Unix(sec, nsec)
	c.rxSource = src
}

// setDst records a PKTINFO destination; the interface index is a C int, and a value the
// kernel cannot produce (negative) is reported as unknown.
func (c *control) setDst(a netip.Addr, ifindex []byte) {
	c.dst = a
	c.ifIndex = 0
	if v := int32(binary.NativeEndian.Uint32(ifindex)); v > 0 {
		c.ifIndex = int(v)
	}
}

// extendedErr reads a struct sock_extended_err; for a timestamp report ee_data is the OPT_ID.
func (c *control) extendedErr(data []byte) {
	if len(data) < 16 {
		return
	}
	origin := data[4]
	info := binary.NativeEndian.Uint32(data[8:12])
	if origin == soEEOriginTimestamping && info == scmTstampSnd {
		c.txID = binary.NativeEndian.Uint32(data[12:16])
		c.hasTxID = true
	}
}

// putCmsgHdr writes a control-message header for a payload of n bytes, zeroes the payload
// and its alignment padding, and returns the message's space.
func putCmsgHdr(b []byte, level, typ int32, n int) int {
	l := cmsgHdrLen + n
	if cmsgHdrLen == 16 {
		binary.NativeEndian.PutUint64(b[0:8], uint64(l))
	} else {
		binary.NativeEndian.PutUint32(b[0:4], uint32(l))
	}
	binary.NativeEndian.PutUint32(b[cmsgHdrLen-8:], uint32(level))
	binary.NativeEndian.PutUint32(b[cmsgHdrLen-4:], uint32(typ))
	space := cmsgAlignUp(l)
	clear(b[cmsgHdrLen:space])
	return space
}

// putCmsgInt writes one control message carrying a native int and returns its space.
func putCmsgInt(b []byte, level, typ int32, v int32) int {
	space := putCmsgHdr(b, level, typ, 4)
	binary.NativeEndian.PutUint32(b[cmsgHdrLen:], uint32(v))
	return space
}

// putPktInfo writes the control message that sends a datagram from source address src and
// returns its space: IP_PKTINFO with ipi_spec_dst = src when the datagram travels over IPv4
// (also on a dual-stack socket, whose IPv4 path reads IPPROTO_IP cmsgs), else IPV6_PKTINFO
// with ipi6_addr = src. The interface index stays 0 so routing picks the interface.
func putPktInfo(b []byte, src netip.Addr, v4 bool) (int, error) {
	src = src.Unmap()
	if v4 {
		if !src.Is4() {
			return 0, ErrSourceFamily
		}
		space := putCmsgHdr(b, unix.IPPROTO_IP, ipPktInfo, sizeofInet4Pktinfo)
		a := src.As4()
		copy(b[cmsgHdrLen+4:cmsgHdrLen+8], a[:])
		return space, nil
	}
	if !src.Is6() {
		return 0, ErrSourceFamily
	}
	space := putCmsgHdr(b, unix.IPPROTO_IPV6, ipv6PktInfo, sizeofInet6Pktinfo)
	a := src.As16()
	copy(b[cmsgHdrLen:cmsgHdrLen+16], a[:])
	return space, nil
}
