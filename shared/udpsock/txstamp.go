//go:build linux

package udpsock

import (
	"net"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/probekit/probekit/shared/timestamp"
)

// errqBatch is how many error-queue messages one recvmmsg drains.
const errqBatch = 32

// errqState is the scratch space for error-queue reads.
type errqState struct {
	// Results of the bound recv function (stored once so Control does not allocate).
	got   int
	errno unix.Errno
	fn    func(fd uintptr)
	raw   bool // Options.RawSyscalls (the reads are MSG_DONTWAIT: they never block)

	hs    []unix.Mmsghdr
	iov   []unix.Iovec
	data  []byte
	names []sockaddr
	oob   []byte
}

func (e *errqState) init(raw bool) {
	e.raw = raw
	e.hs = make([]unix.Mmsghdr, errqBatch)
	e.iov = make([]unix.Iovec, errqBatch)
	// OPT_TSONLY suppresses the looped-back payload; a little room avoids MSG_TRUNC noise
	// from kernels that ignore it.
	e.data = make([]byte, errqBatch*64)
	e.names = make([]sockaddr, errqBatch)
	e.oob = make([]byte, errqBatch*oobSize)
	e.fn = func(fd uintptr) { e.got, e.errno = e.recv(fd) }
}

// TxTimestamps drains the error queue without blocking and calls fn for every transmit
// timestamp found, with the datagram's TxID (as set by WriteBatch) and the kernel's software
// send time. It returns how many timestamps it delivered.
func (c *Conn) TxTimestamps(fn func(id uint32, t time.Time, src timestamp.Source)) (int, error) {
	if !c.opts.TxTimestamps {
		return 0, ErrNoTxTimestamps
	}
	if c.closing.Load() {
		return 0, ErrClosed
	}
	c.emu.Lock()
	defer c.emu.Unlock()
	total := 0
	for {
		err := c.rc.Control(c.e.fn)
		got, errno := c.e.got, c.e.errno
		if err != nil {
			return total, c.wrapErr("read error queue", err)
		}
		if errno == unix.EAGAIN || errno == unix.EWOULDBLOCK {
			return total, nil
		}
		if errno != 0 {
			return total, c.wrapErr("read error queue", errno)
		}
		for i := 0; i < got; i++ {
			h := &c.e.hs[i]
			ctl := parseControl(c.e.oob[i*oobSize : i*oobSize+min(int(h.Hdr.Controllen), oobSize)])
			if ctl.hasTxID && ctl.rxSource != timestamp.SourceNone {
				fn(ctl.txID, ctl.rxTime, ctl.rxSource)
				total++
			}
		}
		if got < errqBatch {
			return total, nil
		}
	}
}

// WaitTxTimestamps waits up to timeout for the error queue to hold something, then drains it
// like TxTimestamps. It returns 0 and no error when the timeout passes first. It does not
// take the socket's read lock, so it can run while another goroutine sits in ReadBatch.
func (c *Conn) WaitTxTimestamps(timeout time.Duration, fn func(id uint32, t time.Time, src timestamp.Source)) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		n, err := c.TxTimestamps(fn)
		if n > 0 || err != nil {
			return n, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return 0, nil
		}
		// Wake on POLLERR (always reported) in slices so Close is noticed promptly.
		if left > 50*time.Millisecond {
			left = 50 * time.Millisecond
		}
		ts := unix.NsecToTimespec(left.Nanoseconds())
		var perr error
		err = c.rc.Control(func(fd uintptr) {
			fds := [1]unix.PollFd{{Fd: int32(fd), Events: 0}}
			_, perr = unix.Ppoll(fds[:], &ts, nil)
		})
		if err != nil {
			return 0, c.wrapErr("poll error queue", err)
		}
		if perr != nil && perr != unix.EINTR {
			return 0, c.wrapErr("poll error queue", perr)
		}
	}
}

// recv reads up to errqBatch error-queue messages without blocking.
func (e *errqState) recv(fd uintptr) (int, unix.Errno) {
	for i := range e.hs {
		setHdr(&e.hs[i], &e.iov[i], e.data[i*64:(i+1)*64], &e.names[i], unix.SizeofSockaddrInet6, e.oob[i*oobSize:(i+1)*oobSize])
	}
	for {
		syscall6 := unix.Syscall6
		if e.raw {
			syscall6 = unix.RawSyscall6
		}
		r, _, errno := syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&e.hs[0])),
			uintptr(len(e.hs)), uintptr(unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT), 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, errno
		}
		return int(r), 0
	}
}

// zoneIndex returns the interface index for an IPv6 zone, cached like zone.
func (c *Conn) zoneIndex(z string) uint32 {
	c.zmu.Lock()
	defer c.zmu.Unlock()
	for idx, name := range c.zones {
		if name == z {
			return idx
		}
	}
	var idx uint32
	if ifi, err := net.InterfaceByName(z); err == nil {
		idx = uint32(ifi.Index)
	} else {
		var n uint64
		for _, ch := range z {
			if ch < '0' || ch > '9' || n > 1<<32 {
				return 0
			}
			n = n*10 + uint64(ch-'0')
		}
		idx = uint32(n)
	}
	if c.zones == nil {
		c.zones = make(map[uint32]string)
	}
	c.zones[idx] = z
	return idx
}
