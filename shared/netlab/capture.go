package netlab

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Capture is a running tcpdump started by Host.StartCapture.
type Capture struct {
	File string
	// Late counts packets accepted by the filter as the capture was being stopped, after the
	// file had been still for 100 ms (see Stop); they are not in the file.
	Late int
	proc *Proc
	once sync.Once
	err  error
}

// StartCapture runs tcpdump on iface inside the host's namespace, writing every packet to file
// as it arrives (pcap, nanosecond timestamps, full snaplen, Ethernet link type on veths) with
// an optional BPF filter expression. It returns once tcpdump is listening. All namespaces share
// one clock, so captures on two hosts give exact one-way delays.
func (h *Host) StartCapture(iface, file, filter string) (*Capture, error) {
	if _, err := exec.LookPath("tcpdump"); err != nil {
		return nil, fmt.Errorf("%w: tcpdump not installed", ErrUnavailable)
	}
	args := []string{"-i", iface, "-w", file, "-U", "--immediate-mode", "-n", "-s", "0",
		"-Z", "root", "--time-stamp-precision=nano", "-B", "32768"}
	if filter != "" {
		args = append(args, filter)
	}
	p := &Proc{host: h, done: make(chan struct{})}
	p.Cmd = h.Command(context.Background(), "tcpdump", args...)
	stderr, err := p.Cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	p.Cmd.Stdout = &p.out
	h.lab.mu.Lock()
	if h.lab.closed {
		h.lab.mu.Unlock()
		return nil, fmt.Errorf("netlab %s: capture: lab closed", h.Name)
	}
	if err := p.Cmd.Start(); err != nil {
		h.lab.mu.Unlock()
		return nil, fmt.Errorf("netlab %s: tcpdump: %w", h.Name, err)
	}
	h.lab.procs = append(h.lab.procs, p)
	h.lab.mu.Unlock()
	// Real-time priority (below the delayer and the echo helper): a tcpdump starved by a busy
	// machine falls behind, and whatever is still in its ring when it stops is lost.
	_ = unix.SchedSetAttr(p.Cmd.Process.Pid, &unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: captureRTPriority}, 0)
	ready := make(chan struct{})
	go func() {
		r := bufio.NewReader(stderr)
		signalled := false
		for {
			line, err := r.ReadString('\n')
			_, _ = p.out.Write([]byte(line))
			if !signalled && strings.Contains(line, "listening on") {
				close(ready)
				signalled = true
			}
			if err != nil {
				if !signalled {
					close(ready)
				}
				_, _ = io.Copy(io.Discard, r)
				break
			}
		}
		p.err = p.Cmd.Wait()
		close(p.done)
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
	}
	select {
	case <-p.done:
		return nil, fmt.Errorf("netlab %s: tcpdump on %s exited: %s", h.Name, iface, strings.TrimSpace(p.Output()))
	default:
	}
	if !strings.Contains(p.Output(), "listening on") {
		p.Stop()
		return nil, fmt.Errorf("netlab %s: tcpdump on %s not ready: %s", h.Name, iface, strings.TrimSpace(p.Output()))
	}
	return &Capture{File: file, proc: p}, nil
}

// captureRTPriority is tcpdump's SCHED_FIFO priority.
const captureRTPriority = 5

// Stop waits until tcpdump has written everything it has seen (the file stops growing for
// 100 ms, at most 3 s), stops it, and fails if the kernel dropped packets, or if tcpdump did
// not write all the packets its filter accepted while it was still writing when stopped.
//
// Packets the filter accepted after the file had been still for 100 ms are not an error: they
// arrived as tcpdump was being stopped (its statistics are read after the signal, so a packet
// landing in the ring in between is counted as accepted but never written), after the
// traffic the capture was for. tcpdump runs at real-time priority, so a packet that arrived
// earlier is written within the 100 ms; Late counts the others.
func (c *Capture) Stop() error {
	c.once.Do(func() {
		last, stable, quiet := int64(-1), time.Now(), false
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			var size int64
			if fi, err := os.Stat(c.File); err == nil {
				size = fi.Size()
			}
			if size != last {
				last, stable = size, time.Now()
			} else if time.Since(stable) >= 100*time.Millisecond {
				quiet = true
				break
			}
		}
		c.proc.Stop()
		var captured, received, dropped int
		for _, line := range strings.Split(c.proc.Output(), "\n") {
			line = strings.TrimSpace(line)
			var n int
			switch {
			case scan(line, "%d packets captured", &n):
				captured = n
			case scan(line, "%d packets received by filter", &n):
				received = n
			case scan(line, "%d packets dropped by kernel", &n):
				dropped = n
			}
		}
		switch {
		case dropped > 0:
			c.err = fmt.Errorf("netlab: capture %s: %d packets dropped by kernel", c.File, dropped)
		case received > captured && !quiet:
			c.err = fmt.Errorf("netlab: capture %s: %d packets accepted by the filter but only %d written (still writing after 3 s)", c.File, received, captured)
		case received > captured:
			c.Late = received - captured
		}
	})
	return c.err
}

func scan(line, format string, n *int) bool {
	_, err := fmt.Sscanf(line, format, n)
	return err == nil
}
