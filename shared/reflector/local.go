package reflector

import (
	"net"
	"net/netip"
)

// localAddrs lists the host's interface addresses, for the Destination Node Address TLV
// (RFC 9503 §3) on wildcard sockets.
func localAddrs() []netip.Addr {
	ifas, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	out := make([]netip.Addr, 0, len(ifas))
	for _, a := range ifas {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out
}

// isLocal reports whether the address in v (4 or 16 octets) is the socket's local address or,
// for wildcard sockets, one of the host's.
func (r *Reflector) isLocal(v []byte, local netip.Addr) bool {
	a, ok := netip.AddrFromSlice(v)
	if !ok {
		return false
	}
	a = a.Unmap()
	if local.IsValid() && !local.IsUnspecified() {
		return a == local.Unmap()
	}
	for _, l := range r.local {
		if l == a {
			return true
		}
	}
	return false
}
