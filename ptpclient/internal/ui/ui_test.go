package ui

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"

	"github.com/probekit/probekit/ptpclient/internal/client"
	"github.com/probekit/probekit/shared/ptp"
)

func summary() client.Summary {
	return client.Summary{
		Server:  "45.71.0.10:23456",
		Self:    client.SelfReport{Local: "10.0.1.2:20000", Public: "45.71.0.101:20000", NAT: client.NATReport{Mapping: "endpoint-independent", Filtering: "address-and-port-dependent"}},
		ServerR: client.PeerReport{Path: "direct", Sent: 3, Rcvd: 5, RTT: client.RTT{Avg: 0.5}},
		Peers: []client.PeerReport{
			{Address: "207.162.195.200:23456", Path: "relay", Sent: 10, Rcvd: 9, Received: 9, Lost: 1, LossPct: 10, RTT: client.RTT{Avg: 12.5}, JitterMs: 0.25},
		},
	}
}

func TestDraw(t *testing.T) {
	scr := tcell.NewSimulationScreen("UTF-8")
	u, err := New(Config{LogLines: 3, Version: "0.2-dev", Screen: scr})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	scr.SetSize(160, 20)
	u.Log("Server sees us as 45.71.0.101:20000")
	u.Draw(summary())
	rows := Contents(scr)
	text := strings.Join(rows, "\n")
	for _, want := range []string{
		"PTP Client version 0.2-dev",
		"Address", "Pkts Sent", "Pkts Rcvd", "Acks Lost", "Avg RTT", "Path", "Loss %", "RTT avg", "Jitter",
		"('45.71.0.10', 23456)", "('207.162.195.200', 23456)", "0.012500", "relay", "10.00", "12.500 ms", "0.250 ms",
		"Log output", "Status", "Server sees us as 45.71.0.101:20000",
		"Address: 45.71.0.101:20000", "NAT type: mapping EI, filtering APD",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("screen lacks %q:\n%s", want, text)
		}
	}
	// Server row above client rows, in their colours.
	cells, w, _ := scr.GetContents()
	fgServer, _, _ := cells[2*w].Style.Decompose()
	fgClient, _, _ := cells[3*w].Style.Decompose()
	if fgServer != tcell.ColorSilver || fgClient != tcell.ColorYellow {
		t.Errorf("row colours %v %v", fgServer, fgClient)
	}
	if !strings.HasPrefix(rows[2], "('45.71.0.10', 23456)") || !strings.HasPrefix(rows[3], "('207.162.195.200', 23456)") {
		t.Errorf("row order:\n%s", text)
	}
}

// TestDrawPortMapping: with --port-mapping the status pane has one line with every protocol's
// outcome (the values the client sends to the server as PORTMAP), one line each.
func TestDrawPortMapping(t *testing.T) {
	scr := tcell.NewSimulationScreen("UTF-8")
	u, err := New(Config{LogLines: 10, Version: "0.2-dev", Screen: scr})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	scr.SetSize(160, 30)
	s := summary()
	u.Draw(s)
	if text := strings.Join(Contents(scr), "\n"); strings.Contains(text, "Port map") {
		t.Fatalf("port-mapping line without --port-mapping:\n%s", text)
	}
	s.Self.PortMaps = []ptp.PortMap{
		{Protocol: ptp.PortMapUPnP, Status: ptp.PortMapNoGateway},
		{Protocol: ptp.PortMapNATPMP, Status: ptp.PortMapGranted, Lifetime: 7200, External: netip.MustParseAddrPort("198.51.100.7:4000")},
		{Protocol: ptp.PortMapPCP, Status: ptp.PortMapError},
	}
	u.Draw(s)
	text := strings.Join(Contents(scr), "\n")
	for _, want := range []string{"Port map upnp-igd: no gateway", "Port map nat-pmp: 198.51.100.7:4000 (7200 s)", "Port map pcp: error"} {
		if !strings.Contains(text, want) {
			t.Errorf("screen lacks %q:\n%s", want, text)
		}
	}
}

func TestQuitKey(t *testing.T) {
	scr := tcell.NewSimulationScreen("UTF-8")
	u, err := New(Config{LogLines: 3, Version: "x", Screen: scr})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		u.Run(context.Background(), func() { close(quit) }, summary)
		close(done)
	}()
	scr.InjectKey(tcell.KeyRune, 'x', 0)
	scr.InjectKey(tcell.KeyRune, 'q', 0)
	select {
	case <-quit:
	case <-time.After(10 * time.Second):
		t.Fatal("q did not quit")
	}
	<-done
	logged := strings.Join(u.Logs(), "|")
	if !strings.Contains(logged, "inkey=x") {
		t.Errorf("key presses not logged: %s", logged)
	}
}
