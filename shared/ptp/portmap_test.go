package ptp

import (
	"encoding/hex"
	"errors"
	"net/netip"
	"testing"
)

// goldenPortMap was written by hand from the PORTMAP layout (checksum by an independent
// RFC 1071 sum): CLIENTVER=3, NAT-PMP granted 198.51.100.7:4000 for 7200 s, UPnP without a
// gateway (address 0.0.0.0:0).
const goldenPortMap = "01" + "020303" +
	"120e" + "02" + "01" + "00001c20" + "c6336407" + "0fa0" +
	"120e" + "01" + "00" + "00000000" + "00000000" + "0000" +
	"7ee2"

func TestGoldenPortMap(t *testing.T) {
	want, _ := hex.DecodeString(goldenPortMap)
	m := Message{Role: RoleClient, Version: ProtoV3, PortMaps: []PortMap{
		{Protocol: PortMapNATPMP, Status: PortMapGranted, Lifetime: 7200, External: netip.MustParseAddrPort("198.51.100.7:4000")},
		{Protocol: PortMapUPnP, Status: PortMapNoGateway},
	}}
	got, err := m.AppendTo(nil)
	if err != nil || hex.EncodeToString(got) != goldenPortMap {
		t.Fatalf("AppendTo = %x, %v\nwant     %s", got, err, goldenPortMap)
	}
	if m.Size() != len(want) {
		t.Fatalf("Size = %d, want %d", m.Size(), len(want))
	}
	var d Message
	if err := d.UnmarshalBinary(want); err != nil {
		t.Fatal(err)
	}
	if len(d.PortMaps) != 2 || d.PortMaps[0] != m.PortMaps[0] || d.PortMaps[1] != m.PortMaps[1] || len(d.Extra) != 0 {
		t.Fatalf("decoded %+v", d.PortMaps)
	}
	if s := d.PortMaps[0].String(); s != "nat-pmp: 198.51.100.7:4000 (7200 s)" {
		t.Errorf("String = %q", s)
	}
	if s := d.PortMaps[1].String(); s != "upnp-igd: no gateway" {
		t.Errorf("String = %q", s)
	}
	// A v2 message may not carry it (PTP-W5).
	m.Version = ProtoV2
	if _, err := m.AppendTo(nil); !errors.Is(err, ErrV3Field) {
		t.Fatalf("v2 with PORTMAP: %v", err)
	}
}

func TestPortMapMalformed(t *testing.T) {
	for _, v := range []string{"", "0201", "020100001c20", "020100001c20c6336407", "020100001c20c63364070fa000"} {
		b, _ := hex.DecodeString(v)
		var p PortMap
		if err := p.UnmarshalBinary(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", v, err)
		}
	}
}
