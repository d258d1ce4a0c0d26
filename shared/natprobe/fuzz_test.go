package natprobe

import (
	"net/netip"
	"testing"

	"github.com/pion/stun/v3"
)

// FuzzRespond feeds arbitrary bytes to the server side: it must never panic, and whatever it
// answers must be a STUN message for the request's transaction.
func FuzzRespond(f *testing.F) {
	f.Add(binding(f, 0))
	f.Add(binding(f, ChangeIP|ChangePort))
	f.Add(stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint).Raw)
	f.Add(stun.MustBuild(stun.TransactionID, stun.BindingSuccess).Raw)
	f.Add([]byte{1, 2, 3, 2, 3, 6, 0, 0, 0, 0})
	r := Responder{Primary: netip.MustParseAddrPort("198.51.100.1:3478"), Other: netip.MustParseAddrPort("198.51.100.2:3479")}
	src := netip.MustParseAddrPort("203.0.113.9:4000")
	f.Fuzz(func(t *testing.T, b []byte) {
		out, _, err := r.Respond(nil, b, src, r.Primary)
		if err != nil {
			return
		}
		if !IsSTUN(out) || string(out[8:20]) != string(b[8:20]) {
			t.Fatalf("answer %x to %x", out, b)
		}
	})
}
