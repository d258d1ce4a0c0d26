package sender

import (
	"io"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/testsupport/stampvectors"
	"github.com/probekit/probekit/shared/udpsock"
)

// FuzzHandleReply feeds arbitrary datagrams to the sender's reply path (decode, match with the
// sent packet, HMAC check, TLV rules, statistics and JSON output) in both modes: it must never
// panic, and the counts must stay consistent. Seeds: the reflector replies of the reference
// captures and vectors (added below) plus testdata/fuzz/FuzzHandleReply.
func FuzzHandleReply(f *testing.F) {
	if v, err := stampvectors.LoadTeaparty(); err == nil {
		for _, p := range append(append(v.Open, v.CoSTime...), v.Authenticated...) {
			f.Add(p.Reply, len(p.Reply) == testpkt.AuthBaseLen)
		}
	}
	if c, err := stampvectors.LoadCaptures(); err == nil {
		for _, frames := range c {
			for _, fr := range frames {
				f.Add(fr.Payload, len(fr.Payload) >= testpkt.AuthBaseLen && len(fr.Payload) != 84)
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte, auth bool) {
		cfg := Config{Target: target, SSID: 0x2a, Timeout: time.Hour, Format: cliutil.FormatJSON, Out: io.Discard}
		if auth {
			cfg.Key = []byte(stampvectors.InteropKey)
		}
		h := newHarness(t, cfg)
		now := time.Now()
		for q := uint32(0); q < 4; q++ {
			h.send(q, now, time.Time{})
		}
		for i := 0; i < 2; i++ {
			m := &udpsock.Message{Addr: target, RxTime: now.Add(time.Millisecond)}
			if err := h.recv(b, m); err != nil {
				t.Fatal(err)
			}
		}
		sum := h.summary(time.Second)
		if sum.Received > 4 || sum.Received+sum.Lost != 4 {
			t.Fatalf("inconsistent summary %+v", sum)
		}
	})
}
