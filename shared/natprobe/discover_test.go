package natprobe

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/natprobe/natsim"
)

var (
	stun1 = netip.MustParseAddrPort("45.71.0.1:3478")
	stun2 = netip.MustParseAddrPort("45.71.0.2:3479")
	stun3 = netip.MustParseAddrPort("45.71.0.3:3478")
)

// stunServer runs a Server on the simulated network at primary (with other for RFC 5780).
func stunServer(t *testing.T, n *natsim.Network, primary, other netip.AddrPort) *Server {
	t.Helper()
	c, err := n.Listen(primary)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(context.Background(), ServerConfig{
		Primary: primary, Other: other, Listen: n.ListenPacket,
		Send: func(b []byte, to netip.AddrPort) error { _, err := c.WriteToAddrPort(b, to); return err },
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 1500)
		for {
			k, src, err := c.ReadFromAddrPort(buf)
			if err != nil {
				return
			}
			if IsSTUN(buf[:k]) {
				srv.Handle(buf[:k], src)
			}
		}
	}()
	t.Cleanup(func() { c.Close(); srv.Close() })
	return srv
}

// client opens a socket behind nat (or public when nat is nil) with a Prober fed by a read loop.
func client(t *testing.T, n *natsim.Network, nat *natsim.NAT, addr netip.AddrPort) (*Prober, netip.AddrPort) {
	t.Helper()
	var c *natsim.Conn
	var err error
	if nat != nil {
		c, err = nat.Listen(addr)
	} else {
		c, err = n.Listen(addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	p := NewProber(func(b []byte, to netip.AddrPort) error { _, err := c.WriteToAddrPort(b, to); return err })
	p.RTO = 50 * time.Millisecond
	go func() {
		buf := make([]byte, 1500)
		for {
			k, src, err := c.ReadFromAddrPort(buf)
			if err != nil {
				return
			}
			p.Handle(buf[:k], src)
		}
	}()
	t.Cleanup(func() { c.Close() })
	return p, c.AddrPort()
}

func TestDiscoverRFC5780(t *testing.T) {
	for _, tc := range []struct {
		name      string
		kind      *natsim.Kind
		mapping   Behavior
		filtering Behavior
		hairpin   Hairpin
	}{
		{"full cone", &natsim.FullCone, EndpointIndependent, EndpointIndependent, HairpinYes},
		{"address restricted", &natsim.AddressRestricted, EndpointIndependent, AddressDependent, HairpinNo},
		{"port restricted", &natsim.PortRestricted, EndpointIndependent, AddressPortDependent, HairpinNo},
		{"symmetric", &natsim.Symmetric, AddressPortDependent, AddressPortDependent, HairpinNo},
		{"address-dependent mapping", &natsim.Kind{Mapping: natsim.AddressDependent, Filtering: natsim.AddressDependent}, AddressDependent, AddressDependent, HairpinNo},
		{"no NAT", nil, EndpointIndependent, EndpointIndependent, HairpinYes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := natsim.New(7)
			stunServer(t, n, stun1, stun2)
			var nat *natsim.NAT
			local := netip.MustParseAddrPort("45.71.0.50:23000")
			if tc.kind != nil {
				nat = n.NewNAT(netip.MustParseAddr("45.71.0.101"), *tc.kind)
				local = netip.MustParseAddrPort("10.0.1.2:23000")
			}
			p, local := client(t, n, nat, local)
			res := p.Discover(context.Background(), DiscoverConfig{Servers: []netip.AddrPort{stun1}, Local: local, Hairpin: true, Timeout: 300 * time.Millisecond})
			t.Logf("%+v", res)
			if res.Method != "rfc5780" || res.Mapping != tc.mapping || res.Filtering != tc.filtering || res.Hairpin != tc.hairpin {
				t.Errorf("got method %s mapping %v (%s) filtering %v (%s) hairpin %v (%s); want %v %v %v",
					res.Method, res.Mapping, res.MappingReason, res.Filtering, res.FilteringReason, res.Hairpin, res.HairpinReason,
					tc.mapping, tc.filtering, tc.hairpin)
			}
			if res.NAT != (tc.kind != nil) {
				t.Errorf("NAT = %v", res.NAT)
			}
			if tc.kind != nil && res.Public.Addr() != nat.WAN {
				t.Errorf("public %v, want the WAN address %v", res.Public, nat.WAN)
			}
			if tc.kind != nil && tc.kind.Mapping == natsim.EndpointIndependent && res.Public.Port() != local.Port() {
				t.Errorf("EIM router should keep the port: public %v local %v", res.Public, local)
			}
		})
	}
}

func TestDiscoverAcrossServers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		kind    natsim.Kind
		servers []netip.AddrPort
		want    Behavior
		reason  string
	}{
		{"cone, two addresses", natsim.PortRestricted, []netip.AddrPort{stun1, stun3}, EndpointIndependent, "same public address towards every server"},
		{"symmetric, two addresses", natsim.Symmetric, []netip.AddrPort{stun1, stun3}, AddressDependent, "port dependence not tested"},
		{"symmetric, two ports", natsim.Symmetric, []netip.AddrPort{stun1, netip.AddrPortFrom(stun1.Addr(), 3479), stun3}, AddressPortDependent, "varies by destination port"},
		{"one server", natsim.Symmetric, []netip.AddrPort{stun1}, Unknown, "mapping not tested"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := natsim.New(3)
			for _, s := range tc.servers {
				stunServer(t, n, s, netip.AddrPort{})
			}
			nat := n.NewNAT(netip.MustParseAddr("45.71.0.102"), tc.kind)
			p, local := client(t, n, nat, netip.MustParseAddrPort("10.0.2.2:30000"))
			res := p.Discover(context.Background(), DiscoverConfig{Servers: tc.servers, Local: local, Timeout: 300 * time.Millisecond})
			if res.Mapping != tc.want || !strings.Contains(res.MappingReason, tc.reason) {
				t.Errorf("mapping %v (%s), want %v with %q", res.Mapping, res.MappingReason, tc.want, tc.reason)
			}
			if res.Filtering != Unknown || !strings.Contains(res.FilteringReason, "OTHER-ADDRESS") {
				t.Errorf("filtering %v (%s) without RFC 5780", res.Filtering, res.FilteringReason)
			}
		})
	}
}

// A server that announces OTHER-ADDRESS but answers CHANGE-REQUEST from its primary address
// must not make every NAT look endpoint-independent.
func TestDiscoverServerIgnoresChangeRequest(t *testing.T) {
	n := natsim.New(5)
	c, err := n.Listen(stun1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv := stunServer(t, n, netip.MustParseAddrPort("45.71.0.9:3478"), netip.MustParseAddrPort("45.71.0.8:3479"))
	_ = srv
	// A liar: answers everything itself, claiming OTHER-ADDRESS 45.71.0.2:3479.
	liar := &Responder{Primary: stun1, Other: stun2}
	go func() {
		buf := make([]byte, 1500)
		for {
			k, src, err := c.ReadFromAddrPort(buf)
			if err != nil {
				return
			}
			out, _, err := liar.Respond(nil, buf[:k], src, stun1)
			if err == nil {
				c.WriteToAddrPort(out, src)
			}
		}
	}()
	nat := n.NewNAT(netip.MustParseAddr("45.71.0.101"), natsim.PortRestricted)
	p, local := client(t, n, nat, netip.MustParseAddrPort("10.0.1.2:20000"))
	res := p.Discover(context.Background(), DiscoverConfig{Servers: []netip.AddrPort{stun1}, Local: local, Timeout: 300 * time.Millisecond})
	if res.Filtering != Unknown || !strings.Contains(res.FilteringReason, "ignored CHANGE-REQUEST") {
		t.Errorf("filtering %v (%s)", res.Filtering, res.FilteringReason)
	}
}

func TestDiscoverRefusedChangeRequestAndSilence(t *testing.T) {
	n := natsim.New(9)
	stunServer(t, n, stun1, netip.AddrPort{}) // plain server: 420 for CHANGE-REQUEST
	nat := n.NewNAT(netip.MustParseAddr("45.71.0.101"), natsim.FullCone)
	p, local := client(t, n, nat, netip.MustParseAddrPort("10.0.1.2:20000"))
	r, err := p.Binding(context.Background(), stun1, ChangePort, 300*time.Millisecond)
	if err != nil || r.ErrorCode != 420 {
		t.Errorf("CHANGE-REQUEST to a plain server: %+v %v, want error 420", r, err)
	}
	res := p.Discover(context.Background(), DiscoverConfig{Servers: []netip.AddrPort{stun3}, Local: local, Timeout: 200 * time.Millisecond})
	if res.Method != "none" || res.Mapping != Unknown || !strings.Contains(res.MappingReason, "no STUN server answered") {
		t.Errorf("silent server: %+v", res)
	}
}
