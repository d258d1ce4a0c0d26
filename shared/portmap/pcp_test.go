package portmap

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// Hand-assembled from RFC 6887 Figures 2, 3 and 9 (not produced by AppendTo).
var (
	goldenRequest = mustHex(`
		02 01 0000 00001c20
		00000000000000000000ffff 0a000102
		0102030405060708090a0b0c 11 000000 a0b4 a0b4
		00000000000000000000ffff 00000000`)
	goldenResponse = mustHex(`
		02 81 00 00 00001c20 0000abcd 000000000000000000000000
		0102030405060708090a0b0c 11 000000 a0b4 a0b5
		00000000000000000000ffff 2d470065`)
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		panic(err)
	}
	return b
}

var nonce = [12]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}

func TestPCPGolden(t *testing.T) {
	req := PCPMap{Lifetime: 7200, ClientIP: netip.MustParseAddr("10.0.1.2"), Nonce: nonce, Protocol: ProtoUDP,
		InternalPort: 41140, ExternalPort: 41140}
	if got := req.AppendTo(nil); !bytes.Equal(got, goldenRequest) {
		t.Fatalf("request\n got %x\nwant %x", got, goldenRequest)
	}
	var d PCPMap
	req.ExternalIP = netip.IPv4Unspecified() // "no preference" as it comes off the wire
	if err := d.UnmarshalBinary(goldenRequest); err != nil || d != req {
		t.Fatalf("request decode %+v %v", d, err)
	}
	want := PCPMap{Response: true, Lifetime: 7200, Epoch: 0xabcd, Nonce: nonce, Protocol: ProtoUDP, InternalPort: 41140,
		ExternalPort: 41141, ExternalIP: netip.MustParseAddr("45.71.0.101")}
	if err := d.UnmarshalBinary(goldenResponse); err != nil || d != want {
		t.Fatalf("response decode\n got %+v %v\nwant %+v", d, err, want)
	}
	if got := want.AppendTo(nil); !bytes.Equal(got, goldenResponse) {
		t.Fatalf("response encode\n got %x\nwant %x", got, goldenResponse)
	}
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"nat-pmp answer", []byte{0, 0x80, 0, 1, 0, 0, 0, 0}, ErrNATPMPAnswer},
		{"short header", goldenResponse[:23], ErrMalformed},
		{"header only", goldenResponse[:24], ErrMalformed},
		{"version 3", append([]byte{3}, goldenResponse[1:]...), ErrMalformed},
		{"opcode PEER", append([]byte{2, 0x82}, goldenResponse[2:]...), ErrMalformed},
	} {
		if err := d.UnmarshalBinary(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// Options after the payload are skipped.
	if err := d.UnmarshalBinary(append(append([]byte{}, goldenResponse...), 1, 0, 0, 0)); err != nil || d != want {
		t.Errorf("with trailing option: %+v %v", d, err)
	}
	if ResultName(ResultNotAuthorized) != "NOT_AUTHORIZED" || ResultName(200) != "result 200" {
		t.Error("ResultName")
	}
}

func FuzzPCPMap(f *testing.F) {
	f.Add(goldenRequest)
	f.Add(goldenResponse)
	f.Add([]byte{0, 0x80, 0, 1})
	f.Add(goldenResponse[:30])
	f.Fuzz(func(t *testing.T, b []byte) {
		var m PCPMap
		if err := m.UnmarshalBinary(b); err != nil {
			return
		}
		// What decodes re-encodes to the same 60 bytes, reserved fields aside.
		out := m.AppendTo(nil)
		var m2 PCPMap
		if err := m2.UnmarshalBinary(out); err != nil || m2 != m {
			t.Fatalf("round trip: %+v -> %x -> %+v %v", m, out, m2, err)
		}
	})
}

func TestParseRoutes(t *testing.T) {
	table := "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"eth0\t0001000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n" +
		"eth0\t00000000\t0101000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
	a, err := parseRoutes(strings.NewReader(table))
	if err != nil || a != netip.MustParseAddr("10.0.1.1") {
		t.Fatalf("%v %v", a, err)
	}
	if _, err := parseRoutes(strings.NewReader(table[:strings.LastIndex(table[:len(table)-1], "\n")+1])); !errors.Is(err, ErrNoGateway) {
		t.Fatalf("no default route: %v", err)
	}
}

// fakePCP is a PCP server on loopback: it answers MAP requests with code, granting life.
type fakePCP struct {
	c    *net.UDPConn
	code uint8
	life uint32
	mu   sync.Mutex
	reqs []PCPMap
	seen chan PCPMap
}

func newFakePCP(t *testing.T, code uint8, life uint32, raw []byte) *fakePCP {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakePCP{c: c, code: code, life: life, seen: make(chan PCPMap, 100)}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			var req PCPMap
			if err := req.UnmarshalBinary(buf[:n]); err != nil || req.Response {
				continue
			}
			f.seen <- req
			if raw != nil {
				c.WriteToUDPAddrPort(raw, from)
				continue
			}
			resp := PCPMap{Response: true, ResultCode: f.code, Lifetime: min(req.Lifetime, f.life), Epoch: 1, Nonce: req.Nonce,
				Protocol: req.Protocol, InternalPort: req.InternalPort, ExternalPort: 40000 + req.InternalPort%1000,
				ExternalIP: netip.MustParseAddr("45.71.0.101")}
			c.WriteToUDPAddrPort(resp.AppendTo(nil), from)
		}
	}()
	return f
}

func (f *fakePCP) port() uint16 { return uint16(f.c.LocalAddr().(*net.UDPAddr).Port) }

func (f *fakePCP) next(t *testing.T) PCPMap {
	t.Helper()
	select {
	case r := <-f.seen:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("no PCP request")
	}
	return PCPMap{}
}

func TestPCPMapRenewDelete(t *testing.T) {
	srv := newFakePCP(t, ResultSuccess, 2, nil) // grants 2 s: renewed after 1 s
	lo := netip.MustParseAddr("127.0.0.1")
	var mu sync.Mutex
	var changes [][]Result
	m, err := Start(context.Background(), Config{Port: 23456, Gateway: lo, LocalIP: lo, Protocols: []string{PCP},
		Lifetime: time.Hour, pcpPort: srv.port(), OnChange: func(r []Result) { mu.Lock(); changes = append(changes, r); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	first := srv.next(t)
	if first.Lifetime != 3600 || first.InternalPort != 23456 || first.ExternalPort != 23456 || first.ClientIP != lo || first.Protocol != ProtoUDP {
		t.Fatalf("first request %+v", first)
	}
	r := m.Results()[0]
	if r.Protocol != PCP || r.Gateway != "127.0.0.1:"+itoa(srv.port()) || r.External != "45.71.0.101:40456" || r.Lifetime != 2 || r.Error != "" {
		t.Fatalf("result %+v", r)
	}
	if ext := m.External(); len(ext) != 1 || ext[0].String() != "45.71.0.101:40456" {
		t.Fatalf("External %v", ext)
	}
	// Renewal: same nonce, asks for the mapping it holds.
	renew := srv.next(t)
	if renew.Nonce != first.Nonce || renew.ExternalPort != 40456 || renew.ExternalIP != netip.MustParseAddr("45.71.0.101") {
		t.Fatalf("renewal %+v", renew)
	}
	for deadline := time.Now().Add(30 * time.Second); m.Results()[0].Renewals < 1; {
		if time.Now().After(deadline) {
			t.Fatal("renewal not recorded")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	var del PCPMap
	for del = srv.next(t); del.Lifetime != 0; del = srv.next(t) { // skip a renewal racing Close
	}
	if del.Nonce != first.Nonce || del.InternalPort != 23456 {
		t.Fatalf("delete %+v", del)
	}
	if r := m.Results()[0]; !r.Deleted || r.Granted() {
		t.Fatalf("after Close %+v", r)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(changes) < 3 || !changes[len(changes)-1][0].Deleted {
		t.Fatalf("OnChange calls %d, last %+v", len(changes), changes[len(changes)-1])
	}
}

func TestPCPErrors(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	refuse := newFakePCP(t, ResultNotAuthorized, 0, nil)
	pmp := newFakePCP(t, 0, 0, []byte{0, 0x80, 0, 1, 0, 0, 0, 0}) // NAT-PMP server: UNSUPP_VERSION
	dead, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	deadPort := uint16(dead.LocalAddr().(*net.UDPAddr).Port)
	dead.Close() // nothing listens: ICMP port unreachable
	for _, c := range []struct {
		port uint16
		want string
	}{{refuse.port(), "NOT_AUTHORIZED"}, {pmp.port(), "NAT-PMP"}, {deadPort, "refused"}} {
		m, err := Start(context.Background(), Config{Port: 5000, Gateway: lo, LocalIP: lo, Protocols: []string{PCP},
			Timeout: time.Second, pcpPort: c.port})
		if err != nil {
			t.Fatal(err)
		}
		r := m.Results()[0]
		if r.Granted() || !strings.Contains(r.Error, c.want) || r.Gateway == "" {
			t.Errorf("port %d: %+v, want error containing %q", c.port, r, c.want)
		}
		if err := m.Close(); err != nil {
			t.Errorf("Close after failure: %v", err)
		}
	}
}

func itoa(p uint16) string { return netip.AddrPortFrom(netip.IPv4Unspecified(), p).String()[8:] }
