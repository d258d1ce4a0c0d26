package testpkt

import (
	"bytes"
	"net/netip"
	"testing"
)

var allModes = []Mode{ModeUnauthenticated, ModeAuthenticated, ModeTWAMPAuthenticated}

// FuzzSenderPacket decodes arbitrary octets as a sender packet in every layout; whatever
// decodes must re-encode to the same base fields (MBZ zeroed) and the same Extra.
// Seeds: testdata/fuzz/FuzzSenderPacket (requests from the reference captures and vectors).
func FuzzSenderPacket(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, m := range allModes {
			p := SenderPacket{Mode: m}
			if err := p.UnmarshalBinary(b); err != nil {
				continue
			}
			out := p.AppendTo(nil)
			if len(b) >= m.SenderLen() && len(out) != len(b) {
				t.Fatalf("%s: re-encoded %d octets from %d", m, len(out), len(b))
			}
			q := SenderPacket{Mode: m}
			if err := q.UnmarshalBinary(out); err != nil {
				t.Fatalf("%s: re-decode: %v", m, err)
			}
			if q.Seq != p.Seq || q.Timestamp != p.Timestamp || q.ErrorEstimate != p.ErrorEstimate ||
				q.SSID != p.SSID || q.HMAC != p.HMAC || !bytes.Equal(q.Extra, p.Extra) {
				t.Fatalf("%s: round trip %+v != %+v", m, q, p)
			}
			_ = p.Time()
		}
	})
}

// FuzzReflectedPacket does the same for reflected packets, including the lenient short forms,
// runs the sender's TLV rules over the extension area and checks the in-place field readers
// (accessors_sender.go) against the decoder.
func FuzzReflectedPacket(f *testing.F) {
	s := NewSigner([]byte(interopKey))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _, have24 := ReflectedTimes(b) // the field readers never panic, short or not
		for _, m := range allModes {
			_, _ = SenderDSCPECN(b, m)
			p := ReflectedPacket{Mode: m}
			if err := p.UnmarshalBinary(b); err != nil {
				continue
			}
			// The in-place readers agree with the decoder.
			if seq, ok := SequenceNumber(b); !ok || seq != p.Seq {
				t.Fatalf("%s: SequenceNumber %d %v, decoded %d", m, seq, ok, p.Seq)
			}
			if t2, t3, ee, ok := ReflectedTimes(b); m == ModeUnauthenticated &&
				(!ok || !have24 || t2 != p.ReceiveTimestamp || t3 != p.Timestamp || ee != p.ErrorEstimate) {
				t.Fatalf("ReflectedTimes %d %d %v %v, decoded %+v", t2, t3, ee, ok, p)
			}
			out := p.AppendTo(nil)
			q := ReflectedPacket{Mode: m}
			if err := q.UnmarshalBinary(out); err != nil {
				t.Fatalf("%s: re-decode: %v", m, err)
			}
			if q.Seq != p.Seq || q.Timestamp != p.Timestamp || q.ReceiveTimestamp != p.ReceiveTimestamp ||
				q.SenderSeq != p.SenderSeq || q.SenderTimestamp != p.SenderTimestamp ||
				q.SenderTTL != p.SenderTTL || q.SSID != p.SSID || q.HMAC != p.HMAC || !bytes.Equal(q.Extra, p.Extra) {
				t.Fatalf("%s: round trip %+v != %+v", m, q, p)
			}
			_ = p.Residence()
			_ = p.SenderTime()
			if !p.Short {
				_ = ParseReplyTLVs(b, m.ReflectedLen(), s)
			}
		}
	})
}

// FuzzTLV walks arbitrary TLV areas, decodes every typed value, re-encodes the framing and
// fills Location values in place without changing their length.
func FuzzTLV(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		tlvs, err := ParseTLVs(b)
		var re []byte
		for _, tl := range tlvs {
			re = tl.AppendTo(re)
			switch tl.Type {
			case TypeClassOfService:
				if c, err := ParseClassOfService(tl.Value); err == nil {
					if d, _ := ParseClassOfService(c.AppendTo(nil)); d != c {
						t.Fatalf("CoS round trip %+v %+v", c, d)
					}
				}
			case TypeTimestampInformation:
				_, _ = ParseTimestampInformation(tl.Value)
			case TypeDirectMeasurement:
				_, _ = ParseDirectMeasurement(tl.Value)
			case TypeAccessReport:
				_, _ = ParseAccessReport(tl.Value)
			case TypeFollowUpTelemetry:
				_, _ = ParseFollowUpTelemetry(tl.Value)
			case TypeReturnPath:
				_ = ReturnPathNoReplyRequested(tl.Value)
			case TypeLocation:
				if l, err := ParseLocation(tl.Value); err == nil {
					_, _ = l.Addresses()
				}
				for _, peer := range [][2]netip.AddrPort{{loc4src, loc4dst}, {loc6src, loc6dst}} {
					v := append([]byte{}, tl.Value...)
					ok := FillLocation(v, peer[0], peer[1])
					if len(v) != len(tl.Value) {
						t.Fatal("location length changed")
					}
					if !ok && !bytes.Equal(v, tl.Value) {
						t.Fatal("malformed location modified")
					}
					if ok {
						// Every answered sub-TLV decodes back to the peer's addresses.
						l, err := ParseLocation(v)
						if err != nil {
							t.Fatalf("answered location does not parse: %v", err)
						}
						if s, d := l.Addresses(); (s.IsValid() && s != peer[0].Addr()) || (d.IsValid() && d != peer[1].Addr()) {
							t.Fatalf("answered %v %v for %v %v", s, d, peer[0], peer[1])
						}
					}
				}
			}
		}
		if err == nil && !bytes.Equal(re, b) {
			t.Fatalf("framing round trip %x != %x", re, b)
		}
		if err != nil && bytes.Equal(re, b) {
			t.Fatalf("error %v but all octets consumed", err)
		}
	})
}
