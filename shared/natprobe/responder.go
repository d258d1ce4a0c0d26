package natprobe

import (
	"fmt"
	"net/netip"
	"sync"

	"github.com/pion/stun/v3"
)

// Responder answers STUN Binding requests (RFC 8489 §6.3) for a server with one address, or
// with two (RFC 5780: Primary IP1:P1 and Other IP2:P2, which together give the four addresses
// IP1:P1, IP1:P2, IP2:P1, IP2:P2). It is safe for concurrent use.
type Responder struct {
	// Primary is the server's main address. Its IP may be unspecified (a wildcard socket)
	// only without Other; RESPONSE-ORIGIN is then left out.
	Primary netip.AddrPort
	// Other is the alternate address announced in OTHER-ADDRESS; invalid (zero) turns RFC 5780
	// off, and CHANGE-REQUEST is answered with 420 Unknown Attribute.
	Other netip.AddrPort
	// Software, when set, is sent in a SOFTWARE attribute.
	Software string

	mu        sync.Mutex
	req, resp stun.Message
}

// RFC5780 reports whether the responder serves behaviour discovery (an alternate address is set).
func (r *Responder) RFC5780() bool { return r.Other.IsValid() && r.Other.Addr().IsValid() }

// Respond answers the Binding request req, received from src on the server address local (one
// of the four addresses; the primary when the caller has only one socket), by appending the
// response to out. from is the server address the response must be sent from: local itself,
// or another of the four when the request carries CHANGE-REQUEST. Errors: ErrNotSTUN,
// ErrNotBindingRequest (responses, indications, other methods: send nothing) or a decoding
// error; a malformed request is never answered.
func (r *Responder) Respond(out, req []byte, src, local netip.AddrPort) (resp []byte, from netip.AddrPort, err error) {
	if !IsSTUN(req) {
		return out, netip.AddrPort{}, ErrNotSTUN
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.req.Raw = append(r.req.Raw[:0], req...)
	if err := r.req.Decode(); err != nil {
		return out, netip.AddrPort{}, fmt.Errorf("natprobe: decoding request: %w", err)
	}
	if r.req.Type != stun.BindingRequest {
		return out, netip.AddrPort{}, ErrNotBindingRequest
	}
	change, hasChange, err := getChange(&r.req)
	if err != nil {
		return out, netip.AddrPort{}, err
	}
	m := &r.resp
	m.Reset()
	m.TransactionID = r.req.TransactionID
	var unknown stun.UnknownAttributes
	for _, a := range r.req.Attributes {
		if a.Type.Required() && a.Type != stun.AttrChangeRequest && a.Type != stun.AttrMappedAddress &&
			a.Type != stun.AttrXORMappedAddress {
			unknown = append(unknown, a.Type)
		}
	}
	if hasChange && !r.RFC5780() {
		unknown = append(unknown, stun.AttrChangeRequest)
	}
	from = local
	if len(unknown) > 0 {
		// RFC 8489 §6.3.1: unknown comprehension-required attributes get a 420 error.
		m.SetType(stun.BindingError)
		m.WriteHeader()
		if err := (stun.ErrorCodeAttribute{Code: stun.CodeUnknownAttribute, Reason: []byte("Unknown Attribute")}).AddTo(m); err != nil {
			return out, netip.AddrPort{}, err
		}
		if err := unknown.AddTo(m); err != nil {
			return out, netip.AddrPort{}, err
		}
	} else {
		m.SetType(stun.BindingSuccess)
		m.WriteHeader()
		if r.RFC5780() {
			from = r.changed(local, change)
		}
		ip := ipOf(src.Addr())
		if err := (stun.XORMappedAddress{IP: ip, Port: int(src.Port())}).AddTo(m); err != nil {
			return out, netip.AddrPort{}, err
		}
		if err := (&stun.MappedAddress{IP: ip, Port: int(src.Port())}).AddTo(m); err != nil {
			return out, netip.AddrPort{}, err
		}
		if r.RFC5780() {
			other := r.changed(local, ChangeIP|ChangePort)
			if err := (&stun.OtherAddress{IP: ipOf(other.Addr()), Port: int(other.Port())}).AddTo(m); err != nil {
				return out, netip.AddrPort{}, err
			}
		}
		if from.Addr().IsValid() && !from.Addr().IsUnspecified() {
			if err := (&stun.ResponseOrigin{IP: ipOf(from.Addr()), Port: int(from.Port())}).AddTo(m); err != nil {
				return out, netip.AddrPort{}, err
			}
		}
	}
	if r.Software != "" {
		if err := stun.NewSoftware(r.Software).AddTo(m); err != nil {
			return out, netip.AddrPort{}, err
		}
	}
	if r.req.Contains(stun.AttrFingerprint) {
		if err := stun.Fingerprint.AddTo(m); err != nil {
			return out, netip.AddrPort{}, err
		}
	}
	return append(out, m.Raw...), from, nil
}

// changed returns the server address that differs from local in what change names.
func (r *Responder) changed(local netip.AddrPort, change Change) netip.AddrPort {
	ip, port := local.Addr(), local.Port()
	if change&ChangeIP != 0 {
		ip = r.otherIP(ip)
	}
	if change&ChangePort != 0 {
		port = r.otherPort(port)
	}
	return netip.AddrPortFrom(ip, port)
}

func (r *Responder) otherIP(ip netip.Addr) netip.Addr {
	if ip == r.Other.Addr() {
		return r.Primary.Addr()
	}
	return r.Other.Addr()
}

func (r *Responder) otherPort(p uint16) uint16 {
	if p == r.Other.Port() {
		return r.Primary.Port()
	}
	return r.Other.Port()
}
