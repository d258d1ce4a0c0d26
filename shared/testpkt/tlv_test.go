package testpkt

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

// TestX05TLVFraming walks several TLVs and reports framing errors with their offsets.
func TestX05TLVFraming(t *testing.T) {
	var b []byte
	b = AppendTLV(b, FlagU, TypeExtraPadding, make([]byte, 3))
	b = AppendTLV(b, FlagU, TypeClassOfService, []byte{1, 2, 3, 4})
	b = AppendTLV(b, 0x0F, TLVType(200), nil)
	want := []byte{0x80, 1, 0, 3, 0, 0, 0, 0x80, 4, 0, 4, 1, 2, 3, 4, 0x0F, 200, 0, 0}
	if !bytes.Equal(b, want) {
		t.Fatalf("framing %x, want %x", b, want)
	}
	tlvs, err := ParseTLVs(b)
	if err != nil || len(tlvs) != 3 {
		t.Fatalf("parse %v %v", tlvs, err)
	}
	if tlvs[1].Type != TypeClassOfService || !bytes.Equal(tlvs[1].Value, []byte{1, 2, 3, 4}) || tlvs[2].Flags != 0x0F {
		t.Errorf("decoded %+v", tlvs)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		n    int
		off  int
		err  error
	}{
		{"empty", nil, 0, 0, nil},
		{"truncated header", append(append([]byte{}, b...), 0x80, 1), 3, len(b), ErrTLVTruncated},
		{"overrun", append(append([]byte{}, b...), 0x80, 1, 0, 9, 1, 2), 3, len(b), ErrTLVOverrun},
		{"overrun first", []byte{0x80, 1, 0xFF, 0xFF}, 0, 0, ErrTLVOverrun},
	} {
		it := NewTLVIterator(tc.b)
		n := 0
		for it.Next() {
			n++
		}
		if n != tc.n || !errors.Is(it.Err(), tc.err) || (tc.err != nil && it.Offset() != tc.off) {
			t.Errorf("%s: %d TLVs, err %v at %d", tc.name, n, it.Err(), it.Offset())
		}
		if it.Next() {
			t.Errorf("%s: Next after end", tc.name)
		}
	}
	if _, err := ParseTLVs([]byte{1}); !errors.Is(err, ErrTLVTruncated) {
		t.Errorf("ParseTLVs err %v", err)
	}
	if TypeClassOfService.String() != "class-of-service" || TLVType(77).String() != "type-77" {
		t.Error("type names")
	}
}

// TestT04ClassOfService decodes the teaparty CoS request and reply (erratum 8199: ECN copied
// into the ECN field; draft cos-ecn ECN1/RPE in the former Reserved octet) and round-trips.
func TestT04ClassOfService(t *testing.T) {
	req, err := ParseClassOfService([]byte{0xb8, 0x00, 0x80, 0x00})
	if err != nil {
		t.Fatal(err)
	}
	if req != (ClassOfService{DSCP1: 46, ECN1: ECNECT0}) {
		t.Errorf("request %+v", req)
	}
	rep, _ := ParseClassOfService([]byte{0xba, 0xe8, 0x90, 0x00})
	want := ClassOfService{DSCP1: 46, DSCP2: 46, ECN2: ECNECT0, RPD: 0, ECN1: ECNECT0, RPE: 1}
	if rep != want {
		t.Errorf("reply %+v, want %+v", rep, want)
	}
	if got := want.AppendTo(nil); !bytes.Equal(got, []byte{0xba, 0xe8, 0x90, 0x00}) {
		t.Errorf("encode %x", got)
	}
	rp := ClassOfService{DSCP1: 10, DSCP2: 0x3F, ECN2: 3, RPD: 1}
	got, _ := ParseClassOfService(rp.AppendTo(nil))
	if got != rp {
		t.Errorf("round trip %+v", got)
	}
	if _, err := ParseClassOfService([]byte{1, 2, 3}); !errors.Is(err, ErrTLVLength) {
		t.Error("short CoS accepted")
	}
}

// TestTypedTLVGolden checks the fixed-size TLV values against hand-laid bytes (T-03 Timestamp
// Information, T-05 Direct Measurement, T-06 Access Report, T-07 Follow-Up Telemetry; T-01…T-08
// are the TLV types 1…8).
func TestTypedTLVGolden(t *testing.T) {
	ti := TimestampInformation{SyncNTP, MethodSoftware, SyncNTP, MethodSoftware}
	if b := ti.AppendTo(nil); !bytes.Equal(b, []byte{1, 2, 1, 2}) {
		t.Errorf("timestamp info %x", b)
	}
	if v, err := ParseTimestampInformation([]byte{1, 2, 1, 2}); err != nil || v != ti {
		t.Errorf("timestamp info parse %+v %v", v, err)
	}
	dm := DirectMeasurement{SenderTx: 0x01020304, ReflectorRx: 5, ReflectorTx: 0xA0B0C0D0}
	wantDM := []byte{1, 2, 3, 4, 0, 0, 0, 5, 0xA0, 0xB0, 0xC0, 0xD0}
	if b := dm.AppendTo(nil); !bytes.Equal(b, wantDM) {
		t.Errorf("direct measurement %x", b)
	}
	if v, err := ParseDirectMeasurement(wantDM); err != nil || v != dm {
		t.Errorf("dm parse %+v %v", v, err)
	}
	ar := AccessReport{ID: AccessIDNon3GPP, ReturnCode: AccessAvailable}
	if b := ar.AppendTo(nil); !bytes.Equal(b, []byte{0x20, 1, 0, 0}) {
		t.Errorf("access report %x", b)
	}
	if v, err := ParseAccessReport([]byte{0x2F, 1, 9, 9}); err != nil || v != ar || !v.Valid() {
		t.Errorf("access report parse %+v %v", v, err)
	}
	if (AccessReport{ID: 3}).Valid() {
		t.Error("access ID 3 valid")
	}
	fu := FollowUpTelemetry{Seq: 7, Timestamp: 0xE100000000000001, Method: MethodSoftware}
	wantFU := []byte{0, 0, 0, 7, 0xE1, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0}
	if b := fu.AppendTo(nil); !bytes.Equal(b, wantFU) {
		t.Errorf("follow-up %x", b)
	}
	if v, err := ParseFollowUpTelemetry(wantFU); err != nil || v != fu {
		t.Errorf("follow-up parse %+v %v", v, err)
	}
	for name, f := range map[string]func([]byte) error{
		"ti": func(b []byte) error { _, err := ParseTimestampInformation(b); return err },
		"dm": func(b []byte) error { _, err := ParseDirectMeasurement(b); return err },
		"ar": func(b []byte) error { _, err := ParseAccessReport(b); return err },
		"fu": func(b []byte) error { _, err := ParseFollowUpTelemetry(b); return err },
		"lo": func(b []byte) error { _, err := ParseLocation(b); return err },
	} {
		if err := f([]byte{1, 2, 3}); !errors.Is(err, ErrTLVLength) {
			t.Errorf("%s: short value err %v", name, err)
		}
	}
}

// TestT02Location fills a Location request in place, keeping its length.
func TestT02Location(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		v := LocationRequest(v6)
		n := len(v)
		src := netip.MustParseAddrPort("192.0.2.1:40000")
		dst := netip.MustParseAddrPort("198.51.100.7:862")
		if v6 {
			src = netip.MustParseAddrPort("[2001:db8::1]:40000")
			dst = netip.MustParseAddrPort("[2001:db8::7]:862")
		}
		if !FillLocation(v, src, dst) {
			t.Fatal("fill failed")
		}
		if len(v) != n {
			t.Fatalf("length changed")
		}
		l, err := ParseLocation(v)
		if err != nil {
			t.Fatal(err)
		}
		if l.DstPort != 862 || l.SrcPort != 40000 || len(l.Sub) != 2 {
			t.Fatalf("location %+v", l)
		}
		for _, s := range l.Sub {
			a, _ := netip.AddrFromSlice(s.Value)
			want := src.Addr()
			if s.Type == SubDestIPv4 || s.Type == SubDestIPv6 {
				want = dst.Addr()
			}
			if a != want || s.Flags&FlagU != 0 {
				t.Errorf("sub %v = %v flags %x, want %v", s.Type, a, s.Flags, want)
			}
		}
	}
	// A MAC sub-TLV cannot be filled from a UDP socket: U stays set; wrong family too.
	v := Location{Sub: []TLV{{Flags: 0, Type: SubSourceMAC, Value: make([]byte, 6)},
		{Flags: 0, Type: SubSourceIPv6, Value: make([]byte, 16)}}}.AppendTo(nil)
	if !FillLocation(v, netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("192.0.2.2:2")) {
		t.Fatal("fill")
	}
	l, _ := ParseLocation(v)
	if l.Sub[0].Flags&FlagU == 0 || l.Sub[1].Flags&FlagU == 0 {
		t.Errorf("unfillable sub-TLVs flags %x %x", l.Sub[0].Flags, l.Sub[1].Flags)
	}
	if FillLocation([]byte{0, 0, 0, 0, 1}, netip.AddrPort{}, netip.AddrPort{}) || FillLocation([]byte{1}, netip.AddrPort{}, netip.AddrPort{}) {
		t.Error("broken sub-TLV framing accepted")
	}
}

func TestReturnPathNoReply(t *testing.T) {
	v := AppendTLV(nil, 0, SubReturnPathControlCode, []byte{0, 0, 0, 0})
	if !ReturnPathNoReplyRequested(v) {
		t.Error("no-reply not detected")
	}
	v = AppendTLV(nil, 0, SubReturnPathControlCode, []byte{0, 0, 0, 1})
	if ReturnPathNoReplyRequested(v) {
		t.Error("same-link read as no-reply")
	}
}

// TestX11ReplyTLVs applies the sender's reply rules: skip U, stop at M, discard on I or HMAC
// failure.
func TestX11ReplyTLVs(t *testing.T) {
	base := goldenReflected(ModeUnauthenticated).AppendTo(nil)
	cos := ClassOfService{DSCP1: 46, DSCP2: 46, ECN2: 2}
	pkt := AppendTLV(append([]byte{}, base...), FlagU, TLVType(200), []byte{1, 2})
	pkt = AppendTLV(pkt, 0, TypeClassOfService, cos.AppendTo(nil))
	pkt = AppendTLV(pkt, 0, TypeTimestampInformation, []byte{1, 2, 1, 2})
	pkt = AppendTLV(pkt, 0, TypeExtraPadding, make([]byte, 10))
	r := ParseReplyTLVs(pkt, BaseLen, nil)
	if r.Count != 4 || !reflect.DeepEqual(r.Unrecognized, []TLVType{200}) || r.ClassOfService == nil ||
		*r.ClassOfService != cos || r.TimestampInformation == nil || r.ExtraPadding != 10 || r.Malformed || r.IntegrityFailed {
		t.Errorf("reply TLVs %+v", r)
	}
	m := append([]byte{}, pkt...)
	m[BaseLen+6] |= FlagM // the CoS TLV
	r = ParseReplyTLVs(m, BaseLen, nil)
	if !r.Malformed || r.MalformedType != TypeClassOfService || r.ClassOfService != nil || r.TimestampInformation != nil {
		t.Errorf("M: %+v", r)
	}
	i := append([]byte{}, pkt...)
	i[len(i)-14] |= FlagI // the padding TLV
	r = ParseReplyTLVs(i, BaseLen, nil)
	if !r.IntegrityFailed || r.ClassOfService != nil {
		t.Errorf("I: %+v", r)
	}
	s := NewSigner([]byte("k-0123456789abcdef"))
	h := AppendHMACTLV(append([]byte{}, pkt...), BaseLen, 0, s)
	if r = ParseReplyTLVs(h, BaseLen, s); !r.HMACVerified || r.IntegrityFailed || r.ClassOfService == nil {
		t.Errorf("HMAC ok: %+v", r)
	}
	h[BaseLen+12] ^= 0xFF
	if r = ParseReplyTLVs(h, BaseLen, s); r.HMACVerified || !r.IntegrityFailed || r.ClassOfService != nil {
		t.Errorf("HMAC bad: %+v", r)
	}
	if r = ParseReplyTLVs(append(append([]byte{}, base...), 1, 2), BaseLen, nil); !r.Malformed {
		t.Errorf("framing: %+v", r)
	}
	if r = ParseReplyTLVs(base, BaseLen, nil); r.Count != 0 {
		t.Errorf("base only: %+v", r)
	}
}

var (
	loc4src = netip.MustParseAddrPort("192.0.2.1:40000")
	loc4dst = netip.MustParseAddrPort("198.51.100.7:862")
)
