package server

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/probekit/probekit/shared/twampctl"
)

// Issue 10: a second twampd (twampd and twampd --light) on one host finds the metrics port
// taken; it warns and serves TWAMP-Control without metrics instead of dying.
func TestMetricsPortTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	var logs syncBuf
	l := logrus.New()
	l.SetOutput(&logs)
	s, err := New(Config{Listen: []string{"127.0.0.1:0"}, Modes: twampctl.ModeUnauthenticated,
		MetricsAddr: taken.Addr().String(), Count: 1024, Logger: l})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan []net.Addr, 1)
	go func() { done <- s.Run(ctx, func(a []net.Addr) { ready <- a }) }()
	var addrs []net.Addr
	select {
	case addrs = <-ready:
	case err := <-done:
		t.Fatalf("Run died: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	if len(addrs) != 1 {
		t.Errorf("addresses %v, want only the control listener", addrs)
	}
	ctl, err := dial(t, addrs[0].String(), clientCfg(twampctl.ModeUnauthenticated))
	if err != nil {
		t.Fatalf("control connection with the metrics port taken: %v", err)
	}
	ctl.Close()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	logs.mu.Lock()
	out := logs.b.String()
	logs.mu.Unlock()
	if !strings.Contains(out, "metrics and status endpoint unavailable") {
		t.Errorf("no warning logged: %s", out)
	}
}
