package spp

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
)

// TestSummaryMatchesTruth: --summary's count, min, nearest-rank median/p90, max and mean of
// the RTTs equal the same figures computed from the truth pairs (true RTT = owd_out+owd_in).
func TestSummaryMatchesTruth(t *testing.T) {
	for _, sc := range []struct {
		files [2]string
		truth string
	}{
		{ping, "spp-ping.truth-pairs.txt"},
		{udpecho, "spp-udpecho.truth-pairs.txt"},
	} {
		var rtts, spts []float64
		for _, p := range readTruth(t, sc.truth) {
			rtts = append(rtts, float64(p.owdOut+p.owdIn))
			spts = append(spts, float64(p.inMon-p.outMon))
		}
		slices.Sort(rtts)
		slices.Sort(spts)
		rank := func(v []float64, p float64) float64 { return v[int(math.Ceil(p/100*float64(len(v))))-1] }
		var sum float64
		for _, v := range rtts {
			sum += v
		}
		cfg := fileConfig(sc.files[0], sc.files[1])
		cfg.Output, cfg.Summary = OutputJSON, true
		out, err := run(t, cfg)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		var s summaryJSON
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &s); err != nil {
			t.Fatal(err)
		}
		r := s.Summary.RTT
		if s.Summary.Pairs != int64(len(rtts)) || len(lines) != len(rtts)+1 || r.Count != int64(len(rtts)) {
			t.Fatalf("%s: %d pairs, truth %d", sc.truth, s.Summary.Pairs, len(rtts))
		}
		got := []float64{r.MinUS, r.P50US, r.P90US, r.MaxUS, s.Summary.SPT.MinUS, s.Summary.SPT.P50US, s.Summary.SPT.MaxUS}
		want := []float64{rtts[0], rank(rtts, 50), rank(rtts, 90), rtts[len(rtts)-1], spts[0], rank(spts, 50), spts[len(spts)-1]}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: summary %v, truth %v", sc.truth, got, want)
		}
		if mean := sum / float64(len(rtts)); math.Abs(r.MeanUS-mean) > 0.001 {
			t.Fatalf("%s: mean %.3f, truth %.3f", sc.truth, r.MeanUS, mean)
		}
	}
	// Text form: comment lines after the pairs.
	cfg := fileConfig(ping[0], ping[1])
	cfg.Summary = true
	out, err := run(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "\n# pairs 299\n# rtt count=299 min_us=20385.000 ") {
		t.Fatalf("text summary:\n%s", out[len(out)-300:])
	}
}
