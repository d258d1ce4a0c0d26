package responder

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/tcpcraft"
	"github.com/probekit/probekit/shared/testsupport/labtest"
	"github.com/probekit/probekit/tcpexpose/internal/wire"
)

var lo = netip.MustParseAddr("127.0.0.1")

func synFlood(n int) [][]byte {
	pkts := make([][]byte, n)
	for i := range pkts {
		s := tcpcraft.Segment{Src: lo, Dst: lo, TTL: 64, SrcPort: uint16(10000 + i), DstPort: wire.DefaultPort, Seq: wire.ClientISN,
			Flags: tcpcraft.FlagSYN, Window: wire.ClientWindow, Options: []tcpcraft.Option{tcpcraft.MSS(1460), tcpcraft.SACKPermitted(),
				tcpcraft.Timestamps(wire.ClientTSval, 0), tcpcraft.NOP(), tcpcraft.WindowScale(7), {Kind: 253, Data: []byte{0x12, 0x34, 0xca, 0xfe}}}}
		pkts[i] = s.Bytes()
	}
	return pkts
}

// TestServeLoopback: the responder answers crafted SYNs on loopback with its SYN/ACK (seen
// by a recorder), the managed nft table keeps the kernel from resetting, the serve loop
// allocates nothing per segment, and Close removes the table.
func TestServeLoopback(t *testing.T) {
	labtest.InNetns(t, func() error {
		srv, err := Open(Config{Listen: netip.AddrPortFrom(lo, wire.DefaultPort), Params: DefaultParams(), ManageFirewall: true})
		if err != nil {
			return err
		}
		table := srv.fw.Table
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ctx) }()
		gen, err := tcpcraft.OpenRaw(0)
		if err != nil {
			return err
		}
		defer gen.Close()
		pkts := synFlood(200)
		// Warm up, then count allocations of the whole process while the responder answers.
		if err := gen.Send(pkts[0]); err != nil {
			return err
		}
		waitReplied(srv, 1)
		var ms0, ms1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms0)
		for _, p := range pkts[1:] {
			if err := gen.Send(p); err != nil {
				return err
			}
		}
		waitReplied(srv, uint64(len(pkts)))
		runtime.ReadMemStats(&ms1)
		if got := srv.Stats.Replied.Load(); got != uint64(len(pkts)) {
			t.Errorf("replied %d of %d", got, len(pkts))
		}
		// Only the responder and the generator (which allocates nothing) run: the process
		// allocations are the responder's (a few from the runtime and timers are tolerated).
		if perSeg := float64(ms1.Mallocs-ms0.Mallocs) / float64(len(pkts)-1); perSeg > 0.1 {
			t.Errorf("%.2f allocations per segment in the process", perSeg)
		}
		rec, err := tcpcraft.NewRecorder("any", lo, wire.DefaultPort)
		if err != nil {
			return err
		}
		defer rec.Close()
		for _, p := range pkts[:10] {
			if err := gen.Send(p); err != nil {
				return err
			}
		}
		waitReplied(srv, uint64(len(pkts)+10))
		cur := 0
		r, ok, _ := rec.Next(context.Background(), &cur, time.Now().Add(2*time.Second), func(s *tcpcraft.Segment) bool {
			return s.SrcPort == wire.DefaultPort && s.Has(tcpcraft.FlagSYN|tcpcraft.FlagACK) && s.DstPort == 10005
		})
		if !ok || r.Seg.Seq != wire.ServerISN || r.Seg.Window != wire.ServerWindow || r.Seg.Ack != wire.ClientISN+1 {
			t.Errorf("no or wrong SYN/ACK: %+v", r.Seg)
		}
		// The kernel has no listener on the port: without the rule it resets every SYN. (Its
		// RSTs for the generator's ports answer our SYN/ACKs: the initiator's rule, not ours.)
		if _, ok := rec.Find(0, func(s *tcpcraft.Segment) bool { return s.Flags&tcpcraft.FlagRST != 0 && s.SrcPort == wire.DefaultPort }); ok {
			t.Error("a kernel RST from the responder's port got out despite --manage-firewall")
		}
		cancel()
		srv.live.Close()
		if err := <-done; err != nil {
			t.Error(err)
		}
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
		if tcpcraft.TableExists(table) {
			t.Error("nft table left behind")
		}
		return nil
	})
}

func waitReplied(srv *Server, n uint64) {
	deadline := time.Now().Add(5 * time.Second)
	for srv.Stats.Replied.Load() < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkResponderLoopback floods the responder with crafted SYNs on loopback (raw socket
// in, AF_PACKET ring and raw socket reply out, kernel RSTs dropped by the managed nft table)
// and reports the answered segments per second and how many went unanswered.
func BenchmarkResponderLoopback(b *testing.B) {
	labtest.InNetns(b, func() error {
		srv, err := Open(Config{Listen: netip.AddrPortFrom(lo, wire.DefaultPort), Params: DefaultParams(), ManageFirewall: true})
		if err != nil {
			return err
		}
		defer srv.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { _ = srv.Serve(ctx) }()
		gen, err := tcpcraft.OpenRaw(0)
		if err != nil {
			return err
		}
		defer gen.Close()
		// The generator's kernel resets the flows it has no socket for: the initiator's rule.
		fw, err := tcpcraft.InstallFirewall("tcpexpose_bench_gen", tcpcraft.RSTRule{Peer: lo, Port: wire.DefaultPort})
		if err != nil {
			return err
		}
		defer fw.Remove()
		pkts := synFlood(4096)
		rate := 100000.0 // offered segments per second (TCPEXPOSE_BENCH_RATE overrides)
		if v, err := strconv.ParseFloat(os.Getenv("TCPEXPOSE_BENCH_RATE"), 64); err == nil && v > 0 {
			rate = v
		}
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		// Paced in bursts of tcpcraft.MaxBatch (one sendmmsg each): never ahead of the offered rate.
		for i := 0; i < b.N; i += tcpcraft.MaxBatch {
			due := start.Add(time.Duration(float64(i) / rate * 1e9))
			for time.Now().Before(due) {
			}
			k := min(tcpcraft.MaxBatch, b.N-i)
			j := i % len(pkts)
			if j+k > len(pkts) {
				j = 0
			}
			if n, err := gen.SendBatch(pkts[j : j+k]); err != nil || n != k {
				return fmt.Errorf("generator: %d of %d sent: %w", n, k, err)
			}
		}
		sent := time.Since(start)
		// Wait for the replies to stop coming; the last one ends the measured interval.
		last, lastN := time.Now(), srv.Stats.Replied.Load()
		for time.Since(last) < 200*time.Millisecond && lastN < uint64(b.N) {
			time.Sleep(time.Millisecond)
			if n := srv.Stats.Replied.Load(); n != lastN {
				last, lastN = time.Now(), n
			}
		}
		b.StopTimer()
		el := last.Sub(start)
		rep := srv.Stats.Replied.Load()
		b.ReportMetric(float64(b.N)/sent.Seconds(), "offered/s")
		b.ReportMetric(float64(rep)/el.Seconds(), "answered/s")
		b.ReportMetric(float64(uint64(b.N)-min(rep, uint64(b.N))), "unanswered")
		if st, err := srv.live.Stats(); err == nil && b.N > 1000 {
			b.Logf("offered %d at %.0f/s: received %d, answered %d, send errors %d, ring drops %d", b.N, float64(b.N)/sent.Seconds(),
				srv.Stats.Received.Load(), rep, srv.Stats.SendErrors.Load(), st.Drops)
		}
		cancel()
		srv.live.Close()
		return nil
	})
}
