package netlab

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Capture is a running tcpdump started by Host.StartCapture.
type Capture struct {
	File string
	proc *Proc
	once sync.Once
	err  error
}

// StartCapture runs tcpdump on iface inside the host's namespace, writing every packet to file
// as it arrives (pcap, nanosecond timestamps, full snaplen, Ethernet link type on veths) with
// an optional BPF filter expression. It returns once tcpdump is listening. All namespaces share
// one clock, so captures on two hosts give exact one-way delays.
func (h *Host) StartCapture(iface, file, filter string) (*Capture, error) {
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

// Stop waits briefly for packets in flight to be written, stops tcpdump and reports whether
// the kernel dropped any packet.
func (c *Capture) Stop() error {
	c.once.Do(func() {
		time.Sleep(50 * time.Millisecond)
		c.proc.Stop()
		out := c.proc.Output()
		for _, line := range strings.Split(out, "\n") {
			var n int
			if _, err := fmt.Sscanf(strings.TrimSpace(line), "%d packets dropped by kernel", &n); err == nil && n > 0 {
				c.err = fmt.Errorf("netlab: capture %s: %d packets dropped by kernel", c.File, n)
			}
		}
	})
	return c.err
}
