package portmap

import (
	"net/netip"

	"github.com/probekit/probekit/shared/ptp"
)

// ToTLV converts port-mapping results to the PORTMAP values a v3 client beacons: granted
// (with the external address and lifetime), error when a gateway answered without granting,
// else no gateway.
func ToTLV(rs []Result) []ptp.PortMap {
	out := make([]ptp.PortMap, 0, len(rs))
	for _, r := range rs {
		p := ptp.PortMap{Status: ptp.PortMapNoGateway}
		switch r.Protocol {
		case UPnP:
			p.Protocol = ptp.PortMapUPnP
		case NATPMP:
			p.Protocol = ptp.PortMapNATPMP
		case PCP:
			p.Protocol = ptp.PortMapPCP
		default:
			continue
		}
		a, err := netip.ParseAddrPort(r.External)
		switch {
		case r.Granted() && err == nil:
			p.Status, p.External, p.Lifetime = ptp.PortMapGranted, a, uint32(max(r.Lifetime, 0))
		case r.Gateway != "":
			p.Status = ptp.PortMapError
		}
		out = append(out, p)
	}
	return out
}

// FromTLV turns the PORTMAP values a v3 client beacons back into Results, as the server shows
// them: the TLV does not name the gateway, so one that answered is "yes"; a refusal or a
// failure carries a generic error (the client's own log has the detail).
func FromTLV(ps []ptp.PortMap) []Result {
	if len(ps) == 0 {
		return nil
	}
	out := make([]Result, 0, len(ps))
	for _, p := range ps {
		r := Result{Protocol: p.ProtocolName()}
		switch p.Status {
		case ptp.PortMapGranted:
			r.Gateway, r.Lifetime = "yes", int(p.Lifetime)
			if p.External.IsValid() {
				r.External = p.External.String()
			}
		case ptp.PortMapNoGateway:
		default:
			r.Gateway, r.Error = "yes", "refused or failed"
		}
		out = append(out, r)
	}
	return out
}

// Summary is a one-line description of results for a table cell or a status line: the granted
// mappings ("upnp-igd 198.51.100.7:4000"), else what was tried ("nat-pmp no gateway, pcp
// refused or failed"), else "-".
func Summary(rs []Result) string {
	s := ""
	add := func(t string) {
		if s != "" {
			s += ", "
		}
		s += t
	}
	for _, r := range rs {
		if r.Granted() {
			add(r.Protocol + " " + r.External)
		}
	}
	if s != "" {
		return s
	}
	for _, r := range rs {
		switch {
		case r.Gateway == "":
			add(r.Protocol + " no gateway")
		case r.Error != "":
			add(r.Protocol + " " + r.Error)
		default:
			add(r.Protocol + " not granted")
		}
	}
	if s == "" {
		return "-"
	}
	return s
}
