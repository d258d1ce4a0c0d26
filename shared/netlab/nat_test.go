package netlab

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseNATKind(t *testing.T) {
	for _, k := range []NATKind{FullCone, AddressRestricted, PortRestricted, Symmetric} {
		got, err := ParseNATKind(k.String())
		if err != nil || got != k {
			t.Errorf("%v: %v %v", k, got, err)
		}
	}
	if _, err := ParseNATKind("cone"); err == nil {
		t.Error("accepted an unknown kind")
	}
}

func TestNATConfigErrors(t *testing.T) {
	for _, cfg := range []NATConfig{
		{},
		{NATs: []NATSpec{{Kind: Symmetric, Hairpin: true}}},
		{NATs: []NATSpec{{Kind: FullCone, Clients: 5}}},
		{NATs: []NATSpec{{Kind: NATKind(9)}}},
		{NATs: []NATSpec{{Kind: FullCone, UDPTimeout: time.Millisecond}}},
	} {
		if _, err := NewNAT(cfg); err == nil {
			t.Errorf("NewNAT(%+v) accepted", cfg)
		}
	}
}

// TestNATUDPTimeout: with a 1 s UDP timeout on a port-restricted NAT, the mapping's conntrack
// entry expires and the peer's datagram, delivered while fresh, is dropped after the timeout.
func TestNATUDPTimeout(t *testing.T) {
	n := NAT(t, NATConfig{NATs: []NATSpec{{Kind: PortRestricted, UDPTimeout: time.Second}}})
	c := n.NATs[0].Clients[0]
	cl, err := listenUDPIn(c.Host, netip.AddrPortFrom(c.Addr, 21000))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.conn.Close()
	rv, err := listenUDPIn(n.Rendezvous, netip.AddrPortFrom(Rendezvous, 9000))
	if err != nil {
		t.Fatal(err)
	}
	defer rv.conn.Close()
	if err := cl.send(netip.AddrPortFrom(Rendezvous, 9000), "hi"); err != nil {
		t.Fatal(err)
	}
	_, mapped, ok := rv.recv(time.Second)
	if !ok {
		t.Fatal("rendezvous got nothing")
	}
	if err := rv.send(mapped, "fresh"); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := cl.recv(time.Second); !ok {
		t.Fatal("reply through a fresh mapping dropped")
	}
	out, _ := n.NATs[0].Router.Exec("sysctl", "-n", "net.netfilter.nf_conntrack_udp_timeout")
	if strings.TrimSpace(out) != "1" {
		t.Errorf("udp_timeout = %q, want 1", out)
	}
	time.Sleep(2500 * time.Millisecond)
	if err := rv.send(mapped, "stale"); err != nil {
		t.Fatal(err)
	}
	if msg, _, ok := cl.recv(500 * time.Millisecond); ok {
		t.Fatalf("datagram %q delivered after the mapping expired", msg)
	}
}
