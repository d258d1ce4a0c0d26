package reflector

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/testpkt"
)

// twampOpenReq is an RFC 5357 §4.1.2 unauthenticated sender packet: Sequence Number
// 0x01020304, Timestamp 0xE1E2E3E4E5E6E7E8, Error Estimate 0x8001, then pad octets of
// Packet Padding numbered from 0xA0.
func twampOpenReq(pad int) []byte {
	b, _ := hex.DecodeString("01020304" + "e1e2e3e4e5e6e7e8" + "8001")
	for i := 0; i < pad; i++ {
		b = append(b, byte(0xA0+i))
	}
	return b
}

// unhex decodes a golden reply written with spaces between fields.
func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// copyHook is a ReplyHook in the manner of twampd's RFC 6038 copy: it copies the request's
// first two padding octets (offset 14) to reply offset off and counts its calls.
type copyHook struct {
	off   int
	calls int
	lens  [2]int // reply and request lengths of the last call
}

func (h *copyHook) Reply(reply, req []byte) {
	h.calls++
	h.lens = [2]int{len(reply), len(req)}
	if len(req) >= 16 && len(reply) >= h.off+2 {
		copy(reply[h.off:h.off+2], req[14:16])
	}
}

// The TWAMP reply rules, golden bytes per RFC 5357 §4.2.1 (open reflector layout: Sequence
// Number, Timestamp (T3), Error Estimate, MBZ, Receive Timestamp (T2), Sender Sequence
// Number, Sender Timestamp, Sender Error Estimate, MBZ, Sender TTL = 41 octets, then Packet
// Padding), RFC 7750 §2 (Sender DSCP and ECN at 41) and a ReplyHook (RFC 6038 style copy).
// T2 = 2026-11-23 08:00:00 UTC = NTP 0xEEAE7100.00000000, T3 = T2 + 3 µs (fraction 0x3255);
// the reflector's Error Estimate for an unsynchronised 1 ms clock is 0x0F84 (Scale 15,
// Multiplier 132: 132·2^(15−32) s ≈ 1.007 ms).
func TestTWAMPReplyGolden(t *testing.T) {
	const head = "00000000 eeae710000003255 0f84 0000 eeae710000000000 01020304 e1e2e3e4e5e6e7e8 8001 0000 40"
	cases := []struct {
		name    string
		learned bool // TWAMP Light: no provisioned session
		dscpECN bool
		hook    bool
		pad     int
		tos     uint8
		want    string
	}{
		{name: "light-minimum", learned: true, pad: 0, want: head},
		{name: "open-minimum", pad: 0, want: head},
		{name: "open-27-padding", pad: 27, want: head},
		{name: "open-28-padding", pad: 28, want: head + " 00"},
		{name: "open-36-padding", pad: 36, want: head + " 000000 bebfc0c1c2c3"},
		{name: "rfc7750-minimum", dscpECN: true, tos: 0xB9, want: head + " b9"},
		{name: "rfc7750-ecn-only", dscpECN: true, tos: 0x01, want: head + " 01"},
		{name: "rfc7750-36-padding", dscpECN: true, pad: 36, tos: 0x2E << 2, want: head + " b8 0000 bebfc0c1c2c3"},
		{name: "hook-open", hook: true, pad: 36, want: head + " 000000 a0a1c0c1c2c3"},
		{name: "hook-rfc7750", hook: true, dscpECN: true, pad: 36, tos: 0x03, want: head + " 03 a0a1 bebfc0c1c2c3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, w := newWorker(t, Config{Format: FormatTWAMP, ProvisionedOnly: !tc.learned})
			var hook *copyHook
			if !tc.learned {
				s := &Session{Key: SessionKey{Peer: peerA, Local: local}, Format: FormatTWAMP,
					Mode: testpkt.ModeUnauthenticated, SenderDSCPECN: tc.dscpECN}
				if tc.hook {
					hook = &copyHook{off: 44}
					if tc.dscpECN {
						hook.off = 42 // behind the RFC 7750 octet, as twampctl.ReflectorPaddingOffset
					}
					s.Hook = hook
				}
				if err := r.Table().Provision(s, false); err != nil {
					t.Fatal(err)
				}
			}
			p := pkt(twampOpenReq(tc.pad), peerA)
			p.TOS = tc.tos
			out, _, ok := w.Reflect(p, make([]byte, 0, 2048))
			if !ok {
				t.Fatal("dropped")
			}
			if want := unhex(t, tc.want); !bytes.Equal(out, want) {
				t.Errorf("reply (%d octets)\n got %x\nwant %x", len(out), out, want)
			}
			rp := testpkt.ReflectedPacket{Mode: testpkt.ModeUnauthenticated}
			if len(out) >= testpkt.BaseLen {
				if err := rp.UnmarshalBinary(out); err != nil {
					t.Errorf("decode: %v", err)
				}
			}
			if hook != nil && (hook.calls != 1 || hook.lens != [2]int{len(out), len(p.Data)}) {
				t.Errorf("hook calls %d with lengths %v", hook.calls, hook.lens)
			}
		})
	}
}

// sealSpy is an Authenticator that records the reply as Seal sees it.
type sealSpy struct{ sealed []byte }

func (*sealSpy) Open([]byte) bool { return true }
func (a *sealSpy) Seal(b []byte)  { a.sealed = append(a.sealed[:0], b...) }

// RFC 7750 in the authenticated layout: the octet at 81 (after Sender TTL at 80) is written
// before Seal, so it is inside the HMAC (and encryption) span; replies stay 112 octets.
func TestTWAMPAuthSenderDSCPECN(t *testing.T) {
	for _, tc := range []struct {
		name    string
		dscpECN bool
		pad     int
		want81  uint8
		wantLen int
	}{
		{"off", false, 0, 0, 112},
		{"on", true, 0, 0xB9, 112},
		{"on-padded", true, 16, 0xB9, 128},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, w := newWorker(t, Config{Format: FormatTWAMP, ProvisionedOnly: true})
			spy := &sealSpy{}
			hook := &copyHook{off: 112}
			if err := r.Table().Provision(&Session{Key: SessionKey{Peer: peerA, Local: local}, Format: FormatTWAMP,
				Mode: testpkt.ModeTWAMPAuthenticated, Auth: spy, SenderDSCPECN: tc.dscpECN, Hook: hook}, false); err != nil {
				t.Fatal(err)
			}
			sp := testpkt.SenderPacket{Mode: testpkt.ModeTWAMPAuthenticated, Seq: 9, Timestamp: 0xE1, ErrorEstimate: 1}
			req := append(sp.AppendTo(nil), make([]byte, 64+tc.pad)...) // 112 octets and more: symmetric with the reply
			p := pkt(req, peerA)
			p.TOS = 0xB9
			out, _, ok := w.Reflect(p, make([]byte, 0, 2048))
			if !ok || len(out) != tc.wantLen || len(spy.sealed) != tc.wantLen {
				t.Fatalf("ok %v len %d sealed %d", ok, len(out), len(spy.sealed))
			}
			if spy.sealed[80] != 64 || spy.sealed[81] != tc.want81 {
				t.Errorf("at Seal: Sender TTL %d, Sender DSCP and ECN %#x", spy.sealed[80], spy.sealed[81])
			}
			if bytes.Count(spy.sealed[82:96], []byte{0}) != 14 {
				t.Errorf("MBZ after the RFC 7750 octet: %x", spy.sealed[82:96])
			}
			if hook.calls != 1 {
				t.Errorf("hook ran %d times", hook.calls)
			}
		})
	}
}

// With a Listener, sessions are keyed by the socket's address while Local (the datagram's
// real destination on a wildcard socket) fills the Location TLV's Destination Address;
// Destination Node Address still accepts any of the host's addresses.
func TestListenerKeysLocalLocates(t *testing.T) {
	r, w := newWorker(t, Config{})
	wild := netip.MustParseAddrPort("[::]:8620")
	dst := netip.MustParseAddrPort("127.0.0.2:8620")
	req := tlvReq(
		testpkt.TLV{Flags: 0x80, Type: testpkt.TypeLocation, Value: testpkt.NewLocationRequest()},
		testpkt.TLV{Flags: 0x80, Type: testpkt.TypeDestinationNodeAddress, Value: []byte{127, 0, 0, 1}})
	p := pkt(req, peerA)
	p.Local, p.Listener = dst, wild
	out, _, _, ok := reflect1(t, w, p, unauth)
	if !ok {
		t.Fatal("dropped")
	}
	tl := replyTLVs(t, out, testpkt.BaseLen)
	l, err := testpkt.ParseLocation(tl[0].Value)
	if err != nil || tl[0].Flags != 0 || l.DstPort != 8620 || l.SrcPort != peerA.Port() {
		t.Fatalf("location %+v %v", l, err)
	}
	for _, s := range l.Sub {
		a, _ := testpkt.LocationSubAddr(s)
		want := peerA.Addr()
		if s.Type == testpkt.SubDestIPv4 || s.Type == testpkt.SubDestIPv6 {
			want = dst.Addr()
		}
		if a != want {
			t.Errorf("sub-TLV %v: %v, want %v", s.Type, a, want)
		}
	}
	if tl[1].Flags != 0 {
		t.Errorf("destination node address 127.0.0.1 flagged %#x on a wildcard listener", tl[1].Flags)
	}
	snap := r.Table().Snapshot()
	if len(snap) != 1 || snap[0].Local != wild.String() {
		t.Errorf("sessions %+v, want one keyed by %v", snap, wild)
	}
}

// TWAMP replies with RFC 7750 and a hook allocate nothing either.
func TestTWAMPZeroAllocs(t *testing.T) {
	r, w := newWorker(t, Config{Format: FormatTWAMP, ProvisionedOnly: true})
	w.Now = time.Now
	if err := r.Table().Provision(&Session{Key: SessionKey{Peer: peerA, Local: local}, Format: FormatTWAMP,
		Mode: testpkt.ModeUnauthenticated, SenderDSCPECN: true, Hook: &copyHook{off: 42}}, false); err != nil {
		t.Fatal(err)
	}
	p := pkt(twampOpenReq(64), peerA)
	out := make([]byte, 0, 2048)
	if allocs := testing.AllocsPerRun(1000, func() {
		if _, _, ok := w.Reflect(p, out); !ok {
			t.Fatal("dropped")
		}
	}); allocs != 0 {
		t.Errorf("%.1f allocs per packet", allocs)
	}
}
