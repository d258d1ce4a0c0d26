package netlab

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// NATKind is a NAT router's mapping and filtering behaviour (RFC 4787 / RFC 5780 terms).
type NATKind int

const (
	// FullCone: endpoint-independent mapping (the source port is kept) and endpoint-independent
	// filtering: anyone may send to the mapped address.
	FullCone NATKind = iota
	// AddressRestricted: endpoint-independent mapping, address-dependent filtering: inbound is
	// accepted from any port of an address the client has sent to.
	AddressRestricted
	// PortRestricted: endpoint-independent mapping, address-and-port-dependent filtering.
	PortRestricted
	// Symmetric: address-and-port-dependent mapping (MASQUERADE --random-fully: a random port per
	// destination) and address-and-port-dependent filtering; no hairpinning.
	Symmetric
)

var natKindNames = []string{"full-cone", "address-restricted", "port-restricted", "symmetric"}

func (k NATKind) String() string { return enumName(natKindNames, "kind", k) }

// ParseNATKind parses a kind name as printed by String.
func ParseNATKind(s string) (NATKind, error) { return parseEnum[NATKind](natKindNames, "NAT kind", s) }

// NATSpec describes one NAT router and its LAN.
type NATSpec struct {
	Kind NATKind
	// Clients behind this NAT (default 1, at most 4).
	Clients int
	// Hairpin lets clients reach each other (and themselves) through the router's public
	// address. Not available with Symmetric.
	Hairpin bool
	// UPnP runs miniupnpd (UPnP IGD and NAT-PMP) on the router's LAN; its port mappings
	// receive unsolicited packets whatever the kind. Map ports outside the clients' ranges.
	UPnP bool
	// UDPTimeout, when set, is how long an idle UDP mapping lives (conntrack's udp_timeout and
	// udp_timeout_stream, and the filters' memory of contacted peers); default 30 s / 120 s /
	// 180 s. Lower it to test keepalives.
	UDPTimeout time.Duration
}

// NATConfig configures the NAT topology.
type NATConfig struct {
	NATs []NATSpec
	// STUN starts coturn (RFC 5780, STUN only) on STUNAddr1/STUNAddr2, ports 3478 and 3479.
	STUN       bool
	Log        logrus.FieldLogger
	Persistent bool
}

// Public ("Internet") addresses. The prefix is deliberately not a reserved range, so that
// miniupnpd accepts the routers' WAN addresses (lab.md §3); it exists only inside the lab.
var (
	PublicPrefix = netip.MustParsePrefix("45.71.0.0/24")
	STUNAddr1    = netip.MustParseAddr("45.71.0.1")
	STUNAddr2    = netip.MustParseAddr("45.71.0.2")
	Rendezvous   = netip.MustParseAddr("45.71.0.10")
)

// STUN ports of the coturn server.
const (
	STUNPort    = 3478
	STUNAltPort = 3479
)

// NATLab is the NAT topology: a public segment (bridge br0 in namespace "pub") with a STUN host
// (STUNAddr1 and STUNAddr2), a rendezvous host (Rendezvous) and one router per NATSpec; router i
// has WAN address 45.71.0.(101+i) and LAN 10.0.(i+1).0/24 (router .1) with its clients at .2,
// .3, …, each using its own ephemeral port range (NATClient.Ports).
type NATLab struct {
	*Lab
	Pub, STUN, Rendezvous *Host
	NATs                  []*NATRouter
	stun                  *Proc
}

// NATRouter is one NAT router and its clients.
type NATRouter struct {
	Kind       NATKind
	Hairpin    bool
	UPnP       bool
	UDPTimeout time.Duration
	Router     *Host
	WAN        netip.Addr
	LAN        netip.Prefix
	Clients    []*NATClient
}

// NATClient is a host behind a NAT.
type NATClient struct {
	*Host
	// Ports is the client's ephemeral port range (ip_local_port_range); on the EIM kinds the
	// router maps these ports to the same public port, and the full-cone router forwards
	// unsolicited inbound packets on them. Bind explicit ports inside it.
	Ports [2]uint16
}

// NewNAT builds the NAT topology.
func NewNAT(cfg NATConfig) (*NATLab, error) {
	if len(cfg.NATs) == 0 {
		return nil, fmt.Errorf("netlab: NAT lab without NATs")
	}
	for i := range cfg.NATs {
		s := &cfg.NATs[i]
		if s.Clients == 0 {
			s.Clients = 1
		}
		if s.Clients < 0 || s.Clients > 4 {
			return nil, fmt.Errorf("netlab: NAT %d: %d clients (1..4)", i, s.Clients)
		}
		if s.Kind < FullCone || s.Kind > Symmetric {
			return nil, fmt.Errorf("netlab: NAT %d: unknown kind %d", i, s.Kind)
		}
		if s.UDPTimeout < 0 || (s.UDPTimeout > 0 && s.UDPTimeout < time.Second) {
			return nil, fmt.Errorf("netlab: NAT %d: UDP timeout %v below 1 s", i, s.UDPTimeout)
		}
		if s.Kind == Symmetric && s.Hairpin {
			return nil, fmt.Errorf("netlab: NAT %d: a symmetric NAT cannot hairpin", i)
		}
	}
	if len(cfg.NATs) > 50 {
		return nil, fmt.Errorf("netlab: at most 50 NATs")
	}
	for _, s := range cfg.NATs {
		if _, err := exec.LookPath("miniupnpd"); s.UPnP && err != nil {
			return nil, fmt.Errorf("%w: miniupnpd not installed (Debian miniupnpd-nftables)", ErrUnavailable)
		}
	}
	if cfg.STUN {
		if _, err := exec.LookPath("turnserver"); err != nil {
			return nil, fmt.Errorf("%w: turnserver (coturn) not installed", ErrUnavailable)
		}
	}
	if _, err := exec.LookPath("nft"); err != nil {
		return nil, fmt.Errorf("%w: nft not installed", ErrUnavailable)
	}
	l, err := newLab(cfg.Log, cfg.Persistent)
	if err != nil {
		return nil, err
	}
	n := &NATLab{Lab: l}
	if err := n.build(cfg); err != nil {
		_ = l.Close()
		return nil, err
	}
	return n, nil
}

// attach connects a new host interface to the public bridge.
func (n *NATLab) attach(h *Host, iface string, idx int) error {
	peer := fmt.Sprintf("p%d", idx)
	if err := n.veth(h, iface, n.Pub, peer); err != nil {
		return err
	}
	return n.Pub.IP("link set " + peer + " master br0")
}

func (n *NATLab) build(cfg NATConfig) error {
	var err error
	if n.Pub, err = n.addHost("pub"); err != nil {
		return err
	}
	if err := n.Pub.IP("link add br0 type bridge"); err != nil {
		return err
	}
	if err := n.Pub.IP("link set br0 up"); err != nil {
		return err
	}
	bits := PublicPrefix.Bits()
	if n.STUN, err = n.addHost("stun"); err != nil {
		return err
	}
	if err := n.attach(n.STUN, "e0", 0); err != nil {
		return err
	}
	n.STUN.Iface, n.STUN.Addr = "e0", STUNAddr1
	for _, a := range []netip.Addr{STUNAddr1, STUNAddr2} {
		if err := n.STUN.IP(fmt.Sprintf("addr add %s/%d dev e0", a, bits)); err != nil {
			return err
		}
	}
	if n.Rendezvous, err = n.addHost("rv"); err != nil {
		return err
	}
	if err := n.attach(n.Rendezvous, "e0", 1); err != nil {
		return err
	}
	n.Rendezvous.Iface, n.Rendezvous.Addr = "e0", Rendezvous
	if err := n.Rendezvous.IP(fmt.Sprintf("addr add %s/%d dev e0", Rendezvous, bits)); err != nil {
		return err
	}
	for i, spec := range cfg.NATs {
		r, err := n.buildRouter(i, spec)
		if err != nil {
			return err
		}
		n.NATs = append(n.NATs, r)
	}
	if cfg.STUN {
		if err := n.startSTUN(); err != nil {
			return err
		}
	}
	return nil
}

func (n *NATLab) buildRouter(i int, spec NATSpec) (*NATRouter, error) {
	base := PublicPrefix.Addr().As4()
	base[3] = byte(101 + i)
	r := &NATRouter{Kind: spec.Kind, Hairpin: spec.Hairpin, UDPTimeout: spec.UDPTimeout, UPnP: spec.UPnP, WAN: netip.AddrFrom4(base),
		LAN: netip.MustParsePrefix(fmt.Sprintf("10.0.%d.0/24", i+1))}
	h, err := n.addHost(fmt.Sprintf("nat%d", i))
	if err != nil {
		return nil, err
	}
	r.Router = h
	h.Iface, h.Addr = "w0", r.WAN
	if err := n.attach(h, "w0", 2+i); err != nil {
		return nil, err
	}
	lanAddr := r.LAN.Addr().Next()
	for _, c := range []string{
		fmt.Sprintf("addr add %s/%d dev w0", r.WAN, PublicPrefix.Bits()),
		"link add lan type bridge",
		"link set lan up",
		fmt.Sprintf("addr add %s/24 dev lan", lanAddr),
	} {
		if err := h.IP(c); err != nil {
			return nil, err
		}
	}
	if err := h.Sysctl("net.ipv4.ip_forward", "1"); err != nil {
		return nil, err
	}
	addr := lanAddr
	for j := range spec.Clients {
		c, err := n.addHost(fmt.Sprintf("nat%dc%d", i, j))
		if err != nil {
			return nil, err
		}
		addr = addr.Next()
		port := fmt.Sprintf("c%d", j)
		if err := n.veth(c, "e0", h, port); err != nil {
			return nil, err
		}
		if err := h.IP("link set " + port + " master lan"); err != nil {
			return nil, err
		}
		nc := &NATClient{Host: c, Ports: [2]uint16{uint16(20000 + 10000*j), uint16(29999 + 10000*j)}}
		c.Iface, c.Addr = "e0", addr
		for _, cmd := range []string{fmt.Sprintf("addr add %s/24 dev e0", addr), "route add default via " + lanAddr.String()} {
			if err := c.IP(cmd); err != nil {
				return nil, err
			}
		}
		if err := c.Sysctl("net.ipv4.ip_local_port_range", fmt.Sprintf("%d %d", nc.Ports[0], nc.Ports[1])); err != nil {
			return nil, err
		}
		r.Clients = append(r.Clients, nc)
	}
	if _, err := h.ExecInput([]byte(r.ruleset()), "nft", "-f", "-"); err != nil {
		return nil, err
	}
	if r.UPnP {
		if err := n.startUPnP(i, r); err != nil {
			return nil, err
		}
	}
	if r.UDPTimeout > 0 {
		sec := strconv.Itoa(int(r.UDPTimeout.Seconds()))
		for _, k := range []string{"net.netfilter.nf_conntrack_udp_timeout", "net.netfilter.nf_conntrack_udp_timeout_stream"} {
			if err := h.Sysctl(k, sec); err != nil {
				return nil, err
			}
		}
	}
	return r, nil
}

// ruleset is the router's nftables configuration. Mapping: the EIM kinds SNAT to the WAN
// address, which keeps the source port whenever it is free (each client has its own port
// range, so it always is); Symmetric masquerades with fully random ports. Filtering: the EIM
// kinds DNAT each client's port range back to it (so an unsolicited packet can reach it) and the
// forward chain then admits it — always (full cone), from an address the client has sent from
// that port to (address-restricted), or from such an address and port (port-restricted). The
// sets of contacted endpoints expire like UDP conntrack entries.
func (r *NATRouter) ruleset() string {
	var b strings.Builder
	wan := r.WAN.String()
	timeout := "180s"
	if r.UDPTimeout > 0 {
		timeout = fmt.Sprintf("%ds", int(r.UDPTimeout.Seconds()))
	}
	fmt.Fprintf(&b, "table inet netlab {\n")
	if r.UPnP {
		// Chains miniupnpd fills (named in its configuration), jumped to from ours: a drop in
		// any base chain is final, so its accept rules must live in our forward chain's table.
		fmt.Fprintf(&b, "  chain miniupnpd {\n  }\n  chain prerouting_miniupnpd {\n  }\n  chain postrouting_miniupnpd {\n  }\n")
	}
	fmt.Fprintf(&b, "  set peers_a { type ipv4_addr . inet_service; flags timeout; timeout %s; }\n", timeout)
	fmt.Fprintf(&b, "  set peers_ap { type ipv4_addr . inet_service . inet_service; flags timeout; timeout %s; }\n", timeout)
	fmt.Fprintf(&b, "  chain nat_pre {\n    type nat hook prerouting priority dstnat;\n")
	if r.UPnP {
		fmt.Fprintf(&b, "    jump prerouting_miniupnpd\n")
	}
	if r.Kind != Symmetric {
		for _, c := range r.Clients {
			rng := fmt.Sprintf("%d-%d", c.Ports[0], c.Ports[1])
			fmt.Fprintf(&b, "    iifname \"w0\" ip daddr %s meta l4proto { tcp, udp } th dport %s dnat ip to %s\n", wan, rng, c.Addr)
			if r.Hairpin {
				fmt.Fprintf(&b, "    iifname \"lan\" ip daddr %s meta l4proto { tcp, udp } th dport %s dnat ip to %s\n", wan, rng, c.Addr)
			}
		}
	}
	fmt.Fprintf(&b, "  }\n  chain nat_post {\n    type nat hook postrouting priority srcnat;\n")
	if r.UPnP {
		fmt.Fprintf(&b, "    jump postrouting_miniupnpd\n")
	}
	if r.Kind == Symmetric {
		fmt.Fprintf(&b, "    oifname \"w0\" masquerade fully-random\n")
	} else {
		fmt.Fprintf(&b, "    oifname \"w0\" snat ip to %s\n", wan)
		if r.Hairpin {
			fmt.Fprintf(&b, "    iifname \"lan\" oifname \"lan\" ct status dnat snat ip to %s\n", wan)
		}
	}
	fmt.Fprintf(&b, "  }\n  chain filter_forward {\n    type filter hook forward priority filter; policy drop;\n")
	fmt.Fprintf(&b, "    ct state established,related accept\n")
	fmt.Fprintf(&b, "    iifname \"lan\" oifname \"w0\" meta l4proto { tcp, udp } update @peers_a { ip daddr . th sport } update @peers_ap { ip daddr . th dport . th sport } accept\n")
	fmt.Fprintf(&b, "    iifname \"lan\" accept\n")
	if r.UPnP {
		fmt.Fprintf(&b, "    jump miniupnpd\n")
	}
	switch r.Kind {
	case FullCone:
		fmt.Fprintf(&b, "    iifname \"w0\" ct status dnat accept\n")
	case AddressRestricted:
		fmt.Fprintf(&b, "    iifname \"w0\" ct status dnat meta l4proto { tcp, udp } ip saddr . th dport @peers_a accept\n")
	case PortRestricted:
		fmt.Fprintf(&b, "    iifname \"w0\" ct status dnat meta l4proto { tcp, udp } ip saddr . th sport . th dport @peers_ap accept\n")
	}
	fmt.Fprintf(&b, "  }\n}\n")
	return b.String()
}

// startSTUN runs coturn as an RFC 5780 STUN server on both STUN addresses (lab.md §3).
func (n *NATLab) startSTUN() error {
	args := []string{"-n", "--no-cli", "--stun-only", "--no-tls", "--no-dtls",
		"-L", STUNAddr1.String(), "-L", STUNAddr2.String(), "-p", strconv.Itoa(STUNPort),
		"--log-file", "stdout", "--simple-log",
		"--pidfile", filepath.Join(StateDir, n.Prefix+"-turnserver.pid")}
	// coturn ≥ 4.7 needs RFC 5780 switched on and MAPPED-ADDRESS asked for; 4.6 rejects both.
	if help, _ := exec.Command("turnserver", "--help").CombinedOutput(); strings.Contains(string(help), "--rfc5780") {
		args = append(args, "--rfc5780", "--stun-backward-compatibility")
	}
	p, err := n.STUN.Start("turnserver", args...)
	if err != nil {
		return err
	}
	n.stun = p
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := n.STUN.Exec("ss", "-Hulnp")
		ready := 0
		for _, a := range []netip.Addr{STUNAddr1, STUNAddr2} {
			for _, port := range []int{STUNPort, STUNAltPort} {
				if strings.Contains(out, netip.AddrPortFrom(a, uint16(port)).String()) {
					ready++
				}
			}
		}
		if ready == 4 {
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("netlab: turnserver exited: %s", tail(p.Output(), 400))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("netlab: turnserver not listening on all four STUN sockets after 10 s: %s", tail(p.Output(), 400))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startUPnP runs miniupnpd (nftables backend) for router i with UPnP IGD and NAT-PMP on the LAN
// bridge, in secure mode (a client may only map ports to itself).
func (n *NATLab) startUPnP(i int, r *NATRouter) error {
	conf := filepath.Join(StateDir, fmt.Sprintf("%s-miniupnpd-nat%d.conf", n.Prefix, i))
	text := fmt.Sprintf(`ext_ifname=w0
ext_ip=%s
listening_ip=lan
enable_natpmp=yes
enable_upnp=yes
secure_mode=yes
system_uptime=yes
upnp_table_name=netlab
upnp_nat_table_name=netlab
upnp_forward_chain=miniupnpd
upnp_nat_chain=prerouting_miniupnpd
upnp_nat_postrouting_chain=postrouting_miniupnpd
uuid=3d3cec3a-8cf0-11e0-98ee-0000000000%02x
allow 1024-65535 %s 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
`, r.WAN, i, r.LAN)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return fmt.Errorf("netlab: miniupnpd config: %w", err)
	}
	pid := filepath.Join(StateDir, fmt.Sprintf("%s-miniupnpd-nat%d.pid", n.Prefix, i))
	p, err := r.Router.Start("miniupnpd", "-d", "-f", conf, "-P", pid)
	if err != nil {
		return err
	}
	// NAT-PMP answers on the LAN address, port 5351, once miniupnpd is ready.
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := r.Router.Exec("ss", "-Hulnp", "sport = :5351")
		if strings.Contains(out, "miniupnpd") {
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("netlab: miniupnpd exited: %s", tail(p.Output(), 400))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("netlab: miniupnpd not listening after 10 s: %s", tail(p.Output(), 400))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
