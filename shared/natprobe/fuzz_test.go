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

// FuzzProberHandle feeds arbitrary bytes to the client side's STUN receive path while a
// transaction waits: it must never panic, and only a well-formed answer for the transaction may
// complete it.
func FuzzProberHandle(f *testing.F) {
	resp := func(setters ...stun.Setter) []byte { return stun.MustBuild(setters...).Raw }
	f.Add(resp(stun.TransactionID, stun.BindingSuccess, &stun.XORMappedAddress{IP: []byte{45, 71, 0, 101}, Port: 20007}))
	f.Add(resp(stun.TransactionID, stun.BindingSuccess, &stun.MappedAddress{IP: []byte{45, 71, 0, 101}, Port: 20007},
		&stun.OtherAddress{IP: []byte{45, 71, 0, 2}, Port: 3479}, &stun.ResponseOrigin{IP: []byte{45, 71, 0, 1}, Port: 3478}))
	f.Add(resp(stun.TransactionID, stun.BindingError, stun.CodeUnknownAttribute))
	f.Add(binding(f, ChangePort))
	f.Add([]byte{0, 1, 0, 4, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0, 0x20, 0, 0})
	from := netip.MustParseAddrPort("45.71.0.1:3478")
	f.Fuzz(func(t *testing.T, b []byte) {
		p := NewProber(func([]byte, netip.AddrPort) error { return nil })
		if len(b) >= headerSize {
			// Make the bytes answer a pending transaction so the decoding paths run.
			var id [stun.TransactionIDSize]byte
			copy(id[:], b[8:20])
			p.pending[id] = &waiter{ch: make(chan Response, 1)}
		}
		p.Handle(b, from)
		p.Handle(b, from) // a duplicate must not block
	})
}
