package netlab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// udpEcho is a minimal UDP echo server bound inside a namespace (for the self test and tests).
type udpEcho struct {
	conn *net.UDPConn
	done chan struct{}
}

func startUDPEcho(h *Host, port int) (*udpEcho, error) {
	var c *net.UDPConn
	err := h.Do(func() error {
		var err error
		c, err = net.ListenUDP("udp", &net.UDPAddr{Port: port})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netlab %s: echo listen: %w", h.Name, err)
	}
	e := &udpEcho{conn: c, done: make(chan struct{})}
	go func() {
		defer close(e.done)
		realtimeThread()
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			_, _ = c.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	return e, nil
}

func (e *udpEcho) Close() {
	e.conn.Close()
	<-e.done
}

// realtimeThread pins the calling goroutine to its OS thread and gives that thread SCHED_FIFO
// priority (below the delayer's), so a loaded machine does not add scheduling latency to the
// measurement. The goroutine must exit while still locked: the runtime then retires the thread
// instead of reusing a real-time thread for other goroutines.
func realtimeThread() {
	runtime.LockOSThread()
	_ = unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: delayerPriority - 10}, 0)
}

// pingResult is the outcome of a UDP echo run: RTT per sequence number (negative = lost),
// and the receive order of the replies (for reordering checks).
type pingResult struct {
	RTT      []time.Duration
	Order    []int
	SendTime []time.Time
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

// udpPing sends count probes at the given interval from host h to dst and collects echoes
// until wait after the last send.
func udpPing(h *Host, dst netip.AddrPort, count int, interval, wait time.Duration) (pingResult, error) {
	var c *net.UDPConn
	err := h.Do(func() error {
		var err error
		c, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
		return err
	})
	if err != nil {
		return pingResult{}, fmt.Errorf("netlab %s: ping dial: %w", h.Name, err)
	}
	defer c.Close()
	res := pingResult{RTT: make([]time.Duration, count), SendTime: make([]time.Time, count)}
	for i := range res.RTT {
		res.RTT[i] = -1
	}
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		realtimeThread()
		buf := make([]byte, 2048)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			now := time.Now()
			if n < 12 {
				continue
			}
			seq := int(binary.BigEndian.Uint32(buf))
			if seq >= count || res.RTT[seq] >= 0 {
				continue
			}
			sent := time.Unix(0, int64(binary.BigEndian.Uint64(buf[4:])))
			res.RTT[seq] = now.Sub(sent)
			res.Order = append(res.Order, seq)
		}
	}()
	pkt := make([]byte, 64)
	start := time.Now()
	for i := range count {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		now := time.Now()
		res.SendTime[i] = now
		binary.BigEndian.PutUint32(pkt, uint32(i))
		binary.BigEndian.PutUint64(pkt[4:], uint64(now.UnixNano()))
		if _, err := c.Write(pkt); err != nil {
			return res, fmt.Errorf("netlab %s: ping send: %w", h.Name, err)
		}
	}
	time.Sleep(wait)
	c.Close()
	<-recvDone
	return res, nil
}
