package sender

import (
	"io"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/timestamp"
	"github.com/probekit/probekit/shared/udpsock"
)

// BenchmarkPacketPath is stampsend's per-packet work around the shared pipeline, without a
// socket: build a packet, record its departure, and take its reply through validation,
// matching, decoding and the statistics (quiet, as with -q). allocs/op must be 0.
func BenchmarkPacketPath(b *testing.B) {
	cfg := Config{Target: target, SSID: 7, Timeout: time.Second, Format: cliutil.FormatText, Out: io.Discard, Quiet: true,
		Count: uint64(max(b.N, 1))}
	h := newHarness(b, cfg)
	buf := make([]byte, h.s.b.Len())
	t0 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	m := &udpsock.Message{Addr: target, RxSource: timestamp.SourceKernel, TTL: 64}
	rbuf := make([]byte, 0, 64)
	ee := timestamp.NewErrorEstimate(false, false, time.Microsecond)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		seq := uint32(i)
		t1 := t0.Add(time.Duration(i) * time.Microsecond)
		if _, err := h.s.build(buf, seq, t1); err != nil {
			b.Fatal(err)
		}
		h.send(seq, t1, t1)
		rp := testpkt.ReflectedPacket{Seq: seq, Timestamp: testpkt.Stamp(t1.Add(25*time.Microsecond), false), SSID: 7,
			ErrorEstimate: ee, ReceiveTimestamp: testpkt.Stamp(t1.Add(20*time.Microsecond), false), SenderSeq: seq,
			SenderTimestamp: testpkt.Stamp(t1, false), SenderErrorEstimate: ee, SenderTTL: 64}
		r := rp.AppendTo(rbuf[:0])
		m.RxTime = t1.Add(50 * time.Microsecond)
		if err := h.recv(r, m); err != nil {
			b.Fatal(err)
		}
	}
}
