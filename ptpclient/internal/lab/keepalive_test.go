package lab

import (
	"strconv"
	"testing"
	"time"

	"github.com/probekit/probekit/ptpclient/internal/client"
	"github.com/probekit/probekit/ptpclient/internal/testbin"
	"github.com/probekit/probekit/shared/netlab"
	"github.com/probekit/probekit/shared/testsupport/labtest"
)

// TestKeepalive: two clients behind port-restricted NATs (EIM/APDF) whose UDP mappings and
// filter entries live only 2 s (conntrack's udp_timeout and udp_timeout_stream lowered). With
// the default probes every 0.5 s the direct path holds with no loss for the whole run. The
// control run probes every 5 s, longer than the lifetime: each side's NAT forgets the peer
// between the exchanges, so the packets of at least one direction are filtered (whatever the
// two probe phases are, one of the gaps between refreshes is ≥ 2.5 s) and the mesh reports loss
// or gives up the direct path. The control proves the short lifetime is really enforced.
func TestKeepalive(t *testing.T) {
	labtest.SkipUnlessAvailable(t)
	srvBin, cliBin := testbin.Build(t, "ptpserver"), testbin.Build(t, "ptpclient")
	const lifetime = 2 * time.Second
	n := labtest.NAT(t, netlab.NATConfig{NATs: []netlab.NATSpec{
		{Kind: netlab.PortRestricted, UDPTimeout: lifetime},
		{Kind: netlab.PortRestricted, UDPTimeout: lifetime},
	}})
	srv, err := n.Rendezvous.Start(srvBin, "-s", netlab.Rendezvous.String(), "-p", strconv.Itoa(srvPort), "--json", "--no-tui", "--no-stun")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	serverUp(t, srv)
	run := func(interval, duration string, offset uint16) [2]*client.PeerReport {
		var sums [2]client.Summary
		var procs [2]*netlab.Proc
		for i := range procs {
			c := n.NATs[i].Clients[0]
			bind := "0.0.0.0:" + strconv.Itoa(int(c.Ports[0]+offset))
			procs[i], err = c.Host.Start(cliBin, "-s", netlab.Rendezvous.String(), "-p", strconv.Itoa(srvPort), "--bind", bind,
				"--nostun", "--json", "--interval", interval, "--duration", duration)
			if err != nil {
				t.Fatal(err)
			}
		}
		for i, p := range procs {
			if err := p.Wait(); err != nil {
				t.Fatalf("client %d: %v\n%s", i, err, p.Output())
			}
			sums[i] = testbin.Summary(t, p.Output())
		}
		rows := [2]*client.PeerReport{testbin.Peer(sums[0], sums[1].UUID), testbin.Peer(sums[1], sums[0].UUID)}
		if rows[0] == nil || rows[1] == nil {
			t.Fatalf("interval %s: peers not listed: %+v / %+v", interval, sums[0].Peers, sums[1].Peers)
		}
		t.Logf("interval %s: A->B %s sent %d received %d lost %d; B->A %s sent %d received %d lost %d", interval,
			rows[0].Path, rows[0].Sent, rows[0].Received, rows[0].Lost, rows[1].Path, rows[1].Sent, rows[1].Received, rows[1].Lost)
		return rows
	}
	for i, r := range run("500ms", "9s", 11) {
		// 9 s (4.5 lifetimes) at 2 probes/s, less the punching at the start.
		if r.Path != "direct" || r.Lost != 0 || r.Received < 10 {
			t.Errorf("keepalives every 0.5 s under a %v lifetime, side %d: %+v", lifetime, i, *r)
		}
	}
	ctl := run("5s", "14s", 13)
	broken := false
	for _, r := range ctl {
		broken = broken || r.Path != "direct" || r.Lost > 0 || r.Received == 0
	}
	if !broken {
		t.Errorf("probes every 5 s kept a direct path without loss through a %v lifetime: the lifetime is not enforced, the keepalive result above proves nothing", lifetime)
	}
}
