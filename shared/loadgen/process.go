package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/probekit/probekit/shared/udpsock"
)

// Process is a target started for measurement: an echo or a reflector listening on Addr.
type Process struct {
	Name string
	Addr netip.AddrPort
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	out  *tailBuffer
}

// PID is the process id whose CPU time is measured.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// FreePort returns a UDP port on 127.0.0.1 that was free a moment ago.
func FreePort() (uint16, error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return 0, fmt.Errorf("loadgen: free port: %w", err)
	}
	defer c.Close()
	return uint16(c.LocalAddr().(*net.UDPAddr).Port), nil
}

// StartCommand runs cmdline with /bin/sh after replacing every "{port}" with a free port on
// 127.0.0.1, and waits until the process answers a test packet on that port. The shell execs
// the command, so the measured PID is the target itself. Its output goes to log (if non-nil);
// the last lines are kept for error messages.
func StartCommand(ctx context.Context, name, cmdline string, log io.Writer) (*Process, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	line := strings.ReplaceAll(cmdline, "{port}", strconv.Itoa(int(port)))
	return StartArgs(ctx, name, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port),
		[]string{"/bin/sh", "-c", "exec " + line}, log)
}

// StartArgs starts argv, expected to listen on addr, and waits until it answers.
func StartArgs(ctx context.Context, name string, addr netip.AddrPort, argv []string, log io.Writer) (*Process, error) {
	p := &Process{Name: name, Addr: addr, done: make(chan struct{}), out: &tailBuffer{max: 4096}}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	var w io.Writer = p.out
	if log != nil {
		w = io.MultiWriter(p.out, log)
	}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("loadgen: start %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	if err := p.waitReady(ctx, 10*time.Second); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// waitReady sends a test packet every 20 ms until one comes back.
func (p *Process) waitReady(ctx context.Context, timeout time.Duration) error {
	c, err := udpsock.Listen(ctx, "udp4", "127.0.0.1:0", udpsock.Options{})
	if err != nil {
		return err
	}
	defer c.Close()
	probe := make([]byte, DefaultSize)
	FillPacket(probe, 0, time.Now())
	in := udpsock.Message{Buf: make([]byte, 2048)}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("loadgen: %s exited before answering (%v): %s", p.Name, p.err, p.out.String())
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		out := udpsock.Message{Buf: probe, Addr: p.Addr}
		if err := c.WriteTo(&out); err != nil {
			return fmt.Errorf("loadgen: probe %s: %w", p.Name, err)
		}
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if err := c.ReadFrom(&in); err == nil && in.Addr == p.Addr {
			return nil
		}
	}
	return fmt.Errorf("loadgen: %s did not answer on %v within %v: %s", p.Name, p.Addr, timeout, p.out.String())
}

// Stop sends SIGTERM, then SIGKILL after 3 s, and waits for the process to exit.
func (p *Process) Stop() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	var ee *exec.ExitError
	if p.err != nil && !errors.As(p.err, &ee) {
		return p.err
	}
	return nil
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.b))
}
