package analytics

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/probekit/probekit/ptpserver/internal/cmd"
	"github.com/probekit/probekit/ptpserver/internal/server"
	"github.com/probekit/probekit/ptpserver/internal/store"
	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/shared/ptp"
)

func uuid(b byte) ptp.UUID {
	var u ptp.UUID
	for i := range u {
		u[i] = b
	}
	return u
}

func TestObserver(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	now := t0
	st, err := store.Open(ctx, "", store.Options{Now: func() time.Time { return now }, NoBackground: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	o := NewObserver(st, time.Minute)
	a := server.ClientInfo{Time: t0, UUID: uuid(0xa), Addr: netip.MustParseAddrPort("45.71.0.101:20001"), Mesh: "lab", Version: 3}
	b := server.ClientInfo{Time: t0, UUID: uuid(0xb), Addr: netip.MustParseAddrPort("45.71.0.102:30001"), Mesh: "lab", Version: 3}
	o.Joined(a)
	o.Joined(b)
	nat := &ptp.NATInfo{Mapping: ptp.BehaviorEndpointIndependent, Filtering: ptp.BehaviorAddressAndPortDependent,
		Hairpin: ptp.HairpinNo, Public: netip.MustParseAddrPort("45.71.0.101:20001")}
	report := func(at time.Duration, path ptp.Path, reason string, sent uint32) {
		ci := a
		ci.Time = t0.Add(at)
		ci.Candidates = []netip.AddrPort{netip.MustParseAddrPort("45.71.0.101:21567")}
		o.Reported(server.Report{Client: ci, NAT: nat, Peers: []server.PeerReport{{
			Reach:  ptp.Reach{Peer: b.UUID, Path: path, Sent: sent, Received: sent, RTTMin: 900, RTTAvg: 1000, RTTP50: 1000, RTTP99: 1500, RTTMax: 2000},
			Reason: reason}}})
	}
	// Every 7 s for two minutes; the path changes to relay at 49 s.
	for s := 0; s <= 120; s += 7 {
		path, reason := ptp.PathDirect, ""
		if s >= 49 {
			path, reason = ptp.PathRelay, "peer's NAT maps per destination: relayed"
		}
		report(time.Duration(s)*time.Second, path, reason, uint32(14*(s+7)))
	}
	now = t0.Add(3 * time.Minute)
	if err := st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Stored: 0 s (first), 49 s (path change), 112 s (a minute after 49 s).
	if n := st.Stats().Reports; n != 3 {
		t.Fatalf("%d reports stored, want 3 (first, path change, a minute later)", n)
	}
	m, err := st.Matrix(ctx, "lab")
	if err != nil || len(m.Cells) != 1 {
		t.Fatalf("matrix %+v %v", m, err)
	}
	c := m.Cells[0]
	if c.From != uuid(0xa).String() || c.Path != store.PathRelay || c.Sent != 14*119 || c.Reason != "peer's NAT maps per destination: relayed" {
		t.Fatalf("cell %+v", c)
	}
	cs, _ := st.Clients(ctx, "lab")
	if len(cs) != 2 || cs[0].Mapping != "endpoint-independent" || cs[0].Filtering != "address-and-port-dependent" || cs[0].Hairpin != "no" ||
		cs[0].Public != "45.71.0.101:20001" || string(cs[0].PortMap) != `[{"protocol":"candidate","gateway":"announced","external":"45.71.0.101:21567"}]` ||
		cs[1].Mapping != "unknown" || !cs[1].Online {
		t.Fatalf("clients %+v", cs)
	}
	b.Time = t0.Add(150 * time.Second)
	o.Left(b, "expired")
	now = t0.Add(4 * time.Minute)
	st.Flush(ctx)
	ev, _ := st.Events(ctx, "lab", t0.Add(-time.Hour), now, 0)
	if len(ev) != 3 || ev[0].Kind != store.EventJoin || ev[2].Kind != store.EventExpire || ev[2].UUID != uuid(0xb).String() {
		t.Fatalf("events %+v", ev)
	}
	cs, _ = st.Clients(ctx, "lab")
	if cs[1].Online {
		t.Fatalf("b still online: %+v", cs[1])
	}
}

func TestWebAddr(t *testing.T) {
	for in, want := range map[string]string{":8080": "127.0.0.1:8080", "0.0.0.0:80": "0.0.0.0:80", "[::1]:9": "[::1]:9", "x:1": "", "8080": ""} {
		got, err := webAddr(in)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("%q: %q %v", in, got, err)
		}
	}
}

// The registered flags pass the same lint as ptpserver's own (Register ran in init).
func TestLintFlags(t *testing.T) {
	app := cmd.NewApp("test")
	names := map[string]bool{}
	for _, f := range app.Flags {
		names[f.Names()[0]] = true
	}
	for _, n := range []string{FlagStore, FlagRetention, FlagEvery, FlagWeb, FlagWebToken, FlagTokenFile} {
		if !names[n] {
			t.Errorf("--%s not registered", n)
		}
	}
	for _, err := range cliutil.Lint(app) {
		t.Error(err)
	}
}
