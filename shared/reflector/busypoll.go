package reflector

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/probekit/probekit/shared/udpsock"
)

// busyPoller waits for the next datagram by polling the socket without sleeping for up to a
// window after each batch, so a packet arriving within the window is read without the
// scheduler wake-up (tens of µs on a virtual machine) that otherwise dominates T3 − T2. It
// costs a CPU spinning for the window after every batch.
type busyPoller struct {
	fd     int32
	window time.Duration
}

func newBusyPoller(conn *udpsock.Conn, window time.Duration) *busyPoller {
	rc, err := conn.UDPConn().SyscallConn()
	if err != nil || window <= 0 {
		return nil
	}
	bp := &busyPoller{fd: -1, window: window}
	_ = rc.Control(func(fd uintptr) { bp.fd = int32(fd) })
	if bp.fd < 0 {
		return nil
	}
	return bp
}

// wait spins until the socket is readable or the window has passed; the following ReadBatch
// then finds the datagram without blocking (or blocks as usual).
func (bp *busyPoller) wait() {
	fds := [1]unix.PollFd{{Fd: bp.fd, Events: unix.POLLIN}}
	deadline := time.Now().Add(bp.window)
	for {
		n, err := unix.Poll(fds[:], 0)
		if n > 0 || (err != nil && err != unix.EINTR) || time.Now().After(deadline) {
			return
		}
	}
}
