package portmap

import "github.com/probekit/probekit/shared/ptp"

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
