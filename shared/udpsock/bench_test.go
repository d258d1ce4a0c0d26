//go:build linux

package udpsock

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/probekit/probekit/shared/timestamp"
)

// echoPair returns a sender and a receiver with every receive feature on, and batch-sized
// message slices for each.
func echoPair(tb testing.TB, batch int) (tx, rx *Conn, out, in []Message) {
	return echoPairOpts(tb, batch, true)
}

// echoPairOpts builds the pair with every feature on (kernel RX timestamps, TOS, TTL and a
// per-message TOS on every other datagram) or plain.
func echoPairOpts(tb testing.TB, batch int, features bool) (tx, rx *Conn, out, in []Message) {
	tb.Helper()
	opts := Options{ReadBuffer: 4 << 20, WriteBuffer: 4 << 20}
	if features {
		opts.RxTimestamps, opts.RecvTOS, opts.RecvTTL = true, true, true
	}
	rx = listen(tb, "udp4", "127.0.0.1:0", opts)
	tx = listen(tb, "udp4", "127.0.0.1:0", Options{})
	out = seqMsgs(batch, rx.LocalAddr())
	for i := range out {
		if features {
			out[i].TOS = 0xb8 * uint8(i%2)
		}
	}
	in = mkMsgs(batch, 2048)
	return tx, rx, out, in
}

// roundTrip sends one batch and reads it all back.
func roundTrip(tb testing.TB, tx, rx *Conn, out, in []Message) {
	if _, err := tx.WriteBatch(out); err != nil {
		tb.Fatal(err)
	}
	for got := 0; got < len(out); {
		k, err := rx.ReadBatch(in[got:])
		if err != nil {
			tb.Fatal(err)
		}
		got += k
	}
}

// TestZeroAllocs fails if the steady-state batch path allocates at all.
func TestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation allocates; run without -race")
	}
	tx, rx, out, in := echoPair(t, 32)
	rx.SetReadDeadline(time.Now().Add(10 * time.Second))
	roundTrip(t, tx, rx, out, in) // warm up
	allocs := testing.AllocsPerRun(200, func() { roundTrip(t, tx, rx, out, in) })
	if allocs != 0 {
		t.Fatalf("WriteBatch+ReadBatch of 32 datagrams: %.1f allocations per run, want 0", allocs)
	}
	single := func() {
		m := &out[0]
		if err := tx.WriteTo(m); err != nil {
			t.Fatal(err)
		}
		if err := rx.ReadFrom(&in[0]); err != nil {
			t.Fatal(err)
		}
	}
	if a := testing.AllocsPerRun(200, single); a != 0 {
		t.Fatalf("WriteTo+ReadFrom: %.1f allocations per run, want 0", a)
	}
	brx := listen(t, "udp4", "127.0.0.1:0", Options{Blocking: true, RxTimestamps: true, RecvTOS: true, RecvTTL: true})
	bout := seqMsgs(32, brx.LocalAddr())
	roundTrip(t, tx, brx, bout, in)
	if a := testing.AllocsPerRun(200, func() { roundTrip(t, tx, brx, bout, in) }); a != 0 {
		t.Fatalf("Blocking ReadBatch: %.1f allocations per run, want 0", a)
	}
	// RawSyscalls: reads, writes and error-queue reads without the scheduler's bookkeeping.
	rtx := listen(t, "udp4", "127.0.0.1:0", Options{RawSyscalls: true, TxTimestamps: true})
	rrx := listen(t, "udp4", "127.0.0.1:0", Options{RawSyscalls: true, RxTimestamps: true, RecvTOS: true, RecvTTL: true})
	rrx.SetReadDeadline(time.Now().Add(10 * time.Second))
	rout := seqMsgs(32, rrx.LocalAddr())
	rawStamps := 0
	onStamp := func(uint32, time.Time, timestamp.Source) { rawStamps++ }
	rawTrip := func() {
		roundTrip(t, rtx, rrx, rout, in)
		if _, err := rtx.TxTimestamps(onStamp); err != nil {
			t.Fatal(err)
		}
	}
	rawTrip()
	if a := testing.AllocsPerRun(200, rawTrip); a != 0 {
		t.Fatalf("RawSyscalls WriteBatch+ReadBatch+TxTimestamps: %.1f allocations per run, want 0", a)
	}
	if rawStamps == 0 {
		t.Error("RawSyscalls: no transmit timestamps read from the error queue")
	}
	prx := listen(t, "udp4", "127.0.0.1:0", Options{BusyPoll: time.Millisecond, RxTimestamps: true, RecvTOS: true, RecvTTL: true})
	pout := seqMsgs(32, prx.LocalAddr())
	roundTrip(t, tx, prx, pout, in)
	if a := testing.AllocsPerRun(200, func() { roundTrip(t, tx, prx, pout, in) }); a != 0 {
		t.Fatalf("busy-polling ReadBatch: %.1f allocations per run, want 0", a)
	}
	// Destination addresses: a wildcard-bound dual-stack reflector reads requests sent to
	// 127.0.0.1 and 127.0.0.2 (IPv4, v4-mapped) and ::1, and answers each from its Dst
	// (PKTINFO next to a per-message TOS and the TX timestamp), batched and single.
	drx := listen(t, "udp", "[::]:0", Options{RecvDst: true, RxTimestamps: true, TxTimestamps: true, RecvTOS: true, RecvTTL: true})
	c6 := listen(t, "udp6", "[::1]:0", Options{})
	dport := drx.LocalAddr().Port()
	dout := seqMsgs(32, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), dport))
	for i := range dout {
		if i%2 == 1 {
			dout[i].Addr = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), dport)
		}
	}
	d6 := seqMsgs(8, netip.AddrPortFrom(netip.IPv6Loopback(), dport))
	replies := mkMsgs(32+8, 2048)
	back := mkMsgs(32+8, 2048)
	drain := func(c *Conn, ms []Message, n int) {
		for got := 0; got < n; {
			k, err := c.ReadBatch(ms[got:n])
			if err != nil {
				t.Fatal(err)
			}
			got += k
		}
	}
	var dstamps int
	onDst := func(uint32, time.Time, timestamp.Source) { dstamps++ }
	dstRound := func() {
		if _, err := tx.WriteBatch(dout); err != nil {
			t.Fatal(err)
		}
		if _, err := c6.WriteBatch(d6); err != nil {
			t.Fatal(err)
		}
		drain(drx, replies, len(replies))
		for i := range replies {
			if !replies[i].Dst.IsValid() {
				t.Fatalf("request %d without Dst", i)
			}
			replies[i].Buf = replies[i].Buf[:replies[i].N]
			replies[i].TOS = 0xb8 * uint8(i%2)
		}
		if _, err := drx.WriteBatch(replies); err != nil {
			t.Fatal(err)
		}
		for i := range replies {
			replies[i].Buf = replies[i].Buf[:cap(replies[i].Buf)]
		}
		drain(tx, back, 32)
		drain(c6, back[32:], 8)
		for got := 0; got < len(replies); {
			n, err := drx.WaitTxTimestamps(time.Second, onDst)
			if err != nil || n == 0 {
				t.Fatalf("tx stamps: %d, %v", n, err)
			}
			got += n
		}
		// The single-message forms.
		if err := tx.WriteTo(&dout[1]); err != nil {
			t.Fatal(err)
		}
		if err := drx.ReadFrom(&replies[0]); err != nil {
			t.Fatal(err)
		}
		replies[0].Buf = replies[0].Buf[:replies[0].N]
		if err := drx.WriteTo(&replies[0]); err != nil {
			t.Fatal(err)
		}
		replies[0].Buf = replies[0].Buf[:cap(replies[0].Buf)]
		if err := tx.ReadFrom(&back[0]); err != nil {
			t.Fatal(err)
		}
		if _, err := drx.WaitTxTimestamps(time.Second, onDst); err != nil {
			t.Fatal(err)
		}
	}
	drx.SetReadDeadline(time.Now().Add(30 * time.Second))
	c6.SetReadDeadline(time.Now().Add(30 * time.Second))
	dstRound()
	if back[0].Addr.Addr() != netip.MustParseAddr("127.0.0.2") {
		t.Fatalf("single reply from %v, want 127.0.0.2", back[0].Addr)
	}
	if a := testing.AllocsPerRun(50, dstRound); a != 0 {
		t.Fatalf("RecvDst reads and replies from Dst: %.1f allocations per run, want 0", a)
	}
	// Transmit timestamps: send a batch, then drain its reports from the error queue.
	ttx := listen(t, "udp4", "127.0.0.1:0", Options{TxTimestamps: true})
	var stamps int
	onTx := func(uint32, time.Time, timestamp.Source) { stamps++ }
	txRound := func() {
		if _, err := ttx.WriteBatch(out); err != nil {
			t.Fatal(err)
		}
		for got := 0; got < len(out); {
			n, err := ttx.WaitTxTimestamps(time.Second, onTx)
			if err != nil || n == 0 {
				t.Fatalf("tx stamps: %d, %v", n, err)
			}
			got += n
		}
		for got := 0; got < len(out); {
			k, err := rx.ReadBatch(in[got:])
			if err != nil {
				t.Fatal(err)
			}
			got += k
		}
	}
	txRound()
	if a := testing.AllocsPerRun(50, txRound); a != 0 {
		t.Fatalf("WriteBatch+TxTimestamps: %.1f allocations per run, want 0", a)
	}
	// AllocsPerRun calls the function once more than asked, to warm up.
	if stamps != 52*len(out) {
		t.Errorf("%d TX stamps, want %d", stamps, 52*len(out))
	}
}

// BenchmarkBatchRoundTrip measures WriteBatch+ReadBatch of 1, 8 and 32 datagrams over
// loopback with kernel RX timestamps, TOS and TTL on (and "plain-32" without, to compare with
// BenchmarkXNetReadBatch); pkts/s counts datagrams through both calls.
func BenchmarkBatchRoundTrip(b *testing.B) {
	for _, tc := range []struct {
		batch    int
		features bool
	}{{1, true}, {8, true}, {32, true}, {32, false}} {
		name := itoa(tc.batch)
		if !tc.features {
			name = "plain-" + name
		}
		b.Run(name, func(b *testing.B) {
			batch := tc.batch
			tx, rx, out, in := echoPairOpts(b, batch, tc.features)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				roundTrip(b, tx, rx, out, in)
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "pkts/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/pkt")
		})
	}
}

// BenchmarkXNetReadBatch is the same round trip through golang.org/x/net/ipv4's
// PacketConn.WriteBatch/ReadBatch, for comparison: it allocates a *net.UDPAddr per datagram.
func BenchmarkXNetReadBatch(b *testing.B) {
	const batch = 32
	rc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer rc.Close()
	tc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer tc.Close()
	rp, tp := ipv4.NewPacketConn(rc), ipv4.NewPacketConn(tc)
	out := make([]ipv4.Message, batch)
	in := make([]ipv4.Message, batch)
	for i := range out {
		out[i] = ipv4.Message{Buffers: [][]byte{make([]byte, 44)}, Addr: rc.LocalAddr()}
		in[i] = ipv4.Message{Buffers: [][]byte{make([]byte, 2048)}, OOB: make([]byte, 128)}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := tp.WriteBatch(out, 0); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < batch; {
			k, err := rp.ReadBatch(in[got:], 0)
			if err != nil {
				b.Fatal(err)
			}
			got += k
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "pkts/s")
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}
