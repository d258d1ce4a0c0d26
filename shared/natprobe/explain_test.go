package natprobe

import (
	"strings"
	"testing"
)

func TestPunchOKAndWhy(t *testing.T) {
	cone := Info{Mapping: EndpointIndependent, Filtering: EndpointIndependent}
	port := Info{Mapping: EndpointIndependent, Filtering: AddressPortDependent}
	addr := Info{Mapping: EndpointIndependent, Filtering: AddressDependent}
	sym := Info{Mapping: AddressPortDependent, Filtering: AddressPortDependent}
	for _, tc := range []struct {
		name       string
		ours, peer Info
		works      bool
		why        string
	}{
		{"cone-cone", cone, cone, true, "yet no direct packet"},
		{"port-port", port, port, true, "yet no direct packet"},
		{"cone-sym", cone, sym, true, ""},
		{"addr-sym", addr, sym, true, ""},
		{"sym-cone", sym, cone, true, ""},
		{"port-sym", port, sym, false, "peer's NAT maps per destination (address-and-port-dependent) and ours filters per address and port"},
		{"sym-port", sym, port, false, "our NAT maps per destination (address-and-port-dependent) and the peer's filters per address and port"},
		{"sym-sym", sym, sym, false, "both NATs map per destination"},
	} {
		works, known := PunchOK(tc.ours, tc.peer)
		if !known || works != tc.works {
			t.Errorf("%s: PunchOK = %v, %v; want %v", tc.name, works, known, tc.works)
		}
		if tc.why != "" && !strings.Contains(WhyNotDirect(tc.ours, tc.peer), tc.why) {
			t.Errorf("%s: WhyNotDirect = %q, want %q", tc.name, WhyNotDirect(tc.ours, tc.peer), tc.why)
		}
	}
	if _, known := PunchOK(Info{}, sym); known {
		t.Error("unknown mapping reported as known")
	}
}
