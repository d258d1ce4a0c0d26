package natsim

import (
	"net/netip"
	"testing"
	"time"
)

func recv(t *testing.T, c *Conn) (string, netip.AddrPort, bool) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	buf := make([]byte, 100)
	n, src, err := c.ReadFromAddrPort(buf)
	if err != nil {
		return "", netip.AddrPort{}, false
	}
	return string(buf[:n]), src, true
}

// Each kind maps and filters as RFC 4787 defines it.
func TestKinds(t *testing.T) {
	s1 := netip.MustParseAddrPort("45.71.0.1:3478")
	s2 := netip.MustParseAddrPort("45.71.0.2:3478")
	s1b := netip.MustParseAddrPort("45.71.0.1:3479")
	for _, tc := range []struct {
		name                  string
		kind                  Kind
		samePort2, samePort1b bool // mapping towards s2 / s1b equals the one towards s1
		fromS2, fromS1b       bool // unsolicited s2 / s1b reach the client after it sent to s1 only
	}{
		{"fullcone", FullCone, true, true, true, true},
		{"addrrestricted", AddressRestricted, true, true, false, true},
		{"portrestricted", PortRestricted, true, true, false, false},
		{"symmetric", Symmetric, false, false, false, false},
		{"adm", Kind{Mapping: AddressDependent, Filtering: AddressDependent}, false, true, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := New(1)
			nat := n.NewNAT(netip.MustParseAddr("45.71.0.101"), tc.kind)
			cl, _ := nat.Listen(netip.MustParseAddrPort("10.0.1.2:20000"))
			a, _ := n.Listen(s1)
			b, _ := n.Listen(s2)
			c, _ := n.Listen(s1b)
			cl.WriteToAddrPort([]byte("x"), s1)
			_, m1, ok := recv(t, a)
			if !ok || m1.Addr() != nat.WAN {
				t.Fatalf("towards s1: %v %v", m1, ok)
			}
			if tc.kind.Mapping == EndpointIndependent && m1.Port() != 20000 {
				t.Errorf("EIM changed the port: %v", m1)
			}
			// Unsolicited packets to the mapping from s2 and s1b.
			b.WriteToAddrPort([]byte("from s2"), m1)
			if _, _, ok := recv(t, cl); ok != tc.fromS2 {
				t.Errorf("from s2 delivered %v, want %v", ok, tc.fromS2)
			}
			c.WriteToAddrPort([]byte("from s1b"), m1)
			if _, _, ok := recv(t, cl); ok != tc.fromS1b {
				t.Errorf("from s1b delivered %v, want %v", ok, tc.fromS1b)
			}
			cl.WriteToAddrPort([]byte("y"), s2)
			_, m2, _ := recv(t, b)
			cl.WriteToAddrPort([]byte("z"), s1b)
			_, m3, _ := recv(t, c)
			if (m2 == m1) != tc.samePort2 || (m3 == m1) != tc.samePort1b {
				t.Errorf("mappings %v %v %v", m1, m2, m3)
			}
			// A reply from where the client sent always gets in.
			a.WriteToAddrPort([]byte("reply"), m1)
			if s, src, ok := recv(t, cl); !ok || s != "reply" || src != s1 {
				t.Errorf("reply: %q %v %v", s, src, ok)
			}
		})
	}
}

func TestHairpinAndLAN(t *testing.T) {
	n := New(2)
	for _, hp := range []bool{true, false} {
		nat := n.NewNAT(netip.MustParseAddr("45.71.0.101"), Kind{EndpointIndependent, EndpointIndependent, hp})
		x, _ := nat.Listen(netip.MustParseAddrPort("10.0.1.2:20000"))
		y, _ := nat.Listen(netip.MustParseAddrPort("10.0.1.3:30000"))
		x.WriteToAddrPort([]byte("lan"), y.AddrPort())
		if s, src, ok := recv(t, y); !ok || s != "lan" || src != x.AddrPort() {
			t.Errorf("LAN delivery: %q %v %v", s, src, ok)
		}
		y.WriteToAddrPort([]byte("open"), netip.MustParseAddrPort("45.71.0.9:1")) // creates y's mapping 30000
		x.WriteToAddrPort([]byte("hairpin"), netip.MustParseAddrPort("45.71.0.101:30000"))
		s, src, ok := recv(t, y)
		if ok != hp || (ok && (s != "hairpin" || src != netip.MustParseAddrPort("45.71.0.101:20000"))) {
			t.Errorf("hairpin %v: %q %v %v", hp, s, src, ok)
		}
		x.Close()
		y.Close()
	}
}
