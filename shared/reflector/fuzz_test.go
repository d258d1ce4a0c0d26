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
