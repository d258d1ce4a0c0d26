package tcpcraft

import (
	"errors"
	"fmt"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MaxBatch is the most packets one SendBatch call hands to the kernel in a single sendmmsg.
const MaxBatch = 64

// batchState holds the sendmmsg arguments, kept in the RawConn so a batch allocates nothing.
type batchState struct {
	hdrs  [MaxBatch]unix.Mmsghdr
	iovs  [MaxBatch]unix.Iovec
	names [MaxBatch]unix.RawSockaddrInet6 // large enough for either family
}

// SendBatch transmits pkts with one sendmmsg per run of up to MaxBatch packets of one IP
// version, and returns how many were sent. A packet the kernel refuses is skipped (the others
// are still sent); the error of the last refusal is returned (EPERM as ErrLocalFirewall).
func (c *RawConn) SendBatch(pkts [][]byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	if c.batch == nil {
		c.batch = new(batchState)
	}
	b := c.batch
	sent := 0
	var lastErr error
	for len(pkts) > 0 {
		v6 := len(pkts[0]) > 0 && pkts[0][0]>>4 == 6
		n := 0
		for n < len(pkts) && n < MaxBatch {
			p := pkts[n]
			if len(p) == 0 || (p[0]>>4 == 6) != v6 {
				break
			}
			if (v6 && len(p) < IPv6HeaderLen) || (!v6 && len(p) < IPv4HeaderLen) {
				break
			}
			b.iovs[n].Base = &p[0]
			b.iovs[n].SetLen(len(p))
			h := &b.hdrs[n]
			h.Hdr = unix.Msghdr{Iov: &b.iovs[n]}
			h.Hdr.SetIovlen(1)
			sa := &b.names[n]
			if v6 {
				*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6}
				copy(sa.Addr[:], p[24:40])
				h.Hdr.Namelen = unix.SizeofSockaddrInet6
			} else {
				sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
				*sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET}
				copy(sa4.Addr[:], p[16:20])
				h.Hdr.Namelen = unix.SizeofSockaddrInet4
			}
			h.Hdr.Name = (*byte)(unsafe.Pointer(sa))
			n++
		}
		if n == 0 { // the first packet is no IP packet
			lastErr = fmt.Errorf("tcpcraft: send: %d bytes are no IP header", len(pkts[0]))
			pkts = pkts[1:]
			continue
		}
		fd, err := c.socket(v6)
		if err != nil {
			return sent, err
		}
		done := 0
		for done < n {
			r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&b.hdrs[done])), uintptr(n-done), 0, 0, 0)
			switch {
			case errno == unix.EINTR:
				continue
			case errno != 0:
				// The packet at done was refused: report it and go on with the rest.
				if errors.Is(errno, unix.EPERM) {
					lastErr = fmt.Errorf("tcpcraft: send: %w (EPERM from the OUTPUT chain)", ErrLocalFirewall)
				} else {
					lastErr = fmt.Errorf("tcpcraft: send: %w", errno)
				}
				done++
			default:
				sent += int(r)
				done += int(r)
			}
		}
		pkts = pkts[n:]
	}
	return sent, lastErr
}
