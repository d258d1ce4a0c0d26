package testpkt

import (
	"bytes"
	"testing"

	"github.com/probekit/probekit/shared/timestamp"
)

// The in-place writers produce what the struct encoders produce, and the readers return what
// the decoders return, in every mode.
func TestSenderAccessorsMatchStructs(t *testing.T) {
	ee := timestamp.NewErrorEstimate(true, false, 3000)
	for _, m := range []Mode{ModeUnauthenticated, ModeAuthenticated, ModeTWAMPAuthenticated} {
		want := (&SenderPacket{Mode: m, Seq: 0x01020304, Timestamp: 0x1122334455667788, ErrorEstimate: ee, SSID: 0xBEEF}).AppendTo(nil)
		got := make([]byte, m.SenderLen())
		tmpl := SenderPacket{Mode: m, SSID: 0xBEEF}
		tmpl.PutBase(got)
		PutSequenceNumber(got, 0x01020304)
		PutTimestamp(got, m, 0x1122334455667788)
		PutErrorEstimate(got, m, ee)
		if !bytes.Equal(got, want) {
			t.Errorf("%v:\n got %x\nwant %x", m, got, want)
		}
		if seq, ok := SequenceNumber(got); !ok || seq != 0x01020304 {
			t.Errorf("%v: SequenceNumber %x %v", m, seq, ok)
		}
	}
	if _, ok := SequenceNumber([]byte{1, 2, 3}); ok {
		t.Error("SequenceNumber of 3 octets")
	}
}

func TestReflectedAccessors(t *testing.T) {
	ee := timestamp.NewErrorEstimate(false, true, 1000)
	rp := ReflectedPacket{Mode: ModeUnauthenticated, Timestamp: 33, ReceiveTimestamp: 22, ErrorEstimate: ee, SenderTTL: 64}
	b := rp.AppendTo(nil)
	t2, t3, gotEE, ok := ReflectedTimes(b[:24])
	if !ok || t2 != 22 || t3 != 33 || gotEE != ee {
		t.Errorf("ReflectedTimes: %d %d %v %v", t2, t3, gotEE, ok)
	}
	if _, _, _, ok := ReflectedTimes(b[:23]); ok {
		t.Error("ReflectedTimes of 23 octets")
	}
	PutReceiveTimestamp(b, 44)
	PutTimestamp(b, ModeUnauthenticated, 55)
	var back ReflectedPacket
	if err := back.UnmarshalBinary(b); err != nil || back.ReceiveTimestamp != 44 || back.Timestamp != 55 {
		t.Errorf("after Put: %+v %v", back, err)
	}
	// RFC 7750: the DS field octet follows Sender TTL (open 41, authenticated 81).
	open := append(append([]byte(nil), b[:TWAMPReflectedLen]...), 0xB8)
	if v, ok := SenderDSCPECN(open, ModeUnauthenticated); !ok || v != 0xB8 {
		t.Errorf("open: %x %v", v, ok)
	}
	if _, ok := SenderDSCPECN(open[:TWAMPReflectedLen], ModeUnauthenticated); ok {
		t.Error("41-octet reply has no DSCP/ECN octet")
	}
	auth := make([]byte, AuthBaseLen)
	auth[81] = 0x2E
	if v, ok := SenderDSCPECN(auth, ModeTWAMPAuthenticated); !ok || v != 0x2E {
		t.Errorf("auth: %x %v", v, ok)
	}
}

func TestPutTLVHeader(t *testing.T) {
	b := AppendTLV(nil, FlagU, TypeAccessReport, make([]byte, 4))
	PutTLVHeader(b, FlagU, TypeExtraPadding, 4)
	want := AppendTLV(nil, FlagU, TypeExtraPadding, make([]byte, 4))
	if !bytes.Equal(b, want) {
		t.Errorf("%x, want %x", b, want)
	}
}

func BenchmarkSenderPutBase(b *testing.B) {
	w := make([]byte, AuthBaseLen)
	p := SenderPacket{Mode: ModeAuthenticated, SSID: 7}
	b.ReportAllocs()
	for i := range b.N {
		p.Seq = uint32(i)
		p.PutBase(w)
	}
}

// RFC 7750 Sender DSCP and ECN: octet 41 of the open TWAMP reply (after Sender TTL at 40) and
// octet 81 of the authenticated one (after Sender TTL at 80), by the RFC 5357 §4.2.1 layouts.
func TestPutSenderDSCPECN(t *testing.T) {
	for _, tc := range []struct {
		m        Mode
		off, len int
	}{{ModeUnauthenticated, 41, 42}, {ModeTWAMPAuthenticated, 81, 82}} {
		if n := SenderDSCPECNLen(tc.m); n != tc.len {
			t.Errorf("%v: SenderDSCPECNLen %d, want %d", tc.m, n, tc.len)
		}
		b := make([]byte, tc.len)
		PutSenderDSCPECN(b, tc.m, 0xB9)
		for i, v := range b {
			if want := byte(0); i == tc.off {
				if v != 0xB9 {
					t.Errorf("%v: octet %d = %#x", tc.m, i, v)
				}
			} else if v != want {
				t.Errorf("%v: octet %d written (%#x)", tc.m, i, v)
			}
		}
		if v, ok := SenderDSCPECN(b, tc.m); !ok || v != 0xB9 {
			t.Errorf("%v: read back %#x %v", tc.m, v, ok)
		}
	}
}
