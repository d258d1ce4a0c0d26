package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/bpf"
)

// ip4Packet builds an IPv4 packet with a transport header carrying ports (when proto has ports)
// and the given fragment offset (units of 8 bytes).
func ip4Packet(src, dst string, proto uint8, sport, dport uint16, fragOff uint16, ihlWords int) []byte {
	hl := ihlWords * 4
	p := make([]byte, hl+16)
	p[0] = 0x40 | byte(ihlWords)
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	binary.BigEndian.PutUint16(p[6:], fragOff)
	p[8], p[9] = 64, proto
	copy(p[12:], netip.MustParseAddr(src).AsSlice())
	copy(p[16:], netip.MustParseAddr(dst).AsSlice())
	binary.BigEndian.PutUint16(p[hl:], sport)
	binary.BigEndian.PutUint16(p[hl+2:], dport)
	return p
}

func ip6Packet(src, dst string, next uint8, sport, dport uint16) []byte {
	p := make([]byte, 40+16)
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], 16)
	p[6], p[7] = next, 64
	copy(p[8:], netip.MustParseAddr(src).AsSlice())
	copy(p[24:], netip.MustParseAddr(dst).AsSlice())
	binary.BigEndian.PutUint16(p[40:], sport)
	binary.BigEndian.PutUint16(p[42:], dport)
	return p
}

// wrap puts an IP packet (et = its EtherType) into a frame of link type lt.
func wrap(lt LinkType, et uint16, ip []byte, vlans ...uint16) []byte {
	tags := []byte{}
	for _, v := range vlans {
		tags = binary.BigEndian.AppendUint16(tags, v)
		tags = binary.BigEndian.AppendUint16(tags, 0) // placeholder, patched below
	}
	// Chain the tag EtherTypes: outer type is the first tag's TPID.
	outer := et
	if len(vlans) > 0 {
		outer = EtherTypeQinQ
		if len(vlans) == 1 {
			outer = EtherTypeVLAN
		}
		for i := range vlans {
			inner := et
			if i+1 < len(vlans) {
				inner = EtherTypeVLAN
			}
			binary.BigEndian.PutUint16(tags[4*i+2:], inner)
		}
	}
	var h []byte
	switch lt {
	case Ethernet:
		h = append([]byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2}, byte(outer>>8), byte(outer))
	case LinuxSLL:
		h = append([]byte{0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 2, 0, 0}, byte(outer>>8), byte(outer))
	case LinuxSLL2:
		h = []byte{byte(outer >> 8), byte(outer), 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 2, 0, 0, 0, 0, 2, 0, 0}
	case Null:
		fam := uint32(afInet)
		if et == EtherTypeIPv6 {
			fam = afInet6Darwin // libpcap knows the BSD values only
		}
		h = binary.LittleEndian.AppendUint32(nil, fam)
	case Loop:
		fam := uint32(afInet)
		if et == EtherTypeIPv6 {
			fam = afInet6BSD
		}
		h = binary.BigEndian.AppendUint32(nil, fam)
	}
	return bytes.Join([][]byte{h, tags, ip}, nil)
}

// filterCorpus is a set of IP packets that exercise every branch of a compiled filter.
func filterCorpus() (ips [][]byte, ets []uint16) {
	add := func(et uint16, p []byte) { ips, ets = append(ips, p), append(ets, et) }
	add(EtherTypeIPv4, ip4Packet("10.0.0.1", "10.0.0.2", 17, 40000, 9, 0, 5))
	add(EtherTypeIPv4, ip4Packet("10.0.0.2", "10.0.0.1", 17, 9, 40000, 0, 5))
	add(EtherTypeIPv4, ip4Packet("10.0.0.3", "10.0.0.4", 17, 40000, 9, 0, 5))
	add(EtherTypeIPv4, ip4Packet("10.0.0.1", "10.0.0.9", 6, 862, 5000, 0, 5))
	add(EtherTypeIPv4, ip4Packet("10.0.0.9", "10.0.0.1", 6, 5001, 862, 0, 7))       // options
	add(EtherTypeIPv4, ip4Packet("10.0.0.9", "10.0.0.1", 17, 5001, 862, 185, 5))    // later fragment
	add(EtherTypeIPv4, ip4Packet("10.0.0.9", "10.0.0.1", 17, 5001, 862, 0x2000, 5)) // first fragment (MF)
	add(EtherTypeIPv4, ip4Packet("10.0.0.1", "10.0.0.2", 17, 40000, 9, 0x1000, 5))  // offset 4096×8
	add(EtherTypeIPv4, ip4Packet("10.0.0.1", "10.0.0.2", 1, 0x0800, 7, 0, 5))
	add(EtherTypeIPv4, ip4Packet("10.0.0.1", "10.0.0.2", 132, 7, 9, 0, 5))
	add(EtherTypeIPv6, ip6Packet("2001:db8::1", "2001:db8::2", 17, 40000, 9))
	add(EtherTypeIPv6, ip6Packet("2001:db8::2", "2001:db8::1", 17, 9, 40000))
	add(EtherTypeIPv6, ip6Packet("2001:db8::3", "2001:db8::4", 6, 862, 40000))
	add(EtherTypeIPv6, ip6Packet("2001:db8::1", "2001:db8::3", 58, 0x8000, 0))
	add(EtherTypeIPv6, ip6Packet("2001:db8::1:2", "2001:db8::4", 6, 1, 862)) // shares 3 words with ::2
	return ips, ets
}

// tcpdumpExpr is the tcpdump equivalent of f (without VLAN handling).
func tcpdumpExpr(f Filter) string {
	terms := []string{"(ip or ip6)"}
	if len(f.Hosts) > 0 {
		var hs []string
		for _, h := range f.Hosts {
			hs = append(hs, "host "+h.Unmap().String())
		}
		terms = append(terms, "("+strings.Join(hs, " or ")+")")
	}
	if f.Protocol != 0 {
		terms = append(terms, fmt.Sprintf("(ip proto %d or ip6 proto %d)", f.Protocol, f.Protocol))
	}
	if len(f.Ports) > 0 {
		var ps []string
		for _, p := range f.Ports {
			ps = append(ps, fmt.Sprintf("port %d", p))
		}
		terms = append(terms, "("+strings.Join(ps, " or ")+")")
	}
	return strings.Join(terms, " and ")
}

var testFilters = []Filter{
	{},
	{Hosts: []netip.Addr{netip.MustParseAddr("10.0.0.1")}},
	{Hosts: []netip.Addr{netip.MustParseAddr("10.0.0.3"), netip.MustParseAddr("2001:db8::2")}},
	{Hosts: []netip.Addr{netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("::ffff:10.0.0.2")}},
	{Protocol: ProtoUDP},
	{Protocol: ProtoTCP, Ports: []uint16{862}},
	{Ports: []uint16{9}},
	{Ports: []uint16{862, 40000}},
	{Hosts: []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("2001:db8::1")}, Protocol: ProtoUDP, Ports: []uint16{9}},
	{Protocol: ProtoICMPv6},
	{Hosts: []netip.Addr{netip.MustParseAddr("2001:db8::2")}},
}

// refMatch is an independent Go model of Filter's semantics (the documented tcpdump subset).
func refMatch(f Filter, et uint16, ip []byte) bool {
	if len(f.Hosts) == 0 && f.Protocol == 0 && len(f.Ports) == 0 {
		return true
	}
	var src, dst netip.Addr
	var proto uint8
	var l4off int
	frag := false
	switch et {
	case EtherTypeIPv4:
		src, dst, proto = netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20])), ip[9]
		frag = binary.BigEndian.Uint16(ip[6:])&0x1fff != 0
		l4off = int(ip[0]&15) * 4
	case EtherTypeIPv6:
		src, dst, proto = netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40])), ip[6]
		l4off = 40
	default:
		return false
	}
	if len(f.Hosts) > 0 && !slices.ContainsFunc(f.Hosts, func(h netip.Addr) bool { return h.Unmap() == src || h.Unmap() == dst }) {
		return false
	}
	if f.Protocol != 0 && proto != f.Protocol {
		return false
	}
	if len(f.Ports) > 0 {
		if frag || (proto != ProtoTCP && proto != ProtoUDP && proto != ProtoSCTP) {
			return false
		}
		sp, dp := binary.BigEndian.Uint16(ip[l4off:]), binary.BigEndian.Uint16(ip[l4off+2:])
		return slices.ContainsFunc(f.Ports, func(p uint16) bool { return p == sp || p == dp })
	}
	return true
}

// TestFilterVM runs every compiled filter in x/net/bpf's VM over the corpus in every link
// type, with and without VLAN tags, and compares with the reference model.
func TestFilterVM(t *testing.T) {
	ips, ets := filterCorpus()
	for fi, f := range testFilters {
		for _, lt := range []LinkType{Ethernet, LinuxSLL, LinuxSLL2, Null, Loop, Raw, RawIPv4, RawIPv6} {
			prog, err := f.Compile(lt, 200)
			if err != nil {
				t.Fatalf("filter %d %v: %v", fi, lt, err)
			}
			vm, err := bpf.NewVM(prog)
			if err != nil {
				t.Fatalf("filter %d %v: NewVM: %v", fi, lt, err)
			}
			for i, ip := range ips {
				var frames [][]byte
				switch lt {
				case Raw:
					frames = [][]byte{ip}
				case RawIPv4, RawIPv6:
					if (lt == RawIPv4) != (ets[i] == EtherTypeIPv4) {
						continue
					}
					frames = [][]byte{ip}
				case Ethernet, LinuxSLL, LinuxSLL2:
					frames = [][]byte{wrap(lt, ets[i], ip), wrap(lt, ets[i], ip, 100), wrap(lt, ets[i], ip, 10, 20)}
				default:
					frames = [][]byte{wrap(lt, ets[i], ip)}
				}
				want := refMatch(f, ets[i], ip)
				for _, fr := range frames {
					n, err := vm.Run(fr)
					if err != nil {
						t.Fatalf("filter %d %v packet %d: %v", fi, lt, i, err)
					}
					if (n > 0) != want {
						t.Errorf("filter %d (%s) on %v packet %d (%d bytes): accept=%v, want %v", fi, tcpdumpExpr(f), lt, i, len(fr), n > 0, want)
					}
					if n > 0 && n != 200 {
						t.Errorf("filter %d: keeps %d bytes of %d, want snaplen 200", fi, n, len(fr))
					}
				}
			}
			// Non-IP frames never match a non-empty filter.
			if lt == Ethernet {
				arp := wrap(Ethernet, EtherTypeARP, make([]byte, 28))
				if n, _ := vm.Run(arp); (n > 0) != (fi == 0) {
					t.Errorf("filter %d: ARP accept=%v", fi, n > 0)
				}
			}
		}
	}
}

// TestFilterMatchesTcpdump writes the corpus as pcap files of each link type and checks that
// each filter selects exactly the packets tcpdump's own compiler selects.
func TestFilterMatchesTcpdump(t *testing.T) {
	bin, err := exec.LookPath("tcpdump")
	if err != nil {
		t.Skip("tcpdump not installed (apt-get install tcpdump)")
	}
	ips, ets := filterCorpus()
	dir := t.TempDir()
	for _, lt := range []LinkType{Ethernet, LinuxSLL, LinuxSLL2, Null, Loop, Raw} {
		var pkts []testPkt
		for i, ip := range ips {
			fr := ip
			if lt != Raw {
				fr = wrap(lt, ets[i], ip)
			}
			pkts = append(pkts, testPkt{ns: nsTime + int64(i)*1e9, data: fr, origLen: len(fr)})
		}
		path := filepath.Join(dir, lt.String()+".pcap")
		if err := os.WriteFile(path, buildPcap(false, false, lt, 65535, pkts), 0o644); err != nil {
			t.Fatal(err)
		}
		for fi, f := range testFilters {
			expr := tcpdumpExpr(f)
			out, err := exec.Command(bin, "-tt", "-n", "-r", path, expr).Output()
			if err != nil {
				t.Fatalf("tcpdump %q on %v: %v", expr, lt, err)
			}
			var want []string
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if ts, _, ok := strings.Cut(line, " "); ok {
					want = append(want, ts)
				}
			}
			prog, err := f.Compile(lt, 0)
			if err != nil {
				t.Fatal(err)
			}
			vm, err := bpf.NewVM(prog)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range pkts {
				if n, _ := vm.Run(p.data); n > 0 {
					got = append(got, fmt.Sprintf("%d.%06d", p.ns/1e9, p.ns%1e9/1000))
				}
			}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("%v filter %d %q: we accept %v, tcpdump %v", lt, fi, expr, got, want)
			}
		}
	}
}

// TestFilterCaptures: on the real captures, FilterHostPort selects what tcpdump selects.
func TestFilterCaptures(t *testing.T) {
	bin, err := exec.LookPath("tcpdump")
	if err != nil {
		t.Skip("tcpdump not installed (apt-get install tcpdump)")
	}
	for _, tc := range []struct {
		file string
		f    Filter
	}{
		{"testdata/spp-udpecho-mon-plus100s.pcapng", Filter{Hosts: []netip.Addr{netip.MustParseAddr("10.71.2.1")}, Protocol: ProtoUDP, Ports: []uint16{7}}},
		{"testdata/spp-ping-ref.pcap", Filter{Protocol: ProtoICMP}},
		{"testdata/twamp-owamp-ipv6.pcap", Filter{Protocol: ProtoTCP, Ports: []uint16{8621}}},
		{"testdata/sll2-any-loopback.pcap", Filter{Hosts: []netip.Addr{netip.IPv6Loopback()}}},
		{"testdata/stamp-suite-reflector.pcap", Filter{Protocol: ProtoUDP, Ports: []uint16{8622}}},
	} {
		out, err := exec.Command(bin, "-tt", "--nano", "-n", "-r", tc.file, tcpdumpExpr(tc.f)).Output()
		if err != nil {
			t.Fatal(err)
		}
		want := strings.Count(string(out), "\n")
		r, err := Open(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		prog, err := tc.f.Compile(r.LinkType(), 0)
		if err != nil {
			t.Fatal(err)
		}
		vm, _ := bpf.NewVM(prog)
		got, total := 0, 0
		for {
			p, err := r.Next()
			if err != nil {
				break
			}
			total++
			if n, _ := vm.Run(p.Data); n > 0 {
				got++
			}
		}
		r.Close()
		if got != want || got == 0 {
			t.Errorf("%s %q: %d of %d packets match, tcpdump %d", tc.file, tcpdumpExpr(tc.f), got, total, want)
		}
	}
}

func TestFilterErrors(t *testing.T) {
	many := make([]netip.Addr, 17)
	for i := range many {
		many[i] = netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})
	}
	for _, tc := range []struct {
		name string
		f    Filter
		lt   LinkType
		want error
	}{
		{"too many hosts", Filter{Hosts: many}, Ethernet, ErrFilter},
		{"ports of ICMP", Filter{Protocol: ProtoICMP, Ports: []uint16{1}}, Ethernet, ErrFilter},
		{"invalid host", Filter{Hosts: []netip.Addr{{}}}, Ethernet, ErrFilter},
		{"link type", Filter{Protocol: ProtoUDP}, LinkType(127), ErrUnsupportedLinkType},
	} {
		if _, err := tc.f.Compile(tc.lt, 0); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// The largest filter still fits the 8-bit jumps and the kernel's 4096-instruction limit.
	var v6 []netip.Addr
	for i := range 16 {
		v6 = append(v6, netip.AddrFrom16([16]byte{0x20, 1, 0xd, 0xb8, 15: byte(i)}))
	}
	ports := make([]uint16, 16)
	prog, err := Filter{Hosts: v6, Ports: ports}.Compile(Ethernet, 0)
	if err != nil || len(prog) > 4096 {
		t.Fatalf("16 IPv6 hosts + 16 ports: %d instructions, %v", len(prog), err)
	}
	if p, err := FilterHost(Ethernet, many[:2]...); err != nil || len(p) < 5 {
		t.Fatal(err)
	}
	if p, err := FilterPort(LinuxSLL2, ProtoUDP, 9); err != nil || len(p) < 5 {
		t.Fatal(err)
	}
	if p, err := FilterHostPort(Null, ProtoTCP, many[:1], 80); err != nil || len(p) < 5 {
		t.Fatal(err)
	}
}
