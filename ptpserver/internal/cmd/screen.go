package cmd

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/gdamore/tcell/v2"

	"github.com/probekit/probekit/ptpserver/internal/server"
	"github.com/probekit/probekit/shared/portmap"
	"github.com/probekit/probekit/shared/ptp"
	"github.com/probekit/probekit/shared/ptp/ptpui"
)

// Columns of the server screen: the original's five plus the mesh and the client's version.
// Port mapping, too wide for an 80-column table, is a status line and a log line per change.
var screenColumns = []ptpui.Column{
	{Title: "Address", Weight: 3}, {Title: "Pkts Sent", Weight: 1}, {Title: "Pkts Rcvd", Weight: 1},
	{Title: "Acks Lost", Weight: 1}, {Title: "Avg RTT", Weight: 1}, {Title: "Mesh", Weight: 1}, {Title: "Ver", Weight: 1},
}

// screenUI is the terminal screen; it is also an Observer so events reach the log pane.
type screenUI struct {
	ui *ptpui.UI

	mu       sync.Mutex
	portMaps map[ptp.UUID]string // last port-mapping summary logged per client
}

// newScreenUI opens the terminal (scr nil) or uses scr (a simulation screen in tests).
func newScreenUI(scr tcell.Screen, loglines int) (*screenUI, error) {
	if scr == nil {
		var err error
		if scr, err = tcell.NewScreen(); err != nil {
			return nil, err
		}
	}
	ui, err := ptpui.New(scr, fmt.Sprintf("PTP Server version %s (protocol version %d)", appVersion, server.Version), screenColumns, loglines)
	if err != nil {
		return nil, err
	}
	return &screenUI{ui: ui, portMaps: map[ptp.UUID]string{}}, nil
}

func (s *screenUI) logWriter() io.Writer { return s.ui.LogWriter() }

func (s *screenUI) fini() { s.ui.Fini() }

// Joined implements server.Observer.
func (s *screenUI) Joined(c server.ClientInfo) {
	s.ui.Log(fmt.Sprintf("Received packet from a new client %s (mesh %s, version %d)", pyAddr(c.Addr), meshName(c.Mesh), c.Version))
}

// Left implements server.Observer.
func (s *screenUI) Left(c server.ClientInfo, reason string) {
	if reason == "expired" {
		s.ui.Log(fmt.Sprintf("Expiring client %s-%d", c.Addr.Addr(), c.Addr.Port()))
		return
	}
	s.ui.Log(fmt.Sprintf("Client %s left (%s)", pyAddr(c.Addr), reason))
}

// Reported implements server.Observer: a client's port-mapping outcome is logged when it
// first arrives and whenever it changes.
func (s *screenUI) Reported(r server.Report) {
	if len(r.Client.PortMaps) == 0 {
		return
	}
	sum := portmap.Summary(portmap.FromTLV(r.Client.PortMaps))
	s.mu.Lock()
	changed := s.portMaps[r.Client.UUID] != sum
	s.portMaps[r.Client.UUID] = sum
	s.mu.Unlock()
	if changed {
		s.ui.Log(fmt.Sprintf("Client %s port mapping: %s", pyAddr(r.Client.Addr), sum))
	}
}

// rows turns a snapshot into table rows.
func rows(snap server.Snapshot) []ptpui.Row {
	out := make([]ptpui.Row, 0, len(snap.Clients))
	for _, c := range snap.Clients {
		out = append(out, ptpui.Row{Cells: []string{
			pyAddr(c.Addr), strconv.FormatUint(c.Sent, 10), strconv.FormatUint(c.Received, 10),
			strconv.FormatUint(c.Lost, 10), fmt.Sprintf("%f", c.RTTAvg.Seconds()), meshName(c.Mesh), strconv.Itoa(int(c.Version)),
		}})
	}
	return out
}

func status(snap server.Snapshot, cfg server.Config) []string {
	st := snap.Stats
	lines := []string{
		"Address: " + snap.Local.String(),
		fmt.Sprintf("Clients: %d", len(snap.Clients)),
		fmt.Sprintf("STUN: %s", map[bool]string{true: "off", false: "on"}[cfg.NoSTUN]),
	}
	var tried, granted int
	for _, c := range snap.Clients {
		if len(c.PortMaps) == 0 {
			continue
		}
		tried++
		for _, r := range portmap.FromTLV(c.PortMaps) {
			if r.Granted() {
				granted++
				break
			}
		}
	}
	if tried > 0 {
		lines = append(lines, fmt.Sprintf("Port mapping: %d of %d granted", granted, tried))
	}
	if cfg.OtherAddress.IsValid() {
		lines = append(lines, "Other address: "+cfg.OtherAddress.String())
	}
	lines = append(lines,
		fmt.Sprintf("Relayed: %d (refused %d)", st.Relayed, st.RelayDropped+st.RelayLimited),
		fmt.Sprintf("Dropped: %d checksum, %d malformed", st.BadChecksum, st.Malformed))
	return lines
}

// run refreshes the screen every second until ctx ends or the user quits (quit is called).
func (s *screenUI) run(ctx context.Context, quit func(), srv *server.Server, cfg server.Config) {
	refresh := func() {
		snap := srv.Snapshot()
		s.ui.SetRows(rows(snap))
		s.ui.SetStatus(status(snap, cfg))
	}
	refresh()
	ctx2, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx2.Done():
				return
			case <-t.C:
				refresh()
			}
		}
	}()
	s.ui.Run(ctx2, quit)
}
