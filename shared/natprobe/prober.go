package natprobe

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/stun/v3"
)

// Response is what one Binding transaction learned.
type Response struct {
	// From is the source address of the response, Mapped the reflexive address the server saw
	// (XOR-MAPPED-ADDRESS, else MAPPED-ADDRESS), Other the server's OTHER-ADDRESS (or RFC 3489
	// CHANGED-ADDRESS) and Origin its RESPONSE-ORIGIN (invalid when absent).
	From, Mapped, Other, Origin netip.AddrPort
	// ErrorCode is the STUN error code of an error response (0 for success).
	ErrorCode int
	// RTT is the time from the last transmission to the response.
	RTT time.Duration
}

type waiter struct {
	ch      chan Response
	hairpin bool // waits for our own request to come back, not for a response
}

// Prober runs STUN transactions over a socket it does not own: it sends with the caller's
// SendFunc, and the caller's read loop hands it every STUN message (Handle). It is safe for
// concurrent use.
type Prober struct {
	send SendFunc
	// RTO is the first retransmission timeout (doubling afterwards); default 250 ms.
	RTO time.Duration

	mu      sync.Mutex
	pending map[[stun.TransactionIDSize]byte]*waiter
}

// NewProber returns a Prober sending through send.
func NewProber(send SendFunc) *Prober {
	return &Prober{send: send, RTO: 250 * time.Millisecond, pending: map[[stun.TransactionIDSize]byte]*waiter{}}
}

// Handle consumes a STUN message received from `from` if it belongs to one of the Prober's
// transactions (a response, or for the hairpin test our own request coming back) and reports
// whether it did. Other messages are left to the caller.
func (p *Prober) Handle(b []byte, from netip.AddrPort) bool {
	if !IsSTUN(b) {
		return false
	}
	var id [stun.TransactionIDSize]byte
	copy(id[:], b[8:20])
	p.mu.Lock()
	w := p.pending[id]
	p.mu.Unlock()
	if w == nil {
		return false
	}
	m := new(stun.Message)
	if err := stun.Decode(b, m); err != nil {
		return false
	}
	r := Response{From: netip.AddrPortFrom(from.Addr().Unmap(), from.Port())}
	switch {
	case w.hairpin:
		if m.Type != stun.BindingRequest {
			return false
		}
	case m.Type == stun.BindingSuccess:
		var xa stun.XORMappedAddress
		if err := xa.GetFrom(m); err == nil {
			r.Mapped, _ = addrPortFromIP(xa.IP, xa.Port)
		} else {
			var ma stun.MappedAddress
			if err := ma.GetFrom(m); err == nil {
				r.Mapped, _ = addrPortFromIP(ma.IP, ma.Port)
			}
		}
		var oa stun.OtherAddress
		if err := oa.GetFrom(m); err == nil {
			r.Other, _ = addrPortFromIP(oa.IP, oa.Port)
		} else {
			var ca stun.MappedAddress
			if err := ca.GetFromAs(m, stun.AttrChangedAddress); err == nil {
				r.Other, _ = addrPortFromIP(ca.IP, ca.Port)
			}
		}
		var ro stun.ResponseOrigin
		if err := ro.GetFrom(m); err == nil {
			r.Origin, _ = addrPortFromIP(ro.IP, ro.Port)
		}
	case m.Type == stun.BindingError:
		var ec stun.ErrorCodeAttribute
		r.ErrorCode = 400
		if err := ec.GetFrom(m); err == nil {
			r.ErrorCode = int(ec.Code)
		}
	default:
		return false
	}
	select {
	case w.ch <- r:
	default: // a retransmission's duplicate answer
	}
	return true
}

// Binding sends a Binding request to server (with CHANGE-REQUEST when change is non-zero),
// retransmitting after RTO, 2·RTO, … until timeout, and returns the first answer. An error
// response is returned with its ErrorCode and no error.
func (p *Prober) Binding(ctx context.Context, server netip.AddrPort, change Change, timeout time.Duration) (Response, error) {
	setters := []stun.Setter{stun.TransactionID, stun.BindingRequest}
	if change != 0 {
		setters = append(setters, changeAttr{change})
	}
	setters = append(setters, stun.Fingerprint)
	return p.transact(ctx, server, timeout, false, setters...)
}

// hairpinProbe sends a Binding request to our own public address and waits for it to arrive.
func (p *Prober) hairpinProbe(ctx context.Context, public netip.AddrPort, timeout time.Duration) (bool, error) {
	_, err := p.transact(ctx, public, timeout, true, stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if err == ErrTimeout {
		return false, nil
	}
	return err == nil, err
}

func (p *Prober) transact(ctx context.Context, to netip.AddrPort, timeout time.Duration, hairpin bool, setters ...stun.Setter) (Response, error) {
	m, err := stun.Build(setters...)
	if err != nil {
		return Response{}, err
	}
	w := &waiter{ch: make(chan Response, 1), hairpin: hairpin}
	p.mu.Lock()
	p.pending[m.TransactionID] = w
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.pending, m.TransactionID)
		p.mu.Unlock()
	}()
	rto := p.RTO
	if rto <= 0 {
		rto = 250 * time.Millisecond
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		sent := time.Now()
		if err := p.send(m.Raw, to); err != nil {
			return Response{}, fmt.Errorf("natprobe: sending to %v: %w", to, err)
		}
		retx := time.NewTimer(rto)
		select {
		case r := <-w.ch:
			retx.Stop()
			r.RTT = time.Since(sent)
			return r, nil
		case <-retx.C:
			rto *= 2
		case <-deadline.C:
			retx.Stop()
			return Response{}, ErrTimeout
		case <-ctx.Done():
			retx.Stop()
			return Response{}, ctx.Err()
		}
	}
}
