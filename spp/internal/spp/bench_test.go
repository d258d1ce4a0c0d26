package spp

import (
	"context"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/probekit/probekit/shared/capture"
	"github.com/probekit/probekit/spp/internal/synth"
)

// benchPair writes a synthetic capture pair of n packets per file (the shape of
// scripts/bench.d/spp.sh: bursts of 3 OUT packets and one IN, reordering jitter).
func benchPair(b *testing.B, n int) (string, string) {
	b.Helper()
	dir := b.TempDir()
	ref, mon := filepath.Join(dir, "ref.pcap"), filepath.Join(dir, "mon.pcap")
	rf, _ := os.Create(ref)
	mf, _ := os.Create(mon)
	_, err := synth.Write(rf, mf, synth.Spec{
		A: netip.MustParseAddr("10.0.1.1"), B: netip.MustParseAddr("10.0.2.1"),
		Proto: synth.UDP, Link: capture.Ethernet, Rounds: n / 4, Burst: 3,
		Start: 1_795_000_000_000_000, Period: 250, Gap: 20, Think: 30,
		OWDOut: 5000, OWDIn: 5000, Jitter: 40, Seed: 1,
	}, false)
	if err != nil {
		b.Fatal(err)
	}
	rf.Close()
	mf.Close()
	return ref, mon
}

// BenchmarkFiles measures the whole file pipeline (read, classify, hash, match, pair,
// format) with output discarded; packets/s counts both files' packets.
func BenchmarkFiles(b *testing.B) {
	n := 400_000
	var ref, mon string
	// scripts/bench.d/spp.sh points these at its 2 × 3M-packet pair.
	if r, m := os.Getenv("SPP_BENCH_REF"), os.Getenv("SPP_BENCH_MON"); r != "" && m != "" {
		ref, mon = r, m
		n = countPackets(b, ref)
	} else {
		ref, mon = benchPair(b, n)
	}
	cfg := Config{
		A: netip.MustParseAddr("10.0.1.1"), B: netip.MustParseAddr("10.0.2.1"),
		RefFile: ref, MonFile: mon, Window: DefaultWindow, TSLen: DefaultTSLen,
		Granularity: DefaultGranularity, FrameInterval: DefaultFrameInterval, Port: DefaultPort,
		Count: true, SPT: true, Stdout: io.Discard,
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := Run(context.Background(), cfg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(2*n)*float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
	b.ReportMetric(0, "ns/op")
}

func countPackets(b *testing.B, name string) int {
	r, err := capture.Open(name)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	n := 0
	for {
		if _, err := r.Next(); err != nil {
			return n
		}
		n++
	}
}
