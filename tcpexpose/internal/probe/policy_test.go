package probe

import (
	"context"
	"slices"
	"testing"

	"github.com/probekit/probekit/shared/tcpcraft"
)

// TestPairPolicy: the original's policy (TX-2) on scripted outcomes. Pairs: agreeing pair →
// 2 runs, stable; disagreeing then agreeing → 4 runs, the last pair's first result; two
// disagreeing pairs → 4 runs, unstable, the first result of the last pair (not of the first).
// Coalescing tests: up to 10 tries, the first coalesced result ends them; never coalesced →
// a 0 if any try said 0.
func TestPairPolicy(t *testing.T) {
	for _, c := range []struct {
		name     string
		coalesce bool
		script   []int // Syn codes of the successive runs
		runs     int
		kept     int
		stable   bool
	}{
		{"agree", false, []int{0, 0}, 2, 0, true},
		{"second pair agrees", false, []int{0, 1, 2, 2}, 4, 2, true},
		{"never agrees", false, []int{0, 1, 2, 1}, 4, 2, false},
		{"only two pairs", false, []int{1, 0, 0, 2, 0, 0}, 4, 0, false},
		{"coalesced on the third try", true, []int{0, 0, 1, 0}, 3, 1, true},
		{"never coalesced", true, []int{-1, 0, -1, -1, -1, -1, -1, -1, -1, -1, 1}, 10, 0, true},
		{"never ran", true, []int{-1, -1, -1, -1, -1, -1, -1, -1, -1, -1}, 10, -1, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			i := 0
			tt := Test{Name: "syn", Keys: []string{"Syn"}, Coalesce: c.coalesce, run: func(context.Context, *runner) (*outcome, error) {
				o := newOutcome("Syn")
				o.keys["Syn"] = c.script[i]
				i++
				return o, nil
			}}
			r := &runner{e: &Engine{rec: &tcpcraft.Recorder{}}}
			res, err := r.runTest(context.Background(), tt)
			if err != nil {
				t.Fatal(err)
			}
			if res.Runs != c.runs || i != c.runs || res.Codes["Syn"] != c.kept || res.Stable != c.stable {
				t.Errorf("runs %d (called %d), kept %d, stable %v; want %d, %d, %v", res.Runs, i, res.Codes["Syn"], res.Stable, c.runs, c.kept, c.stable)
			}
			if unstable := slices.Contains(res.Conditions, "result.unstable"); unstable == c.stable {
				t.Errorf("conditions %v with stable %v", res.Conditions, res.Stable)
			}
		})
	}
}

// TestAbandon: the run stops after a failed Syn or Data (Summary.Abandoned names it, later
// tests keep −1), and completes when both pass.
func TestAbandon(t *testing.T) {
	for _, c := range []struct {
		syn, data int
		abandoned string
		ran       []string
	}{
		{0, 0, "", []string{"syn", "data", "seq_hole"}},
		{1, 0, "Syn", []string{"syn"}},
		{2, 0, "Syn", []string{"syn"}},
		{0, 1, "Data", []string{"syn", "data"}},
	} {
		var ran []string
		fake := func(name, key string, code int) Test {
			return Test{Name: name, Keys: []string{key}, run: func(context.Context, *runner) (*outcome, error) {
				ran = append(ran, name)
				o := newOutcome(key)
				o.keys[key] = code
				return o, nil
			}}
		}
		cat := []Test{fake("syn", "Syn", c.syn), fake("data", "Data", c.data), fake("seq_hole", "SeqHole", 0)}
		sum, err := runTests(context.Background(), &Engine{rec: &tcpcraft.Recorder{}}, Config{}, cat)
		if err != nil {
			t.Fatal(err)
		}
		ran = slices.Compact(ran) // each test runs as a pair
		if sum.Abandoned != c.abandoned || !slices.Equal(ran, c.ran) {
			t.Errorf("Syn %d Data %d: abandoned %q after %v; want %q after %v", c.syn, c.data, sum.Abandoned, ran, c.abandoned, c.ran)
		}
		if c.abandoned != "" && sum.Codes["SeqHole"] != -1 {
			t.Errorf("Syn %d Data %d: SeqHole %d after the path was abandoned, want -1", c.syn, c.data, sum.Codes["SeqHole"])
		}
	}
}
