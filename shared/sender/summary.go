package sender

import (
	_ "embed" // the summary schema
	"time"

	"github.com/probekit/probekit/shared/stats"
)

// SummarySchema is the JSON Schema (draft 2020-12) of Summary, summary.schema.json: what every
// active sender's JSON summary holds, whatever the tool adds beside it.
//
//go:embed summary.schema.json
var SummarySchema []byte

// Summary is the part of a JSON summary every active sender shares (SummarySchema). A tool
// embeds it in its own summary struct and adds its fields beside these.
type Summary struct {
	Type       string  `json:"type"` // "summary"
	Tool       string  `json:"tool"`
	Target     string  `json:"target"`
	Sent       uint64  `json:"sent"`
	Received   uint64  `json:"received"`
	Lost       uint64  `json:"lost"`
	LossPct    float64 `json:"loss_pct"`
	Duplicates uint64  `json:"duplicates"`
	Reordered  uint64  `json:"reordered"`
	Late       uint64  `json:"late"`
	Invalid    uint64  `json:"invalid"`
	// RTTms is nil (JSON null) when no reply came back.
	RTTms    *RTTSummary `json:"rtt_ms"`
	JitterMS float64     `json:"jitter_ms"`
}

// RTTSummary is the round-trip time distribution in milliseconds.
type RTTSummary struct {
	Count int64   `json:"count"`
	Min   float64 `json:"min"`
	Avg   float64 `json:"avg"`
	P50   float64 `json:"p50"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

func msOf(d time.Duration) float64 { return float64(d) / 1e6 }

// NewSummary builds the shared summary from a sender's figures: sent packets, the sequence
// statistics of the replies, late and invalid counts, the RTT series and its jitter.
func NewSummary(tool, target string, sent uint64, seq *stats.Sequence, late, invalid uint64, rtt *stats.Series, jitter *stats.Jitter) Summary {
	seq.SetSent(sent)
	s := Summary{Type: "summary", Tool: tool, Target: target, Sent: sent, Received: seq.Received(), Lost: seq.Lost(),
		LossPct: 100 * seq.Loss(), Duplicates: seq.Duplicates(), Reordered: seq.Reordered(), Late: late, Invalid: invalid,
		JitterMS: msOf(jitter.Value())}
	if rtt.Count() > 0 {
		s.RTTms = &RTTSummary{Count: rtt.Count(), Min: msOf(rtt.Min()), Avg: rtt.MeanNanos() / 1e6, P50: msOf(rtt.Percentile(50)),
			P99: msOf(rtt.Percentile(99)), Max: msOf(rtt.Max())}
	}
	return s
}

// Summary returns the shared summary of a pipeline's statistics.
func (st *Stats) Summary(tool, target string) Summary {
	return NewSummary(tool, target, st.Sent, &st.Seq, st.Late, st.Invalid(), &st.RTT, &st.Jitter)
}
