package ptp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// PORTMAP protocol numbers (PortMap.Protocol).
const (
	PortMapUPnP   uint8 = 1 // UPnP IGD v1/v2
	PortMapNATPMP uint8 = 2 // NAT-PMP, RFC 6886
	PortMapPCP    uint8 = 3 // PCP, RFC 6887
)

// PORTMAP status values (PortMap.Status).
const (
	PortMapNoGateway uint8 = 0 // no gateway answered
	PortMapGranted   uint8 = 1 // the mapping is in place (External, Lifetime)
	PortMapError     uint8 = 2 // a gateway answered but refused or failed
)

// PortMapFixed is the size of a PORTMAP value before its address.
const PortMapFixed = 6

// PortMap is a PORTMAP value: what one port-mapping protocol gave the sender, so that the
// server can show why a peer became reachable. Wire: protocol u8 | status u8 | lifetime u32
// (seconds, 0 when not granted or unlimited) | external address (6 or 18 bytes; 0.0.0.0:0 when
// nothing was granted).
type PortMap struct {
	Protocol uint8
	Status   uint8
	Lifetime uint32
	External netip.AddrPort
}

// AppendTo appends the value (without the TLV header); an invalid External is sent as 0.0.0.0:0.
func (p *PortMap) AppendTo(b []byte) []byte {
	b = append(b, p.Protocol, p.Status)
	b = binary.BigEndian.AppendUint32(b, p.Lifetime)
	return AppendAddress(b, p.wireAddr())
}

func (p *PortMap) wireAddr() netip.AddrPort {
	if !p.External.IsValid() {
		return netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	}
	return p.External
}

// Size is the value size (without the TLV header).
func (p *PortMap) Size() int { return PortMapFixed + AddressSize(p.wireAddr()) }

// UnmarshalBinary decodes a PORTMAP value; 0.0.0.0:0 decodes as an invalid External.
func (p *PortMap) UnmarshalBinary(v []byte) error {
	if len(v) < PortMapFixed {
		return malformed(TypePortMap, v)
	}
	a, ok := Address(v[PortMapFixed:])
	if !ok {
		return malformed(TypePortMap, v)
	}
	if a.Port() == 0 && a.Addr().IsUnspecified() {
		a = netip.AddrPort{}
	}
	*p = PortMap{Protocol: v[0], Status: v[1], Lifetime: binary.BigEndian.Uint32(v[2:6]), External: a}
	return nil
}

// ProtocolName is the protocol's name as shared/portmap writes it ("upnp-igd", "nat-pmp", "pcp").
func (p PortMap) ProtocolName() string {
	switch p.Protocol {
	case PortMapUPnP:
		return "upnp-igd"
	case PortMapNATPMP:
		return "nat-pmp"
	case PortMapPCP:
		return "pcp"
	}
	return fmt.Sprintf("protocol-%d", p.Protocol)
}

// String is a one-line description: "upnp-igd: 198.51.100.7:4000 (7200 s)", "pcp: no gateway".
func (p PortMap) String() string {
	switch p.Status {
	case PortMapGranted:
		if p.Lifetime == 0 {
			return fmt.Sprintf("%s: %v", p.ProtocolName(), p.External)
		}
		return fmt.Sprintf("%s: %v (%d s)", p.ProtocolName(), p.External, p.Lifetime)
	case PortMapNoGateway:
		return p.ProtocolName() + ": no gateway"
	}
	return p.ProtocolName() + ": error"
}
