// Package ui is ptpclient's terminal interface: the original's urwid layout (reference §6, drawn
// by shared/ptp/ptpui) — header, a table of the server and every peer, a log pane and a status
// pane — plus the columns Path, Loss %, RTT avg and Jitter.
package ui

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/gdamore/tcell/v2"

	"github.com/probekit/probekit/ptpclient/internal/client"
	"github.com/probekit/probekit/shared/ptp/ptpui"
)

// Config configures the UI.
type Config struct {
	// LogLines is the height of the log pane (--loglines).
	LogLines int
	// Version is shown in the header.
	Version string
	// Screen, when set, is used instead of the terminal (tests pass a simulation screen).
	Screen tcell.Screen
}

// UI is the terminal interface: shared/ptp/ptpui (the layout ptpserver uses too) filled with
// the client's rows and status.
type UI struct {
	u    *ptpui.UI
	once sync.Once
}

// New opens the terminal (or cfg.Screen).
func New(cfg Config) (*UI, error) {
	if cfg.LogLines <= 0 {
		cfg.LogLines = 10
	}
	s := cfg.Screen
	if s == nil {
		var err error
		if s, err = tcell.NewScreen(); err != nil {
			return nil, err
		}
	}
	cols := make([]ptpui.Column, len(columns))
	for i, c := range columns {
		cols[i] = ptpui.Column{Title: c.title, Weight: c.weight}
	}
	u, err := ptpui.New(s, fmt.Sprintf("PTP Client version %s (protocol version 3)", cfg.Version), cols, cfg.LogLines)
	if err != nil {
		return nil, err
	}
	return &UI{u: u}, nil
}

// Log appends a line to the log pane.
func (u *UI) Log(line string) { u.u.Log(line) }

// LogWriter is an io.Writer for the logger while the screen is up.
func (u *UI) LogWriter() io.Writer { return u.u.LogWriter() }

// Logs returns the log pane's lines.
func (u *UI) Logs() []string { return u.u.Logs() }

// Run redraws from snapshot() twice a second until ctx ends; q, Q and Ctrl-C call quit.
func (u *UI) Run(ctx context.Context, quit func(), snapshot func() client.Summary) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			u.Draw(snapshot())
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	u.u.Run(ctx, quit)
}

// Close restores the terminal.
func (u *UI) Close() { u.once.Do(u.u.Fini) }

// tuple renders an address as the original did (a Python tuple repr).
func tuple(a string) string {
	ap, err := netip.ParseAddrPort(a)
	if err != nil {
		return a
	}
	return fmt.Sprintf("('%s', %d)", ap.Addr(), ap.Port())
}

// Columns: the original's five (Address weight 3, the others weight 1) and the new four.
var columns = []struct {
	title  string
	weight int
}{
	{"Address", 3}, {"Pkts Sent", 1}, {"Pkts Rcvd", 1}, {"Acks Lost", 1}, {"Avg RTT", 1},
	{"Path", 1}, {"Loss %", 1}, {"RTT avg", 1}, {"Jitter", 1},
}

// Row returns the cells of one table row (exported for tests).
func Row(r client.PeerReport) []string {
	return []string{
		tuple(r.Address),
		fmt.Sprint(r.Sent),
		fmt.Sprint(r.Rcvd),
		fmt.Sprint(r.Lost),
		fmt.Sprintf("%f", r.RTT.Avg/1e3), // seconds, %f as the original; a real average (B5)
		r.Path,
		fmt.Sprintf("%.2f", r.LossPct),
		fmt.Sprintf("%.3f ms", r.RTT.Avg),
		fmt.Sprintf("%.3f ms", r.JitterMs),
	}
}

// Draw renders one frame: the server's row above the peers', and the status pane.
func (u *UI) Draw(s client.Summary) {
	srv := s.ServerR
	srv.Address = s.Server
	rows := []ptpui.Row{{Cells: Row(srv), Server: true}}
	for _, p := range s.Peers {
		rows = append(rows, ptpui.Row{Cells: Row(p)})
	}
	u.u.SetRows(rows)
	pub := s.Self.Public
	if pub == "" {
		pub = "unknown"
	}
	status := []string{
		"Address: " + pub,
		"Local: " + s.Self.Local,
		"NAT type: " + natLabel(s.Self.NAT),
		"NAT address: " + pub,
		"Hairpin: " + s.Self.NAT.Hairpin,
	}
	for _, p := range s.Self.PortMaps { // --port-mapping: a line per protocol (the pane is narrow)
		status = append(status, "Port map "+p.String())
	}
	u.u.SetStatus(status)
	u.u.Draw()
}

func natLabel(n client.NATReport) string {
	short := func(s string) string {
		switch s {
		case "endpoint-independent":
			return "EI"
		case "address-dependent":
			return "AD"
		case "address-and-port-dependent":
			return "APD"
		}
		return "?"
	}
	return fmt.Sprintf("mapping %s, filtering %s", short(n.Mapping), short(n.Filtering))
}

// Contents returns the text of a simulation screen, one string per row (for tests).
func Contents(s tcell.SimulationScreen) []string {
	cells, w, h := s.GetContents()
	out := make([]string, h)
	for y := 0; y < h; y++ {
		var b strings.Builder
		for x := 0; x < w; x++ {
			c := cells[y*w+x]
			if len(c.Runes) > 0 {
				b.WriteRune(c.Runes[0])
			} else {
				b.WriteByte(' ')
			}
		}
		out[y] = strings.TrimRight(b.String(), " ")
	}
	return out
}
