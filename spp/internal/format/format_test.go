package format

import (
	"fmt"
	"testing"

	"github.com/probekit/probekit/spp/internal/engine"
)

// The first pair of the ping golden file (testdata/spp-ping.truth-pairs.txt line 1).
var pingPair = engine.Pair{
	Out: engine.Record{Ref: 1795410054482092, Mon: 1795410054492724},
	In:  engine.Record{Ref: 1795410054503410, Mon: 1795410054492879},
}

func TestAppendText(t *testing.T) {
	tests := []struct {
		n    uint64
		p    engine.Pair
		o    Options
		want string
	}{
		{1, pingPair, Options{Count: true, SPT: true}, "     1 1795410054.492751 0.021163 0.000155\n"},
		{1, pingPair, Options{}, "1795410054.492751 0.021163\n"},
		{7, pingPair, Options{SPT: true, Stamp: StampBegin}, "1795410054.482092 0.021163 0.000155\n"},
		// -m: in.mon − spt/2 = 1795410054492879 − 77 (155/2 truncated)
		{7, pingPair, Options{SPT: true, Stamp: StampMon}, "1795410054.492802 0.021163 0.000155\n"},
		{123456, pingPair, Options{Count: true}, "123456 1795410054.492751 0.021163\n"},
		{1234567, pingPair, Options{Count: true}, "1234567 1795410054.492751 0.021163\n"},
		// %6u of an unsigned int wraps at 2^32.
		{1<<32 + 5, pingPair, Options{Count: true}, "     5 1795410054.492751 0.021163\n"},
		// A negative RTT (mismatched packets) prints as zero.
		{1, engine.Pair{Out: engine.Record{Ref: 10, Mon: 100}, In: engine.Record{Ref: 20, Mon: 2_000_100}}, Options{SPT: true, Stamp: StampBegin},
			"0.000010 0.000000 2.000000\n"},
	}
	for _, tc := range tests {
		if got := string(AppendText(nil, tc.n, tc.p, tc.o)); got != tc.want {
			t.Errorf("AppendText(%d, %+v) = %q, want %q", tc.n, tc.o, got, tc.want)
		}
	}
}

func TestFloorHalfMatchesTimeval(t *testing.T) {
	// The original halves a normalised timeval: sec/2 and (sec%2)*500000 + usec/2, with C
	// truncating division.
	timeval := func(us int64) int64 {
		sec, usec := us/1e6, us%1e6
		if usec < 0 {
			sec--
			usec += 1e6
		}
		return (sec/2)*1e6 + (sec%2)*500000 + usec/2
	}
	for _, us := range []int64{0, 1, 3, 999_999, 1_000_001, 3_000_001, 21163, -1, -3, -999_999, -1_000_001, -2_500_001} {
		if got, want := floorHalf(us), timeval(us); got != want {
			t.Errorf("floorHalf(%d) = %d, timeval halving %d", us, got, want)
		}
	}
}

func TestSeconds(t *testing.T) {
	for _, tc := range []struct {
		us            int64
		text, decimal string
	}{
		{0, "0.000000", "0.000000"},
		{21163, "0.021163", "0.021163"},
		{1795410054492751, "1795410054.492751", "1795410054.492751"},
		// A normalised negative timeval prints as the C original would: -1 s + 500000 µs.
		{-500000, "-1.500000", "-0.500000"},
		{-1, "-1.999999", "-0.000001"},
	} {
		if got := string(AppendSeconds(nil, tc.us)); got != tc.text {
			t.Errorf("AppendSeconds(%d) = %q, want %q", tc.us, got, tc.text)
		}
		if got := string(AppendDecimal(nil, tc.us)); got != tc.decimal {
			t.Errorf("AppendDecimal(%d) = %q, want %q", tc.us, got, tc.decimal)
		}
	}
}

func TestJSONAndCSV(t *testing.T) {
	j := string(AppendJSON(nil, 1, pingPair, Options{}))
	want := `{"n":1,"ts":1795410054.492751,"rtt":0.021163,"spt":0.000155,"out_ref":1795410054.482092,"out_mon":1795410054.492724,"in_ref":1795410054.503410,"in_mon":1795410054.492879}` + "\n"
	if j != want {
		t.Errorf("JSON\n%s want\n%s", j, want)
	}
	c := string(AppendCSV(nil, 1, pingPair, Options{Stamp: StampBegin}))
	if want := "1,1795410054.482092,0.021163,0.000155,1795410054.482092,1795410054.492724,1795410054.503410,1795410054.492879\n"; c != want {
		t.Errorf("CSV %q want %q", c, want)
	}
	neg := engine.Pair{Out: engine.Record{Ref: 10, Mon: 100}, In: engine.Record{Ref: 20, Mon: 600}}
	if got, want := string(AppendCSV(nil, 2, neg, Options{})), "2,0.000015,-0.000490,0.000500,0.000010,0.000100,0.000020,0.000600\n"; got != want {
		t.Errorf("CSV negative rtt %q want %q", got, want)
	}
}

func TestAppendNoAlloc(t *testing.T) {
	buf := make([]byte, 0, 512)
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendText(buf[:0], 99, pingPair, Options{Count: true, SPT: true})
		buf = AppendJSON(buf[:0], 99, pingPair, Options{})
		buf = AppendCSV(buf[:0], 99, pingPair, Options{})
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per line", allocs)
	}
}

func ExampleAppendText() {
	fmt.Print(string(AppendText(nil, 1, pingPair, Options{Count: true, SPT: true})))
	// Output:      1 1795410054.492751 0.021163 0.000155
}
