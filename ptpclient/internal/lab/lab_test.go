// Package lab holds ptpclient's lab tests: the real ptpserver and ptpclient binaries in network
// namespaces (shared/netlab) behind real Linux NATs and across a delayed, lossy router, checked
// against the routers' configuration and tcpdump captures on one clock. They skip unless root.
package lab

import (
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/probekit/probekit/ptpclient/internal/client"
	"github.com/probekit/probekit/ptpclient/internal/testbin"
	"github.com/probekit/probekit/shared/netlab"
	"github.com/probekit/probekit/shared/testsupport/labtest"
)

const srvPort = 23456

// serverUp returns once the ptpserver process logged that it listens (its socket is bound):
// a fixed sleep let clients under load register before that and lose a second. The deadline
// is a hang guard.
func serverUp(t *testing.T, p *netlab.Proc) {
	t.Helper()
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(p.Output(), "PTP Server listening") {
			return
		}
		select {
		case <-p.Done():
			t.Fatalf("ptpserver exited: %v\n%s", p.Wait(), p.Output())
		default:
		}
	}
	t.Fatalf("ptpserver not listening after 20 s:\n%s", p.Output())
}

type node struct {
	name string
	host *netlab.Host
	bind string
	kind string // "fullcone", "portrestricted", "symmetric", "public"
	proc *netlab.Proc
	sum  client.Summary
}

// TestNATMesh: server on the public segment; two clients behind one full-cone NAT (EIM/EIF,
// hairpin), one behind a port-restricted NAT (EIM/APDF), two behind two symmetric NATs
// (APDM/APDF, MASQUERADE --random-fully), one on the public segment. Expected paths:
// same NAT lan; cone↔cone and cone↔symmetric direct (the side facing the symmetric NAT learns
// the address); port-restricted↔symmetric and symmetric↔symmetric relayed; every client
// reports the NAT its router implements (RFC 5780 against coturn) and whether it hairpins.
func TestNATMesh(t *testing.T) {
	labtest.SkipUnlessAvailable(t)
	srvBin, cliBin := testbin.Build(t, "ptpserver"), testbin.Build(t, "ptpclient")
	n := labtest.NAT(t, netlab.NATConfig{STUN: true, NATs: []netlab.NATSpec{
		{Kind: netlab.FullCone, Clients: 2, Hairpin: true},
		{Kind: netlab.PortRestricted},
		{Kind: netlab.Symmetric},
		{Kind: netlab.Symmetric},
	}})
	srv, err := n.Rendezvous.Start(srvBin, "-s", netlab.Rendezvous.String(), "-p", strconv.Itoa(srvPort), "--json", "--no-tui")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	serverUp(t, srv)
	bindIn := func(c *netlab.NATClient) string {
		return "0.0.0.0:" + strconv.Itoa(int(c.Ports[0])+7)
	}
	nodes := []*node{
		{name: "cone1", host: n.NATs[0].Clients[0].Host, bind: bindIn(n.NATs[0].Clients[0]), kind: "fullcone"},
		{name: "cone2", host: n.NATs[0].Clients[1].Host, bind: bindIn(n.NATs[0].Clients[1]), kind: "fullcone"},
		{name: "port", host: n.NATs[1].Clients[0].Host, bind: bindIn(n.NATs[1].Clients[0]), kind: "portrestricted"},
		{name: "sym1", host: n.NATs[2].Clients[0].Host, bind: bindIn(n.NATs[2].Clients[0]), kind: "symmetric"},
		{name: "sym2", host: n.NATs[3].Clients[0].Host, bind: bindIn(n.NATs[3].Clients[0]), kind: "symmetric"},
		{name: "public", host: n.STUN, bind: netlab.STUNAddr1.String() + ":40000", kind: "public"},
	}
	stun := netip.AddrPortFrom(netlab.STUNAddr1, netlab.STUNPort).String()
	for _, nd := range nodes {
		nd.proc, err = nd.host.Start(cliBin, "-s", netlab.Rendezvous.String(), "-p", strconv.Itoa(srvPort), "--bind", nd.bind,
			"--stun", stun, "--hairpin", "--json", "--duration", "14s")
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, nd := range nodes {
		if err := nd.proc.Wait(); err != nil {
			t.Fatalf("%s: %v\n%s", nd.name, err, nd.proc.Output())
		}
		nd.sum = testbin.Summary(t, nd.proc.Output())
	}
	wantNAT := map[string][2]string{
		"fullcone":       {"endpoint-independent", "endpoint-independent"},
		"portrestricted": {"endpoint-independent", "address-and-port-dependent"},
		"symmetric":      {"address-and-port-dependent", "address-and-port-dependent"},
		"public":         {"endpoint-independent", "endpoint-independent"},
	}
	// Hairpin: only the full-cone router is configured to hairpin (the public host reaches its own
	// address locally).
	wantHairpin := map[string]string{"fullcone": "yes", "portrestricted": "no", "symmetric": "no", "public": "yes"}
	for _, nd := range nodes {
		if h := nd.sum.Self.NAT.Hairpin; h != wantHairpin[nd.kind] {
			t.Errorf("%s (%s) reports hairpin %s (%s), want %s", nd.name, nd.kind, h, nd.sum.Self.NAT.HairpinReason, wantHairpin[nd.kind])
		}
		got := [2]string{nd.sum.Self.NAT.Mapping, nd.sum.Self.NAT.Filtering}
		if got != wantNAT[nd.kind] || nd.sum.Self.NAT.Method != "rfc5780" {
			t.Errorf("%s (%s) reports NAT %+v, want %v", nd.name, nd.kind, nd.sum.Self.NAT, wantNAT[nd.kind])
		}
	}
	expect := func(a, b *node) string {
		switch {
		case a.name == "cone1" && b.name == "cone2", a.name == "cone2" && b.name == "cone1":
			return "lan"
		case a.kind == "symmetric" && b.kind == "symmetric":
			return "relay"
		case a.kind == "symmetric" && b.kind == "portrestricted", a.kind == "portrestricted" && b.kind == "symmetric":
			return "relay"
		}
		return "direct"
	}
	var matrix []string
	for _, a := range nodes {
		for _, b := range nodes {
			if a == b {
				continue
			}
			r := testbin.Peer(a.sum, b.sum.UUID)
			if r == nil {
				t.Errorf("%s does not list %s", a.name, b.name)
				continue
			}
			want := expect(a, b)
			matrix = append(matrix, a.name+"->"+b.name+": "+r.Path+" "+r.Reason)
			if r.Path != want || r.Received == 0 {
				t.Errorf("%s -> %s: path %s (received %d, reason %q), want %s", a.name, b.name, r.Path, r.Received, r.Reason, want)
			}
			if want == "direct" && b.kind == "symmetric" && !r.Learned {
				t.Errorf("%s -> %s: direct path to a symmetric NAT not learned from its packets", a.name, b.name)
			}
			if want == "relay" && !strings.Contains(r.Reason, "per destination") {
				t.Errorf("%s -> %s: relay reason %q does not name the mapping", a.name, b.name, r.Reason)
			}
			if r.RTT.Min <= 0 || r.RTT.P50 < r.RTT.Min || r.RTT.Max < r.RTT.P99 {
				t.Errorf("%s -> %s: RTT %+v", a.name, b.name, r.RTT)
			}
		}
	}
	sort.Strings(matrix)
	t.Logf("matrix:\n%s", strings.Join(matrix, "\n"))
}
