package sendertest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/sender"
	"github.com/probekit/probekit/shared/stats"
)

const valid = `{"type":"summary","tool":"t","target":"192.0.2.1:862","sent":4,"received":3,"lost":1,"loss_pct":25,
"duplicates":0,"reordered":1,"late":0,"invalid":2,"rtt_ms":{"count":3,"min":0.1,"avg":0.2,"p50":0.2,"p99":0.3,"max":0.3},
"jitter_ms":0.01,"extra":{"anything":true}}`

// The validator accepts a valid summary and reports each kind of violation (the cases were
// checked against Python's jsonschema 4.26 Draft202012Validator as well).
func TestValidateSummary(t *testing.T) {
	if err := ValidateSummary([]byte(valid)); err != nil {
		t.Fatalf("valid summary refused: %v", err)
	}
	for _, tc := range []struct{ from, to, want string }{
		{`"type":"summary"`, `"type":"packet"`, "want summary"},
		{`"sent":4,`, ``, `missing "sent"`},
		{`"lost":1,`, `"lost":-1,`, "below the minimum"},
		{`"loss_pct":25`, `"loss_pct":250`, "above the maximum"},
		{`"received":3`, `"received":3.5`, "type number, want [integer]"},
		{`"tool":"t"`, `"tool":""`, "shorter than"},
		{`"p99":0.3,`, `"p99":0.3,"p95":1,`, `unexpected property "p95"`},
		{`"count":3`, `"count":0`, "below the minimum"},
		{`"rtt_ms":{"count":3,"min":0.1,"avg":0.2,"p50":0.2,"p99":0.3,"max":0.3}`, `"rtt_ms":[]`, "type array"},
		{`"received":3,"lost":1`, `"received":2,"lost":1`, "!= sent"},
		{`"loss_pct":25`, `"loss_pct":20`, "loss_pct"},
	} {
		doc := strings.Replace(valid, tc.from, tc.to, 1)
		if doc == valid {
			t.Fatalf("case %q does not apply", tc.from)
		}
		if err := ValidateSummary([]byte(doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s -> %s: %v, want %q", tc.from, tc.to, err, tc.want)
		}
	}
}

// NewSummary's output satisfies the schema, with and without replies.
func TestNewSummaryMatchesSchema(t *testing.T) {
	var seq stats.Sequence
	var rtt stats.Series
	var j stats.Jitter
	b, _ := json.Marshal(sender.NewSummary("t", "127.0.0.1:862", 3, &seq, 0, 0, &rtt, &j))
	if err := ValidateSummary(b); err != nil || !strings.Contains(string(b), `"rtt_ms":null`) || !strings.Contains(string(b), `"lost":3`) {
		t.Errorf("no replies: %v %s", err, b)
	}
	for i, d := range []time.Duration{100, 300, 200} {
		seq.Add(uint64(i))
		rtt.Add(d * time.Microsecond)
		j.Add(d * time.Microsecond)
	}
	s := sender.NewSummary("t", "127.0.0.1:862", 4, &seq, 1, 2, &rtt, &j)
	b, _ = json.Marshal(s)
	if err := ValidateSummary(b); err != nil {
		t.Fatal(err, string(b))
	}
	if r := s.RTTms; r.Count != 3 || r.Min != 0.1 || r.Max != 0.3 || r.Avg != 0.2 || r.P50 != 0.2 || s.Lost != 1 || s.LossPct != 25 {
		t.Errorf("%+v %+v", s, *r)
	}
}
