// Package labtest is the test form of shared/netlab: it builds a lab for a test, skips the
// test (with the reason) when labs cannot be built here, fails it on any other error, and
// removes the lab in t.Cleanup, pass or fail. Test-only: production code uses netlab itself.
package labtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/probekit/probekit/shared/netlab"
)

// SkipUnlessAvailable skips the test (with the reason) when labs cannot be built here.
func SkipUnlessAvailable(t testing.TB) {
	t.Helper()
	if err := netlab.Available(); err != nil {
		t.Skip(err)
	}
}

// build makes a lab for a test: it skips the test when labs (or a tool the topology needs) are
// unavailable, fails it on any other error, and closes the lab in t.Cleanup, pass or fail.
func build[L interface{ Close() error }](t testing.TB, what string, fn func() (L, error)) L {
	t.Helper()
	SkipUnlessAvailable(t)
	l, err := fn()
	if err != nil {
		if errors.Is(err, netlab.ErrUnavailable) {
			t.Skip(err)
		}
		t.Fatalf("netlab: %s: %v", what, err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("netlab: close %s: %v", what, err)
		}
	})
	return l
}

// Path builds the path topology for a test (see netlab.NewPath).
func Path(t testing.TB, cfg netlab.PathConfig) *netlab.PathLab {
	t.Helper()
	return build(t, "path", func() (*netlab.PathLab, error) { return netlab.NewPath(cfg) })
}

// NAT builds the NAT topology for a test (see netlab.NewNAT); it skips when nft or coturn is missing.
func NAT(t testing.TB, cfg netlab.NATConfig) *netlab.NATLab {
	t.Helper()
	return build(t, "nat", func() (*netlab.NATLab, error) { return netlab.NewNAT(cfg) })
}

// Middlebox builds the middlebox topology for a test (see netlab.NewMiddlebox).
func Middlebox(t testing.TB, cfg netlab.MiddleboxConfig) *netlab.MiddleboxLab {
	t.Helper()
	return build(t, "middlebox", func() (*netlab.MiddleboxLab, error) { return netlab.NewMiddlebox(cfg) })
}

// StartCapture runs tcpdump on iface in host's namespace into file (pcap, Ethernet link type,
// nanosecond timestamps) with a BPF filter expression, and returns a function that stops it
// once the capture has been flushed. The capture is also stopped in t.Cleanup. It skips the
// test when tcpdump is not installed.
func StartCapture(t testing.TB, h *netlab.Host, iface, file, filter string) (stop func()) {
	t.Helper()
	c, err := h.StartCapture(iface, file, filter)
	if errors.Is(err, netlab.ErrUnavailable) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatalf("netlab: %v", err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	return func() {
		if err := c.Stop(); err != nil {
			t.Errorf("netlab: %v", err)
		}
	}
}

// WaitListening waits until a socket is bound to port in host's namespace (network "tcp":
// a TCP listener, "udp": a bound UDP socket), so a test starts its client once the server is
// ready rather than after a guessed time. The 30 s limit is a hang guard: it fails the test.
func WaitListening(t testing.TB, h *netlab.Host, network string, port int) {
	t.Helper()
	flags := map[string]string{"tcp": "-Htln", "udp": "-Huln"}[network]
	if flags == "" {
		t.Fatalf("labtest: WaitListening: network %q, want tcp or udp", network)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		out, err := h.Exec("ss", flags, fmt.Sprintf("sport = :%d", port))
		if err == nil && strings.TrimSpace(out) != "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("labtest: nothing bound to %s port %d in %s after 30 s (ss: %v %s)", network, port, h.Name, err, out)
		}
	}
}

// InNetns runs fn on a thread in a new, empty network namespace with loopback up (skipping
// when not root) and fails the test with fn's error. Sockets opened and commands started by
// fn's goroutine live there; the thread is never unlocked, so it dies with the goroutine and
// the namespace with it.
func InNetns(tb testing.TB, fn func() error) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root for a network namespace")
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
			errc <- errors.New(string(out))
			return
		}
		errc <- fn()
	}()
	if err := <-errc; err != nil {
		tb.Fatal(err)
	}
}
