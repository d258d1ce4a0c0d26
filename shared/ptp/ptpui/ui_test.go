package ptpui

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"
)

func screenText(s tcell.SimulationScreen) ([]string, [][]tcell.Style) {
	cells, w, h := s.GetContents()
	lines := make([]string, h)
	styles := make([][]tcell.Style, h)
	for y := 0; y < h; y++ {
		var b strings.Builder
		for x := 0; x < w; x++ {
			c := cells[y*w+x]
			if len(c.Bytes) == 0 {
				b.WriteByte(' ')
			} else {
				b.Write(c.Bytes)
			}
			styles[y] = append(styles[y], c.Style)
		}
		lines[y] = b.String()
	}
	return lines, styles
}

// TestLayout: the original's layout on an 80×24 simulation screen.
func TestLayout(t *testing.T) {
	sim := tcell.NewSimulationScreen("UTF-8")
	u, err := New(sim, "PTP Server version 1.0 (protocol version 3)", []Column{{"Address", 3}, {"Pkts Sent", 1}, {"Pkts Rcvd", 1}, {"Acks Lost", 1}, {"Avg RTT", 1}}, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Fini()
	sim.SetSize(80, 24)
	u.SetRows([]Row{{Cells: []string{"('203.0.113.9', 50001)", "3", "4", "0", "0.000844"}}, {Cells: []string{"('192.0.2.1', 23456)", "1", "1", "0", "0.1"}, Server: true}})
	u.SetStatus([]string{"Address: 0.0.0.0:23456"})
	for i := 0; i < 7; i++ {
		u.Log("line " + string(rune('a'+i)))
	}
	lines, styles := screenText(sim)
	if !strings.HasPrefix(lines[0], "PTP Server version 1.0 (protocol version 3)") || styles[0][0] != StyleHeader {
		t.Errorf("header %q", lines[0])
	}
	// Address weight 3 of 7: 34 columns, then 11 or 12 each.
	if !strings.HasPrefix(lines[1], "Address") || strings.Index(lines[1], "Pkts Sent") != 34 || styles[1][0] != StyleTableHeader {
		t.Errorf("table header %q", lines[1])
	}
	if !strings.HasPrefix(lines[2], "('192.0.2.1', 23456)") || styles[2][0] != StyleServerRow {
		t.Errorf("server row first: %q", lines[2])
	}
	if !strings.HasPrefix(lines[3], "('203.0.113.9', 50001)") || styles[3][0] != StyleClientRow || !strings.Contains(lines[3], "0.000844") {
		t.Errorf("client row: %q", lines[3])
	}
	top := 24 - 6
	if !strings.HasPrefix(lines[top], "Log output") || strings.Index(lines[top], "Status") != 53 {
		t.Errorf("footer titles %q", lines[top])
	}
	if !strings.HasPrefix(lines[top+1], "line c") || !strings.HasPrefix(lines[23], "line g") {
		t.Errorf("log pane shows the last 5 lines: %q .. %q", lines[top+1], lines[23])
	}
	if !strings.Contains(lines[top+1][53:], "Address: 0.0.0.0:23456") {
		t.Errorf("status %q", lines[top+1])
	}
}

// TestQuit: q quits (after logging the key); other keys are only logged.
func TestQuit(t *testing.T) {
	sim := tcell.NewSimulationScreen("UTF-8")
	u, err := New(sim, "t", []Column{{"Address", 3}}, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Fini()
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() { u.Run(context.Background(), func() { close(quit) }); close(done) }()
	sim.InjectKey(tcell.KeyRune, 'x', tcell.ModNone)
	sim.InjectKey(tcell.KeyRune, 'q', tcell.ModNone)
	select {
	case <-quit:
	case <-time.After(20 * time.Second):
		t.Fatal("q did not quit")
	}
	<-done
	logs := u.Logs()
	if len(logs) != 2 || logs[0] != "inkey=x" || logs[1] != "inkey=q" {
		t.Errorf("logs %q", logs)
	}
}
