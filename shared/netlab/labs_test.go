package netlab

// The test forms of the labs for netlab's own tests (an in-package test cannot import
// shared/testsupport/labtest, which imports netlab); other packages use labtest.

import (
	"errors"
	"testing"
)

// SkipUnlessAvailable skips the test (with the reason) when labs cannot be built here.
func SkipUnlessAvailable(t testing.TB) {
	t.Helper()
	if err := Available(); err != nil {
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
		if errors.Is(err, ErrUnavailable) {
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

// Path builds the path topology for a test (see NewPath).
func Path(t testing.TB, cfg PathConfig) *PathLab {
	t.Helper()
	return build(t, "path", func() (*PathLab, error) { return NewPath(cfg) })
}

// NAT builds the NAT topology for a test (see NewNAT); it skips when nft or coturn is missing.
func NAT(t testing.TB, cfg NATConfig) *NATLab {
	t.Helper()
	return build(t, "nat", func() (*NATLab, error) { return NewNAT(cfg) })
}

// Middlebox builds the middlebox topology for a test (see NewMiddlebox).
func Middlebox(t testing.TB, cfg MiddleboxConfig) *MiddleboxLab {
	t.Helper()
	return build(t, "middlebox", func() (*MiddleboxLab, error) { return NewMiddlebox(cfg) })
}

// StartCapture runs tcpdump on iface in host's namespace into file (pcap, Ethernet link type,
// nanosecond timestamps) with a BPF filter expression, and returns a function that stops it
// once the capture has been flushed. The capture is also stopped in t.Cleanup. It skips the
// test when tcpdump is not installed.
func StartCapture(t testing.TB, h *Host, iface, file, filter string) (stop func()) {
	t.Helper()
	c, err := h.StartCapture(iface, file, filter)
	if errors.Is(err, ErrUnavailable) {
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
