package netlab

import (
	"errors"
	"testing"
)

// skipOrFatal skips the test when labs are unavailable here, and fails it on any other error.
func skipOrFatal(t testing.TB, what string, err error) {
	t.Helper()
	if errors.Is(err, ErrUnavailable) {
		t.Skipf("netlab: %v", err)
	}
	t.Fatalf("netlab: %s: %v", what, err)
}

// SkipUnlessAvailable skips the test (with the reason) when labs cannot be built here.
func SkipUnlessAvailable(t testing.TB) {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("netlab: %v", err)
	}
}

// Path builds the path topology for a test and removes it in t.Cleanup, pass or fail.
// It skips the test when labs are unavailable (not root, no namespaces, tools missing).
func Path(t testing.TB, cfg PathConfig) *PathLab {
	t.Helper()
	SkipUnlessAvailable(t)
	p, err := NewPath(cfg)
	if err != nil {
		skipOrFatal(t, "path", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("netlab: close: %v", err)
		}
	})
	return p
}

// StartCapture runs tcpdump on iface in host's namespace into file (pcap, Ethernet link type,
// nanosecond timestamps) with a BPF filter expression, and returns a function that stops it
// once the capture has been flushed. The capture is also stopped in t.Cleanup.
func StartCapture(t testing.TB, h *Host, iface, file, filter string) (stop func()) {
	t.Helper()
	c, err := h.StartCapture(iface, file, filter)
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

// Middlebox builds the middlebox topology for a test and removes it in t.Cleanup.
func Middlebox(t testing.TB, cfg MiddleboxConfig) *MiddleboxLab {
	t.Helper()
	SkipUnlessAvailable(t)
	m, err := NewMiddlebox(cfg)
	if err != nil {
		skipOrFatal(t, "middlebox", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("netlab: close: %v", err)
		}
	})
	return m
}

// NAT builds the NAT topology for a test and removes it in t.Cleanup. It skips the test when
// labs are unavailable or coturn/nft are not installed.
func NAT(t testing.TB, cfg NATConfig) *NATLab {
	t.Helper()
	SkipUnlessAvailable(t)
	n, err := NewNAT(cfg)
	if err != nil {
		skipOrFatal(t, "nat", err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("netlab: close: %v", err)
		}
	})
	return n
}
