package wire

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/probekit/probekit/shared/tcpcraft"
)

func hdrPair(v6 bool) []byte {
	src, dst := netip.MustParseAddr("10.199.1.2"), netip.MustParseAddr("10.199.2.2")
	if v6 {
		src, dst = netip.MustParseAddr("fd99:1::2"), netip.MustParseAddr("fd99:2::2")
	}
	in := tcpcraft.Segment{Src: src, Dst: dst, TTL: 63, SrcPort: 40001, DstPort: DefaultPort, Seq: ClientISN + 1, Ack: ServerISN + 1,
		Flags: tcpcraft.FlagACK, Window: ClientWindow, Options: []tcpcraft.Option{tcpcraft.NOP(), tcpcraft.NOP(), tcpcraft.Timestamps(1, 2)},
		Payload: make([]byte, 500)}
	out := tcpcraft.Segment{Src: dst, Dst: src, TTL: 64, SrcPort: DefaultPort, DstPort: 40001, Seq: ServerISN + 1, Ack: ClientISN + 501,
		Flags: tcpcraft.FlagACK, Window: ServerWindow, Payload: make([]byte, 120)}
	a := in.Bytes()
	b := out.Bytes()
	ha := 20 + 32
	hb := 20 + 20
	if v6 {
		ha, hb = 40+32, 40+20
	}
	return append(append([]byte(nil), a[:ha]...), b[:hb]...)
}

func TestParseReflection(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		r, err := ParseReflection(hdrPair(v6))
		if err != nil {
			t.Fatal(err)
		}
		if r.ReceivedLen != 500 || r.SentLen != 120 || r.Received.Seq != ClientISN+1 || r.Received.TTL != 63 ||
			r.Sent.Ack != ClientISN+501 || r.Received.Window != ClientWindow {
			t.Errorf("v6 %v: %+v", v6, r)
		}
		if _, ok := r.Received.Option(tcpcraft.OptTimestamps); !ok {
			t.Error("options lost")
		}
	}
	good := hdrPair(false)
	for name, b := range map[string][]byte{
		"empty":     nil,
		"short":     good[:30],
		"trailing":  append(append([]byte(nil), good...), 0),
		"version":   append([]byte{0x50}, good[1:]...),
		"second":    good[:60],
		"doff":      func() []byte { c := append([]byte(nil), good...); c[32] = 0x40; return c }(),
		"ihl":       func() []byte { c := append([]byte(nil), good...); c[0] = 0x44; return c }(),
		"total len": func() []byte { c := append([]byte(nil), good...); c[2], c[3] = 0, 10; return c }(),
	} {
		if _, err := ParseReflection(b); !errors.Is(err, ErrReflection) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestMPOptions(t *testing.T) {
	o := MPData(0x1122334455667788, 1, 512)
	if o.Len() != MPDataLen {
		t.Fatalf("MP_DATA length %d", o.Len())
	}
	if dsn, n, ok := MPDataValue(o); !ok || dsn != 0x1122334455667788 || n != 512 {
		t.Errorf("MPDataValue %x %d %v", dsn, n, ok)
	}
	if MPCapable(1).Len() != 12 {
		t.Error("MP_CAPABLE length")
	}
	if _, ok := MPAckValue(tcpcraft.Option{Kind: OptMPAck, Data: []byte{1}}); ok {
		t.Error("short MP_ACK accepted")
	}
}

// FuzzParseReflection: the reflection decoder never panics; what it accepts re-splits at the
// same place.
func FuzzParseReflection(f *testing.F) {
	f.Add(hdrPair(false))
	f.Add(hdrPair(true))
	f.Add([]byte{0x45})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseReflection(b)
		if err != nil {
			return
		}
		if len(r.ReceivedRaw)+len(r.SentRaw) != len(b) {
			t.Fatalf("split %d+%d of %d", len(r.ReceivedRaw), len(r.SentRaw), len(b))
		}
		_ = r.Received.Line()
		_ = r.Sent.Line()
	})
}
