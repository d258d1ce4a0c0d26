package natprobe

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Behavior is an RFC 4787 mapping or filtering behaviour. The numeric values are the ones the
// PtP v3 NATINFO TLV carries.
type Behavior uint8

// Behaviours.
const (
	Unknown              Behavior = 0
	EndpointIndependent  Behavior = 1
	AddressDependent     Behavior = 2
	AddressPortDependent Behavior = 3
)

func (b Behavior) String() string {
	switch b {
	case EndpointIndependent:
		return "endpoint-independent"
	case AddressDependent:
		return "address-dependent"
	case AddressPortDependent:
		return "address-and-port-dependent"
	}
	return "unknown"
}

// Short returns the RFC 4787 abbreviation for a mapping ("EIM") or filtering ("EIF") label.
func (b Behavior) Short(kind byte) string {
	switch b {
	case EndpointIndependent:
		return "EI" + string(kind)
	case AddressDependent:
		return "AD" + string(kind)
	case AddressPortDependent:
		return "APD" + string(kind)
	}
	return "?"
}

// Hairpin is the result of the hairpin test; values as in the NATINFO TLV.
type Hairpin uint8

// Hairpin results.
const (
	HairpinUnknown Hairpin = 0
	HairpinYes     Hairpin = 1
	HairpinNo      Hairpin = 2
)

func (h Hairpin) String() string {
	switch h {
	case HairpinYes:
		return "yes"
	case HairpinNo:
		return "no"
	}
	return "unknown"
}

// Info is the NAT behaviour of one socket as far as it is known; peers exchange it.
type Info struct {
	Mapping, Filtering Behavior
	Hairpin            Hairpin
	// Public is the socket's reflexive (public) address, invalid when unknown.
	Public netip.AddrPort
}

// Result is what Discover found.
type Result struct {
	Info
	// Local is the socket's own address as the caller gave it.
	Local netip.AddrPort
	// NAT is true when the public address differs from the local one; false also when unknown.
	NAT bool
	// Method says how the behaviour was determined: "rfc5780" (server with OTHER-ADDRESS),
	// "servers" (mappings compared across servers), "single" (one server, no RFC 5780) or
	// "none" (no server answered).
	Method string
	// Server is the RFC 5780 server used (invalid otherwise).
	Server netip.AddrPort
	// Reasons in words, one per label.
	MappingReason, FilteringReason, HairpinReason string
	// Responses are the Test I answers, per server, in the order given (a zero Response for a
	// server that did not answer).
	Responses []Response
}

// DiscoverConfig configures Discover.
type DiscoverConfig struct {
	// Servers are the STUN servers to ask (at least one).
	Servers []netip.AddrPort
	// Local is the socket's own address (a specific IP, not a wildcard) to tell "no NAT" apart.
	Local netip.AddrPort
	// Hairpin runs the hairpin test (a request to our own public address). Off by default:
	// firewalls flag packets to one's own address as a LAND attack.
	Hairpin bool
	// Timeout bounds each transaction (default 1 s); a test without an answer costs this long.
	Timeout time.Duration
}

// Discover determines the mapping and filtering behaviour of the NAT in front of the Prober's
// socket, its public address and optionally whether the NAT hairpins. It never fails: what it
// cannot determine is Unknown with the reason.
func (p *Prober) Discover(ctx context.Context, cfg DiscoverConfig) Result {
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	res := Result{Local: cfg.Local, Method: "none", Responses: make([]Response, len(cfg.Servers))}
	// Test I towards every server at once.
	var wg sync.WaitGroup
	errs := make([]error, len(cfg.Servers))
	for i, s := range cfg.Servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res.Responses[i], errs[i] = p.Binding(ctx, s, 0, cfg.Timeout)
		}()
	}
	wg.Wait()
	first := -1
	rfc := -1
	for i, r := range res.Responses {
		if errs[i] != nil || r.ErrorCode != 0 || !r.Mapped.IsValid() {
			continue
		}
		if first < 0 {
			first = i
		}
		s := cfg.Servers[i]
		if rfc < 0 && r.Other.IsValid() && r.Other.Addr() != s.Addr() && r.Other.Port() != s.Port() &&
			r.Other.Addr().Is4() == s.Addr().Is4() && !r.Other.Addr().IsUnspecified() {
			rfc = i
		}
	}
	if first < 0 {
		why := "no STUN server answered"
		if len(cfg.Servers) == 0 {
			why = "no STUN server configured"
		} else if errs[0] != nil && errs[0] != ErrTimeout {
			why = fmt.Sprintf("no STUN server answered (%v)", errs[0])
		}
		res.MappingReason, res.FilteringReason, res.HairpinReason = why, why, why
		return res
	}
	res.Public = res.Responses[first].Mapped
	res.NAT = res.Public != cfg.Local
	if rfc >= 0 {
		p.rfc5780(ctx, cfg, &res, cfg.Servers[rfc], res.Responses[rfc])
	} else {
		res.FilteringReason = "no server offers OTHER-ADDRESS (RFC 5780): filtering not tested"
	}
	if res.Mapping == Unknown {
		compareServers(cfg, &res, errs)
	}
	if !res.NAT && res.Mapping == Unknown {
		res.Mapping = EndpointIndependent
		res.MappingReason = "no NAT: the public address is the socket's own"
	}
	switch {
	case !cfg.Hairpin:
		res.HairpinReason = "hairpin test not requested"
	default:
		ok, err := p.hairpinProbe(ctx, res.Public, cfg.Timeout)
		switch {
		case err != nil:
			res.HairpinReason = fmt.Sprintf("hairpin test failed: %v", err)
		case ok:
			res.Hairpin = HairpinYes
			res.HairpinReason = fmt.Sprintf("a request to our public address %v came back to us", res.Public)
		default:
			res.Hairpin = HairpinNo
			res.HairpinReason = fmt.Sprintf("a request to our public address %v never came back within %v", res.Public, cfg.Timeout)
		}
	}
	return res
}

// rfc5780 runs the filtering tests (first: see the package comment) and then the mapping tests
// against server s, whose Test I answer is r1.
func (p *Prober) rfc5780(ctx context.Context, cfg DiscoverConfig, res *Result, s netip.AddrPort, r1 Response) {
	res.Method = "rfc5780"
	res.Server = s
	other := r1.Other
	// Filtering, RFC 5780 §4.4: Test II asks for an answer from the other address and port,
	// Test III from the other port only; run at once, they cannot open the filter for each other.
	var f2, f3 Response
	var e2, e3 error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); f2, e2 = p.Binding(ctx, s, ChangeIP|ChangePort, cfg.Timeout) }()
	go func() { defer wg.Done(); f3, e3 = p.Binding(ctx, s, ChangePort, cfg.Timeout) }()
	wg.Wait()
	wantII := other
	wantIII := netip.AddrPortFrom(s.Addr(), other.Port())
	switch {
	case e2 == nil && f2.ErrorCode != 0:
		res.FilteringReason = fmt.Sprintf("server %v refuses CHANGE-REQUEST (error %d): filtering not tested", s, f2.ErrorCode)
	case e2 == nil && f2.From != wantII:
		res.FilteringReason = fmt.Sprintf("server %v ignored CHANGE-REQUEST (answered from %v, not %v): filtering not tested", s, f2.From, wantII)
	case e2 == nil:
		res.Filtering = EndpointIndependent
		res.FilteringReason = fmt.Sprintf("an answer from %v, which we never sent to, got in", f2.From)
	case e2 != ErrTimeout:
		res.FilteringReason = fmt.Sprintf("filtering test failed: %v", e2)
	case e3 == nil && f3.ErrorCode == 0 && f3.From == wantIII:
		res.Filtering = AddressDependent
		res.FilteringReason = fmt.Sprintf("answers from another address were dropped, from another port of %v (%v) got in", s.Addr(), f3.From)
	case e3 == nil && f3.ErrorCode == 0:
		res.FilteringReason = fmt.Sprintf("server %v ignored CHANGE-REQUEST (answered from %v, not %v): filtering not tested", s, f3.From, wantIII)
	case e3 == nil || e3 == ErrTimeout:
		res.Filtering = AddressPortDependent
		res.FilteringReason = fmt.Sprintf("answers from another address (%v) and from another port (%v) were both dropped", wantII, wantIII)
	default:
		res.FilteringReason = fmt.Sprintf("filtering test failed: %v", e3)
	}
	// Mapping, RFC 5780 §4.3: Test II to the other address (primary port), Test III to the
	// other address and port.
	var m2, m3 Response
	wg.Add(2)
	go func() {
		defer wg.Done()
		m2, e2 = p.Binding(ctx, netip.AddrPortFrom(other.Addr(), s.Port()), 0, cfg.Timeout)
	}()
	go func() { defer wg.Done(); m3, e3 = p.Binding(ctx, other, 0, cfg.Timeout) }()
	wg.Wait()
	x1 := r1.Mapped
	switch {
	case e2 != nil || !m2.Mapped.IsValid():
		res.MappingReason = fmt.Sprintf("no answer from the server's other address %v:%d", other.Addr(), s.Port())
	case m2.Mapped == x1:
		res.Mapping = EndpointIndependent
		res.MappingReason = fmt.Sprintf("same public address %v towards %v and %v:%d", x1, s, other.Addr(), s.Port())
	case e3 != nil || !m3.Mapped.IsValid():
		res.MappingReason = fmt.Sprintf("public address varies by destination address (%v, %v) but no answer from %v", x1, m2.Mapped, other)
	case m3.Mapped == m2.Mapped:
		res.Mapping = AddressDependent
		res.MappingReason = fmt.Sprintf("public address %v towards %v, %v towards %v: varies by destination address only", x1, s.Addr(), m2.Mapped, other.Addr())
	default:
		res.Mapping = AddressPortDependent
		res.MappingReason = fmt.Sprintf("public address %v, %v and %v towards %v, %v:%d and %v: varies by destination address and port",
			x1, m2.Mapped, m3.Mapped, s, other.Addr(), s.Port(), other)
	}
}

// compareServers classifies the mapping from the Test I answers of several servers.
func compareServers(cfg DiscoverConfig, res *Result, errs []error) {
	type seen struct {
		server, mapped netip.AddrPort
	}
	var ok []seen
	for i, r := range res.Responses {
		if errs[i] == nil && r.ErrorCode == 0 && r.Mapped.IsValid() {
			ok = append(ok, seen{cfg.Servers[i], r.Mapped})
		}
	}
	if len(ok) < 2 {
		if res.MappingReason == "" {
			res.MappingReason = "one STUN server answered and it offers no OTHER-ADDRESS: mapping not tested"
		} else {
			res.MappingReason += "; one STUN server answered: mapping not tested"
		}
		if res.Method == "none" {
			res.Method = "single"
		}
		return
	}
	if res.Method == "none" {
		res.Method = "servers"
	}
	var diffAddr, diffPort, sameAddrChecked bool
	for i := range ok {
		for j := i + 1; j < len(ok); j++ {
			a, b := ok[i], ok[j]
			if a.server.Addr() == b.server.Addr() {
				sameAddrChecked = true
				if a.mapped != b.mapped {
					diffPort = true
				}
			} else if a.mapped != b.mapped {
				diffAddr = true
			}
		}
	}
	var parts []string
	for _, s := range ok {
		parts = append(parts, fmt.Sprintf("%v via %v", s.mapped, s.server))
	}
	list := strings.Join(parts, ", ")
	switch {
	case diffPort:
		res.Mapping = AddressPortDependent
		res.MappingReason = "public address varies by destination port: " + list
	case diffAddr && sameAddrChecked:
		res.Mapping = AddressDependent
		res.MappingReason = "public address varies by destination address, not by port: " + list
	case diffAddr:
		res.Mapping = AddressDependent
		res.MappingReason = "public address varies by destination address (port dependence not tested): " + list
	case sameAddrChecked && len(ok) == 2:
		// Two ports of one server: address dependence is not tested.
		res.MappingReason = "same public address towards two ports of one server; address dependence not tested: " + list
	default:
		res.Mapping = EndpointIndependent
		res.MappingReason = "same public address towards every server: " + list
	}
}
