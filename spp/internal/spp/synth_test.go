package spp

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/probekit/probekit/shared/capture"
	"github.com/probekit/probekit/spp/internal/synth"
)

func writePair(t testing.TB, s synth.Spec, keep bool) (string, string, []synth.Packet) {
	t.Helper()
	dir := t.TempDir()
	ref, mon := filepath.Join(dir, "ref.pcap"), filepath.Join(dir, "mon.pcap")
	rf, err := os.Create(ref)
	if err != nil {
		t.Fatal(err)
	}
	mf, err := os.Create(mon)
	if err != nil {
		t.Fatal(err)
	}
	pkts, err := synth.Write(rf, mf, s, keep)
	if err != nil {
		t.Fatal(err)
	}
	rf.Close()
	mf.Close()
	return ref, mon, pkts
}

// TestSynthetic runs spp over generated captures — IPv4 and IPv6; UDP, TCP, ICMP/ICMPv6;
// Ethernet, raw IP and LINUX_SLL2; µs and ns pcaps; jitter that reorders packets, loss
// between the points, a MON clock offset — and requires exactly the pairs the SPP rule forms
// from the generator's perfectly known packets, each with RTT = owd_out + owd_in.
func TestSynthetic(t *testing.T) {
	v4a, v4b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.7")
	v6a, v6b := netip.MustParseAddr("2001:db8:1::1"), netip.MustParseAddr("2001:db8:2::2")
	base := synth.Spec{Rounds: 400, Burst: 2, Start: 1_795_000_000_123_456, Period: 3000, Gap: 100,
		Think: 200, OWDOut: 4000, OWDIn: 6000, Seed: 9}
	tests := []struct {
		name   string
		mod    func(*synth.Spec)
		offset int64
	}{
		{"v4 udp ethernet", func(s *synth.Spec) { s.A, s.B, s.Proto, s.Link = v4a, v4b, synth.UDP, capture.Ethernet }, 0},
		{"v4 tcp sll2 ns jitter", func(s *synth.Spec) {
			s.A, s.B, s.Proto, s.Link, s.Nanos, s.Jitter = v4a, v4b, synth.TCP, capture.LinuxSLL2, true, 300
		}, 0},
		{"v4 icmp raw loss", func(s *synth.Spec) {
			s.A, s.B, s.Proto, s.Link, s.LossOut, s.LossIn = v4a, v4b, synth.ICMP, capture.Raw, 0.05, 0.05
		}, 0},
		{"v6 udp ethernet jitter loss", func(s *synth.Spec) {
			s.A, s.B, s.Proto, s.Link, s.Jitter, s.LossOut = v6a, v6b, synth.UDP, capture.Ethernet, 500, 0.03
		}, 0},
		{"v6 tcp raw", func(s *synth.Spec) { s.A, s.B, s.Proto, s.Link = v6a, v6b, synth.TCP, capture.Raw }, 0},
		{"v6 icmpv6 sll2 ns", func(s *synth.Spec) {
			s.A, s.B, s.Proto, s.Link, s.Nanos = v6a, v6b, synth.ICMP, capture.LinuxSLL2, true
		}, 0},
		{"v4 udp MON 3 h behind", func(s *synth.Spec) {
			s.A, s.B, s.Proto, s.Link, s.MonShift = v4a, v4b, synth.UDP, capture.Ethernet, -3*3600*1_000_000
		}, -3 * 3600},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := base
			tc.mod(&s)
			ref, mon, pkts := writePair(t, s, true)
			want := synth.Pairs(pkts)
			cfg := fileConfig(ref, mon)
			cfg.A, cfg.B, cfg.Offset, cfg.Output = s.A, s.B, tc.offset, OutputCSV
			out, err := run(t, cfg)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")[1:]
			if len(lines) != len(want) || len(want) < 300 {
				t.Fatalf("%d pairs, want %d", len(lines), len(want))
			}
			for i, l := range lines {
				w := want[i]
				f := strings.Split(l, ",")
				got := [5]int64{parseSeconds(t, f[2]), parseSeconds(t, f[4]), parseSeconds(t, f[5]), parseSeconds(t, f[6]), parseSeconds(t, f[7])}
				exp := [5]int64{(w.Out.Mon - w.Out.Ref) + (w.In.Ref - w.In.Mon), w.Out.Ref, w.Out.Mon + s.MonShift, w.In.Ref, w.In.Mon + s.MonShift}
				if got != exp {
					t.Fatalf("pair %d: got %v, want %v", i+1, got, exp)
				}
			}
		})
	}
}

// TestAllocationsPerRun: the file pipeline allocates a fixed amount per run (buffers, queues
// growing to the window), not per packet: four times the packets, the same allocations.
func TestAllocationsPerRun(t *testing.T) {
	allocs := func(rounds int) uint64 {
		s := synth.Spec{A: netip.MustParseAddr("10.0.1.1"), B: netip.MustParseAddr("10.0.2.1"),
			Proto: synth.UDP, Link: capture.Ethernet, Rounds: rounds, Burst: 3,
			Start: 1_795_000_000_000_000, Period: 250, Gap: 20, Think: 30, OWDOut: 5000, OWDIn: 5000, Jitter: 40, Seed: 1}
		ref, mon, _ := writePair(t, s, false)
		cfg := fileConfig(ref, mon)
		cfg.A, cfg.B = s.A, s.B
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		if _, err := run(t, cfg); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		return after.Mallocs - before.Mallocs
	}
	small, large := allocs(2_000), allocs(8_000)
	// The output buffer (bytes.Buffer in the test) grows with the output: allow its doublings.
	if large > small+40 {
		t.Fatalf("%d allocations for 8k packets per point vs %d for 32k: allocating per packet", small, large)
	}
	t.Logf("allocations per run: %d (8k packets per point), %d (32k per point)", small, large)
}

func ExampleRun() {
	cfg := fileConfig("../../testdata/spp-ping-ref.pcap", "../../testdata/spp-ping-mon.pcap")
	cfg.Count, cfg.SPT = true, true
	var b strings.Builder
	cfg.Stdout = &b
	if err := Run(context.Background(), cfg); err != nil {
		fmt.Println(err)
	}
	fmt.Print(strings.SplitAfter(b.String(), "\n")[0])
	// Output:      1 1795410054.492751 0.021163 0.000155
}
