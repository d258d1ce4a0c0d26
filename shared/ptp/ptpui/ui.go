// Package ptpui draws the PtP test terminal screen with the original ptptest layout (urwid
// there, tcell/v2 here): a header, a table of peers, a log pane and a status pane; q quits.
// ptpserver and ptpclient fill it with their own rows.
package ptpui

import (
	"context"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/gdamore/tcell/v2"
)

// The original's palette (urwid 16-colour names).
var (
	StyleHeader      = tcell.StyleDefault.Foreground(tcell.ColorYellow).Background(tcell.ColorNavy)
	StyleTableHeader = tcell.StyleDefault.Foreground(tcell.ColorLime).Background(tcell.ColorNavy)
	StyleServerRow   = tcell.StyleDefault.Foreground(tcell.ColorSilver)
	StyleClientRow   = tcell.StyleDefault.Foreground(tcell.ColorYellow)
	StylePaneTitle   = tcell.StyleDefault.Foreground(tcell.ColorLime).Background(tcell.ColorNavy)
	StyleText        = tcell.StyleDefault
)

// Column is a table column: a title and a relative width (the original: Address 3, others 1).
type Column struct {
	Title  string
	Weight int
}

// Row is a table row; Server rows are drawn light grey above the yellow client rows.
type Row struct {
	Cells  []string
	Server bool
}

// UI is the screen. Its methods are safe for concurrent use.
type UI struct {
	mu       sync.Mutex
	scr      tcell.Screen
	title    string
	cols     []Column
	rows     []Row
	status   []string
	logs     []string
	loglines int
	closed   bool
}

// New takes over scr (a real screen from tcell.NewScreen, or a simulation screen in tests),
// initialises it and draws the empty layout. loglines is the log pane height (--loglines).
func New(scr tcell.Screen, title string, cols []Column, loglines int) (*UI, error) {
	if err := scr.Init(); err != nil {
		return nil, err
	}
	if loglines < 1 {
		loglines = 1
	}
	u := &UI{scr: scr, title: title, cols: cols, loglines: loglines}
	u.Draw()
	return u, nil
}

// SetRows replaces the table body.
func (u *UI) SetRows(rows []Row) {
	u.mu.Lock()
	u.rows = rows
	u.mu.Unlock()
	u.Draw()
}

// SetStatus replaces the status pane lines (e.g. "Address: ip:port", "NAT type: …").
func (u *UI) SetStatus(lines []string) {
	u.mu.Lock()
	u.status = lines
	u.mu.Unlock()
	u.Draw()
}

// Log appends a line to the log pane (the last loglines lines are shown).
func (u *UI) Log(line string) {
	u.mu.Lock()
	for _, l := range strings.Split(strings.TrimRight(line, "\n"), "\n") {
		u.logs = append(u.logs, l)
	}
	if n := len(u.logs) - u.loglines; n > 0 {
		u.logs = append(u.logs[:0], u.logs[n:]...)
	}
	u.mu.Unlock()
	u.Draw()
}

// LogWriter returns a writer whose lines go to the log pane (for a logger while the screen
// is up, so log output does not tear the screen).
func (u *UI) LogWriter() *LogWriter { return &LogWriter{u: u} }

// LogWriter adapts UI.Log to io.Writer.
type LogWriter struct{ u *UI }

func (w *LogWriter) Write(b []byte) (int, error) {
	w.u.Log(string(b))
	return len(b), nil
}

// Logs returns the lines in the log pane.
func (u *UI) Logs() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.logs...)
}

// Run handles keys until ctx ends or the user quits (q, Q, Ctrl-C), then calls quit. Every key
// is logged as the original does ("inkey=…"). A resize redraws.
func (u *UI) Run(ctx context.Context, quit func()) {
	evs := make(chan tcell.Event, 16)
	stop := make(chan struct{})
	go u.scr.ChannelEvents(evs, stop)
	defer close(stop)
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-evs:
			switch e := ev.(type) {
			case *tcell.EventResize:
				u.scr.Sync()
				u.Draw()
			case *tcell.EventKey:
				name := e.Name()
				if e.Key() == tcell.KeyRune {
					name = string(e.Rune())
				}
				u.Log("inkey=" + name)
				if e.Key() == tcell.KeyCtrlC || (e.Key() == tcell.KeyRune && (e.Rune() == 'q' || e.Rune() == 'Q')) {
					quit()
					return
				}
			}
		}
	}
}

// Fini restores the terminal.
func (u *UI) Fini() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.closed {
		u.closed = true
		u.scr.Fini()
	}
}

func (u *UI) put(x, y, w int, s string, st tcell.Style) {
	i := 0
	for _, r := range s {
		if i >= w {
			break
		}
		u.scr.SetContent(x+i, y, r, nil, st)
		i++
	}
	for ; i < w; i++ {
		u.scr.SetContent(x+i, y, ' ', nil, st)
	}
}

// widths splits total by weights.
func widths(total int, weights []int) []int {
	sum := 0
	for _, w := range weights {
		sum += max(w, 1)
	}
	out := make([]int, len(weights))
	used := 0
	for i, w := range weights {
		out[i] = total * max(w, 1) / sum
		used += out[i]
	}
	if len(out) > 0 {
		out[len(out)-1] += total - used
	}
	return out
}

// Draw renders the whole screen.
func (u *UI) Draw() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return
	}
	s := u.scr
	s.Clear()
	w, h := s.Size()
	if w <= 0 || h <= 0 {
		return
	}
	u.put(0, 0, w, u.title, StyleHeader)
	ws := make([]int, len(u.cols))
	for i, c := range u.cols {
		ws[i] = c.Weight
	}
	cw := widths(w, ws)
	x := 0
	for i, c := range u.cols {
		u.put(x, 1, cw[i], c.Title, StyleTableHeader)
		x += cw[i]
	}
	footer := u.loglines + 1
	bodyEnd := max(h-footer, 2)
	y := 2
	for _, srv := range []bool{true, false} {
		for _, r := range u.rows {
			if r.Server != srv || y >= bodyEnd {
				continue
			}
			st := StyleClientRow
			if r.Server {
				st = StyleServerRow
			}
			x = 0
			for i := range u.cols {
				cell := ""
				if i < len(r.Cells) {
					cell = r.Cells[i]
				}
				if utf8.RuneCountInString(cell) >= cw[i] && cw[i] > 1 {
					cell = string([]rune(cell)[:cw[i]-1])
				}
				u.put(x, y, cw[i], cell, st)
				x += cw[i]
			}
			y++
		}
	}
	fw := widths(w, []int{4, 2})
	top := h - footer
	if top < 2 {
		top = 2
	}
	u.put(0, top, fw[0], "Log output", StylePaneTitle)
	u.put(fw[0], top, fw[1], "Status", StylePaneTitle)
	for i := 0; i < u.loglines && top+1+i < h; i++ {
		line := ""
		if i < len(u.logs) {
			line = u.logs[i]
		}
		u.put(0, top+1+i, fw[0]-1, line, StyleText)
		st := ""
		if i < len(u.status) {
			st = u.status[i]
		}
		u.put(fw[0], top+1+i, fw[1], st, StyleText)
	}
	s.Show()
}
