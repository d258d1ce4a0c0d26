package cmd

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/probekit/probekit/ptpserver/internal/server"
	"github.com/probekit/probekit/shared/ptp"
)

func sampleSnapshot() server.Snapshot {
	var a, b ptp.UUID
	a[0], b[0] = 0xaa, 0xbb
	t0 := time.Date(2026, 12, 7, 18, 0, 0, 0, time.UTC)
	nat := &ptp.NATInfo{Mapping: ptp.BehaviorAddressAndPortDependent, Filtering: ptp.BehaviorAddressAndPortDependent, Hairpin: ptp.HairpinNo,
		Public: netip.MustParseAddrPort("198.51.100.7:40000")}
	return server.Snapshot{
		Time: t0.Add(time.Minute), Local: netip.MustParseAddrPort("0.0.0.0:23456"),
		Stats: server.Stats{Received: 10, Sent: 12, BadChecksum: 1, STUN: 2, Relayed: 3, Joined: 2},
		Clients: []server.ClientState{{
			ClientInfo: server.ClientInfo{UUID: a, Addr: netip.MustParseAddrPort("198.51.100.7:40000"), Mesh: "lab", Version: 3,
				PTPAddr: netip.MustParseAddrPort("10.0.1.2:40000"), NAT: nat, PortMaps: []ptp.PortMap{
					{Protocol: ptp.PortMapUPnP, Status: ptp.PortMapGranted, Lifetime: 3600, External: netip.MustParseAddrPort("198.51.100.7:23456")},
					{Protocol: ptp.PortMapPCP, Status: ptp.PortMapNoGateway}}},
			Joined: t0, LastSeen: t0.Add(50 * time.Second), Received: 8, Sent: 4, Acked: 3, Lost: 1,
			RTTMin: 1500 * time.Microsecond, RTTAvg: 2 * time.Millisecond, RTTMax: 2500 * time.Microsecond, RTTLast: 2 * time.Millisecond,
			Peers: []server.PeerState{{PeerReport: server.PeerReport{
				Reach:    ptp.Reach{Peer: b, Path: ptp.PathRelay, Sent: 200, Received: 190, Lost: 10, RTTMin: 900, RTTAvg: 1100, RTTP50: 1000, RTTP99: 2500, RTTMax: 3000, Jitter: 150},
				PeerAddr: netip.MustParseAddrPort("203.0.113.9:50001"), Reason: "both NATs map per destination: relayed"}}},
		}, {
			ClientInfo: server.ClientInfo{UUID: b, Addr: netip.MustParseAddrPort("203.0.113.9:50001"), Version: 2},
			Joined:     t0, LastSeen: t0, Received: 1, Sent: 1,
		}},
	}
}

// TestTextSummary: the original's table columns (Avg RTT in seconds with %f, addresses as
// Python tuples), then one line per reported peer and the counters. Expected text by hand.
func TestTextSummary(t *testing.T) {
	var out bytes.Buffer
	newPrinter(&out, false).summary(sampleSnapshot())
	want := `--- ptpserver 0.0.0.0:23456: 2 clients
Address                  Mesh     Ver  Pkts Sent  Pkts Rcvd  Acks Lost  Avg RTT
('198.51.100.7', 40000)  lab      3    4          8          1          0.002000
('203.0.113.9', 50001)   default  2    1          1          0          0.000000
  198.51.100.7:40000 port mapping: upnp-igd 198.51.100.7:23456
  198.51.100.7:40000 -> 203.0.113.9:50001: relay, loss 10/200, rtt avg 1.100 ms (both NATs map per destination: relayed)
received 10, sent 12, bad checksum 1, malformed 0, stun 2, relayed 3, relay refused 0, joined 2, left 0
`
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}

// TestJSONSummary: the summary's fields and units (ms, loss %), as ptpclient's peers.
func TestJSONSummary(t *testing.T) {
	var out bytes.Buffer
	newPrinter(&out, true).summary(sampleSnapshot())
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	c := got["clients"].([]any)[0].(map[string]any)
	p := c["peers"].([]any)[0].(map[string]any)
	rtt := p["rtt_ms"].(map[string]any)
	nat := c["nat"].(map[string]any)
	checks := map[string][2]any{
		"type":      {got["type"], "summary"},
		"server":    {got["server"], "0.0.0.0:23456"},
		"uuid":      {c["uuid"], "aa000000000000000000000000000000"},
		"mesh":      {c["mesh"], "lab"},
		"rtt avg":   {c["rtt_ms"].(map[string]any)["avg"], 2.0},
		"lost":      {c["lost"], 1.0},
		"nat":       {nat["mapping"], "address-and-port-dependent"},
		"hairpin":   {nat["hairpin"], "no"},
		"peer path": {p["path"], "relay"},
		"loss_pct":  {p["loss_pct"], 5.0},
		"p99":       {rtt["p99"], 2.5},
		"jitter":    {p["jitter_ms"], 0.15},
		"reason":    {p["reason"], "both NATs map per destination: relayed"},
		"bad csum":  {got["stats"].(map[string]any)["bad_checksum"], 1.0},
	}
	pm := c["port_mapping"].([]any)
	if len(pm) != 2 {
		t.Fatalf("port_mapping %v", c["port_mapping"])
	}
	up, pcp := pm[0].(map[string]any), pm[1].(map[string]any)
	checks["pm protocol"] = [2]any{up["protocol"], "upnp-igd"}
	checks["pm external"] = [2]any{up["external"], "198.51.100.7:23456"}
	checks["pm lifetime"] = [2]any{up["lifetime_s"], 3600.0}
	checks["pm no gateway"] = [2]any{pcp["gateway"], ""}
	for name, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s: %v, want %v", name, c[0], c[1])
		}
	}
	if c2 := got["clients"].([]any)[1].(map[string]any); c2["nat"] != nil || len(c2["peers"].([]any)) != 0 || c2["port_mapping"] != nil {
		t.Errorf("legacy client %v", c2)
	}
}

// TestEvents: join/leave lines in text and JSON.
func TestEvents(t *testing.T) {
	ci := server.ClientInfo{Time: time.Date(2026, 12, 7, 18, 0, 0, 0, time.UTC), Addr: netip.MustParseAddrPort("198.51.100.7:40000"), Version: 2}
	var out bytes.Buffer
	p := newPrinter(&out, false)
	p.Joined(ci)
	p.Left(ci, "expired")
	want := "2026-12-07T18:00:00Z join  ('198.51.100.7', 40000) uuid 00000000000000000000000000000000 mesh default version 2\n" +
		"2026-12-07T18:00:00Z leave ('198.51.100.7', 40000) uuid 00000000000000000000000000000000 mesh default (expired)\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
	out.Reset()
	p = newPrinter(&out, true)
	p.Left(ci, "shutdown")
	if !strings.Contains(out.String(), `"type":"leave"`) || !strings.Contains(out.String(), `"reason":"shutdown"`) || !strings.Contains(out.String(), `"address":"198.51.100.7:40000"`) {
		t.Errorf("json %s", out.String())
	}
}

// TestReports: report lines only with --json --reports.
func TestReports(t *testing.T) {
	rep := server.Report{Client: server.ClientInfo{Addr: netip.MustParseAddrPort("198.51.100.7:40000"), Version: 3, Mesh: "lab"},
		Peers: []server.PeerReport{{Reach: ptp.Reach{Path: ptp.PathDirect, Sent: 10, Received: 10}}}}
	for _, c := range []struct {
		js, reports bool
		want        string
	}{{false, true, ""}, {true, false, ""}, {true, true, `"type":"report"`}} {
		var out bytes.Buffer
		p := newPrinter(&out, c.js)
		p.reports = c.reports
		p.Reported(rep)
		if (c.want == "") != (out.Len() == 0) || !strings.Contains(out.String(), c.want) {
			t.Errorf("json %v reports %v: %q", c.js, c.reports, out.String())
		}
	}
}
