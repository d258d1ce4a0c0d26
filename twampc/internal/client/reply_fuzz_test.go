package client

import (
	"net/netip"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/netlab"
	"github.com/probekit/probekit/shared/twampctl"
	"github.com/probekit/probekit/shared/udpsock"
)

// FuzzReplyPath feeds arbitrary datagrams from the reflector's address to a session's whole
// receive path (pipeline validation and matching, decryption in the secure modes, decoding,
// onReply's records and the summary): it never panics, no datagram is counted twice, and the
// loss arithmetic stays consistent however forged the input. Seeds: the reflector replies of
// the twampy and owamp captures in testdata (plus testdata/fuzz/FuzzReplyPath).
func FuzzReplyPath(f *testing.F) {
	for _, file := range []string{"testdata/twamp-light-twampy.pcap", "testdata/twamp-owamp-open.pcap"} {
		pkts, err := netlab.ReadCapture(file)
		if err != nil {
			f.Fatal(err)
		}
		for _, p := range pkts {
			if p.UDP != nil && len(p.Payload) >= 38 {
				f.Add(p.Payload, uint8(0))
			}
		}
	}
	f.Add(make([]byte, 112), uint8(1))
	f.Add(make([]byte, 112), uint8(2))
	remote := netip.MustParseAddrPort("192.0.2.1:862")
	f.Fuzz(func(t *testing.T, b []byte, mode uint8) {
		s := &session{remote: remote, mode: twampctl.ModeUnauthenticated, count: 4, records: make([]Record, 4), res: &Result{Reflector: remote.String()}}
		if m := []twampctl.Mode{twampctl.ModeAuthenticated, twampctl.ModeEncrypted}; mode%3 > 0 {
			s.mode = m[mode%3-1]
			tc, err := twampctl.NewTestCrypto(s.mode, [16]byte{1}, twampctl.SessionKeys{})
			if err != nil {
				t.Fatal(err)
			}
			s.tc, s.rtc = tc, tc.Clone()
		}
		offline(t, s)
		now := time.Now()
		for q := uint32(0); q < 4; q++ {
			s.sendAt(q, now)
		}
		for i := 0; i < 2; i++ {
			buf := append([]byte(nil), b...) // decryption works in place
			s.handleReply(&udpsock.Message{Buf: buf, N: len(buf), Addr: remote, RxTime: now.Add(time.Millisecond)}, nil)
		}
		s.finishOffline()
		r := s.res
		if r.Seq.Received() > 1 || r.Seq.Received()+r.Seq.Lost() != 4 || r.Seq.Received()+r.Invalid+r.Late+r.SendDuplicates+r.ReflectDuplicates > 2 {
			t.Fatalf("received %d lost %d invalid %d late %d dups %d/%d", r.Seq.Received(), r.Seq.Lost(), r.Invalid, r.Late,
				r.SendDuplicates, r.ReflectDuplicates)
		}
		_ = r.Summary(nil)
	})
}
