package client

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/natprobe"
	"github.com/probekit/probekit/shared/natprobe/natsim"
	"github.com/probekit/probekit/shared/ptp"
)

var (
	srvAddr = netip.MustParseAddrPort("45.71.0.10:23456")
)

// fastTimers shortens the client's timers so a simulated mesh settles in about a second. The
// STUN timeout stays long: NAT discovery runs once and reads a late answer as none (a 200 ms
// timeout gave "no STUN server answered" on a loaded machine); the paths recover from a stall.
func fastTimers(cfg *Config) {
	cfg.ServerInterval = 300 * time.Millisecond
	cfg.ProbeInterval = 50 * time.Millisecond
	cfg.LossTimeout = 500 * time.Millisecond
	cfg.RelayAfter = 600 * time.Millisecond
	cfg.PunchInterval = 200 * time.Millisecond
	cfg.PathTimeout = time.Second
	cfg.STUNTimeout = 2 * time.Second
}

type simClient struct {
	c   *Client
	nat *natsim.NAT
}

func startSim(t *testing.T, ctx context.Context, wg *sync.WaitGroup, n *natsim.Network, nat *natsim.NAT, lan netip.AddrPort, tweak func(*Config)) *Client {
	t.Helper()
	var conn *natsim.Conn
	var err error
	if nat != nil {
		conn, err = nat.Listen(lan)
	} else {
		conn, err = n.Listen(lan)
	}
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Server: srvAddr, Transport: PacketConnTransport{C: conn}, LocalIP: lan.Addr()}
	fastTimers(&cfg)
	if tweak != nil {
		tweak(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := c.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	return c
}

func peerRow(s Summary, uuid ptp.UUID) *PeerReport {
	for i := range s.Peers {
		if s.Peers[i].UUID == uuid.String() {
			return &s.Peers[i]
		}
	}
	return nil
}

// TestNATPairings runs two clients behind every pair of NAT kinds (and public) against a
// rendezvous server on the simulated network, and checks the path each side settles on, and
// that the reasons name the NAT behaviours.
func TestNATPairings(t *testing.T) {
	kinds := []struct {
		name string
		kind *natsim.Kind
	}{
		{"public", nil},
		{"fullcone", &natsim.FullCone},
		{"addrrestricted", &natsim.AddressRestricted},
		{"portrestricted", &natsim.PortRestricted},
		{"symmetric", &natsim.Symmetric},
	}
	// direct unless both map per destination, or one maps per destination and the other
	// filters per address and port (natprobe.PunchOK).
	expect := func(a, b *natsim.Kind) ptp.Path {
		dep := func(k *natsim.Kind) bool { return k != nil && k.Mapping != natsim.EndpointIndependent }
		apdf := func(k *natsim.Kind) bool { return k != nil && k.Filtering == natsim.AddressPortDependent }
		switch {
		case dep(a) && dep(b), dep(a) && apdf(b), dep(b) && apdf(a):
			return ptp.PathRelay
		}
		return ptp.PathDirect
	}
	for i, ka := range kinds {
		for _, kb := range kinds[i:] {
			t.Run(ka.name+"-"+kb.name, func(t *testing.T) {
				t.Parallel()
				n := natsim.New(uint64(len(ka.name)*31 + len(kb.name)))
				srv := newFakeServer(t, n, srvAddr, ptp.ProtoV3)
				// A second STUN address makes RFC 5780 discovery possible: the fake server's
				// own responder has none, so give the clients coturn-like servers.
				stunSrv(t, n)
				ctx, cancel := context.WithCancel(context.Background())
				var wg sync.WaitGroup
				mk := func(k *natsim.Kind, wan, lan, pub string) *Client {
					stuns := func(cfg *Config) { cfg.STUN = []netip.AddrPort{stunA} }
					if k == nil {
						return startSim(t, ctx, &wg, n, nil, netip.MustParseAddrPort(pub), stuns)
					}
					nat := n.NewNAT(netip.MustParseAddr(wan), *k)
					return startSim(t, ctx, &wg, n, nat, netip.MustParseAddrPort(lan), stuns)
				}
				a := mk(ka.kind, "45.71.0.101", "10.0.1.2:20000", "45.71.0.50:20000")
				b := mk(kb.kind, "45.71.0.102", "10.0.2.2:30000", "45.71.0.51:30000")
				want := expect(ka.kind, kb.kind)
				var sa, sb Summary
				deadline := time.Now().Add(30 * time.Second) // a hang guard: the loop ends when settled
				for time.Now().Before(deadline) {
					time.Sleep(100 * time.Millisecond)
					sa, sb = a.Summary(), b.Summary()
					ra, rb := peerRow(sa, b.UUID()), peerRow(sb, a.UUID())
					// Settled: both paths, both sides' own NAT, and each side has the other's
					// NATINFO (a relay's reason names both; until then it says "unknown").
					if ra != nil && rb != nil && ra.Path == want.String() && rb.Path == want.String() && ra.Received > 2 && rb.Received > 2 &&
						sa.Self.NAT.Mapping != "unknown" && sb.Self.NAT.Mapping != "unknown" &&
						!strings.Contains(ra.Reason, "unknown") && !strings.Contains(rb.Reason, "unknown") {
						break
					}
				}
				cancel()
				wg.Wait()
				ra, rb := peerRow(sa, b.UUID()), peerRow(sb, a.UUID())
				if ra == nil || rb == nil {
					t.Fatalf("peers missing: %+v / %+v", sa.Peers, sb.Peers)
				}
				// The reason names the behaviours the simulated routers implement (words written
				// here from the kinds, for the side that reports: ours, then the peer's).
				why := func(ours, peer *natsim.Kind) []string {
					dep := func(k *natsim.Kind) bool { return k != nil && k.Mapping != natsim.EndpointIndependent }
					apdf := func(k *natsim.Kind) bool { return k != nil && k.Filtering == natsim.AddressPortDependent }
					switch {
					case want != ptp.PathRelay:
						return nil
					case dep(ours) && dep(peer):
						return []string{"both NATs map per destination", ": relayed"}
					case dep(peer) && apdf(ours):
						return []string{"peer's NAT maps per destination", "ours filters per address and port: relayed"}
					case dep(ours) && apdf(peer):
						return []string{"our NAT maps per destination", "the peer's filters per address and port: relayed"}
					}
					return []string{"unexpected relay"}
				}
				for i, r := range []*PeerReport{ra, rb} {
					if r.Path != want.String() || r.Received == 0 {
						t.Errorf("path %s (received %d, reason %q), want %s", r.Path, r.Received, r.Reason, want)
					}
					ours, peer := ka.kind, kb.kind
					if i == 1 {
						ours, peer = peer, ours
					}
					w := why(ours, peer)
					if w == nil && r.Reason != "" {
						t.Errorf("direct path with a reason %q", r.Reason)
					}
					for _, frag := range w {
						if !strings.Contains(r.Reason, frag) {
							t.Errorf("reason %q does not say %q", r.Reason, frag)
						}
					}
					if r.RTT.Avg <= 0 && r.Received > 0 {
						t.Errorf("no RTT: %+v", r)
					}
				}
				// Each side reports its own NAT as the router is configured.
				for _, x := range []struct {
					k *natsim.Kind
					s Summary
				}{{ka.kind, sa}, {kb.kind, sb}} {
					wm, wf := "endpoint-independent", "endpoint-independent"
					if x.k != nil {
						wm, wf = natprobe.Behavior(x.k.Mapping).String(), natprobe.Behavior(x.k.Filtering).String()
					}
					if x.s.Self.NAT.Mapping != wm || x.s.Self.NAT.Filtering != wf {
						t.Errorf("self NAT %+v, want %s/%s", x.s.Self.NAT, wm, wf)
					}
				}
				// The side facing a peer that maps per destination learns its address (B8).
				dep := func(k *natsim.Kind) bool { return k != nil && k.Mapping != natsim.EndpointIndependent }
				if want == ptp.PathDirect && dep(kb.kind) && !ra.Learned {
					t.Errorf("%s facing %s: path not learned: %+v", ka.name, kb.name, ra)
				}
				if want == ptp.PathDirect && dep(ka.kind) && !rb.Learned {
					t.Errorf("%s facing %s: path not learned: %+v", kb.name, ka.name, rb)
				}
				if want == ptp.PathRelay && srv.relayed == 0 {
					t.Error("server relayed nothing")
				}
				t.Logf("%s: %s %q / %s %q", fmt.Sprint(want), ra.Path, ra.Reason, rb.Path, rb.Reason)
			})
		}
	}
}

// With a legacy (version 2) server: lists carry no UUIDs, nothing is relayed. Cone peers still
// find each other (UUIDs learned from their packets); symmetric peers stay unreachable and the
// reason says why.
func TestLegacyServer(t *testing.T) {
	for _, tc := range []struct {
		name   string
		a, b   natsim.Kind
		path   ptp.Path
		reason string
	}{
		{"cone-cone", natsim.FullCone, natsim.PortRestricted, ptp.PathDirect, ""},
		{"cone-symmetric", natsim.FullCone, natsim.Symmetric, ptp.PathDirect, ""},
		{"symmetric-symmetric", natsim.Symmetric, natsim.Symmetric, ptp.PathNone, "cannot relay"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := natsim.New(11)
			srv := newFakeServer(t, n, srvAddr, ptp.ProtoV2)
			stunSrv(t, n)
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			stuns := func(cfg *Config) { cfg.STUN = []netip.AddrPort{stunA} }
			a := startSim(t, ctx, &wg, n, n.NewNAT(netip.MustParseAddr("45.71.0.101"), tc.a), netip.MustParseAddrPort("10.0.1.2:20000"), stuns)
			b := startSim(t, ctx, &wg, n, n.NewNAT(netip.MustParseAddr("45.71.0.102"), tc.b), netip.MustParseAddrPort("10.0.2.2:30000"), stuns)
			var ra, rb *PeerReport
			// The deadline is a hang guard: the loop ends when the direct path is up, or (for
			// no path) when both list each other.
			for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
				sa, sb := a.Summary(), b.Summary()
				if len(sa.Peers) == 1 && len(sb.Peers) == 1 {
					ra, rb = &sa.Peers[0], &sb.Peers[0]
					if tc.path == ptp.PathDirect && ra.Path == "direct" && rb.Path == "direct" && ra.Received > 2 && rb.Received > 2 ||
						tc.path == ptp.PathNone {
						break
					}
				}
			}
			if tc.path == ptp.PathNone && ra != nil {
				time.Sleep(1500 * time.Millisecond) // well past RelayAfter: still nothing may be relayed
				sa, sb := a.Summary(), b.Summary()
				ra, rb = &sa.Peers[0], &sb.Peers[0]
			}
			cancel()
			wg.Wait()
			if ra == nil || rb == nil {
				t.Fatal("peers not listed")
			}
			for _, r := range []*PeerReport{ra, rb} {
				if r.Path != tc.path.String() || !strings.Contains(r.Reason, tc.reason) {
					t.Errorf("path %s reason %q, want %s %q", r.Path, r.Reason, tc.path, tc.reason)
				}
			}
			if srv.relayed != 0 {
				t.Errorf("legacy server relayed %d", srv.relayed)
			}
		})
	}
}
