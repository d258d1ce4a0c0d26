package spp

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"
	"testing"
)

// owdTruth maps each direction's REF timestamp to the packet's true one-way delay, from
// spp-X.truth-owd.csv (both points captured on one clock).
func owdTruth(t *testing.T, name string) [2]map[int64]int64 {
	m := [2]map[int64]int64{{}, {}}
	sc := bufio.NewScanner(bytes.NewReader(readTD(t, name)))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ",")
		if len(f) != 4 || f[0] == "dir" {
			continue
		}
		ref, _ := strconv.ParseInt(f[1], 10, 64)
		owd, _ := strconv.ParseInt(f[3], 10, 64)
		d := 0
		if f[0] == "IN" {
			d = 1
		}
		m[d][ref] = owd
	}
	return m
}

// pairErrors runs spp on the given files and returns, per pair, |rtt − (owd_out + owd_in)|
// where the OWDs are the truth of the two packets spp paired (found by their REF times).
func pairErrors(t *testing.T, cfg Config, truth [2]map[int64]int64) []int64 {
	cfg.Output = OutputCSV
	out, err := run(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var errs []int64
	for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		f := strings.Split(l, ",")
		rtt := parseSeconds(t, f[2])
		outOWD, ok1 := truth[0][parseSeconds(t, f[4])]
		inOWD, ok2 := truth[1][parseSeconds(t, f[6])]
		if !ok1 || !ok2 {
			t.Fatalf("pair %s: packets not in the truth", l)
		}
		errs = append(errs, abs(rtt-(outOWD+inOWD)))
	}
	return errs
}

// TestLossBetweenPoints drops every 7th packet at MON (loss between the points). With the
// default packet ID every pair spp still forms has exactly the true RTT; with the protocol
// as the only ID field (-# 4) the matcher pairs unrelated packets and RTTs go wrong by
// tens of milliseconds (spp.md §3) — which this check must catch.
func TestLossBetweenPoints(t *testing.T) {
	truth := owdTruth(t, "spp-udpecho.truth-owd.csv")
	mon := rewrite(t, udpecho[1], asIs, false, 0, func(i int) bool { return i%7 != 3 })
	cfg := fileConfig(udpecho[0], mon)
	errs := pairErrors(t, cfg, truth)
	if len(errs) < 500 {
		t.Fatalf("only %d pairs", len(errs))
	}
	for i, e := range errs {
		if e != 0 {
			t.Fatalf("pair %d: rtt off by %d µs", i+1, e)
		}
	}
	cfg.Code = 4
	bad := 0
	for _, e := range pairErrors(t, cfg, truth) {
		if e > 5000 {
			bad++
		}
	}
	if bad < 50 {
		t.Fatalf("-# 4 with loss: only %d pairs off by > 5 ms; the truth check is not sensitive", bad)
	}
}
