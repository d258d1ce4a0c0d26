package sender

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/shared/sender/sendertest"
	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/timestamp"
	"github.com/probekit/probekit/shared/udpsock"
)

var target = netip.MustParseAddrPort("127.0.0.1:862")

// B-03/B-04 (sizes), B-05 (Seq from 0, +1), B-07 (non-zero EE multiplier), X-01 (SSID in every
// packet), X-06 (TLV flags 0x80), B-08 (MBZ zero).
func TestBuilderLayout(t *testing.T) {
	ee := timestamp.NewErrorEstimate(false, false, time.Millisecond)
	for _, tc := range []struct {
		id   string
		key  []byte
		tlvs []TLVSpec
		size int
		want int
	}{
		{"B-03", nil, nil, 0, 44},
		{"B-04", []byte("k-0123456789abcdef"), nil, 0, 112},
		{"size", nil, nil, 100, 100},
		{"tlvs", nil, []TLVSpec{mustSpec(t, "time"), mustSpec(t, "cos:dscp=ef,ecn=ect0")}, 0, 44 + 8 + 8},
		{"auth-tlvs", []byte("k-0123456789abcdef"), []TLVSpec{mustSpec(t, "time")}, 0, 112 + 8 + 20},
	} {
		m := testpkt.ModeUnauthenticated
		if tc.key != nil {
			m = testpkt.ModeAuthenticated
		}
		b, err := newBuilder(m, 0x1234, ee, false, tc.key, tc.tlvs, tc.size)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 2048)
		for seq := uint32(0); seq < 3; seq++ {
			p := b.build(buf, seq, time.Unix(1800000000, 0), seq, true)
			if len(p) != tc.want {
				t.Fatalf("%s: %d octets, want %d", tc.id, len(p), tc.want)
			}
			sp := testpkt.SenderPacket{Mode: m}
			if err := sp.UnmarshalBinary(p); err != nil {
				t.Fatal(err)
			}
			if sp.Seq != seq || sp.SSID != 0x1234 || !sp.ErrorEstimate.Valid() || !sp.Time().Equal(time.Unix(1800000000, 0)) {
				t.Errorf("%s: packet %+v", tc.id, sp)
			}
			mbz := p[16:44]
			if m.Authenticated() {
				mbz = append(append([]byte{}, p[4:16]...), p[28:96]...)
			}
			if !bytes.Equal(mbz, make([]byte, len(mbz))) {
				t.Errorf("%s: MBZ %x (B-08)", tc.id, mbz)
			}
			it := testpkt.NewTLVIterator(p[m.SenderLen():])
			for it.Next() {
				if it.TLV().Flags != testpkt.FlagU {
					t.Errorf("%s: TLV %v flags %#x (X-06)", tc.id, it.TLV().Type, it.TLV().Flags)
				}
			}
			if m.Authenticated() {
				s := testpkt.NewSigner(tc.key)
				if !s.Verify(p) {
					t.Errorf("%s: base HMAC", tc.id)
				}
				if hl := len(p) - testpkt.TLVHeaderLen - testpkt.HMACLen; len(tc.tlvs) > 0 && !s.VerifyTLV(p, testpkt.AuthBaseLen, hl, p[hl+testpkt.TLVHeaderLen:]) {
					t.Errorf("%s: HMAC TLV", tc.id)
				}
			}
		}
	}
	if _, err := newBuilder(testpkt.ModeUnauthenticated, 1, ee, false, nil, nil, 46); err == nil {
		t.Error("size 46 (2 octets of room) accepted")
	}
}

// TestTeapartySenderHMAC lays out the stamp-suite→teaparty authenticated request with our
// builder and signs it: the bytes, HMAC included, equal the vector (B-18).
func TestTeapartySenderHMAC(t *testing.T) {
	want, _ := hex.DecodeString("00000000000000000000000000000000ee6d329f014afa010001002a000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000062c721b7528f87c402f959b4f565b579")
	key := []byte("interop-test-key-2026")
	b, err := newBuilder(testpkt.ModeAuthenticated, 0x2a, 0x0001, false, key, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	raw := uint64(0xee6d329f014afa01)
	p := b.build(make([]byte, 112), 0, testpkt.Time(raw, 0), 0, false)
	// time.Time holds nanoseconds, NTP 2^-32 s: restore the exact raw T1 and re-sign.
	copy(p[16:24], want[16:24])
	b.signer.Sign(p)
	if !bytes.Equal(p, want) {
		t.Errorf("our request\n%x\nteaparty vector\n%x", p, want)
	}
}

func TestParseTLVSpec(t *testing.T) {
	for _, tc := range []struct {
		in   string
		typ  testpkt.TLVType
		val  string
		fail bool
	}{
		{"time", testpkt.TypeTimestampInformation, "00000000", false},
		{"cos", testpkt.TypeClassOfService, "20000000", false},
		{"cos:dscp=ef,ecn=ect0", testpkt.TypeClassOfService, "b8008000", false},
		{"padding:size=3", testpkt.TypeExtraPadding, "000000", false},
		{"access-report:id=2,code=1", testpkt.TypeAccessReport, "20010000", false},
		{"followup", testpkt.TypeFollowUpTelemetry, strings.Repeat("00", 16), false},
		{"direct-measurement", testpkt.TypeDirectMeasurement, strings.Repeat("00", 12), false},
		{"destination-node", testpkt.TypeDestinationNodeAddress, "7f000001", false},
		{"unrecognized:type=201,size=2", 201, "0000", false},
		// RFC 8972 §4.2.1: generic Source IP (7) and Destination IP (4) Address sub-TLVs, Length
		// 16, zero value, U=1; type numbers from the IANA "STAMP Sub-TLV Types" registry.
		{"location", testpkt.TypeLocation, "00000000" + "80070010" + strings.Repeat("00", 16) + "80040010" + strings.Repeat("00", 16), false},
		{"cos:dscp=99", 0, "", true},
		{"cos:bogus=1", 0, "", true},
		{"nope", 0, "", true},
		{"padding:size", 0, "", true},
	} {
		s, err := ParseTLVSpec(tc.in, target)
		if (err != nil) != tc.fail {
			t.Errorf("%q: err %v", tc.in, err)
			continue
		}
		if !tc.fail && (s.Type != tc.typ || hex.EncodeToString(s.Value) != tc.val) {
			t.Errorf("%q: type %v value %x, want %v %s", tc.in, s.Type, s.Value, tc.typ, tc.val)
		}
	}
}

func mustSpec(t *testing.T, s string) TLVSpec {
	t.Helper()
	v, err := ParseTLVSpec(s, target)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// reply builds the reflected packet a reflector with the given clock would send.
func reply(seq uint32, t1, t2, t3 time.Time, synced bool) []byte {
	rp := testpkt.ReflectedPacket{Seq: seq, Timestamp: testpkt.Stamp(t3, false), SSID: 7,
		ErrorEstimate:    timestamp.NewErrorEstimate(synced, false, time.Microsecond),
		ReceiveTimestamp: testpkt.Stamp(t2, false), SenderSeq: seq, SenderTimestamp: testpkt.Stamp(t1, false),
		SenderErrorEstimate: 1, SenderTTL: 64}
	return rp.AppendTo(nil)
}

// TestAccumulatorNumbers feeds replies with known times: RTT = (T4−T1) − (T3−T2), residence,
// one-way delays, duplicates, reordering, late replies, loss and jitter all follow exactly.
func TestAccumulatorNumbers(t *testing.T) {
	var out bytes.Buffer
	cfg := Config{Target: target, SSID: 7, Timeout: 100 * time.Millisecond, Format: cliutil.FormatJSON, Out: &out}
	h := newHarness(t, cfg)
	base := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	for seq := uint32(0); seq < 6; seq++ {
		t1 := base.Add(time.Duration(seq) * time.Millisecond)
		h.send(seq, t1.Add(-time.Microsecond), t1)
	}
	offset := 250 * time.Microsecond // reflector clock ahead
	type pk struct {
		seq           uint32
		fwd, res, bwd time.Duration
	}
	// Arrival order: 0, 2, 1 (reordered), 1 again (duplicate), 4, 5 late; 3 lost.
	order := []pk{{0, 100, 5, 200}, {2, 120, 6, 210}, {1, 110, 4, 190}, {1, 110, 4, 190}, {4, 130, 3, 220}, {5, 150 * time.Millisecond, 3, 0}}
	for _, p := range order {
		t1 := base.Add(time.Duration(p.seq) * time.Millisecond)
		fwd, res, bwd := p.fwd*time.Microsecond, p.res*time.Microsecond, p.bwd*time.Microsecond
		if p.seq == 5 {
			fwd = p.fwd
		}
		t2 := t1.Add(fwd + offset)
		t3 := t2.Add(res)
		t4 := t3.Add(bwd - offset)
		data := reply(p.seq, t1, t2, t3, false)
		var rp testpkt.ReflectedPacket
		if err := rp.UnmarshalBinary(data); err != nil {
			t.Fatal(err)
		}
		m := &udpsock.Message{Addr: target, RxTime: t4, RxSource: timestamp.SourceKernel, TTL: 63}
		if err := h.recv(data, m); err != nil {
			t.Fatal(err)
		}
	}
	s := h.summary(time.Second)
	if b, err := json.Marshal(s); err != nil {
		t.Fatal(err)
	} else if err := sendertest.ValidateSummary(b); err != nil || s.Tool != "stampsend" || s.Invalid != 0 {
		t.Errorf("JSON summary: %v\n%s", err, b)
	}
	// The shared part: RTT in ms and the RFC 3550 jitter, as the µs figures below.
	if r := s.RTTms; r == nil || r.Count != 4 || r.Min != 0.3 || r.Max != 0.35 || r.Avg != 0.32 || r.P50 != 0.3 {
		t.Errorf("rtt_ms %+v", r)
	}
	if s.Sent != 6 || s.Received != 4 || s.Lost != 2 || s.Duplicates != 1 || s.Late != 1 || s.Reordered != 1 {
		t.Errorf("counts %+v", s)
	}
	// RTTs: fwd+bwd = 300, 330, 300, 350 µs.
	if s.RTT.Count != 4 || s.RTT.MinUS != 300 || s.RTT.MaxUS != 350 || s.RTT.MeanUS != 320 || s.RTT.P50US != 300 {
		t.Errorf("rtt %+v", s.RTT)
	}
	if s.Residence.MinUS != 3 || s.Residence.MaxUS != 6 {
		t.Errorf("residence %+v", s.Residence)
	}
	// One-way delays carry the 250 µs clock offset, with the warning.
	if s.Forward.MinUS != 350 || s.Backward.MinUS != -60 || s.OneWayValid || !strings.Contains(s.Warning, "not synchronised") ||
		!strings.Contains(s.Warning, "negative") {
		t.Errorf("one-way %+v %+v %q", s.Forward, s.Backward, s.Warning)
	}
	// RFC 3550 jitter over RTTs 300, 330, 300, 350 in arrival order: J=30/16, then …
	j := 0.0
	prev := 300.0
	for _, r := range []float64{330, 300, 350} {
		d := r - prev
		if d < 0 {
			d = -d
		}
		j += (d - j) / 16
		prev = r
	}
	if d := s.JitterUS - j; d > 0.001 || d < -0.001 {
		t.Errorf("jitter %.4f, want %.4f", s.JitterUS, j)
	}
	if s.TxSource != "kernel" || s.RxSource != "kernel" {
		t.Errorf("sources %s %s", s.TxSource, s.RxSource)
	}
	// Per-packet JSON lines: 5 records (the late one is not printed), the duplicate flagged.
	if err := h.s.acc.emit.Flush(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines:\n%s", len(lines), out.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["rtt_us"].(float64) != 300 || rec["residence_us"].(float64) != 5 || rec["ttl"].(float64) != 63 {
		t.Errorf("record %v", rec)
	}
	if err := json.Unmarshal([]byte(lines[3]), &rec); err != nil || rec["duplicate"] != true {
		t.Errorf("duplicate record %v", rec)
	}
}

// a reflector without RFC 8972 returns SSID 0; --require-ssid stops.
func TestX04RequireSSID(t *testing.T) {
	cfg := Config{Target: target, SSID: 7, Timeout: time.Second, Format: cliutil.FormatText, Quiet: true, RequireSSID: true}
	h := newHarness(t, cfg)
	now := time.Now()
	rp := testpkt.ReflectedPacket{SenderSeq: 0, Timestamp: testpkt.Stamp(now, false), ReceiveTimestamp: testpkt.Stamp(now, false)}
	data := rp.AppendTo(nil)
	h.send(0, now, time.Time{})
	err := h.recv(data, &udpsock.Message{Addr: target, RxTime: now})
	if err != ErrNoSSID {
		t.Errorf("err %v", err)
	}
	cfg.RequireSSID = false
	h = newHarness(t, cfg)
	h.send(0, now, time.Time{})
	if err := h.recv(data, &udpsock.Message{Addr: target, RxTime: now}); err != nil {
		t.Fatal(err)
	}
	if s := h.summary(time.Second); !strings.Contains(s.Warning, "SSID 0") || s.Received != 1 {
		t.Errorf("summary %+v", s)
	}
}

// B-21 / B-06: a TWAMP-Light reflector (41-octet reply, no SSID, no TLVs) that stamps T2/T3 in
// PTP format (Z=1) is measured correctly: times are decoded by the reflector's Z bit.
func TestB21B06TWAMPLightPTPReflector(t *testing.T) {
	cfg := Config{Target: target, SSID: 9, Timeout: time.Second, Format: cliutil.FormatText, Quiet: true}
	h := newHarness(t, cfg)
	t1 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	h.send(0, t1, time.Time{})
	t2, t3, t4 := t1.Add(40*time.Microsecond), t1.Add(47*time.Microsecond), t1.Add(90*time.Microsecond)
	rp := testpkt.ReflectedPacket{Seq: 0, Timestamp: testpkt.Stamp(t3, true), ErrorEstimate: timestamp.NewErrorEstimate(true, true, time.Microsecond),
		ReceiveTimestamp: testpkt.Stamp(t2, true), SenderSeq: 0, SenderTimestamp: testpkt.Stamp(t1, false), SenderErrorEstimate: 1, SenderTTL: 64}
	data := rp.AppendTo(nil)[:testpkt.TWAMPReflectedLen]
	var dec testpkt.ReflectedPacket
	if err := dec.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	if err := h.recv(data, &udpsock.Message{Addr: target, RxTime: t4}); err != nil {
		t.Fatal(err)
	}
	s := h.summary(time.Second)
	if s.Received != 1 || s.RTT.MinUS != 83 || s.Residence.MinUS != 7 || s.Forward.MinUS != 40 || s.Backward.MinUS != 43 {
		t.Errorf("summary %+v", s)
	}
	if !strings.Contains(s.Warning, "SSID 0") {
		t.Errorf("warning %q", s.Warning)
	}
}

// T-06 (sender): the Access Report goes in the first packet and, until a reply echoes it, again
// every interval, at most the configured number of retries; other packets carry Extra Padding of
// the same size in its place.
func TestT06AccessReportRetransmission(t *testing.T) {
	ee := timestamp.NewErrorEstimate(false, false, time.Millisecond)
	b, err := newBuilder(testpkt.ModeUnauthenticated, 1, ee, false, nil, []TLVSpec{mustSpec(t, "access-report")}, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := &session{cfg: Config{AccessReportInterval: 3 * time.Second}, b: b, arLeft: 2}
	start := time.Unix(1800000000, 0)
	var sent []int
	for i := 0; i < 200; i++ { // one packet every 100 ms for 20 s
		now := start.Add(time.Duration(i) * 100 * time.Millisecond)
		if s.wantAR(now) {
			sent = append(sent, i)
		}
	}
	if len(sent) != 3 || sent[0] != 0 || sent[1] != 30 || sent[2] != 60 {
		t.Errorf("Access Report in packets %v, want 0, 30, 60 (initial + 2 retries every 3 s)", sent)
	}
	s = &session{cfg: Config{AccessReportInterval: 3 * time.Second}, b: b, arLeft: 4}
	if !s.wantAR(start) {
		t.Fatal("first packet without the report")
	}
	s.arAcked.Store(true)
	if s.wantAR(start.Add(time.Hour)) {
		t.Error("resent after it was echoed")
	}
	with := b.build(make([]byte, 64), 0, start, 0, true)
	with = append([]byte(nil), with...)
	without := b.build(make([]byte, 64), 1, start, 1, false)
	tw, _ := testpkt.ParseTLVs(with[44:])
	to, _ := testpkt.ParseTLVs(without[44:])
	if len(with) != len(without) || tw[0].Type != testpkt.TypeAccessReport || to[0].Type != testpkt.TypeExtraPadding ||
		!bytes.Equal(to[0].Value, make([]byte, 4)) {
		t.Errorf("with %x without %x", with, without)
	}
}

// T-02 (sender side): the reflector's view in the Location TLV reaches the summary; a changed
// view (a NAT rebinding the source port) replaces it; an unreported destination shows as "?".
func TestLocationSummary(t *testing.T) {
	var out bytes.Buffer
	cfg := Config{Target: target, SSID: 7, Timeout: time.Second, Format: cliutil.FormatText, Out: &out, Quiet: true}
	h := newHarness(t, cfg)
	base := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	for i, tc := range []struct {
		src, dst         netip.AddrPort
		wantSrc, wantDst string
	}{
		{netip.MustParseAddrPort("203.0.113.9:40000"), netip.MustParseAddrPort("127.0.0.1:862"), "203.0.113.9:40000", "127.0.0.1:862"},
		{netip.MustParseAddrPort("203.0.113.9:40001"), netip.MustParseAddrPort("127.0.0.1:862"), "203.0.113.9:40001", "127.0.0.1:862"},
		{netip.MustParseAddrPort("[2001:db8::5]:41000"), netip.AddrPortFrom(netip.Addr{}, 862), "[2001:db8::5]:41000", "?:862"},
	} {
		seq := uint32(i)
		t1 := base.Add(time.Duration(i) * time.Millisecond)
		loc := testpkt.NewLocationRequest()
		if !testpkt.FillLocation(loc, tc.src, tc.dst) {
			t.Fatal("fill")
		}
		data := testpkt.AppendTLV(reply(seq, t1, t1.Add(100*time.Microsecond), t1.Add(105*time.Microsecond), true), 0, testpkt.TypeLocation, loc)
		var rp testpkt.ReflectedPacket
		if err := rp.UnmarshalBinary(data); err != nil {
			t.Fatal(err)
		}
		m := &udpsock.Message{Addr: target, RxTime: t1.Add(300 * time.Microsecond), TTL: 64}
		h.send(seq, t1, time.Time{})
		if err := h.recv(data, m); err != nil {
			t.Fatal(err)
		}
		s := h.summary(time.Second)
		if s.LocationSource != tc.wantSrc || s.LocationDestination != tc.wantDst {
			t.Errorf("reply %d: location %q -> %q, want %q -> %q", i, s.LocationSource, s.LocationDestination, tc.wantSrc, tc.wantDst)
		}
	}
	if err := h.s.acc.printSummary(h.summary(time.Second)); err != nil {
		t.Fatal(err)
	}
	if want := "location: the reflector saw [2001:db8::5]:41000 -> ?:862\n"; !strings.Contains(out.String(), want) {
		t.Errorf("text summary lacks %q:\n%s", want, out.String())
	}
	// Without a Location TLV there is no location line.
	if s := newHarness(t, cfg).summary(time.Second); s.LocationSource != "" {
		t.Errorf("location %q without a Location TLV", s.LocationSource)
	}
}

// issue 11 H6: a spoofed reply (right address, right SSID) naming sender sequence number
// 0xFFFFFFFF, or one never sent, is counted as unknown and changes neither loss, RTT nor
// reordering; the genuine replies around it all count.
func TestForgedReplyIgnored(t *testing.T) {
	var out bytes.Buffer
	h := newHarness(t, Config{Target: target, SSID: 7, Timeout: time.Second, Format: cliutil.FormatText, Out: &out, Quiet: true})
	base := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	for seq := uint32(0); seq < 200; seq++ {
		t1 := base.Add(time.Duration(seq) * time.Millisecond)
		h.send(seq, t1, t1)
		if seq == 100 {
			for _, forged := range []uint32{0xFFFFFFFF, 150, 5000} {
				if err := h.recv(reply(forged, t1, t1, t1, false), &udpsock.Message{Addr: target, RxTime: t1}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if seq%2 == 0 { // every other packet answered
			if err := h.recv(reply(seq, t1, t1.Add(50*time.Microsecond), t1.Add(55*time.Microsecond), false),
				&udpsock.Message{Addr: target, RxTime: t1.Add(100 * time.Microsecond)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	s := h.summary(time.Second)
	if s.Sent != 200 || s.Received != 100 || s.Lost != 100 || s.LossPct != 50 || s.Reordered != 0 || s.Unknown != 3 ||
		s.Invalid != 3 || s.RTT.Count != 100 || s.RTT.MaxUS != 95 {
		t.Errorf("summary %+v", s)
	}
	if err := h.s.acc.printSummary(s); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "200 packets transmitted, 100 received, 50.00% packet loss, 0 duplicates, 0 reordered") ||
		!strings.Contains(out.String(), "3 unknown sequence") {
		t.Errorf("text:\n%s", out.String())
	}
}
