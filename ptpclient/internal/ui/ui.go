// Package ui is ptpclient's terminal interface: the original's urwid layout (reference §6) in
// tcell — header, a table of the server and every peer, a log pane and a status pane — plus the
// columns Path, Loss %, RTT avg and Jitter.
package ui

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/gdamore/tcell/v2"

	"github.com/probekit/probekit/ptpclient/internal/client"
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

// UI is the terminal interface.
type UI struct {
	cfg    Config
	s      tcell.Screen
	mu     sync.Mutex
	lines  []string
	closed bool
}

// Styles of the original (urwid palette).
var (
	styleHeader = tcell.StyleDefault.Foreground(tcell.ColorYellow).Background(tcell.ColorDarkBlue)
	styleTitle  = tcell.StyleDefault.Foreground(tcell.ColorLightGreen).Background(tcell.ColorDarkBlue)
	styleServer = tcell.StyleDefault.Foreground(tcell.ColorLightGray)
	styleClient = tcell.StyleDefault.Foreground(tcell.ColorYellow)
	stylePane   = tcell.StyleDefault
)

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
	if err := s.Init(); err != nil {
		return nil, err
	}
	return &UI{cfg: cfg, s: s}, nil
}

// Log appends a line to the log pane.
func (u *UI) Log(line string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.lines = append(u.lines, line)
	if len(u.lines) > 1000 {
		u.lines = append(u.lines[:0], u.lines[len(u.lines)-u.cfg.LogLines:]...)
	}
}

// Run draws snapshot() twice a second until ctx ends; q, Q and Ctrl-C call quit.
func (u *UI) Run(ctx context.Context, quit func(), snapshot func() client.Summary) {
	events := make(chan tcell.Event, 16)
	stop := make(chan struct{})
	go u.s.ChannelEvents(events, stop)
	defer close(stop)
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	u.Draw(snapshot())
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			switch ev := ev.(type) {
			case *tcell.EventKey:
				u.Log(fmt.Sprintf("inkey=%s", ev.Name()))
				if ev.Key() == tcell.KeyCtrlC || (ev.Key() == tcell.KeyRune && (ev.Rune() == 'q' || ev.Rune() == 'Q')) {
					quit()
					return
				}
			case *tcell.EventResize:
				u.s.Sync()
			}
			u.Draw(snapshot())
		case <-t.C:
			u.Draw(snapshot())
		}
	}
}

// Close restores the terminal.
func (u *UI) Close() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.closed {
		u.closed = true
		u.s.Fini()
	}
}

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

// Draw renders one frame.
func (u *UI) Draw(s client.Summary) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return
	}
	scr := u.s
	scr.Clear()
	w, h := scr.Size()
	fill(scr, 0, 0, w, styleHeader)
	put(scr, 0, 0, w, fmt.Sprintf("PTP Client version %s (protocol version 3)", u.cfg.Version), styleHeader)
	// Column widths by weight.
	total := 0
	for _, c := range columns {
		total += c.weight
	}
	xs := make([]int, len(columns)+1)
	for i, c := range columns {
		xs[i+1] = xs[i] + w*c.weight/total
	}
	xs[len(columns)] = w
	fill(scr, 0, 1, w, styleTitle)
	for i, c := range columns {
		put(scr, xs[i], 1, xs[i+1]-xs[i]-1, c.title, styleTitle)
	}
	footer := u.cfg.LogLines + 2
	y := 2
	rows := []client.PeerReport{s.ServerR}
	rows[0].Address = s.Server
	rows = append(rows, s.Peers...)
	for i, r := range rows {
		if y >= h-footer {
			break
		}
		st := styleClient
		if i == 0 {
			st = styleServer
		}
		for j, cell := range Row(r) {
			put(scr, xs[j], y, xs[j+1]-xs[j]-1, cell, st)
		}
		y++
	}
	// Footer: log (weight 4) and status (weight 2).
	fy := h - footer
	if fy < y {
		fy = y
	}
	lw := w * 4 / 6
	put(scr, 0, fy, lw-1, "Log output", styleTitle)
	put(scr, lw, fy, w-lw, "Status", styleTitle)
	lines := u.lines
	if len(lines) > u.cfg.LogLines {
		lines = lines[len(lines)-u.cfg.LogLines:]
	}
	for i, l := range lines {
		put(scr, 0, fy+1+i, lw-1, l, stylePane)
	}
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
	for i, l := range status {
		if fy+1+i < h {
			put(scr, lw, fy+1+i, w-lw, l, stylePane)
		}
	}
	scr.Show()
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

func fill(s tcell.Screen, x, y, w int, st tcell.Style) {
	for i := 0; i < w; i++ {
		s.SetContent(x+i, y, ' ', nil, st)
	}
}

func put(s tcell.Screen, x, y, w int, text string, st tcell.Style) {
	i := 0
	for _, r := range text {
		if i >= w {
			break
		}
		s.SetContent(x+i, y, r, nil, st)
		i++
	}
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
