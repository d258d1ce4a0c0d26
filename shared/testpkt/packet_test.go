package testpkt

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/testsupport/stampvectors"
	"github.com/probekit/probekit/shared/timestamp"
)

// at is one field of a golden layout: octets placed at an offset of reference/stamp.md §2.
type at struct {
	off int
	b   []byte
}

// layout builds an n-octet packet of zeros with the given fields, independently of the codec.
func layout(n int, fields ...at) []byte {
	p := make([]byte, n)
	for _, f := range fields {
		copy(p[f.off:], f.b)
	}
	return p
}

var (
	gSeq    = []byte{0x01, 0x02, 0x03, 0x04}
	gTS     = []byte{0xE1, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77}
	gEE     = []byte{0x81, 0x05}
	gSSID   = []byte{0xBE, 0xEF}
	gT2     = []byte{0xE2, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07}
	gSndSeq = []byte{0x0A, 0x0B, 0x0C, 0x0D}
	gSndTS  = []byte{0xE3, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70}
	gSndEE  = []byte{0x00, 0x01}
	gHMAC   = bytes.Repeat([]byte{0x5A}, HMACLen)
)

func goldenSender(m Mode) *SenderPacket {
	p := &SenderPacket{Mode: m, Seq: 0x01020304, Timestamp: 0xE111223344556677,
		ErrorEstimate: 0x8105, SSID: 0xBEEF}
	if m == ModeTWAMPAuthenticated {
		p.SSID = 0
	}
	if m.Authenticated() {
		copy(p.HMAC[:], gHMAC)
	}
	return p
}

func goldenReflected(m Mode) *ReflectedPacket {
	p := &ReflectedPacket{Mode: m, Seq: 0x01020304, Timestamp: 0xE111223344556677,
		ErrorEstimate: 0x8105, SSID: 0xBEEF, ReceiveTimestamp: 0xE201020304050607,
		SenderSeq: 0x0A0B0C0D, SenderTimestamp: 0xE310203040506070, SenderErrorEstimate: 1,
		SenderTTL: 0x3F}
	if m.Authenticated() {
		copy(p.HMAC[:], gHMAC)
	}
	return p
}

// TestGoldenLayouts checks every base layout byte for byte against the offsets of
// reference/stamp.md §2: B-03 (unauth sender 44), B-04 (auth sender 112), B-09 (unauth
// reflected 44), B-10 (auth reflected 112), plus the TWAMP authenticated sender (48). MBZ
// octets must be zero (B-08).
func TestGoldenLayouts(t *testing.T) {
	tests := []struct {
		id   string
		got  []byte
		want []byte
	}{
		{"B-03", mustMarshal(t, goldenSender(ModeUnauthenticated)), layout(44,
			at{0, gSeq}, at{4, gTS}, at{12, gEE}, at{14, gSSID})},
		{"B-04", mustMarshal(t, goldenSender(ModeAuthenticated)), layout(112,
			at{0, gSeq}, at{16, gTS}, at{24, gEE}, at{26, gSSID}, at{96, gHMAC})},
		{"TWAMP-auth-sender", mustMarshal(t, goldenSender(ModeTWAMPAuthenticated)), layout(48,
			at{0, gSeq}, at{16, gTS}, at{24, gEE}, at{32, gHMAC})},
		{"B-09", mustMarshal(t, goldenReflected(ModeUnauthenticated)), layout(44,
			at{0, gSeq}, at{4, gTS}, at{12, gEE}, at{14, gSSID}, at{16, gT2}, at{24, gSndSeq},
			at{28, gSndTS}, at{36, gSndEE}, at{40, []byte{0x3F}})},
		{"B-10", mustMarshal(t, goldenReflected(ModeAuthenticated)), layout(112,
			at{0, gSeq}, at{16, gTS}, at{24, gEE}, at{26, gSSID}, at{32, gT2}, at{48, gSndSeq},
			at{64, gSndTS}, at{72, gSndEE}, at{80, []byte{0x3F}}, at{96, gHMAC})},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			if !bytes.Equal(tt.got, tt.want) {
				t.Fatalf("%s layout\n got %x\nwant %x", tt.id, tt.got, tt.want)
			}
		})
	}
}

func mustMarshal(t *testing.T, p interface{ MarshalBinary() ([]byte, error) }) []byte {
	t.Helper()
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRoundTrip decodes what AppendTo wrote, with and without Extra octets (X-12: the base vs
// extended decision is by length).
func TestRoundTrip(t *testing.T) {
	extra := []byte{0x80, 0x01, 0x00, 0x02, 0xAA, 0xBB}
	for _, m := range []Mode{ModeUnauthenticated, ModeAuthenticated, ModeTWAMPAuthenticated} {
		for _, ext := range [][]byte{nil, extra} {
			s := goldenSender(m)
			s.Extra = ext
			b := s.AppendTo(nil)
			if len(b) != m.SenderLen()+len(ext) {
				t.Fatalf("%s sender len %d", m, len(b))
			}
			var d SenderPacket
			d.Mode = m
			if err := d.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if d.Seq != s.Seq || d.Timestamp != s.Timestamp || d.ErrorEstimate != s.ErrorEstimate ||
				d.SSID != s.SSID || d.HMAC != s.HMAC || !bytes.Equal(d.Extra, s.Extra) {
				t.Errorf("%s sender round trip: %+v != %+v", m, d, s)
			}
			r := goldenReflected(m)
			r.Extra = ext
			b = r.AppendTo(nil)
			var dr ReflectedPacket
			dr.Mode = m
			if err := dr.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if m == ModeTWAMPAuthenticated {
				r.SSID = 0 // TWAMP has MBZ there; the decoder ignores it
			}
			r.Short = false
			if dr.Seq != r.Seq || dr.Timestamp != r.Timestamp || dr.SSID != r.SSID ||
				dr.ReceiveTimestamp != r.ReceiveTimestamp || dr.SenderSeq != r.SenderSeq ||
				dr.SenderTimestamp != r.SenderTimestamp || dr.SenderErrorEstimate != r.SenderErrorEstimate ||
				dr.SenderTTL != r.SenderTTL || dr.HMAC != r.HMAC || !bytes.Equal(dr.Extra, r.Extra) || dr.Short {
				t.Errorf("%s reflected round trip: %+v != %+v", m, dr, r)
			}
		}
	}
}

// TestShortPackets checks the length rules: B-17 (short unauthenticated requests are decoded
// down to the 14-octet TWAMP minimum) and lenient 38/41-octet TWAMP-Light replies.
func TestShortPackets(t *testing.T) {
	full := goldenReflected(ModeUnauthenticated).AppendTo(nil)
	for _, n := range []int{38, 41, 43} {
		var r ReflectedPacket
		if err := r.UnmarshalBinary(full[:n]); err != nil {
			t.Fatalf("%d-octet reply: %v", n, err)
		}
		if !r.Short || r.SenderSeq != 0x0A0B0C0D || r.SenderErrorEstimate != 1 {
			t.Errorf("%d-octet reply decoded as %+v", n, r)
		}
		wantTTL := uint8(0)
		if n > 40 {
			wantTTL = 0x3F
		}
		if r.SenderTTL != wantTTL {
			t.Errorf("%d-octet reply TTL %d, want %d", n, r.SenderTTL, wantTTL)
		}
	}
	var r ReflectedPacket
	if err := r.UnmarshalBinary(full[:37]); !errors.Is(err, ErrShort) {
		t.Errorf("37-octet reply: err %v", err)
	}
	r.Mode = ModeAuthenticated
	if err := r.UnmarshalBinary(make([]byte, 111)); !errors.Is(err, ErrShort) {
		t.Errorf("111-octet auth reply: err %v", err)
	}
	var s SenderPacket
	if err := s.UnmarshalBinary(make([]byte, 13)); !errors.Is(err, ErrShort) {
		t.Errorf("13-octet request: err %v", err)
	}
	twamp := goldenSender(ModeUnauthenticated).AppendTo(nil)[:TWAMPSenderLen]
	if err := s.UnmarshalBinary(twamp); err != nil || s.Seq != 0x01020304 || s.SSID != 0 {
		t.Errorf("14-octet TWAMP request: %v %+v", err, s)
	}
	s = SenderPacket{Mode: Mode(9)}
	if err := s.UnmarshalBinary(twamp); !errors.Is(err, ErrMode) {
		t.Errorf("bad mode: %v", err)
	}
}

// TestB08MBZIgnored decodes stamp-suite 0.8.0 replies that carry the SSID in MBZ octets 38–39
// (auth: 74–75): MBZ is never checked on receipt (B-08).
func TestB08MBZIgnored(t *testing.T) {
	caps := stampvectors.MustCaptures(t)
	f := caps["stamp-suite-reflector.pcap"][1]
	b := f.Payload
	if b[38] != 0x12 || b[39] != 0x34 {
		t.Fatalf("fixture changed: MBZ %x", b[38:40])
	}
	var r ReflectedPacket
	if err := r.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if r.SSID != 0x1234 || r.SenderSeq != 100 || r.SenderTTL != 64 || r.Seq != 0 {
		t.Errorf("decoded %+v", r)
	}
	fa := caps["stamp-suite-reflector-auth.pcap"][1]
	r = ReflectedPacket{Mode: ModeAuthenticated}
	if err := r.UnmarshalBinary(fa.Payload); err != nil {
		t.Fatal(err)
	}
	if r.SSID != 0x4d || r.SenderSeq != 10 || r.SenderTTL != 64 {
		t.Errorf("decoded auth %+v", r)
	}
}

// TestB06TimestampFormats decodes T2/T3 by the reflector's Z bit and T1 by the sender's.
func TestB06TimestampFormats(t *testing.T) {
	now := time.Date(2026, 11, 23, 7, 30, 0, 123456789, time.UTC)
	ntpEE := timestamp.NewErrorEstimate(true, false, time.Microsecond)
	ptpEE := timestamp.NewErrorEstimate(true, true, time.Microsecond)
	r := ReflectedPacket{
		Timestamp: Stamp(now.Add(5*time.Microsecond), true), ReceiveTimestamp: Stamp(now, true),
		ErrorEstimate: ptpEE, SenderTimestamp: Stamp(now.Add(-time.Millisecond), false),
		SenderErrorEstimate: ntpEE,
	}
	if got := r.ReceiveTime(); !got.Equal(now) {
		t.Errorf("PTP T2 %v, want %v", got, now)
	}
	if got := r.Residence(); got != 5*time.Microsecond {
		t.Errorf("residence %v", got)
	}
	if got := r.SenderTime(); got.Sub(now.Add(-time.Millisecond)).Abs() > time.Nanosecond {
		t.Errorf("NTP T1 %v", got)
	}
	// The same raw value read with the wrong format would be decades off.
	if d := Time(r.ReceiveTimestamp, ntpEE).Sub(now); d > -365*24*time.Hour && d < 365*24*time.Hour {
		t.Errorf("PTP value read as NTP is only %v off", d)
	}
}

// TestB07MultiplierZeroAccepted: an EE with multiplier 0 decodes (lenient receipt).
func TestB07MultiplierZeroAccepted(t *testing.T) {
	caps := stampvectors.MustCaptures(t)
	b := caps["stamp-suite-reflector.pcap"][8].Payload // frame 9: EE 0x0000
	var s SenderPacket
	if err := s.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if s.ErrorEstimate != 0 || s.ErrorEstimate.Valid() {
		t.Errorf("EE %v", s.ErrorEstimate)
	}
}

// TestTeapartyVectorsDecode decodes the teaparty request/reply pairs and checks the copied
// fields (B-14), SSID echo and TTL (B-15).
func TestTeapartyVectorsDecode(t *testing.T) {
	v := stampvectors.MustTeaparty(t)
	check := func(m Mode, pair stampvectors.Pair, seq uint32, extra int) {
		req, rep := pair.Request, pair.Reply
		if len(req) != len(rep) {
			t.Errorf("teaparty not symmetric: %d vs %d", len(req), len(rep))
		}
		s := SenderPacket{Mode: m}
		if err := s.UnmarshalBinary(req); err != nil {
			t.Fatal(err)
		}
		r := ReflectedPacket{Mode: m}
		if err := r.UnmarshalBinary(rep); err != nil {
			t.Fatal(err)
		}
		if s.Seq != seq || s.SSID != 0x2a || s.ErrorEstimate != 1 || len(s.Extra) != extra {
			t.Errorf("request %+v", s)
		}
		if r.SenderSeq != s.Seq || r.SenderTimestamp != s.Timestamp || r.SenderErrorEstimate != s.ErrorEstimate ||
			r.SSID != s.SSID || r.SenderTTL != 64 {
			t.Errorf("reply %+v for request %+v", r, s)
		}
		if res := r.Residence(); res <= 0 || res > time.Second {
			t.Errorf("teaparty residence %v", res)
		}
	}
	for i, p := range v.Open {
		check(ModeUnauthenticated, p, uint32(i), 0)
	}
	check(ModeUnauthenticated, v.CoSTime[0], 0, 16)
	for i, p := range v.Authenticated {
		check(ModeAuthenticated, p, uint32(i), 0)
	}
}

func TestModeStrings(t *testing.T) {
	for m, want := range map[Mode]string{ModeUnauthenticated: "unauthenticated", ModeAuthenticated: "authenticated",
		ModeTWAMPAuthenticated: "twamp-authenticated", Mode(7): "mode(7)"} {
		if m.String() != want {
			t.Errorf("%d: %q", m, m.String())
		}
	}
	if SSIDOffset(ModeUnauthenticated) != 14 || SSIDOffset(ModeAuthenticated) != 26 || SSIDOffset(ModeTWAMPAuthenticated) != -1 {
		t.Error("SSID offsets")
	}
	if _, err := (&SenderPacket{Mode: 5}).MarshalBinary(); !errors.Is(err, ErrMode) {
		t.Error("marshal bad mode")
	}
}
