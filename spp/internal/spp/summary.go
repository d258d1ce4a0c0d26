package spp

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/probekit/probekit/shared/stats"
	"github.com/probekit/probekit/spp/internal/engine"
)

// summary collects the RTT and SPT of every pair for --summary. RTTs are the signed values
// (a negative minimum betrays mismatched packets; the text lines print those as 0).
type summary struct {
	rtt, spt stats.Series
}

func newSummary() *summary { return &summary{} }

func (s *summary) add(p engine.Pair) {
	s.rtt.Add(time.Duration(p.RTT()) * time.Microsecond)
	s.spt.Add(time.Duration(p.SPT()) * time.Microsecond)
}

// summaryJSON is the last line of --json output with --summary.
type summaryJSON struct {
	Summary struct {
		Pairs int64         `json:"pairs"`
		RTT   stats.Summary `json:"rtt"`
		SPT   stats.Summary `json:"spt"`
	} `json:"summary"`
}

// write prints the summary after the pairs: "# " comment lines in text output, one JSON
// object in JSON output, and on stderr for CSV (which has no comment syntax).
func (s *summary) write(w *bufio.Writer, output string, stderr io.Writer) {
	switch output {
	case OutputJSON:
		var j summaryJSON
		j.Summary.Pairs = s.rtt.Count()
		j.Summary.RTT, j.Summary.SPT = s.rtt.Summary(), s.spt.Summary()
		b, _ := json.Marshal(j)
		w.Write(append(b, '\n'))
	case OutputCSV:
		s.text(stderr)
	default:
		s.text(w)
	}
}

func (s *summary) text(w io.Writer) {
	fmt.Fprintf(w, "# pairs %d\n# rtt %s\n# spt %s\n", s.rtt.Count(), s.rtt.Summary(), s.spt.Summary())
}
