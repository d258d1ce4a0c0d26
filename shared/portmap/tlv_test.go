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

// TestToTLVRoundTrip: what a client beacons (ToTLV) reads back on the server (FromTLV) with
// the protocol, the granted address and lifetime, and whether a gateway answered.
func TestToTLVRoundTrip(t *testing.T) {
	in := []Result{
		{Protocol: UPnP, Gateway: "192.168.1.1", External: "198.51.100.7:4000", Lifetime: 7200},
		{Protocol: NATPMP, Gateway: "192.168.1.1", Error: "refused: not authorized"},
		{Protocol: PCP, Error: "no gateway answered"},
		{Protocol: "unknown"}, // dropped
		{Protocol: UPnP, Gateway: "192.168.1.1", External: "198.51.100.7:4000", Deleted: true}, // no longer granted
	}
	ps := ToTLV(in)
	want := []ptp.PortMap{
		{Protocol: ptp.PortMapUPnP, Status: ptp.PortMapGranted, Lifetime: 7200, External: netip.MustParseAddrPort("198.51.100.7:4000")},
		{Protocol: ptp.PortMapNATPMP, Status: ptp.PortMapError},
		{Protocol: ptp.PortMapPCP, Status: ptp.PortMapNoGateway},
		{Protocol: ptp.PortMapUPnP, Status: ptp.PortMapError},
	}
	if len(ps) != len(want) {
		t.Fatalf("%d values, want %d: %+v", len(ps), len(want), ps)
	}
	for i := range want {
		if ps[i] != want[i] {
			t.Errorf("value %d: %+v, want %+v", i, ps[i], want[i])
		}
	}
	back := FromTLV(ps)
	if back[0].Protocol != UPnP || back[0].External != "198.51.100.7:4000" || back[0].Lifetime != 7200 || !back[0].Granted() {
		t.Errorf("granted back: %+v", back[0])
	}
	if back[1].Gateway != "yes" || back[1].Granted() || back[2].Gateway != "" {
		t.Errorf("not granted back: %+v %+v", back[1], back[2])
	}
}
