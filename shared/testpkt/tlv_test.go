package testpkt

import (
	"bytes"
	"encoding/hex"
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
	inPlace := []byte{1, 2, 3, 4, 9, 9, 9, 9, 9, 9, 9, 9}
	PutDirectMeasurementReflector(inPlace, 5, 0xA0B0C0D0)
	if !bytes.Equal(inPlace, wantDM) {
		t.Errorf("direct measurement, reflector's counters in place: %x", inPlace)
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

// TestIANARegistryValues pins the code points against their sources: IANA "STAMP TLV Types"
// and "STAMP Sub-TLV Types" (https://www.iana.org/assignments/stamp-tlv-types/stamp-tlv-types.xhtml,
// snapshot last updated 2024-02-01; RFC 8972 §5 Tables 2, 3, 5, 7, 9, 11), RFC 9503 §3–§4
// (types 9, 10; Return Path sub-TLVs "Type=1" Control Code and "Type=4" SRv6 Segment List
// figures) and RFC 9534 §3.1 (figure "Micro-session ID TLV", Type = 11).
func TestIANARegistryValues(t *testing.T) {
	for _, tc := range []struct {
		name      string
		got, want int
	}{
		{"Extra Padding", int(TypeExtraPadding), 1},
		{"Location", int(TypeLocation), 2},
		{"Timestamp Information", int(TypeTimestampInformation), 3},
		{"Class of Service", int(TypeClassOfService), 4},
		{"Direct Measurement", int(TypeDirectMeasurement), 5},
		{"Access Report", int(TypeAccessReport), 6},
		{"Follow-Up Telemetry", int(TypeFollowUpTelemetry), 7},
		{"HMAC", int(TypeHMAC), 8},
		{"Destination Node Address (RFC 9503)", int(TypeDestinationNodeAddress), 9},
		{"Return Path (RFC 9503)", int(TypeReturnPath), 10},
		{"Micro-session ID (RFC 9534)", int(TypeMicroSessionID), 11},
		{"flag U (bit 0)", int(FlagU), 0x80},
		{"flag M (bit 1)", int(FlagM), 0x40},
		{"flag I (bit 2)", int(FlagI), 0x20},
		{"sub Source MAC Address", int(SubSourceMAC), 1},
		{"sub Source EUI-48 Address", int(SubSourceEUI48), 2},
		{"sub Source EUI-64 Address", int(SubSourceEUI64), 3},
		{"sub Destination IP Address", int(SubDestIP), 4},
		{"sub Destination IPv4 Address", int(SubDestIPv4), 5},
		{"sub Destination IPv6 Address", int(SubDestIPv6), 6},
		{"sub Source IP Address", int(SubSourceIP), 7},
		{"sub Source IPv4 Address", int(SubSourceIPv4), 8},
		{"sub Source IPv6 Address", int(SubSourceIPv6), 9},
		{"sync NTP", int(SyncNTP), 1},
		{"sync PTP", int(SyncPTP), 2},
		{"sync SSU/BITS", int(SyncSSU), 3},
		{"sync GNSS", int(SyncGNSS), 4},
		{"sync local free-running", int(SyncLocal), 5},
		{"method HW Assist", int(MethodHardware), 1},
		{"method SW Local", int(MethodSoftware), 2},
		{"method Control Plane", int(MethodControlPlane), 3},
		{"return code network available", int(AccessAvailable), 1},
		{"return code network unavailable", int(AccessUnavailable), 2},
		{"access ID 3GPP", int(AccessID3GPP), 1},
		{"access ID non-3GPP", int(AccessIDNon3GPP), 2},
		{"return path Control Code sub-TLV", int(SubReturnPathControlCode), 1},
		{"return path SRv6 Segment List sub-TLV", int(SubSRv6SegmentList), 4},
		{"experimental first", int(TypeExperimentalFirst), 240},
		{"experimental last", int(TypeExperimentalLast), 251},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %d, registry says %d", tc.name, tc.got, tc.want)
		}
	}
}

// TestT02LocationGolden (T-02) checks the Location request and the reflector's answers byte by
// byte. Layouts: RFC 8972 §4.2 (Destination Port · Source Port · sub-TLVs), §4.2.1 (sub-TLVs
// in the TLV framing of Figure 5; Source MAC/EUI-48/EUI-64 Length 8, EUI-48 = 6 octets + 2
// MBZ; every IP sub-TLV Length 16, IPv4 = 4 octets + 12 MBZ), §4.2.2 (the reflector answers a
// generic request with the type for the packet's family, and with a zeroed EUI-64 when it has
// no source MAC; the TLV keeps its length). Type numbers: IANA "STAMP Sub-TLV Types"
// (https://www.iana.org/assignments/stamp-tlv-types/stamp-tlv-types.xhtml).
func TestT02LocationGolden(t *testing.T) {
	const z4, z8, z12, z16 = "00000000", "0000000000000000", "000000000000000000000000", "00000000000000000000000000000000"
	req := "00000000" + "80070010" + z16 + "80040010" + z16
	if got := hex.EncodeToString(NewLocationRequest()); got != req {
		t.Fatalf("request\n%s\nwant\n%s", got, req)
	}
	src4, dst4 := netip.MustParseAddrPort("192.0.2.1:40000"), netip.MustParseAddrPort("198.51.100.7:862")
	src6, dst6 := netip.MustParseAddrPort("[2001:db8::1]:40000"), netip.MustParseAddrPort("[2001:db8::7]:862")
	ports := "035e9c40"
	for _, tc := range []struct {
		name     string
		in       string
		src, dst netip.AddrPort
		ok       bool
		want     string
	}{
		{"generic request, IPv4", req, src4, dst4, true,
			ports + "00080010" + "c0000201" + z12 + "00050010" + "c6336407" + z12},
		{"generic request, IPv6", req, src6, dst6, true,
			ports + "00090010" + "20010db8000000000000000000000001" + "00060010" + "20010db8000000000000000000000007"},
		{"v4-mapped peer is IPv4", req, netip.MustParseAddrPort("[::ffff:192.0.2.1]:40000"), netip.MustParseAddrPort("[::ffff:198.51.100.7]:862"), true,
			ports + "00080010" + "c0000201" + z12 + "00050010" + "c6336407" + z12},
		{"destination unknown (wildcard socket): zeros", req, src4, netip.AddrPortFrom(netip.Addr{}, 862), true,
			ports + "00080010" + "c0000201" + z12 + "00050010" + z16},
		{"specific IPv6 request on an IPv4 packet answers IPv4", "00000000" + "80090010" + z16, src4, dst4, true,
			ports + "00080010" + "c0000201" + z12},
		{"I and reserved flag bits cleared", "00000000" + "ff070010" + z16, src4, dst4, true,
			ports + "00080010" + "c0000201" + z12},
		{"request value junk is overwritten", "00000000" + "80040010" + "ffffffffffffffffffffffffffffffff", src4, dst4, true,
			ports + "00050010" + "c6336407" + z12},
		{"source MAC: zeroed EUI-64", "00000000" + "80010008" + "1111111111111111", src4, dst4, true,
			ports + "00030008" + z8},
		{"source EUI-48 request answered like MAC", "00000000" + "80020008" + z8, src4, dst4, true,
			ports + "00030008" + z8},
		{"unknown sub-TLV copied with U", "00000000" + "00c80002" + "abcd" + "80070010" + z16, src4, dst4, true,
			ports + "80c80002" + "abcd" + "00080010" + "c0000201" + z12},
		{"bad IP length: M, rest unprocessed", "00000000" + "80070004" + z4 + "80040010" + z16, src4, dst4, true,
			ports + "40070004" + z4 + "80040010" + z16},
		{"bad MAC length: M", "00000000" + "80010006" + "000000000000", src4, dst4, true,
			ports + "40010006" + "000000000000"},
		{"pre-RFC 4-octet IPv4 request filled", hex.EncodeToString(preRFCLocationRequest(false)), src4, dst4, true,
			ports + "00080004" + "c0000201" + "00050004" + "c6336407"},
		{"pre-RFC IPv6 request filled", hex.EncodeToString(preRFCLocationRequest(true)), src6, dst6, true,
			ports + "00090010" + "20010db8000000000000000000000001" + "00060010" + "20010db8000000000000000000000007"},
		{"pre-RFC 4-octet request on IPv6: U", "00000000" + "80080004" + "01020304", src6, dst6, true,
			ports + "80080004" + z4},
		{"ports only", "00000000", src4, dst4, true, ports},
		{"sub-TLV overruns: untouched, malformed", "00000000" + "80070011" + z16, src4, dst4, false,
			"00000000" + "80070011" + z16},
		{"shorter than the ports", "000000", src4, dst4, false, "000000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := hex.DecodeString(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			n := len(v)
			if ok := FillLocation(v, tc.src, tc.dst); ok != tc.ok {
				t.Errorf("FillLocation = %v, want %v", ok, tc.ok)
			}
			if len(v) != n {
				t.Fatalf("length %d -> %d", n, len(v))
			}
			if got := hex.EncodeToString(v); got != tc.want {
				t.Errorf("answer\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// TestLocationAddresses decodes the reflector's answers (the sender side of T-02).
func TestLocationAddresses(t *testing.T) {
	src4, dst4 := netip.MustParseAddrPort("192.0.2.1:40000"), netip.MustParseAddrPort("198.51.100.7:862")
	src6, dst6 := netip.MustParseAddrPort("[2001:db8::1]:40000"), netip.MustParseAddrPort("[2001:db8::7]:862")
	for _, tc := range []struct {
		name     string
		v        []byte
		src, dst netip.AddrPort
	}{
		{"rfc v4", NewLocationRequest(), src4, dst4},
		{"rfc v6", NewLocationRequest(), src6, dst6},
		{"pre-rfc v4", preRFCLocationRequest(false), src4, dst4},
		{"destination left as zeros", NewLocationRequest(), src4, netip.AddrPortFrom(netip.Addr{}, 862)},
	} {
		if !FillLocation(tc.v, tc.src, tc.dst) {
			t.Fatalf("%s: fill", tc.name)
		}
		l, err := ParseLocation(tc.v)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		s, d := l.Addresses()
		if s != tc.src.Addr() || d != tc.dst.Addr().Unmap() || l.SrcPort != tc.src.Port() || l.DstPort != tc.dst.Port() {
			t.Errorf("%s: %v:%d -> %v:%d", tc.name, s, l.SrcPort, d, l.DstPort)
		}
	}
	// Unanswered (U) and malformed (M) sub-TLVs report nothing, nor do other types, nor the
	// sub-TLVs after an M one (the reflector stopped there and copied them unanswered).
	l := Location{Sub: []TLV{
		{Flags: FlagU, Type: SubSourceIPv4, Value: []byte{1, 2, 3, 4}},
		{Type: SubSourceEUI64, Value: make([]byte, 8)},
		{Type: SubDestIPv6, Value: make([]byte, 4)},
		{Flags: FlagM, Type: SubDestIPv6, Value: make([]byte, 16)},
		{Type: SubSourceIPv4, Value: []byte{48, 48, 48, 48}},
	}}
	if s, d := l.Addresses(); s.IsValid() || d.IsValid() {
		t.Errorf("addresses %v %v from unanswered sub-TLVs", s, d)
	}
}

// TestReturnPathNoReply: RFC 9503 §4.1.1 Control Code Flags: the least significant bit is the
// reply request (0x0 no reply requested, 0x1 same link); reserved bits are ignored on receipt;
// only the first Control Code sub-TLV counts.
func TestReturnPathNoReply(t *testing.T) {
	cc := func(b ...byte) []byte { return AppendTLV(nil, 0, SubReturnPathControlCode, b) }
	for _, tc := range []struct {
		name string
		v    []byte
		want bool
	}{
		{"no reply", cc(0, 0, 0, 0), true},
		{"same link", cc(0, 0, 0, 1), false},
		{"no reply, reserved bits set", cc(0xff, 0xff, 0xff, 0xfe), true},
		{"same link, reserved bits set", cc(0x80, 0, 0, 0x03), false},
		{"first control code wins", append(cc(0, 0, 0, 1), cc(0, 0, 0, 0)...), false},
		{"after a return address", append(AppendTLV(nil, 0, SubReturnAddress, []byte{192, 0, 2, 1}), cc(0, 0, 0, 0)...), true},
		{"short control code ignored", cc(0, 0, 0), false},
		{"none", nil, false},
	} {
		if got := ReturnPathNoReplyRequested(tc.v); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
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
	loc6src = netip.MustParseAddrPort("[2001:db8::1]:40000")
	loc6dst = netip.MustParseAddrPort("[2001:db8::7]:862")
)

// preRFCLocationRequest is the Location request of senders written before RFC 8972's
// generic request types: specific Source/Destination IPv4 (4-octet values) or IPv6 sub-TLVs.
func preRFCLocationRequest(ipv6 bool) []byte {
	n := lenIPv4
	src, dst := SubSourceIPv4, SubDestIPv4
	if ipv6 {
		n, src, dst = LenLocationIP, SubSourceIPv6, SubDestIPv6
	}
	return Location{Sub: []TLV{
		{Flags: FlagU, Type: src, Value: make([]byte, n)},
		{Flags: FlagU, Type: dst, Value: make([]byte, n)},
	}}.AppendTo(nil)
}
