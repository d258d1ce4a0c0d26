package reflector

import (
	"net/netip"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/testsupport/stampvectors"
	"github.com/probekit/probekit/shared/timestamp"
)

const interopKey = stampvectors.InteropKey

var (
	peerA  = netip.MustParseAddrPort("127.0.0.1:40001")
	peerB  = netip.MustParseAddrPort("127.0.0.1:40002")
	local  = netip.MustParseAddrPort("127.0.0.1:8620")
	t2Time = time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	t3Time = t2Time.Add(3 * time.Microsecond)
)

func newWorker(t testing.TB, cfg Config) (*Reflector, *Worker) {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := r.NewWorker()
	w.Now = func() time.Time { return t3Time }
	return r, w
}

func pkt(data []byte, peer netip.AddrPort) *Packet {
	return &Packet{Data: append([]byte(nil), data...), Peer: peer, Local: local, RxTime: t2Time,
		RxSource: timestamp.SourceKernel, TTL: 64}
}

// reflect runs one packet and decodes the reply in mode m.
func reflect1(t testing.TB, w *Worker, p *Packet, m testpkt.Mode) ([]byte, uint8, testpkt.ReflectedPacket, bool) {
	t.Helper()
	out, tos, ok := w.Reflect(p, make([]byte, 0, 2048))
	var r testpkt.ReflectedPacket
	if ok {
		r.Mode = m
		if err := r.UnmarshalBinary(out); err != nil {
			t.Fatalf("reply does not decode: %v", err)
		}
	}
	return out, tos, r, ok
}

func sender(m testpkt.Mode, seq uint32, ssid uint16, extra []byte) []byte {
	p := testpkt.SenderPacket{Mode: m, Seq: seq, Timestamp: testpkt.Stamp(t2Time.Add(-time.Millisecond), false),
		ErrorEstimate: timestamp.NewErrorEstimate(true, false, time.Microsecond), SSID: ssid, Extra: extra}
	return p.AppendTo(nil)
}
