package client

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/natprobe/natsim"
	"github.com/probekit/probekit/shared/ptp"
)

// TestRelayThenDirect: two clients behind full-cone NATs whose direct packets the simulated
// network drops at first: after RelayAfter both measure each other through the server's relay
// (RTT and received counted there); once the network lets direct packets through, the direct
// path they keep punching for replaces the relay on both sides.
func TestRelayThenDirect(t *testing.T) {
	n := natsim.New(7)
	wanA, wanB := netip.MustParseAddr("45.71.0.101"), netip.MustParseAddr("45.71.0.102")
	var block atomic.Bool
	block.Store(true)
	n.Drop = func(src, dst netip.AddrPort, _ []byte) bool {
		return block.Load() && (src.Addr() == wanA && dst.Addr() == wanB || src.Addr() == wanB && dst.Addr() == wanA)
	}
	srv := newFakeServer(t, n, srvAddr, ptp.ProtoV3)
	var mu sync.Mutex
	var events []string
	tweak := func(cfg *Config) {
		cfg.NoSTUN = true
		cfg.Events = func(e Event) {
			mu.Lock()
			events = append(events, e.Message)
			mu.Unlock()
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	a := startSim(t, ctx, &wg, n, n.NewNAT(wanA, natsim.FullCone), netip.MustParseAddrPort("10.0.1.2:20000"), tweak)
	b := startSim(t, ctx, &wg, n, n.NewNAT(wanB, natsim.FullCone), netip.MustParseAddrPort("10.0.2.2:30000"), tweak)
	rows := func() (*PeerReport, *PeerReport) {
		return peerRow(a.Summary(), b.UUID()), peerRow(b.Summary(), a.UUID())
	}
	settled := func(path string) bool {
		ra, rb := rows()
		return ra != nil && rb != nil && ra.Path == path && rb.Path == path && ra.Received > 2 && rb.Received > 2
	}
	wait := func(what string, cond func() bool) {
		for end := time.Now().Add(20 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(end) { // a hang guard, not a timing requirement
				ra, rb := rows()
				t.Fatalf("no %s: %+v / %+v", what, ra, rb)
			}
		}
	}
	wait("relayed path", func() bool { return settled("relay") })
	if ra, _ := rows(); ra.RTT.Min <= 0 || ra.Reason == "" || srv.relayedCount() == 0 {
		t.Errorf("relayed row %+v, server relayed %d", *ra, srv.relayedCount())
	}
	block.Store(false)
	wait("direct path", func() bool { return settled("direct") })
	mu.Lock()
	defer mu.Unlock()
	var replaced int
	for _, e := range events {
		if strings.Contains(e, "replaces the relay") {
			replaced++
		}
	}
	if replaced < 2 {
		t.Errorf("%d 'replaces the relay' events, want one per side: %q", replaced, events)
	}
}

func (s *fakeServer) relayedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.relayed
}
