package reflector

import (
	"testing"
	"time"

	"github.com/probekit/probekit/shared/testpkt"
)

// FuzzReflect drives the reflector's whole receive path (layout checks, session table,
// authentication, TLV rules, HMACs) with arbitrary datagrams in unauthenticated and
// authenticated mode. Invariants: no panic, no amplification (a reply is never longer than
// max(request, base)), replies decode, and in authenticated mode only packets with a valid
// HMAC are answered. Seeds: testdata/fuzz/FuzzReflect (requests from the reference captures).
func FuzzReflect(f *testing.F) {
	key := []byte(interopKey)
	verify := testpkt.NewSigner(key)
	f.Fuzz(func(t *testing.T, b []byte, authMode bool, tos uint8, stateless bool) {
		m := testpkt.ModeUnauthenticated
		cfg := Config{Stateless: stateless, MaxSessions: 4}
		if authMode {
			m = testpkt.ModeAuthenticated
			cfg.Mode, cfg.Key = m, key
		}
		r, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		w := r.NewWorker()
		w.Now = func() time.Time { return t3Time }
		for i := 0; i < 2; i++ {
			p := pkt(b, peerA)
			p.TOS = tos
			valid := !authMode || verify.Verify(b)
			out, _, ok := w.Reflect(p, make([]byte, 0, 16384))
			if !ok {
				continue
			}
			if authMode && !valid {
				t.Fatal("reflected a packet with a bad HMAC")
			}
			if len(out) > max(len(b), m.ReflectedLen()) {
				t.Fatalf("amplification: %d octets for %d", len(out), len(b))
			}
			rp := testpkt.ReflectedPacket{Mode: m}
			if err := rp.UnmarshalBinary(out); err != nil {
				t.Fatalf("reply does not decode: %v", err)
			}
			if authMode && !verify.Verify(out) {
				t.Fatal("reply HMAC invalid")
			}
			_ = testpkt.ParseReplyTLVs(out, m.ReflectedLen(), verify)
		}
	})
}

// FuzzReflectTWAMP drives the TWAMP-Test path of a provisioned session (twampd's use): open
// or authenticated layout, RFC 7750 monitoring and an RFC 6038-style ReplyHook. Invariants:
// no panic; replies are exactly max(request, base) octets (base 41, 42 with RFC 7750, 112
// authenticated), so never amplified; the Sender DSCP and ECN octet holds the received TOS;
// the hook sees the final reply. Seeds: the twampy TWAMP Light requests of
// twamp-light-twampy.pcap (twampd's testdata) and padded/authenticated variants.
func FuzzReflectTWAMP(f *testing.F) {
	twampy := []byte{0, 0, 0, 1, 0xeb, 0x1b, 0xc4, 0x63, 0x2c, 0x20, 0x00, 0x00, 0x3f, 0xff}
	f.Add(twampy, false, false, uint8(0))
	f.Add(append(append([]byte(nil), twampy...), make([]byte, 27)...), false, true, uint8(0xB9))
	f.Add(make([]byte, testpkt.AuthBaseLen), true, true, uint8(0x01))
	f.Add(make([]byte, 13), false, true, uint8(0))
	f.Fuzz(func(t *testing.T, b []byte, authMode, dscpECN bool, tos uint8) {
		r, err := New(Config{Format: FormatTWAMP, ProvisionedOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		mode, base := testpkt.ModeUnauthenticated, testpkt.TWAMPReflectedLen
		var spy *sealSpy
		s := &Session{Key: SessionKey{Peer: peerA, Local: local}, Format: FormatTWAMP, Mode: mode,
			SenderDSCPECN: dscpECN}
		if authMode {
			spy = &sealSpy{}
			mode, base, s.Mode, s.Auth = testpkt.ModeTWAMPAuthenticated, testpkt.AuthBaseLen, testpkt.ModeTWAMPAuthenticated, spy
		} else if dscpECN {
			base++
		}
		hook := &copyHook{off: base}
		s.Hook = hook
		if err := r.Table().Provision(s, false); err != nil {
			t.Fatal(err)
		}
		w := r.NewWorker()
		w.Now = func() time.Time { return t3Time }
		p := pkt(b, peerA)
		p.TOS = tos
		out, _, ok := w.Reflect(p, make([]byte, 0, 16384))
		if !ok {
			if len(b) >= mode.SenderLen() && len(b) <= 9216 && (authMode || len(b) >= testpkt.TWAMPSenderLen) {
				t.Fatalf("dropped a %d-octet request", len(b))
			}
			return
		}
		if len(out) != max(len(b), base) {
			t.Fatalf("reply %d octets for %d, want %d", len(out), len(b), max(len(b), base))
		}
		if hook.calls != 1 || hook.lens[0] != len(out) {
			t.Fatalf("hook calls %d lengths %v", hook.calls, hook.lens)
		}
		switch {
		case authMode && dscpECN && spy.sealed[81] != tos:
			t.Fatalf("sealed Sender DSCP and ECN %#x, want %#x", spy.sealed[81], tos)
		case !authMode && dscpECN && out[41] != tos:
			t.Fatalf("Sender DSCP and ECN %#x, want %#x", out[41], tos)
		}
		rp := testpkt.ReflectedPacket{Mode: mode}
		if len(out) >= mode.ReflectedLen() {
			if err := rp.UnmarshalBinary(out); err != nil {
				t.Fatalf("reply does not decode: %v", err)
			}
		}
	})
}
