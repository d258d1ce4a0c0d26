package ptpbulk

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
)

// Printer shows progress: a bar redrawn in place on a terminal, JSON lines otherwise.
type Printer struct {
	mu       sync.Mutex
	w        io.Writer
	terminal bool
	drawn    bool
}

// NewPrinter writes to w; terminal selects the bar.
func NewPrinter(w io.Writer, terminal bool) *Printer { return &Printer{w: w, terminal: terminal} }

// ProgressJSON is one progress line (type "progress").
type ProgressJSON struct {
	Type        string  `json:"type"`
	Role        string  `json:"role"`
	Name        string  `json:"name"`
	Size        int64   `json:"size"`
	Done        int64   `json:"done"`
	Percent     float64 `json:"percent"`
	ElapsedS    float64 `json:"elapsed_s"`
	GoodputBps  float64 `json:"goodput_bps"`
	Retransmits int64   `json:"retransmits"`
	RTTms       float64 `json:"rtt_ms,omitempty"`
	Window      int     `json:"window,omitempty"`
}

func percent(done, size int64) float64 {
	if size == 0 {
		return 100
	}
	return 100 * float64(done) / float64(size)
}

// Update prints one progress snapshot.
func (p *Printer) Update(pr Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pct := percent(pr.Done, pr.Size)
	if !p.terminal {
		b, _ := json.Marshal(ProgressJSON{Type: "progress", Role: pr.Role, Name: pr.Name, Size: pr.Size, Done: pr.Done,
			Percent: pct, ElapsedS: pr.Elapsed.Seconds(), GoodputBps: pr.GoodputBps, Retransmits: pr.Retransmits,
			RTTms: float64(pr.RTT) / 1e6, Window: pr.Window})
		fmt.Fprintf(p.w, "%s\n", b)
		return
	}
	const width = 30
	fill := int(pct / 100 * width)
	bar := strings.Repeat("#", fill) + strings.Repeat(".", width-fill)
	fmt.Fprintf(p.w, "\r%s [%s] %5.1f%% %s/%s %s/s retx %d rtt %.1f ms ", pr.Name, bar, pct, human(pr.Done), human(pr.Size),
		human(int64(pr.GoodputBps)), pr.Retransmits, float64(pr.RTT)/1e6)
	p.drawn = true
}

// Finish ends the bar's line (terminal) so what follows starts on a new line.
func (p *Printer) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.terminal && p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}

// ReportJSON is the final line (type "transfer").
type ReportJSON struct {
	Type string `json:"type"`
	Report
	DurationS float64 `json:"duration_s"`
	RTTMinMs  float64 `json:"rtt_min_ms"`
	RTTAvgMs  float64 `json:"rtt_avg_ms"`
	Error     string  `json:"error,omitempty"`
}

// FinalJSON is the report as its JSON line value.
func FinalJSON(r Report, err error) ReportJSON {
	j := ReportJSON{Type: "transfer", Report: r, DurationS: r.Duration.Seconds(), RTTMinMs: float64(r.RTTMin) / 1e6,
		RTTAvgMs: float64(r.RTTAvg) / 1e6}
	if err != nil {
		j.Error = err.Error()
	}
	return j
}

// Summary is the report in one human line.
func Summary(r Report) string {
	verdict := "FAILED"
	if r.OK {
		verdict = "ok, SHA-256 verified"
	}
	rtt := ""
	if r.RTTAvg > 0 { // the receiver measures it
		rtt = fmt.Sprintf(", RTT min %.2f ms avg %.2f ms", float64(r.RTTMin)/1e6, float64(r.RTTAvg)/1e6)
	}
	s := fmt.Sprintf("%s %s: %s in %.2f s, goodput %s/s (%.1f Mbit/s), %d retransmitted blocks%s: %s",
		r.Role, r.Name, human(r.Size), r.Duration.Seconds(), human(int64(r.GoodputBps)), r.GoodputBps*8/1e6, r.Retransmits,
		rtt, verdict)
	if r.Resumed > 0 {
		s += fmt.Sprintf(" (resumed with %s already there)", human(r.Resumed))
	}
	return s
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
