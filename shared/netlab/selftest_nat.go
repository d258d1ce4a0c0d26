package netlab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	osexec "os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

func natChecks() []Check {
	return []Check{{Name: "nat/", Multi: checkNAT}}
}

// natDiscoveryExpect is what coturn's turnutils_natdiscovery must conclude per kind.
var natDiscoveryExpect = map[NATKind][2]string{
	FullCone:          {"NAT with Endpoint Independent Mapping!", "NAT with Endpoint Independent Filtering!"},
	AddressRestricted: {"NAT with Endpoint Independent Mapping!", "NAT with Address Dependent Filtering!"},
	PortRestricted:    {"NAT with Endpoint Independent Mapping!", "NAT with Address and Port Dependent Filtering!"},
	Symmetric:         {"NAT with Address and Port Dependent Mapping!", "NAT with Address and Port Dependent Filtering!"},
}

const hairpinSeen = "Received a request (maybe a successful hairpinning)"

// udpEndpoint is a UDP socket bound in a namespace.
type udpEndpoint struct {
	conn *net.UDPConn
}

func listenUDPIn(h *Host, addr netip.AddrPort) (*udpEndpoint, error) {
	var c *net.UDPConn
	err := h.Do(func() error {
		var err error
		c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netlab %s: listen %v: %w", h.Name, addr, err)
	}
	return &udpEndpoint{conn: c}, nil
}

func (e *udpEndpoint) send(to netip.AddrPort, msg string) error {
	_, err := e.conn.WriteToUDPAddrPort([]byte(msg), to)
	return err
}

// recv waits up to d for a datagram and returns its payload and source (ok=false on timeout).
func (e *udpEndpoint) recv(d time.Duration) (string, netip.AddrPort, bool) {
	_ = e.conn.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 1500)
	n, from, err := e.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		return "", netip.AddrPort{}, false
	}
	return string(buf[:n]), netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), true
}

// checkNAT builds one NAT lab — a full cone (two clients, hairpin on), address-restricted,
// port-restricted and symmetric routers, and a second full cone with hairpin off — and proves:
// coturn's turnutils_natdiscovery classifies each router as its kind; unsolicited inbound
// datagrams are delivered or dropped per kind; two clients behind one NAT get their own
// preserved ports; hairpinning works when on and not when off.
func checkNAT(env *CheckEnv) []Result {
	fail := func(err error) []Result { return []Result{{Name: "nat/build", Err: err}} }
	if _, err := osexec.LookPath("turnutils_natdiscovery"); err != nil {
		return fail(err)
	}
	specs := []NATSpec{
		{Kind: FullCone, Clients: 2, Hairpin: true},
		{Kind: AddressRestricted},
		{Kind: PortRestricted},
		{Kind: Symmetric},
		{Kind: FullCone, Hairpin: false},
	}
	upnpSkip := ""
	for _, tool := range []string{"miniupnpd", "natpmpc", "upnpc"} {
		if _, err := osexec.LookPath(tool); err != nil && upnpSkip == "" {
			upnpSkip = tool + " not installed (Debian miniupnpd-nftables, natpmpc, miniupnpc)"
		}
	}
	if upnpSkip == "" {
		specs = append(specs, NATSpec{Kind: Symmetric, Clients: 2, UPnP: true})
	}
	n, err := NewNAT(NATConfig{Log: env.Log, STUN: true, NATs: specs})
	if err != nil {
		return fail(err)
	}
	trackLab(n.Lab)
	defer n.Close()
	var res []Result

	// turnutils_natdiscovery, all routers at once (each run waits out several STUN timeouts).
	type discovery struct {
		out string
		err error
	}
	// Jobs 0–3: -m -f on the first client of routers 0–3; 4: -H (hairpin) on the second client
	// of router 0 (hairpin on); 5: -H on router 4's client (hairpin off).
	jobs := []struct {
		c    *NATClient
		args []string
	}{
		{n.NATs[0].Clients[0], []string{"-m", "-f"}},
		{n.NATs[1].Clients[0], []string{"-m", "-f"}},
		{n.NATs[2].Clients[0], []string{"-m", "-f"}},
		{n.NATs[3].Clients[0], []string{"-m", "-f"}},
		{n.NATs[0].Clients[1], []string{"-H"}},
		{n.NATs[4].Clients[0], []string{"-H"}},
	}
	disc := make([]discovery, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			disc[i].out, disc[i].err = j.c.Exec("turnutils_natdiscovery", append(j.args, STUNAddr1.String())...)
		}()
	}
	// Meanwhile, our own probes (they use other ports than natdiscovery's ephemeral ones).
	unsolicited := make([]Result, 4)
	for i := range 4 {
		unsolicited[i] = checkUnsolicited(n, n.NATs[i], i)
	}
	twoClients := checkTwoClients(n, n.NATs[0])
	hairOn := checkHairpin(n.NATs[0], true)
	hairOff := checkHairpin(n.NATs[4], false)
	upnp := Result{Name: "nat/upnp", Skip: upnpSkip}
	if upnpSkip == "" {
		upnp = checkUPnP(n, n.NATs[5])
	}
	wg.Wait()

	for i := range 4 {
		r := n.NATs[i]
		name := "nat/natdiscovery/" + r.Kind.String()
		_ = os.WriteFile(env.File(r.Kind.String()+"-natdiscovery.txt"), []byte(disc[i].out), 0o644)
		want := natDiscoveryExpect[r.Kind]
		var got []string
		for _, line := range strings.Split(disc[i].out, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "NAT with ") {
				got = append(got, strings.TrimSpace(line))
			}
		}
		switch {
		case disc[i].err != nil:
			res = append(res, Result{Name: name, Err: fmt.Errorf("%w: %s", disc[i].err, tail(disc[i].out, 300))})
		case len(got) != 2 || got[0] != want[0] || got[1] != want[1]:
			res = append(res, Result{Name: name, Err: fmt.Errorf("reports %q, want %q", got, want)})
		default:
			res = append(res, Result{Name: name, Detail: fmt.Sprintf("%q", got)})
		}
	}
	res = append(res, unsolicited...)
	res = append(res, twoClients)
	for _, h := range []struct {
		i    int
		want bool
	}{{4, true}, {5, false}} {
		name := fmt.Sprintf("nat/natdiscovery/hairpin-%v", map[bool]string{true: "on", false: "off"}[h.want])
		out := disc[h.i].out
		_ = os.WriteFile(env.File(name[len("nat/natdiscovery/"):]+"-natdiscovery.txt"), []byte(out), 0o644)
		if got := strings.Contains(out, hairpinSeen); got != h.want {
			res = append(res, Result{Name: name, Err: fmt.Errorf("hairpinning seen = %v, want %v: %s", got, h.want, tail(out, 300))})
		} else if h.want {
			res = append(res, Result{Name: name, Detail: "natdiscovery -H: " + hairpinSeen})
		} else {
			res = append(res, Result{Name: name, Detail: "natdiscovery -H: no hairpinned request"})
		}
	}
	res = append(res, hairOn, hairOff, upnp)
	return res
}

// checkUPnP: behind a symmetric NAT running miniupnpd, a datagram from an uncontacted address
// to the public port is dropped; after the first client maps the port with NAT-PMP (natpmpc)
// and the second maps another with UPnP IGD (upnpc), both datagrams arrive.
func checkUPnP(n *NATLab, r *NATRouter) Result {
	name := "nat/upnp"
	// "before" and "after" come from different ports: the refused "before" datagram leaves a
	// conntrack entry (to the router itself) that would capture a retry on the same 5-tuple.
	stranger, err := listenUDPIn(n.STUN, netip.AddrPortFrom(STUNAddr2, 9004))
	if err != nil {
		return Result{Name: name, Err: err}
	}
	defer stranger.conn.Close()
	stranger2, err := listenUDPIn(n.STUN, netip.AddrPortFrom(STUNAddr2, 9005))
	if err != nil {
		return Result{Name: name, Err: err}
	}
	defer stranger2.conn.Close()
	var parts []string
	for j, c := range r.Clients[:2] {
		port := uint16(41500 + j)
		ep, err := listenUDPIn(c.Host, netip.AddrPortFrom(c.Addr, port))
		if err != nil {
			return Result{Name: name, Err: err}
		}
		defer ep.conn.Close()
		pub := netip.AddrPortFrom(r.WAN, port)
		if err := stranger.send(pub, "before"); err != nil {
			return Result{Name: name, Err: err}
		}
		if msg, _, ok := ep.recv(300 * time.Millisecond); ok {
			return Result{Name: name, Err: fmt.Errorf("%q reached %v before any port mapping", msg, c.Addr)}
		}
		p := strconv.Itoa(int(port))
		var out, tool string
		if j == 0 {
			tool = "NAT-PMP"
			out, err = c.Exec("natpmpc", "-g", r.LAN.Addr().Next().String(), "-a", p, p, "udp", "600")
		} else {
			tool = "UPnP IGD"
			out, err = c.Exec("upnpc", "-e", "netlab", "-a", c.Addr.String(), p, p, "UDP")
		}
		if err != nil {
			return Result{Name: name, Err: fmt.Errorf("%s mapping: %w", tool, err)}
		}
		if err := stranger2.send(pub, "after"); err != nil {
			return Result{Name: name, Err: err}
		}
		if msg, _, ok := ep.recv(time.Second); !ok || msg != "after" {
			return Result{Name: name, Err: fmt.Errorf("after the %s mapping %v → %v:%d nothing arrived: %s", tool, pub, c.Addr, port, tail(out, 300))}
		}
		parts = append(parts, fmt.Sprintf("%s maps %v → %v:%d (unsolicited datagram dropped before, delivered after)", tool, pub, c.Addr, port))
	}
	return Result{Name: name, Detail: strings.Join(parts, "; ")}
}

// checkUnsolicited: the client sends from a port to the rendezvous host, which learns the
// mapped address; then datagrams arrive at that mapped address from (a) the rendezvous
// endpoint itself, (b) the rendezvous address from another port, (c) an address the client
// never contacted. Expected delivery per kind: full cone a b c; address-restricted a b;
// port-restricted and symmetric a only. Check i uses its own client and rendezvous ports, so
// no check depends on the kernel having released an earlier check's socket.
func checkUnsolicited(n *NATLab, r *NATRouter, i int) Result {
	port := 25000 + i
	rvPort := uint16(9000 + 10*i)
	name := "nat/unsolicited/" + r.Kind.String()
	c := r.Clients[0]
	cl, err := listenUDPIn(c.Host, netip.AddrPortFrom(c.Addr, uint16(port)))
	if err != nil {
		return Result{Name: name, Err: err}
	}
	defer cl.conn.Close()
	rvAddr := netip.AddrPortFrom(Rendezvous, rvPort)
	rv, err := listenUDPIn(n.Rendezvous, rvAddr)
	if err != nil {
		return Result{Name: name, Err: err}
	}
	defer rv.conn.Close()
	rvOther, err := listenUDPIn(n.Rendezvous, netip.AddrPortFrom(Rendezvous, rvPort+1))
	if err != nil {
		return Result{Name: name, Err: err}
	}
	defer rvOther.conn.Close()
	stranger, err := listenUDPIn(n.STUN, netip.AddrPortFrom(STUNAddr2, rvPort+2))
	if err != nil {
		return Result{Name: name, Err: err}
	}
	defer stranger.conn.Close()
	if err := cl.send(rvAddr, "hello"); err != nil {
		return Result{Name: name, Err: err}
	}
	_, mapped, ok := rv.recv(time.Second)
	if !ok {
		return Result{Name: name, Err: errors.New("rendezvous got nothing from the client")}
	}
	if mapped.Addr() != r.WAN {
		return Result{Name: name, Err: fmt.Errorf("mapped address %v is not the router's WAN %v", mapped, r.WAN)}
	}
	if preserved := mapped.Port() == uint16(port); preserved != (r.Kind != Symmetric) {
		return Result{Name: name, Err: fmt.Errorf("mapped port %d for local port %d on a %v NAT", mapped.Port(), port, r.Kind)}
	}
	senders := []struct {
		label string
		ep    *udpEndpoint
		want  bool
	}{
		{"contacted endpoint", rv, true},
		{"contacted address, other port", rvOther, r.Kind == FullCone || r.Kind == AddressRestricted},
		{"uncontacted address", stranger, r.Kind == FullCone},
	}
	var parts []string
	for _, s := range senders {
		if err := s.ep.send(mapped, s.label); err != nil {
			return Result{Name: name, Err: err}
		}
		msg, _, got := cl.recv(300 * time.Millisecond)
		if got && msg != s.label {
			return Result{Name: name, Err: fmt.Errorf("client got %q while expecting %q", msg, s.label)}
		}
		if got != s.want {
			return Result{Name: name, Err: fmt.Errorf("from %s: delivered = %v, want %v", s.label, got, s.want)}
		}
		parts = append(parts, fmt.Sprintf("%s %s", s.label, map[bool]string{true: "delivered", false: "dropped"}[got]))
	}
	return Result{Name: name, Detail: fmt.Sprintf("mapped %v:%d → %v; %s", c.Addr, port, mapped, strings.Join(parts, ", "))}
}

// checkTwoClients: two clients behind one full-cone NAT reach the rendezvous host from the
// same local port number range they own; each keeps its port and both are reachable.
func checkTwoClients(n *NATLab, r *NATRouter) Result {
	name := "nat/two-clients"
	if len(r.Clients) < 2 {
		return Result{Name: name, Err: errors.New("router has one client")}
	}
	rvAddr := netip.AddrPortFrom(Rendezvous, 9100)
	rv, err := listenUDPIn(n.Rendezvous, rvAddr)
	if err != nil {
		return Result{Name: name, Err: err}
	}
	defer rv.conn.Close()
	var parts []string
	for j, c := range r.Clients[:2] {
		port := c.Ports[0] + 100
		ep, err := listenUDPIn(c.Host, netip.AddrPortFrom(c.Addr, port))
		if err != nil {
			return Result{Name: name, Err: err}
		}
		defer ep.conn.Close()
		if err := ep.send(rvAddr, fmt.Sprintf("client %d", j)); err != nil {
			return Result{Name: name, Err: err}
		}
		msg, from, ok := rv.recv(time.Second)
		if !ok || msg != fmt.Sprintf("client %d", j) {
			return Result{Name: name, Err: fmt.Errorf("client %d: rendezvous got %q ok=%v", j, msg, ok)}
		}
		if from != netip.AddrPortFrom(r.WAN, port) {
			return Result{Name: name, Err: fmt.Errorf("client %d mapped to %v, want %v", j, from, netip.AddrPortFrom(r.WAN, port))}
		}
		if err := rv.send(from, "reply"); err != nil {
			return Result{Name: name, Err: err}
		}
		if msg, _, ok := ep.recv(time.Second); !ok || msg != "reply" {
			return Result{Name: name, Err: fmt.Errorf("client %d: no reply through the NAT", j)}
		}
		parts = append(parts, fmt.Sprintf("%v:%d → %v", c.Addr, port, from))
	}
	return Result{Name: name, Detail: strings.Join(parts, ", ") + ", replies delivered"}
}

// checkHairpin: client 0 sends to its own public mapping and, with two clients, to client 1's
// public mapping; the datagram arrives (from client 0's public address) only with hairpin on.
func checkHairpin(r *NATRouter, on bool) Result {
	name := "nat/hairpin-" + map[bool]string{true: "on", false: "off"}[on]
	c0 := r.Clients[0]
	p0 := c0.Ports[0] + 200
	e0, err := listenUDPIn(c0.Host, netip.AddrPortFrom(c0.Addr, p0))
	if err != nil {
		return Result{Name: name, Err: err}
	}
	defer e0.conn.Close()
	targets := []*NATClient{c0}
	if len(r.Clients) > 1 {
		targets = append(targets, r.Clients[1])
	}
	var parts []string
	for _, tc := range targets {
		ep := e0
		port := p0
		if tc != c0 {
			port = tc.Ports[0] + 200
			e, err := listenUDPIn(tc.Host, netip.AddrPortFrom(tc.Addr, port))
			if err != nil {
				return Result{Name: name, Err: err}
			}
			defer e.conn.Close()
			ep = e
		}
		pub := netip.AddrPortFrom(r.WAN, port)
		if err := e0.send(pub, "hairpin"); err != nil {
			return Result{Name: name, Err: err}
		}
		msg, from, got := ep.recv(300 * time.Millisecond)
		if got != on {
			return Result{Name: name, Err: fmt.Errorf("%v → %v: delivered = %v, want %v", c0.Addr, pub, got, on)}
		}
		if got && (msg != "hairpin" || from != netip.AddrPortFrom(r.WAN, p0)) {
			return Result{Name: name, Err: fmt.Errorf("hairpinned datagram %q from %v, want from %v", msg, from, netip.AddrPortFrom(r.WAN, p0))}
		}
		if got {
			parts = append(parts, fmt.Sprintf("%v → %v delivered to %v from %v", c0.Addr, pub, tc.Addr, from))
		} else {
			parts = append(parts, fmt.Sprintf("%v → %v dropped", c0.Addr, pub))
		}
	}
	return Result{Name: name, Detail: strings.Join(parts, "; ")}
}
