package testpkt

import (
	"bytes"
	"testing"

	"github.com/probekit/probekit/shared/testsupport/stampvectors"
)

// TestB18TeapartySenderHMAC rebuilds the stamp-suite sender's authenticated requests from their
// decoded fields with our encoder and signer: the bytes, HMAC included, must equal theirs. Their
// replies (teaparty) must verify under the same key.
func TestB18TeapartySenderHMAC(t *testing.T) {
	v := stampvectors.MustTeaparty(t)
	s := NewSigner([]byte(interopKey))
	for i, pair := range v.Authenticated {
		req, rep := pair.Request, pair.Reply
		p := SenderPacket{Mode: ModeAuthenticated}
		if err := p.UnmarshalBinary(req); err != nil {
			t.Fatal(err)
		}
		theirs := p.HMAC
		p.HMAC = [HMACLen]byte{}
		ours := p.AppendTo(nil)
		s.Sign(ours)
		if !bytes.Equal(ours, req) {
			t.Errorf("vector %d: our request\n%x\ntheirs\n%x", i, ours, req)
		}
		if !bytes.Equal(ours[96:], theirs[:]) {
			t.Errorf("vector %d: HMAC %x, theirs %x", i, ours[96:], theirs)
		}
		if !s.Verify(req) || !s.Verify(rep) {
			t.Errorf("vector %d: request/reply HMAC does not verify", i)
		}
	}
}

// TestB19WrongKeys: captures of requests under wrong keys and the XilongYang replies verify
// only under the right key.
func TestB19WrongKeys(t *testing.T) {
	caps := stampvectors.MustCaptures(t)
	good := NewSigner([]byte(interopKey))
	secret := NewSigner([]byte("secret"))
	cases := []struct {
		file   string
		frame  int
		signer *Signer
		want   bool
	}{
		{"stamp-suite-reflector-auth.pcap", 1, good, true},
		{"stamp-suite-reflector-auth.pcap", 2, good, true},
		{"stamp-suite-reflector-auth.pcap", 6, good, true},
		{"stamp-suite-reflector-auth.pcap", 7, good, false}, // non-matching key, dropped by stamp-suite
		{"stamp-suite-reflector-auth.pcap", 7, secret, false},
		{"stamp-xy-auth.pcap", 1, secret, true},
		{"stamp-xy-auth.pcap", 2, secret, true},
		{"stamp-xy-auth.pcap", 7, secret, false}, // key "wrongkey", XilongYang reflected it anyway
		{"stamp-xy-auth.pcap", 8, secret, true},
		{"stamp-xy-auth.pcap", 9, secret, true}, // 124 octets: HMAC still over the first 96
		{"stamp-xy-auth.pcap", 1, good, false},
		{"stamp-suite-reflector.pcap", 11, good, false}, // key "secret" sent to the interop-key reflector
		{"stamp-suite-reflector.pcap", 11, secret, true},
	}
	for _, c := range cases {
		f := caps[c.file][c.frame-1]
		if f.Frame != c.frame {
			t.Fatalf("frame index mismatch")
		}
		if got := c.signer.Verify(f.Payload); got != c.want {
			t.Errorf("%s frame %d: verify %v, want %v", c.file, c.frame, got, c.want)
		}
	}
	if good.Verify(make([]byte, 50)) {
		t.Error("short packet verified")
	}
}

// TestHMACTLV checks the HMAC TLV (RFC 8972 §4.8, T-08) over Seq ‖ preceding TLVs.
func TestHMACTLV(t *testing.T) {
	s := NewSigner([]byte(interopKey))
	p := goldenSender(ModeAuthenticated)
	pkt := p.AppendTo(nil)
	pkt = AppendTLV(pkt, FlagU, TypeTimestampInformation, make([]byte, 4))
	off := len(pkt)
	pkt = AppendHMACTLV(pkt, AuthBaseLen, FlagU, s)
	if len(pkt) != off+TLVHeaderLen+HMACLen || pkt[off] != FlagU || pkt[off+1] != byte(TypeHMAC) {
		t.Fatalf("HMAC TLV header %x", pkt[off:off+4])
	}
	want := s.Sum(append(append([]byte{}, pkt[:4]...), pkt[AuthBaseLen:off]...))
	if !bytes.Equal(pkt[off+4:], want[:]) {
		t.Errorf("HMAC TLV %x, want %x", pkt[off+4:], want)
	}
	if !s.VerifyTLV(pkt, AuthBaseLen, off, pkt[off+4:]) {
		t.Error("VerifyTLV failed")
	}
	pkt[AuthBaseLen+5] ^= 1
	if s.VerifyTLV(pkt, AuthBaseLen, off, pkt[off+4:]) {
		t.Error("VerifyTLV accepted a modified TLV")
	}
	if s.VerifyTLV(pkt, AuthBaseLen, off, pkt[off+4:off+10]) || s.VerifyTLV(pkt, AuthBaseLen, 5, pkt[off+4:]) {
		t.Error("VerifyTLV accepted a bad length/offset")
	}
	c := s.Clone()
	if !bytes.Equal(c.Key(), []byte(interopKey)) {
		t.Error("clone key")
	}
}

func BenchmarkSignVerify(b *testing.B) {
	s := NewSigner([]byte(interopKey))
	pkt := goldenSender(ModeAuthenticated).AppendTo(nil)
	b.ReportAllocs()
	for b.Loop() {
		s.Sign(pkt)
		if !s.Verify(pkt) {
			b.Fatal("verify")
		}
	}
}
