package netlab

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The self test's UDP echo server and pinger use blocking system calls on real-time OS
// threads rather than Go's netpoller: a netpoller wake-up is delivered by whichever runtime
// thread polls next, which on a loaded machine added up to tens of milliseconds to the RTT.

// realtimeThread pins the calling goroutine to its OS thread and gives that thread SCHED_FIFO
// priority, above the delayer's: the echo's few microseconds of work must not wait behind the
// delayer's spin before a release (that added 0.4 ms to the median RTT). The goroutine must exit while still locked: the runtime then
// retires the thread instead of reusing a real-time thread for other goroutines.
func realtimeThread() {
	runtime.LockOSThread()
	_ = unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: delayerPriority + 10}, 0)
}

// pollTimeout bounds each blocking receive, so closing is noticed.
const pollTimeout = 50 * time.Millisecond

func setRecvTimeout(fd int, d time.Duration) error {
	tv := unix.NsecToTimeval(d.Nanoseconds())
	return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
}

// udpEcho is a minimal dual-stack UDP echo server bound inside a namespace.
type udpEcho struct {
	fd   int
	mu   sync.Mutex
	stop bool
	done chan struct{}
}

// startUDPEcho runs a UDP echo server on port in the host's namespace, as a real-time helper
// process (see echoMain).
func startUDPEcho(h *Host, port int) (*delayerProc, error) {
	p, _, err := startHelper(h, delayerSpec{Echo: port}, false)
	if err != nil {
		return nil, fmt.Errorf("netlab %s: echo: %w", h.Name, err)
	}
	h.lab.onClose(p.Close)
	return p, nil
}

// listenEcho serves UDP echo on port of the caller's namespace from a real-time thread.
func listenEcho(port int) (*udpEcho, error) {
	var fd int
	err := func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
			unix.Close(fd)
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrInet6{Port: port}); err != nil {
			unix.Close(fd)
			return err
		}
		bigRecvBuffer(fd)
		return setRecvTimeout(fd, pollTimeout)
	}()
	if err != nil {
		return nil, fmt.Errorf("netlab: echo listen: %w", err)
	}
	e := &udpEcho{fd: fd, done: make(chan struct{})}
	go func() {
		defer close(e.done)
		realtimeThread()
		buf := make([]byte, 2048)
		for !e.stopped() {
			n, from, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				continue
			}
			_ = unix.Sendto(fd, buf[:n], 0, from)
		}
	}()
	return e, nil
}

func (e *udpEcho) stopped() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stop
}

func (e *udpEcho) Close() {
	e.mu.Lock()
	e.stop = true
	e.mu.Unlock()
	<-e.done
	unix.Close(e.fd)
}

// pingResult is the outcome of a UDP echo run: RTT per sequence number (negative = lost).
type pingResult struct {
	RTT []time.Duration
}

func (r pingResult) received() []time.Duration {
	var out []time.Duration
	for _, d := range r.RTT {
		if d >= 0 {
			out = append(out, d)
		}
	}
	return out
}

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

// udpPing sends count probes (sequence number and send time in the first 12 bytes of a 64-byte
// payload) at the given interval from host h to dst, and collects echoes until wait after the
// last send.
func udpPing(h *Host, dst netip.AddrPort, count int, interval, wait time.Duration) (pingResult, error) {
	family := unix.AF_INET6
	if dst.Addr().Is4() {
		family = unix.AF_INET
	}
	var fd int
	err := h.Do(func() error {
		var err error
		fd, err = unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		if err := unix.Connect(fd, sockaddr(dst)); err != nil {
			unix.Close(fd)
			return err
		}
		bigRecvBuffer(fd)
		return setRecvTimeout(fd, pollTimeout)
	})
	if err != nil {
		return pingResult{}, fmt.Errorf("netlab %s: ping socket: %w", h.Name, err)
	}
	defer unix.Close(fd)
	res := pingResult{RTT: make([]time.Duration, count)}
	for i := range res.RTT {
		res.RTT[i] = -1
	}
	var mu sync.Mutex
	var deadline time.Time // set when the last probe is out
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		realtimeThread()
		buf := make([]byte, 2048)
		for {
			mu.Lock()
			dl := deadline
			mu.Unlock()
			if !dl.IsZero() && time.Now().After(dl) {
				return
			}
			n, _, err := unix.Recvfrom(fd, buf, 0)
			now := time.Now()
			if err != nil || n < 12 {
				continue
			}
			seq := int(binary.BigEndian.Uint32(buf))
			sent := time.Unix(0, int64(binary.BigEndian.Uint64(buf[4:])))
			mu.Lock()
			if seq < count && res.RTT[seq] < 0 {
				res.RTT[seq] = now.Sub(sent)
			}
			mu.Unlock()
		}
	}()
	// The sender, too, runs on a real-time thread and sleeps with clock_nanosleep: a goroutine
	// woken by the runtime's timers stalled for 200 ms at a time on a loaded machine.
	var sendErr error
	sendDone := make(chan struct{})
	go func() {
		defer close(sendDone)
		realtimeThread()
		pkt := make([]byte, 64)
		var start unix.Timespec
		_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &start)
		for i := range count {
			next := unix.NsecToTimespec(start.Nano() + int64(i)*interval.Nanoseconds())
			for unix.ClockNanosleep(unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME, &next, nil) == unix.EINTR {
			}
			now := time.Now()
			binary.BigEndian.PutUint32(pkt, uint32(i))
			binary.BigEndian.PutUint64(pkt[4:], uint64(now.UnixNano()))
			if _, err := unix.Write(fd, pkt); err != nil && sendErr == nil {
				sendErr = fmt.Errorf("netlab %s: ping send: %w", h.Name, err)
			}
		}
	}()
	<-sendDone
	mu.Lock()
	deadline = time.Now().Add(wait)
	mu.Unlock()
	<-recvDone
	return res, sendErr
}

// bigRecvBuffer gives a lab socket 4 MiB of receive buffer (FORCE: the lab runs as root, past
// rmem_max): the default ~200 KiB holds ~270 small datagrams, 135 ms at the checks' 2,000/s,
// and a starved thread on a loaded CI machine would turn that into loss the path did not make.
func bigRecvBuffer(fd int) {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	}
}
