package reflector

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/timestamp"
)

const (
	unauth = testpkt.ModeUnauthenticated
	auth   = testpkt.ModeAuthenticated
)

// B-09 / B-10: reply sizes for base requests.
func TestB09B10ReplySize(t *testing.T) {
	_, w := newWorker(t, Config{})
	if out, _, _, ok := reflect1(t, w, pkt(sender(unauth, 0, 1, nil), peerA), unauth); !ok || len(out) != 44 {
		t.Errorf("B-09: %d octets", len(out))
	}
	_, w = newWorker(t, Config{Mode: auth, Key: []byte(interopKey)})
	req := sender(auth, 0, 1, nil)
	testpkt.NewSigner([]byte(interopKey)).Sign(req)
	if out, _, _, ok := reflect1(t, w, pkt(req, peerA), auth); !ok || len(out) != 112 {
		t.Errorf("B-10: %d octets", len(out))
	}
}

// B-11: stateless reply Seq = received Seq; B-12: stateful per-session counter from 0.
func TestB11B12Sequence(t *testing.T) {
	_, w := newWorker(t, Config{Stateless: true})
	for _, seq := range []uint32{7, 8, 100} {
		_, _, r, _ := reflect1(t, w, pkt(sender(unauth, seq, 1, nil), peerA), unauth)
		if r.Seq != seq {
			t.Errorf("B-11: seq %d for sender seq %d", r.Seq, seq)
		}
	}
	r, w := newWorker(t, Config{})
	type send struct {
		peer netip.AddrPort
		ssid uint16
		want uint32
	}
	for i, s := range []send{{peerA, 1, 0}, {peerA, 1, 1}, {peerB, 1, 0}, {peerA, 2, 0}, {peerA, 1, 2}, {peerB, 1, 1}} {
		_, _, rp, _ := reflect1(t, w, pkt(sender(unauth, 500+uint32(i), s.ssid, nil), s.peer), unauth)
		if rp.Seq != s.want {
			t.Errorf("B-12 step %d (%v ssid %d): seq %d, want %d", i, s.peer, s.ssid, rp.Seq, s.want)
		}
	}
	if r.Table().Len() != 3 {
		t.Errorf("X-03: %d sessions, want 3 (4-tuple + SSID)", r.Table().Len())
	}
}

// B-13: T2 is the receive time, T3 the transmit time, one EE for both; B-14: Sender Seq, T1 and
// EE copied verbatim (also a zero-multiplier EE, B-07); B-15: TTL copied; X-02: SSID copied.
func TestB13B14B15Fields(t *testing.T) {
	for _, ptp := range []bool{false, true} {
		r, w := newWorker(t, Config{PTP: ptp})
		req := sender(unauth, 77, 0xABCD, nil)
		binary.BigEndian.PutUint16(req[12:], 0) // EE multiplier 0 (B-07)
		p := pkt(req, peerA)
		p.TTL = 57
		_, _, rp, ok := reflect1(t, w, p, unauth)
		if !ok {
			t.Fatal("dropped")
		}
		if !rp.ReceiveTime().Equal(t2Time) || !rp.TransmitTime().Equal(t3Time) || rp.Residence() != 3*time.Microsecond {
			t.Errorf("B-13 ptp=%v: T2 %v T3 %v", ptp, rp.ReceiveTime(), rp.TransmitTime())
		}
		if rp.ErrorEstimate != r.ErrorEstimate() || rp.ErrorEstimate.Z() != ptp || !rp.ErrorEstimate.Valid() {
			t.Errorf("B-06/B-13: EE %v", rp.ErrorEstimate)
		}
		if rp.SenderSeq != 77 || rp.SenderTimestamp != binary.BigEndian.Uint64(req[4:]) || rp.SenderErrorEstimate != 0 {
			t.Errorf("B-14: %+v", rp)
		}
		if rp.SenderTTL != 57 {
			t.Errorf("B-15: TTL %d", rp.SenderTTL)
		}
		if rp.SSID != 0xABCD {
			t.Errorf("X-02: SSID %#x", rp.SSID)
		}
	}
}

// B-16: symmetric size, content beyond the base copied; B-17: short requests get the
// zero-filled 44-octet base, longer TWAMP-Light requests keep their padding; B-20: a 14-octet
// TWAMP-Light request is answered.
func TestB16B17B20Size(t *testing.T) {
	_, w := newWorker(t, Config{})
	pad := bytes.Repeat([]byte{0xA5}, 100)
	req := append(sender(unauth, 1, 0, nil)[:14], pad...) // TWAMP-Light: 14 + padding
	out, _, rp, ok := reflect1(t, w, pkt(req, peerA), unauth)
	if !ok || len(out) != len(req) || !bytes.Equal(out[44:], req[44:]) || rp.SenderSeq != 1 {
		t.Errorf("B-16/B-20: len %d", len(out))
	}
	zeros := sender(unauth, 2, 0, make([]byte, 20)) // zero padding: reserved type 0, copied
	if out, _, _, ok := reflect1(t, w, pkt(zeros, peerA), unauth); !ok || !bytes.Equal(out[44:], make([]byte, 20)) {
		t.Errorf("B-17 zero padding: %x", out[44:])
	}
	for _, n := range []int{14, 20, 43} {
		out, _, rp, ok := reflect1(t, w, pkt(sender(unauth, 9, 0, nil)[:n], peerB), unauth)
		if !ok || len(out) != 44 || rp.SenderSeq != 9 {
			t.Errorf("B-17: %d-octet request → %d octets", n, len(out))
		}
	}
	if _, _, _, ok := reflect1(t, w, pkt(make([]byte, 13), peerA), unauth); ok {
		t.Error("13-octet request reflected")
	}
}

// B-19: HMAC verified before any state change; failures are silent, counted drops.
func TestB19AuthBeforeState(t *testing.T) {
	r, w := newWorker(t, Config{Mode: auth, Key: []byte(interopKey)})
	req := sender(auth, 0, 5, nil)
	testpkt.NewSigner([]byte("wrong-key-0123456")).Sign(req)
	if _, _, _, ok := reflect1(t, w, pkt(req, peerA), auth); ok {
		t.Fatal("bad HMAC reflected")
	}
	if r.Table().Len() != 0 || r.Stats.Drops[DropAuth].Load() != 1 {
		t.Errorf("state after bad HMAC: %d sessions", r.Table().Len())
	}
	testpkt.NewSigner([]byte(interopKey)).Sign(req)
	_, _, rp, ok := reflect1(t, w, pkt(req, peerA), auth)
	if !ok || rp.Seq != 0 {
		t.Fatalf("good packet: %v seq %d (the bad one must not have advanced the counter)", ok, rp.Seq)
	}
	// Short authenticated packets and unauthenticated ones on an authenticated socket drop.
	if _, _, _, ok := reflect1(t, w, pkt(sender(unauth, 0, 5, nil), peerA), auth); ok {
		t.Error("44-octet packet reflected in authenticated mode")
	}
	// SIGHUP-style key reload.
	r.SetKey([]byte("new-key-0123456789"))
	if _, _, _, ok := reflect1(t, w, pkt(req, peerA), auth); ok {
		t.Error("old key still accepted after SetKey")
	}
	req = sender(auth, 1, 5, nil) // a new sequence number: seq 0 was answered (replay window)
	testpkt.NewSigner([]byte("new-key-0123456789")).Sign(req)
	if _, _, _, ok := reflect1(t, w, pkt(req, peerA), auth); !ok {
		t.Error("new key rejected")
	}
	if _, err := New(Config{Mode: auth}); err == nil {
		t.Error("authenticated mode without key accepted")
	}
	if _, err := New(Config{Mode: 7}); err == nil {
		t.Error("bad mode accepted")
	}
}

// provisioned-only mode drops unknown sessions; provisioned sessions may carry their own
// key; MaxSessions bounds learned sessions; idle sessions expire.
func TestX03Sessions(t *testing.T) {
	r, w := newWorker(t, Config{ProvisionedOnly: true, Mode: auth})
	key := SessionKey{Peer: peerA, Local: local, SSID: 9}
	if err := r.Table().Provision(&Session{Key: key, Mode: auth, Auth: NewSTAMPAuth([]byte("per-session-key-1"))}, false); err != nil {
		t.Fatal(err)
	}
	if err := r.Table().Provision(&Session{Key: key, Mode: auth}, false); err != ErrExists {
		t.Errorf("duplicate provision: %v", err)
	}
	req := sender(auth, 3, 9, nil)
	testpkt.NewSigner([]byte("per-session-key-1")).Sign(req)
	if _, _, rp, ok := reflect1(t, w, pkt(req, peerA), auth); !ok || rp.Seq != 0 {
		t.Fatalf("provisioned session: %v %d", ok, rp.Seq)
	}
	if _, _, _, ok := reflect1(t, w, pkt(req, peerB), auth); ok {
		t.Error("unknown peer reflected in provisioned-only mode")
	}
	if r.Stats.Drops[DropUnknown].Load() != 1 {
		t.Error("unknown-session drop not counted")
	}
	snap := r.Table().Snapshot()
	if len(snap) != 1 || !snap[0].Provisioned || snap[0].Received != 1 || snap[0].NextSeq != 1 {
		t.Errorf("snapshot %+v", snap)
	}
	if !r.Table().Remove(key) || r.Table().Remove(key) {
		t.Error("remove")
	}

	// A full table makes room for a newcomer by evicting the least recently used session.
	r, w = newWorker(t, Config{MaxSessions: 2, IdleTimeout: time.Minute})
	peerC := netip.MustParseAddrPort("127.0.0.1:40003")
	for i, peer := range []netip.AddrPort{peerA, peerB, peerA, peerC} {
		p := pkt(sender(unauth, 0, 0, nil), peer)
		p.RxTime = t2Time.Add(time.Duration(i) * time.Millisecond)
		if _, _, _, ok := reflect1(t, w, p, unauth); !ok {
			t.Errorf("packet %d from %v dropped with MaxSessions 2", i, peer)
		}
	}
	if r.Stats.Evicted.Load() != 1 || r.Stats.Drops[DropTableFull].Load() != 0 || r.Table().Len() != 2 {
		t.Errorf("evicted %d, table-full drops %d, %d sessions", r.Stats.Evicted.Load(), r.Stats.Drops[DropTableFull].Load(), r.Table().Len())
	}
	for _, si := range r.Table().Snapshot() {
		if si.Peer == peerB.String() {
			t.Errorf("the least recently used session (peer B) was kept: %+v", r.Table().Snapshot())
		}
	}
	if n := r.ExpireIdle(t2Time.Add(30 * time.Second)); n != 0 {
		t.Errorf("expired %d too early", n)
	}
	if n := r.ExpireIdle(t2Time.Add(2 * time.Minute)); n != 2 || r.Table().Len() != 0 {
		t.Errorf("expired %d", n)
	}
	if _, _, _, ok := reflect1(t, w, pkt(sender(unauth, 0, 0, nil), netip.MustParseAddrPort("127.0.0.1:40003")), unauth); !ok {
		t.Error("new session after expiry dropped")
	}
}

// tlvReq builds an unauthenticated request with the given TLVs.
func tlvReq(tlvs ...testpkt.TLV) []byte {
	var ext []byte
	for _, tl := range tlvs {
		ext = tl.AppendTo(ext)
	}
	return sender(unauth, 1, 1, ext)
}

func replyTLVs(t *testing.T, out []byte, base int) []testpkt.TLV {
	t.Helper()
	tl, err := testpkt.ParseTLVs(out[base:])
	if err != nil {
		t.Fatalf("reply TLVs: %v", err)
	}
	return tl
}

// X-07 (U for unknown types, cleared for known, unknown copied unchanged), X-10 (reserved
// flag bits zero on send), T-01 (Extra Padding copied, U cleared), T-11 (type 12 off), T-12
// (experimental off), RFC 9503/9534 types U.
func TestX07X10T01T11T12UnknownTLVs(t *testing.T) {
	_, w := newWorker(t, Config{})
	in := []testpkt.TLV{
		{Flags: 0x8F, Type: testpkt.TypeExtraPadding, Value: []byte{1, 2, 3}},
		{Flags: 0x80, Type: 200, Value: []byte{9, 8, 7, 6}},
		{Flags: 0x80, Type: testpkt.TypeReflectedControl, Value: make([]byte, 12)},
		{Flags: 0x80, Type: 242, Value: []byte{1}},
		{Flags: 0x80, Type: testpkt.TypeMicroSessionID, Value: make([]byte, 4)},
		{Flags: 0x80, Type: testpkt.TypeReturnPath, Value: testpkt.AppendTLV(nil, 0, testpkt.SubReturnPathControlCode, []byte{0, 0, 0, 1})},
	}
	out, _, _, ok := reflect1(t, w, pkt(tlvReq(in...), peerA), unauth)
	if !ok {
		t.Fatal("dropped")
	}
	got := replyTLVs(t, out, 44)
	wantFlags := []uint8{0, 0x80, 0x80, 0x80, 0x80, 0x80}
	for i, tl := range got {
		if tl.Flags != wantFlags[i] || tl.Type != in[i].Type || !bytes.Equal(tl.Value, in[i].Value) {
			t.Errorf("TLV %d: %+v, want flags %#x and value copied", i, tl, wantFlags[i])
		}
	}
}

// a TLV whose length overruns the packet gets M=1 and the rest is copied verbatim; a
// known TLV with a wrong length gets M=1 and stops processing.
func TestX08Malformed(t *testing.T) {
	_, w := newWorker(t, Config{})
	req := tlvReq(testpkt.TLV{Flags: 0x80, Type: testpkt.TypeTimestampInformation, Value: make([]byte, 4)})
	req = append(req, 0x80, byte(testpkt.TypeClassOfService), 0, 40, 1, 2, 3) // overruns
	out, _, _, ok := reflect1(t, w, pkt(req, peerA), unauth)
	if !ok || len(out) != len(req) {
		t.Fatal("dropped or resized")
	}
	if out[44] != 0 || !bytes.Equal(out[48:52], []byte{1, 2, 1, 2}) {
		t.Errorf("first TLV not processed: %x", out[44:52])
	}
	if out[52] != testpkt.FlagM || !bytes.Equal(out[53:], req[53:]) {
		t.Errorf("overrun TLV: %x", out[52:])
	}
	req = tlvReq(testpkt.TLV{Flags: 0x80, Type: testpkt.TypeClassOfService, Value: make([]byte, 3)},
		testpkt.TLV{Flags: 0x80, Type: testpkt.TypeTimestampInformation, Value: make([]byte, 4)})
	out, _, _, _ = reflect1(t, w, pkt(req, peerA), unauth)
	got := replyTLVs(t, out, 44)
	if got[0].Flags != testpkt.FlagM || got[1].Flags != 0x80 || !bytes.Equal(got[1].Value, make([]byte, 4)) {
		t.Errorf("bad-length CoS: %+v", got)
	}
	// Follow-Up Telemetry with a bad length is zeroed too (erratum 8339).
	req = tlvReq(testpkt.TLV{Flags: 0x80, Type: testpkt.TypeFollowUpTelemetry, Value: []byte{1, 2, 3, 4, 5}})
	out, _, _, _ = reflect1(t, w, pkt(req, peerA), unauth)
	if got := replyTLVs(t, out, 44); got[0].Flags != testpkt.FlagM || !bytes.Equal(got[0].Value, make([]byte, 5)) {
		t.Errorf("bad-length follow-up: %+v", got)
	}
}

// authTLVReq builds an authenticated request with TLVs, an HMAC TLV (unless omitted) and the
// base HMAC.
// authSeq numbers authTLVReq's requests: an authenticated session answers each sequence
// number once (replay window).
var authSeq atomic.Uint32

func authTLVReq(key string, withHMAC bool, tlvs ...testpkt.TLV) []byte {
	s := testpkt.NewSigner([]byte(key))
	b := sender(auth, 4+authSeq.Add(1), 2, nil)
	for _, tl := range tlvs {
		b = tl.AppendTo(b)
	}
	if withHMAC {
		b = testpkt.AppendHMACTLV(b, testpkt.AuthBaseLen, testpkt.FlagU, s)
	}
	s.Sign(b)
	return b
}

// X-09 / T-08: the HMAC TLV is verified; on failure every TLV gets I=1 and nothing is
// processed; on success the reply carries a recomputed, valid HMAC TLV.
func TestX09T08HMACTLV(t *testing.T) {
	_, w := newWorker(t, Config{Mode: auth, Key: []byte(interopKey)})
	ti := testpkt.TLV{Flags: 0x80, Type: testpkt.TypeTimestampInformation, Value: make([]byte, 4)}
	req := authTLVReq(interopKey, true, ti)
	out, _, _, ok := reflect1(t, w, pkt(req, peerA), auth)
	if !ok {
		t.Fatal("dropped")
	}
	s := testpkt.NewSigner([]byte(interopKey))
	rt := testpkt.ParseReplyTLVs(out, testpkt.AuthBaseLen, s)
	if !rt.HMACVerified || rt.IntegrityFailed || rt.TimestampInformation == nil || !s.Verify(out) {
		t.Errorf("T-08: %+v", rt)
	}
	// Corrupt a TLV octet and re-sign the base: the HMAC TLV now fails.
	bad := append([]byte(nil), req...)
	bad[testpkt.AuthBaseLen+5] ^= 0xFF
	testpkt.PutSequenceNumber(bad, 4+authSeq.Add(1)) // a fresh one: the first was answered (replay window)
	s.Sign(bad)
	out, _, _, ok = reflect1(t, w, pkt(bad, peerA), auth)
	if !ok {
		t.Fatal("dropped")
	}
	for _, tl := range replyTLVs(t, out, testpkt.AuthBaseLen) {
		if tl.Flags != testpkt.FlagI {
			t.Errorf("X-09: flags %#x on %v", tl.Flags, tl.Type)
		}
	}
	if !bytes.Equal(out[testpkt.AuthBaseLen+4:testpkt.AuthBaseLen+8], bad[testpkt.AuthBaseLen+4:testpkt.AuthBaseLen+8]) {
		t.Error("X-09: TLV value processed despite integrity failure")
	}
	// Authenticated mode, TLVs without an HMAC TLV: integrity failure too (RFC 8972 §4.8) —
	// except when Extra Padding is the only TLV.
	out, _, _, _ = reflect1(t, w, pkt(authTLVReq(interopKey, false, ti), peerA), auth)
	if tl := replyTLVs(t, out, testpkt.AuthBaseLen); tl[0].Flags != testpkt.FlagI {
		t.Errorf("missing HMAC TLV: %+v", tl)
	}
	padOnly := testpkt.TLV{Flags: 0x80, Type: testpkt.TypeExtraPadding, Value: make([]byte, 8)}
	out, _, _, _ = reflect1(t, w, pkt(authTLVReq(interopKey, false, padOnly), peerA), auth)
	if tl := replyTLVs(t, out, testpkt.AuthBaseLen); tl[0].Flags != 0 {
		t.Errorf("padding only: %+v", tl)
	}
	// Unauthenticated mode without a key cannot check an HMAC TLV: U=1.
	_, w = newWorker(t, Config{})
	u := tlvReq(ti)
	u = testpkt.AppendHMACTLV(u, testpkt.BaseLen, testpkt.FlagU, s)
	out, _, _, _ = reflect1(t, w, pkt(u, peerA), unauth)
	if tl := replyTLVs(t, out, testpkt.BaseLen); tl[0].Flags != 0 || tl[1].Flags != testpkt.FlagU {
		t.Errorf("keyless HMAC TLV: %+v", tl)
	}
}

// T-02: Location is filled and keeps its length.
func TestT02Location(t *testing.T) {
	_, w := newWorker(t, Config{})
	req := tlvReq(testpkt.TLV{Flags: 0x80, Type: testpkt.TypeLocation, Value: testpkt.NewLocationRequest()})
	out, _, _, _ := reflect1(t, w, pkt(req, peerA), unauth)
	if len(out) != len(req) {
		t.Fatalf("length %d → %d", len(req), len(out))
	}
	tl := replyTLVs(t, out, 44)
	l, err := testpkt.ParseLocation(tl[0].Value)
	if err != nil || tl[0].Flags != 0 || l.SrcPort != peerA.Port() || l.DstPort != local.Port() {
		t.Fatalf("location %+v %v", l, err)
	}
	for _, s := range l.Sub {
		a, _ := testpkt.LocationSubAddr(s)
		if a != netip.MustParseAddr("127.0.0.1") || s.Flags != 0 {
			t.Errorf("sub %v: %v flags %#x", s.Type, a, s.Flags)
		}
	}
}

// T-04: Class of Service: DSCP2/ECN2 from the received TOS, DSCP1/ECN1 applied to the reply
// unless the policy refuses (then the received DSCP, RP=1).
func TestT04ClassOfService(t *testing.T) {
	cos := testpkt.ClassOfService{DSCP1: 10, ECN1: testpkt.ECNECT1}
	req := tlvReq(testpkt.TLV{Flags: 0x80, Type: testpkt.TypeClassOfService, Value: cos.AppendTo(nil)})
	for _, refuse := range []bool{false, true} {
		_, w := newWorker(t, Config{RefuseDSCP: refuse})
		p := pkt(req, peerA)
		p.TOS = 46<<2 | testpkt.ECNCE
		out, tos, _, _ := reflect1(t, w, p, unauth)
		got, _ := testpkt.ParseClassOfService(replyTLVs(t, out, 44)[0].Value)
		want := testpkt.ClassOfService{DSCP1: 10, DSCP2: 46, ECN2: testpkt.ECNCE, ECN1: testpkt.ECNECT1, RPE: 1}
		wantTOS := uint8(10<<2 | 1)
		if refuse {
			want.RPD = 1
			wantTOS = 46<<2 | 1
		}
		if got != want || tos != wantTOS {
			t.Errorf("refuse=%v: %+v tos %#x, want %+v tos %#x", refuse, got, tos, want, wantTOS)
		}
	}
}

// T-05: Direct Measurement counters per session; T-06: Access Report echoed (invalid ID → U);
// T-07: Follow-Up Telemetry refers to the previous reply, zero in stateless mode.
// (T-01…T-08 are the TLV types 1…8 of reference/stamp.md §2.)
func TestT05T06T07Counters(t *testing.T) {
	dm := testpkt.TLV{Flags: 0x80, Type: testpkt.TypeDirectMeasurement, Value: testpkt.DirectMeasurement{SenderTx: 41}.AppendTo(nil)}
	fu := testpkt.TLV{Flags: 0x80, Type: testpkt.TypeFollowUpTelemetry, Value: make([]byte, 16)}
	ar := testpkt.TLV{Flags: 0x80, Type: testpkt.TypeAccessReport, Value: testpkt.AccessReport{ID: 1, ReturnCode: 1}.AppendTo(nil)}
	arBad := testpkt.TLV{Flags: 0x80, Type: testpkt.TypeAccessReport, Value: testpkt.AccessReport{ID: 5, ReturnCode: 1}.AppendTo(nil)}
	req := tlvReq(dm, fu, ar, arBad)
	_, w := newWorker(t, Config{})
	var prevT3 uint64
	for i := 0; i < 3; i++ {
		out, _, rp, _ := reflect1(t, w, pkt(req, peerA), unauth)
		r := testpkt.ParseReplyTLVs(out, 44, nil)
		if r.DirectMeasurement == nil || *r.DirectMeasurement != (testpkt.DirectMeasurement{SenderTx: 41, ReflectorRx: uint32(i + 1), ReflectorTx: uint32(i + 1)}) {
			t.Errorf("T-05 packet %d: %+v", i, r.DirectMeasurement)
		}
		wantFU := testpkt.FollowUpTelemetry{}
		if i > 0 {
			wantFU = testpkt.FollowUpTelemetry{Seq: uint32(i - 1), Timestamp: prevT3, Method: testpkt.MethodSoftware}
		}
		if r.FollowUpTelemetry == nil || *r.FollowUpTelemetry != wantFU {
			t.Errorf("T-07 packet %d: %+v, want %+v", i, r.FollowUpTelemetry, wantFU)
		}
		if r.AccessReport == nil || *r.AccessReport != (testpkt.AccessReport{ID: 1, ReturnCode: 1}) ||
			len(r.Unrecognized) != 1 || r.Unrecognized[0] != testpkt.TypeAccessReport {
			t.Errorf("T-06 packet %d: %+v %v", i, r.AccessReport, r.Unrecognized)
		}
		prevT3 = rp.Timestamp
	}
	_, w = newWorker(t, Config{Stateless: true})
	for i := 0; i < 2; i++ {
		out, _, _, _ := reflect1(t, w, pkt(req, peerA), unauth)
		if r := testpkt.ParseReplyTLVs(out, 44, nil); r.FollowUpTelemetry == nil || *r.FollowUpTelemetry != (testpkt.FollowUpTelemetry{}) {
			t.Errorf("T-07 stateless: %+v", r.FollowUpTelemetry)
		}
	}
}

// RFC 9503: Destination Node Address local → U=0, else U=1 but reflected; Return Path with
// "no reply requested" → no reply.
func TestRFC9503(t *testing.T) {
	r, w := newWorker(t, Config{})
	mine := testpkt.TLV{Flags: 0x80, Type: testpkt.TypeDestinationNodeAddress, Value: []byte{127, 0, 0, 1}}
	other := testpkt.TLV{Flags: 0x80, Type: testpkt.TypeDestinationNodeAddress, Value: []byte{192, 0, 2, 99}}
	out, _, _, ok := reflect1(t, w, pkt(tlvReq(mine, other), peerA), unauth)
	tl := replyTLVs(t, out, 44)
	if !ok || tl[0].Flags != 0 || tl[1].Flags != testpkt.FlagU {
		t.Errorf("destination node address: %+v", tl)
	}
	noReply := testpkt.TLV{Flags: 0x80, Type: testpkt.TypeReturnPath,
		Value: testpkt.AppendTLV(nil, 0, testpkt.SubReturnPathControlCode, []byte{0, 0, 0, 0})}
	if _, _, _, ok := reflect1(t, w, pkt(tlvReq(noReply), peerA), unauth); ok {
		t.Error("no-reply request answered")
	}
	if r.Stats.Drops[DropNoReply].Load() != 1 {
		t.Error("no-reply not counted")
	}
}

// TWAMP format: SSID octets are padding, no TLV processing, TWAMP authenticated sender layout.
func TestTWAMPFormat(t *testing.T) {
	r, w := newWorker(t, Config{Format: FormatTWAMP, ProvisionedOnly: true})
	key := SessionKey{Peer: peerA, Local: local}
	if err := r.Table().Provision(&Session{Key: key, Format: FormatTWAMP, Mode: testpkt.ModeTWAMPAuthenticated,
		Auth: nullAuth{}, DSCP: 46}, false); err != nil {
		t.Fatal(err)
	}
	sp := testpkt.SenderPacket{Mode: testpkt.ModeTWAMPAuthenticated, Seq: 5, Timestamp: 0xE1, ErrorEstimate: 1}
	req := append(sp.AppendTo(nil), make([]byte, 64)...) // 112 octets: symmetric with the reply
	out, tos, rp, ok := reflect1(t, w, pkt(req, peerA), testpkt.ModeTWAMPAuthenticated)
	if !ok || len(out) != 112 || rp.SenderSeq != 5 || rp.SenderTimestamp != 0xE1 || rp.Seq != 0 || tos != 46<<2 || out[111] != 0xEE {
		t.Errorf("TWAMP auth: ok %v len %d %+v tos %#x", ok, len(out), rp, tos)
	}
}

// nullAuth marks the last octet so the test sees Seal ran.
type nullAuth struct{}

func (nullAuth) Open([]byte) bool { return true }
func (nullAuth) Seal(b []byte)    { b[len(b)-1] = 0xEE }

// The hot path allocates nothing per packet.
func TestZeroAllocs(t *testing.T) {
	ti := testpkt.TLV{Flags: 0x80, Type: testpkt.TypeTimestampInformation, Value: make([]byte, 4)}
	cos := testpkt.TLV{Flags: 0x80, Type: testpkt.TypeClassOfService, Value: make([]byte, 4)}
	cases := []struct {
		name string
		cfg  Config
		req  []byte
	}{
		{"unauth", Config{}, sender(unauth, 1, 1, nil)},
		{"unauth-tlvs", Config{}, tlvReq(ti, cos)},
		{"auth-tlvs", Config{Mode: auth, Key: []byte(interopKey)}, authTLVReq(interopKey, true, ti, cos)},
	}
	for _, c := range cases {
		_, w := newWorker(t, c.cfg)
		w.Now = time.Now
		p := pkt(c.req, peerA)
		out := make([]byte, 0, 2048)
		// Distinct sequence numbers: an authenticated session answers each only once.
		const runs = 1000
		reqs := make([][]byte, runs+1)
		for i := range reqs {
			reqs[i] = append([]byte(nil), c.req...)
			testpkt.PutSequenceNumber(reqs[i], uint32(1000+i))
			if c.cfg.Mode == auth {
				testpkt.NewSigner([]byte(interopKey)).Sign(reqs[i])
			}
		}
		i := 0
		allocs := testing.AllocsPerRun(runs, func() {
			copy(p.Data, reqs[i])
			i++
			if _, _, ok := w.Reflect(p, out); !ok {
				t.Fatal("dropped")
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %.1f allocs per packet", c.name, allocs)
		}
	}
}

func BenchmarkReflect(b *testing.B) {
	_, w := newWorker(b, Config{})
	w.Now = time.Now
	p := pkt(sender(unauth, 1, 1, nil), peerA)
	p.RxSource = timestamp.SourceKernel
	out := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		w.Reflect(p, out)
	}
}

// T-03: Timestamp Information is filled with the sync source and the timestamping methods
// (kernel software stamps: SW local; hardware when the socket said so).
func TestT03TimestampInformation(t *testing.T) {
	for _, tc := range []struct {
		src  timestamp.Source
		sync uint8
		want []byte
	}{
		{timestamp.SourceKernel, 0, []byte{1, 2, 1, 2}},
		{timestamp.SourceHardware, testpkt.SyncPTP, []byte{2, 1, 2, 2}},
	} {
		_, w := newWorker(t, Config{SyncSource: tc.sync})
		p := pkt(tlvReq(testpkt.TLV{Flags: 0x80, Type: testpkt.TypeTimestampInformation, Value: make([]byte, 4)}), peerA)
		p.RxSource = tc.src
		out, _, _, _ := reflect1(t, w, p, unauth)
		if tl := replyTLVs(t, out, 44); tl[0].Flags != 0 || !bytes.Equal(tl[0].Value, tc.want) {
			t.Errorf("%v: %+v, want %x", tc.src, tl[0], tc.want)
		}
	}
}
