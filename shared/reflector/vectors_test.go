package reflector

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/testsupport/stampvectors"
)

// maskTimes zeroes T3, T2, the reflector's Error Estimate (it describes each reflector's own
// clock) and (authenticated) the HMAC, the fields that differ between two reflectors by
// construction, and the reflector sequence number, which teaparty starts at
// sender_seq+1 (reference/stamp.md §4) while RFC 8762 (B-12) starts at 0.
func maskTimes(b []byte, m testpkt.Mode) []byte {
	b = append([]byte(nil), b...)
	clear(b[0:4])
	if m.Authenticated() {
		clear(b[16:26])
		clear(b[32:40])
		clear(b[96:112])
	} else {
		clear(b[4:14])
		clear(b[16:24])
	}
	return b
}

// TestTeapartyVectors sends teaparty's requests through our reflector: the replies must equal
// teaparty's field by field except the timestamps, the HMAC (which covers them) and the
// reflector sequence number (teaparty's documented +1 quirk; ours starts at 0, B-12). The CoS
// and Timestamp Information TLVs must match byte for byte (T-03, T-04).
func TestTeapartyVectors(t *testing.T) {
	v := stampvectors.MustTeaparty(t)
	run := func(name string, m testpkt.Mode, pairs []stampvectors.Pair, tos uint8) {
		t.Run(name, func(t *testing.T) {
			cfg := Config{Mode: m}
			if m.Authenticated() {
				cfg.Key = []byte(interopKey)
			}
			_, w := newWorker(t, cfg)
			for i, pair := range pairs {
				req, theirs := pair.Request, pair.Reply
				p := pkt(req, peerA)
				p.TOS = tos
				ours, replyTOS, r, ok := reflect1(t, w, p, m)
				if !ok {
					t.Fatalf("pair %d dropped", i)
				}
				if !bytes.Equal(maskTimes(ours, m), maskTimes(theirs, m)) {
					t.Errorf("pair %d\n ours   %x\n theirs %x", i, maskTimes(ours, m), maskTimes(theirs, m))
				}
				if !r.ErrorEstimate.Valid() || r.ErrorEstimate.Z() {
					t.Errorf("pair %d: our EE %v (B-07: non-zero multiplier, NTP)", i, r.ErrorEstimate)
				}
				if r.Seq != uint32(i) || binary.BigEndian.Uint32(theirs) != uint32(i)+1 {
					t.Errorf("pair %d: our seq %d (want %d), teaparty's %d", i, r.Seq, i, binary.BigEndian.Uint32(theirs))
				}
				if m.Authenticated() && !testpkt.NewSigner([]byte(interopKey)).Verify(ours) {
					t.Errorf("pair %d: our reply HMAC does not verify", i)
				}
				if len(ours) > testpkt.BaseLen && m == testpkt.ModeUnauthenticated {
					if !bytes.Equal(ours[44:], theirs[44:]) {
						t.Errorf("TLVs %x, teaparty %x", ours[44:], theirs[44:])
					}
					if replyTOS != 0xBA {
						t.Errorf("reply TOS %#x, want DSCP1 EF with ECN1 ECT(0) = 0xba", replyTOS)
					}
				}
			}
		})
	}
	run("open", testpkt.ModeUnauthenticated, v.Open, 0)
	run("cos_time_tlvs_tos186", testpkt.ModeUnauthenticated, v.CoSTime, 0xBA)
	run("authenticated", testpkt.ModeAuthenticated, v.Authenticated, 0)
}

// TestStampSuiteCaptures replays the stamp-suite requests: our replies fix its two bugs (SSID in
// MBZ 38–39 / 74–75) and otherwise agree with its replies except timestamps and HMAC.
func TestStampSuiteCaptures(t *testing.T) {
	caps := stampvectors.MustCaptures(t)
	cases := []struct {
		file   string
		m      testpkt.Mode
		frames []int // request frames; the reply is the next frame
	}{
		{"stamp-suite-reflector.pcap", testpkt.ModeUnauthenticated, []int{1, 3, 5}},
		{"stamp-suite-reflector-auth.pcap", testpkt.ModeAuthenticated, []int{1, 3, 5}},
	}
	for _, c := range cases {
		cfg := Config{Mode: c.m}
		if c.m.Authenticated() {
			cfg.Key = []byte(interopKey)
		}
		_, w := newWorker(t, cfg)
		for i, fn := range c.frames {
			fr := caps[c.file][fn-1]
			theirs := caps[c.file][fn].Payload
			p := pkt(fr.Payload, peerA)
			p.TTL = fr.TTL
			ours, _, r, ok := reflect1(t, w, p, c.m)
			if !ok {
				t.Fatalf("%s frame %d dropped", c.file, fn)
			}
			if r.Seq != uint32(i) {
				t.Errorf("%s frame %d: seq %d, want %d (B-12)", c.file, fn, r.Seq, i)
			}
			mbz := 38
			if c.m.Authenticated() {
				mbz = 74
			}
			if ours[mbz] != 0 || ours[mbz+1] != 0 {
				t.Errorf("%s: MBZ %d–%d = %x (B-08)", c.file, mbz, mbz+1, ours[mbz:mbz+2])
			}
			// stamp-suite copied the SSID into MBZ; clear it in theirs to compare the rest.
			theirs[mbz], theirs[mbz+1] = 0, 0
			if !bytes.Equal(maskTimes(ours, c.m), maskTimes(theirs, c.m)) {
				t.Errorf("%s frame %d\n ours   %x\n theirs %x", c.file, fn, maskTimes(ours, c.m), maskTimes(theirs, c.m))
			}
		}
	}
	// Frame 7 → 8: Extra Padding, unknown type 200, CoS (all flags 0x00): symmetric 84-octet
	// reply, type 200 with U, the others with flags 0 and the CoS filled with TOS 0 (X-07, B-16).
	_, w := newWorker(t, Config{})
	req := caps["stamp-suite-reflector.pcap"][6].Payload
	theirs := caps["stamp-suite-reflector.pcap"][7].Payload
	ours, _, _, ok := reflect1(t, w, pkt(req, peerB), testpkt.ModeUnauthenticated)
	if !ok || len(ours) != 84 {
		t.Fatalf("TLV request: ok %v len %d", ok, len(ours))
	}
	// Our CoS additionally sets RPE = 1 (draft cos-ecn), stamp-suite leaves the octet 0.
	theirs[len(theirs)-2] |= 0x10
	if !bytes.Equal(ours[44:], theirs[44:]) {
		t.Errorf("TLVs\n ours   %x\n theirs %x", ours[44:], theirs[44:])
	}
}

// TestXilongYangCaptures: the request under key "wrongkey" (frame 7) that XilongYang reflected
// is dropped by us (B-19), and the 124-octet request with Extra Padding after the HMAC gets a
// symmetric 124-octet reply (B-16) where XilongYang answered 112.
func TestXilongYangCaptures(t *testing.T) {
	caps := stampvectors.MustCaptures(t)["stamp-xy-auth.pcap"]
	r, w := newWorker(t, Config{Mode: testpkt.ModeAuthenticated, Key: []byte("secret")})
	if _, _, _, ok := reflect1(t, w, pkt(caps[0].Payload, peerA), testpkt.ModeAuthenticated); !ok {
		t.Fatal("valid request dropped")
	}
	if _, _, _, ok := reflect1(t, w, pkt(caps[6].Payload, peerB), testpkt.ModeAuthenticated); ok {
		t.Fatal("wrong-key request reflected")
	}
	if got := r.Stats.Drops[DropAuth].Load(); got != 1 {
		t.Errorf("auth drops %d", got)
	}
	if r.Table().Len() != 1 {
		t.Errorf("sessions %d: the wrong-key packet created state", r.Table().Len())
	}
	ours, _, rp, ok := reflect1(t, w, pkt(caps[8].Payload, peerA), testpkt.ModeAuthenticated)
	if !ok || len(ours) != 124 || rp.SenderSeq != 20 || rp.Seq != 1 {
		t.Fatalf("padding request: ok %v len %d %+v", ok, len(ours), rp)
	}
	if !bytes.Equal(ours[112:], []byte{0, 1, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0}) {
		t.Errorf("padding TLV %x", ours[112:])
	}
}
