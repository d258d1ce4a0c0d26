// Command sppgen writes a synthetic REF/MON capture pair for spp benchmarks:
// sppgen -n PACKETS_PER_FILE -ref /tmp/ref.pcap -mon /tmp/mon.pcap.
package main

import (
	"flag"
	"fmt"
	"net/netip"
	"os"

	"github.com/probekit/probekit/shared/capture"
	"github.com/probekit/probekit/spp/internal/synth"
)

func main() {
	n := flag.Int("n", 3_000_000, "packets per capture file")
	ref := flag.String("ref", "/tmp/spp-bench-ref.pcap", "REF capture to write")
	mon := flag.String("mon", "/tmp/spp-bench-mon.pcap", "MON capture to write")
	flag.Parse()
	if err := run(*n, *ref, *mon); err != nil {
		fmt.Fprintln(os.Stderr, "sppgen:", err)
		os.Exit(1)
	}
}

func run(n int, refName, monName string) error {
	rf, err := os.Create(refName)
	if err != nil {
		return err
	}
	defer rf.Close()
	mf, err := os.Create(monName)
	if err != nil {
		return err
	}
	defer mf.Close()
	// Bursts of 3 data packets and one reply, 1 ms apart: 4 packets per round per file.
	s := synth.Spec{
		A: netip.MustParseAddr("10.0.1.1"), B: netip.MustParseAddr("10.0.2.1"),
		Proto: synth.UDP, Link: capture.Ethernet, Rounds: n / 4, Burst: 3,
		Start: 1_795_000_000_000_000, Period: 250, Gap: 20, Think: 30,
		OWDOut: 5000, OWDIn: 5000, Jitter: 40, Seed: 1,
	}
	if _, err := synth.Write(rf, mf, s, false); err != nil {
		return err
	}
	if err := rf.Close(); err != nil {
		return err
	}
	return mf.Close()
}
