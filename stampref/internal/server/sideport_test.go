package server

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/probekit/probekit/shared/testpkt"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Issue 10: a second stampref on the host finds the monitoring port taken; it warns and
// keeps reflecting instead of dying.
func TestMonitorPortTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	var logs lockedBuf
	log := logrus.New()
	log.SetOutput(&logs)
	ready := make(chan netip.AddrPort, 1)
	monURL := make(chan string, 1)
	cfg := Config{Listen: []string{"127.0.0.1:0"}, Monitor: taken.Addr().String(),
		Ready: func(udp []netip.AddrPort, mon string) { ready <- udp[0]; monURL <- mon }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, log) }()
	var addr netip.AddrPort
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("Run died: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	if u := <-monURL; u != "" {
		t.Errorf("monitor URL %q with the port taken", u)
	}
	c := newClient(t)
	if _, ok := c.roundTrip(addr, stampPkt(testpkt.ModeUnauthenticated, 1, 1, nil)); !ok {
		t.Error("no reply while the monitor port is taken")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if !strings.Contains(logs.String(), "monitoring API unavailable") {
		t.Errorf("no warning logged: %s", logs.String())
	}
}
