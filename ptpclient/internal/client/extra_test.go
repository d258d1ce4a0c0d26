package client

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/natprobe/natsim"
	"github.com/probekit/probekit/shared/ptp"
)

// SendExtra delivers v3 TLVs over the path the mesh found: directly between cone NATs, through
// the relay between symmetric ones.
func TestSendExtraOverPath(t *testing.T) {
	for _, tc := range []struct {
		name string
		kind natsim.Kind
		path ptp.Path
	}{
		{"direct", natsim.FullCone, ptp.PathDirect},
		{"relay", natsim.Symmetric, ptp.PathRelay},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := natsim.New(21)
			newFakeServer(t, n, srvAddr, ptp.ProtoV3)
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			got := make(chan ptp.Path, 16)
			var payload []byte
			var mu sync.Mutex
			a := startSim(t, ctx, &wg, n, n.NewNAT(netip.MustParseAddr("45.71.0.101"), tc.kind), netip.MustParseAddrPort("10.0.1.2:20000"), func(cfg *Config) { cfg.NoSTUN = true })
			b := startSim(t, ctx, &wg, n, n.NewNAT(netip.MustParseAddr("45.71.0.102"), tc.kind), netip.MustParseAddrPort("10.0.2.2:30000"), func(cfg *Config) {
				cfg.NoSTUN = true
				cfg.Extra = func(peer ptp.UUID, path ptp.Path, m *ptp.Message) {
					mu.Lock()
					payload = append([]byte(nil), m.Extra[0].Value...)
					mu.Unlock()
					got <- path
				}
			})
			defer func() { cancel(); wg.Wait() }()
			err := errors.New("A never had a " + tc.path.String() + " path to B")
			// Hang guards only: the loop ends when the path is up.
			for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
				var ok bool
				for _, p := range a.Peers() {
					ok = ok || (p.UUID == b.UUID() && p.Path == tc.path)
				}
				if ok {
					err = a.SendExtra(b.UUID(), []ptp.TLV{{Type: ptp.TypeBulkFirst, Value: []byte("block 0")}})
					break
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			select {
			case p := <-got:
				mu.Lock()
				defer mu.Unlock()
				if p != tc.path || string(payload) != "block 0" {
					t.Errorf("received %q over %v, want over %v", payload, p, tc.path)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("nothing arrived; A's peers %+v", a.Peers())
			}
			if err := a.SendExtra(ptp.UUID{1}, nil); err != ErrNoPeer {
				t.Errorf("unknown peer: %v", err)
			}
		})
	}
}
