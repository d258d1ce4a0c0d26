package portmap

import (
	"net/netip"
	"testing"

	"github.com/probekit/probekit/shared/ptp"
)

// TestFromTLVSummary: PORTMAP values as a server receives them, their Results and the
// one-line summary (expected text by hand).
func TestFromTLVSummary(t *testing.T) {
	granted := ptp.PortMap{Protocol: ptp.PortMapUPnP, Status: ptp.PortMapGranted, Lifetime: 7200, External: netip.MustParseAddrPort("198.51.100.7:4000")}
	none := ptp.PortMap{Protocol: ptp.PortMapNATPMP, Status: ptp.PortMapNoGateway}
	refused := ptp.PortMap{Protocol: ptp.PortMapPCP, Status: ptp.PortMapError}
	for _, c := range []struct {
		name string
		in   []ptp.PortMap
		want string
	}{
		{"nothing sent", nil, "-"},
		{"granted wins", []ptp.PortMap{none, granted, refused}, "upnp-igd 198.51.100.7:4000"},
		{"none granted", []ptp.PortMap{none, refused}, "nat-pmp no gateway, pcp refused or failed"},
	} {
		rs := FromTLV(c.in)
		if got := Summary(rs); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	r := FromTLV([]ptp.PortMap{granted})[0]
	if r.Protocol != UPnP || r.Gateway != "yes" || r.External != "198.51.100.7:4000" || r.Lifetime != 7200 || !r.Granted() {
		t.Errorf("granted: %+v", r)
	}
	if r := FromTLV([]ptp.PortMap{none})[0]; r.Gateway != "" || r.Granted() {
		t.Errorf("no gateway: %+v", r)
	}
}
