package analytics

import (
	"context"
	"encoding/json"
	"net"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/probekit/probekit/ptpserver/internal/server"
	"github.com/probekit/probekit/ptpserver/internal/store"
	"github.com/probekit/probekit/ptpserver/internal/web"
	"github.com/probekit/probekit/shared/ptp"
	"github.com/probekit/probekit/shared/timestamp"
)

// TestPortMapToPage: a v3 client's PORTMAP TLVs, sent over UDP to a real server, reach the
// store through the observer and come out of /api/clients (what the page's port-mapping
// column renders) exactly as sent: NAT-PMP granted with its address and lifetime, UPnP
// without a gateway, PCP refused.
func TestPortMapToPage(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.Open(ctx, "", store.Options{NoBackground: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv, err := server.New(ctx, server.Config{Addr: netip.MustParseAddrPort("127.0.0.1:0"), NoSTUN: true, Observer: NewObserver(st, 0)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()

	conn, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(srv.LocalAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	id := uuid(0x5c)
	m := ptp.Message{Role: ptp.RoleClient, Version: ptp.ProtoV3,
		Has:  ptp.FieldSequence | ptp.FieldUUID | ptp.FieldPTPAddr | ptp.FieldMyTS | ptp.FieldMesh | ptp.FieldNATInfo,
		UUID: id, PTPAddr: conn.LocalAddr().(*net.UDPAddr).AddrPort(), MyTS: timestamp.Fixed32FromTime(time.Now()), Mesh: []byte("pm"),
		NAT: ptp.NATInfo{Mapping: ptp.BehaviorEndpointIndependent, Filtering: ptp.BehaviorAddressAndPortDependent, Hairpin: ptp.HairpinNo},
		PortMaps: []ptp.PortMap{
			{Protocol: ptp.PortMapUPnP, Status: ptp.PortMapNoGateway},
			{Protocol: ptp.PortMapNATPMP, Status: ptp.PortMapGranted, Lifetime: 7200, External: netip.MustParseAddrPort("198.51.100.7:4000")},
			{Protocol: ptp.PortMapPCP, Status: ptp.PortMapError},
		}}
	pkt, err := m.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	h := web.New(web.Config{Source: st})
	want := `[{"protocol":"upnp-igd","gateway":""},{"protocol":"nat-pmp","gateway":"yes","external":"198.51.100.7:4000","lifetime_s":7200},` +
		`{"protocol":"pcp","gateway":"yes","error":"refused or failed"}]`
	var got []web.ClientJSON
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := conn.Write(pkt); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		if err := st.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/clients?mesh=pm", nil))
		got = nil
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatalf("%v: %s", err, rec.Body.String())
		}
		if len(got) == 1 && string(got[0].PortMapping) == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/api/clients = %+v\nwant port_mapping %s", got, want)
		}
	}
	if got[0].UUID != id.String() || got[0].NAT.Filtering != "address-and-port-dependent" {
		t.Fatalf("client %+v", got[0])
	}
}
