package client

import (
	"net/netip"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/timestamp"
	"github.com/probekit/probekit/shared/twampctl"
	"github.com/probekit/probekit/shared/udpsock"
)

// offline gives a session a test builds by hand its pipeline without a socket; sendAt records
// departures, handleReply hands a datagram to the real receive path (validation, matching,
// statistics, onReply) and finishOffline collects the results as Run does.
func offline(t testing.TB, s *session) {
	t.Helper()
	if err := s.newPipeline(nil, time.Time{}, time.Hour, nil); err != nil {
		t.Fatal(err)
	}
}

func (s *session) sendAt(seq uint32, t1 time.Time) {
	s.p.Record(seq, t1, time.Time{}, timestamp.SourceNone)
}

func (s *session) handleReply(m *udpsock.Message, _ *testpkt.ReflectedPacket) {
	_ = s.p.Handle(m)
}

func (s *session) finishOffline() { s.collect(s.p.Stats()) }

// BenchmarkPacketPath is twampc's per-packet work around the shared pipeline, without a
// socket: build a packet (open mode), record its departure, and take its reply through
// validation, matching, decoding and onReply. allocs/op must be 0.
func BenchmarkPacketPath(b *testing.B) {
	remote := netip.MustParseAddrPort("192.0.2.1:862")
	n := max(b.N, 1)
	s := &session{remote: remote, mode: twampctl.ModeUnauthenticated, count: n, padding: 27, records: make([]Record, n), res: &Result{}}
	offline(b, s)
	buf := make([]byte, len(s.pad))
	rbuf := make([]byte, 0, 128)
	t0 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	m := &udpsock.Message{Addr: remote, RxSource: timestamp.SourceKernel, TTL: 64}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		seq := uint32(i)
		t1 := t0.Add(time.Duration(i) * time.Microsecond)
		if _, err := s.buildPacket(buf, seq, t1); err != nil {
			b.Fatal(err)
		}
		s.sendAt(seq, t1)
		rp := testpkt.ReflectedPacket{Seq: seq, Timestamp: testpkt.Stamp(t1.Add(25*time.Microsecond), false),
			ReceiveTimestamp: testpkt.Stamp(t1.Add(20*time.Microsecond), false), SenderSeq: seq,
			SenderTimestamp: testpkt.Stamp(t1, false), SenderTTL: 255}
		r := rp.AppendTo(rbuf[:0])
		m.Buf, m.N, m.RxTime = r, len(r), t1.Add(50*time.Microsecond)
		if err := s.p.Handle(m); err != nil {
			b.Fatal(err)
		}
	}
}
