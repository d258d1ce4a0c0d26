package netlab

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// Direction names one direction across the router of a Path: Out is A→B, In is B→A.
type Direction int

const (
	Out Direction = iota
	In
)

func (d Direction) String() string {
	if d == In {
		return "in"
	}
	return "out"
}

// Queue numbers of the delayers in the router namespace (queues are per namespace).
const (
	QueueOut = 1
	QueueIn  = 2
)

// PathConfig configures the path topology.
type PathConfig struct {
	Out, In Impairment
	Log     logrus.FieldLogger
	// Persistent builds a lab for `netlab up`: its delayer and processes outlive the caller
	// (call Detach, then Destroy(prefix) to remove it).
	Persistent bool
}

// PathLab is A — R — B: A 10.71.1.1/24 (a0), R 10.71.1.254 (ra) and 10.71.2.254 (rb),
// B 10.71.2.1/24 (b0), plus fd71:1::/64 and fd71:2::/64 (::1 hosts, ::254 router). R sends
// every forwarded packet of each direction through its own NFQUEUE (Out: ra→rb, queue 1;
// In: rb→ra, queue 2) to a Delayer, and rate-limits with tbf on the egress interface.
type PathLab struct {
	*Lab
	A, R, B *Host

	mu      sync.Mutex
	delayer *delayerProc
	epochs  []time.Time
	imps    [2]Impairment
}

// Path addresses (the SPP reference topology of lab.md §7).
var (
	PathA  = netip.MustParseAddr("10.71.1.1")
	PathRA = netip.MustParseAddr("10.71.1.254")
	PathRB = netip.MustParseAddr("10.71.2.254")
	PathB  = netip.MustParseAddr("10.71.2.1")
	PathA6 = netip.MustParseAddr("fd71:1::1")
	PathB6 = netip.MustParseAddr("fd71:2::1")
)

// NewPath builds the path topology. On error everything built so far is removed.
func NewPath(cfg PathConfig) (*PathLab, error) {
	for _, imp := range []Impairment{cfg.Out, cfg.In} {
		if err := imp.validate(); err != nil {
			return nil, err
		}
	}
	l, err := newLab(cfg.Log, cfg.Persistent)
	if err != nil {
		return nil, err
	}
	p := &PathLab{Lab: l, imps: [2]Impairment{cfg.Out, cfg.In}}
	if err := p.build(cfg); err != nil {
		_ = l.Close()
		return nil, err
	}
	return p, nil
}

// line builds left — router — right with the given interface names and /24 (/64) addresses.
type lineSpec struct {
	left, router, right string // roles
	leftIf, rLeftIf     string
	rightIf, rRightIf   string
	leftNet, rightNet   string // "10.71.1" → .1 host, .254 router (v4); v6 prefixes "fd71:1::"
	left6, right6       string
	leftHost, rightHost string // last octet of hosts
	routerOctet         string
}

func (l *Lab) buildLine(s lineSpec) (left, router, right *Host, err error) {
	if left, err = l.addHost(s.left); err != nil {
		return
	}
	if router, err = l.addHost(s.router); err != nil {
		return
	}
	if right, err = l.addHost(s.right); err != nil {
		return
	}
	if err = l.veth(left, s.leftIf, router, s.rLeftIf); err != nil {
		return
	}
	if err = l.veth(router, s.rRightIf, right, s.rightIf); err != nil {
		return
	}
	left.Iface, right.Iface, router.Iface = s.leftIf, s.rightIf, s.rLeftIf
	left.Addr = netip.MustParseAddr(s.leftNet + "." + s.leftHost)
	right.Addr = netip.MustParseAddr(s.rightNet + "." + s.rightHost)
	router.Addr = netip.MustParseAddr(s.leftNet + "." + s.routerOctet)
	left.Addr6 = netip.MustParseAddr(s.left6 + s.leftHost)
	right.Addr6 = netip.MustParseAddr(s.right6 + s.rightHost)
	router.Addr6 = netip.MustParseAddr(s.left6 + s.routerOctet)
	for _, c := range []struct {
		h   *Host
		cmd string
	}{
		{router, "net.ipv4.ip_forward"},
		{router, "net.ipv6.conf.all.forwarding"},
	} {
		if err = c.h.Sysctl(c.cmd, "1"); err != nil {
			return
		}
	}
	rl4 := s.leftNet + "." + s.routerOctet
	rr4 := s.rightNet + "." + s.routerOctet
	cmds := []struct {
		h    *Host
		args string
	}{
		{left, fmt.Sprintf("addr add %s/24 dev %s", left.Addr, s.leftIf)},
		{left, fmt.Sprintf("addr add %s/64 dev %s nodad", left.Addr6, s.leftIf)},
		{left, "route add default via " + rl4},
		{left, fmt.Sprintf("-6 route add default via %s%s", s.left6, s.routerOctet)},
		{right, fmt.Sprintf("addr add %s/24 dev %s", right.Addr, s.rightIf)},
		{right, fmt.Sprintf("addr add %s/64 dev %s nodad", right.Addr6, s.rightIf)},
		{right, "route add default via " + rr4},
		{right, fmt.Sprintf("-6 route add default via %s%s", s.right6, s.routerOctet)},
		{router, fmt.Sprintf("addr add %s/24 dev %s", rl4, s.rLeftIf)},
		{router, fmt.Sprintf("addr add %s/24 dev %s", rr4, s.rRightIf)},
		{router, fmt.Sprintf("addr add %s%s/64 dev %s nodad", s.left6, s.routerOctet, s.rLeftIf)},
		{router, fmt.Sprintf("addr add %s%s/64 dev %s nodad", s.right6, s.routerOctet, s.rRightIf)},
	}
	for _, c := range cmds {
		if err = c.h.IP(c.args); err != nil {
			return
		}
	}
	// Static neighbours: no ARP/ND resolution delays or drops the first packets of a test.
	err = staticNeighbours([]neighbour{
		{left, s.leftIf, left.Addr, left.Addr6, router, s.rLeftIf, netip.MustParseAddr(rl4), netip.MustParseAddr(s.left6 + s.routerOctet)},
		{right, s.rightIf, right.Addr, right.Addr6, router, s.rRightIf, netip.MustParseAddr(rr4), netip.MustParseAddr(s.right6 + s.routerOctet)},
	})
	return
}

// neighbour is one link of a lab with the addresses at both ends.
type neighbour struct {
	h1       *Host
	if1      string
	v4a, v6a netip.Addr
	h2       *Host
	if2      string
	v4b, v6b netip.Addr
}

func staticNeighbours(links []neighbour) error {
	for _, n := range links {
		m1, err := n.h1.mac(n.if1)
		if err != nil {
			return err
		}
		m2, err := n.h2.mac(n.if2)
		if err != nil {
			return err
		}
		for _, c := range []struct {
			h    *Host
			ifc  string
			addr netip.Addr
			mac  string
		}{
			{n.h1, n.if1, n.v4b, m2}, {n.h1, n.if1, n.v6b, m2},
			{n.h2, n.if2, n.v4a, m1}, {n.h2, n.if2, n.v6a, m1},
		} {
			if !c.addr.IsValid() {
				continue
			}
			if err := c.h.IP(fmt.Sprintf("neigh replace %s lladdr %s dev %s nud permanent", c.addr, c.mac, c.ifc)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *PathLab) build(cfg PathConfig) error {
	var err error
	p.A, p.R, p.B, err = p.buildLine(lineSpec{
		left: "a", router: "r", right: "b",
		leftIf: "a0", rLeftIf: "ra", rightIf: "b0", rRightIf: "rb",
		leftNet: "10.71.1", rightNet: "10.71.2", left6: "fd71:1::", right6: "fd71:2::",
		leftHost: "1", rightHost: "1", routerOctet: "254",
	})
	if err != nil {
		return err
	}
	rules := fmt.Sprintf("*mangle\n-A FORWARD -i ra -o rb -j NFQUEUE --queue-num %d --queue-bypass\n"+
		"-A FORWARD -i rb -o ra -j NFQUEUE --queue-num %d --queue-bypass\nCOMMIT\n", QueueOut, QueueIn)
	if _, err := p.R.ExecInput([]byte(rules), "iptables-restore", "--noflush"); err != nil {
		return err
	}
	if _, err := p.R.ExecInput([]byte(rules), "ip6tables-restore", "--noflush"); err != nil {
		return err
	}
	for dir, imp := range p.imps {
		if err := p.setRate(Direction(dir), imp); err != nil {
			return err
		}
	}
	d, epochs, err := startDelayerProc(p.R, []uint16{QueueOut, QueueIn}, p.imps[:])
	if err != nil {
		return err
	}
	p.delayer, p.epochs = d, epochs
	p.onClose(d.Close)
	return nil
}

// egress is the router interface a direction leaves through.
func (p *PathLab) egress(dir Direction) string {
	if dir == In {
		return "ra"
	}
	return "rb"
}

func (p *PathLab) setRate(dir Direction, imp Impairment) error {
	dev := p.egress(dir)
	_, _ = p.R.Exec("tc", "qdisc", "del", "dev", dev, "root")
	if imp.RateBps == 0 {
		return nil
	}
	burst := imp.RateBurst
	if burst == 0 {
		burst = max(3000, int(imp.RateBps/8/250))
	}
	lat := imp.RateLatency
	if lat == 0 {
		lat = 100 * time.Millisecond
	}
	_, err := p.R.Exec("tc", "qdisc", "add", "dev", dev, "root", "tbf",
		"rate", fmt.Sprintf("%dbit", imp.RateBps), "burst", fmt.Sprint(burst),
		"latency", fmt.Sprintf("%dus", lat.Microseconds()))
	return err
}

// Set changes one direction's impairment while the lab runs; its schedule restarts now.
func (p *PathLab) Set(dir Direction, imp Impairment) error {
	if err := imp.validate(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.imps[dir].RateBps != imp.RateBps || p.imps[dir].RateBurst != imp.RateBurst || p.imps[dir].RateLatency != imp.RateLatency {
		if err := p.setRate(dir, imp); err != nil {
			return err
		}
	}
	p.imps[dir] = imp
	if p.delayer == nil {
		return nil
	}
	r, err := p.delayer.call(delayerRequest{Op: "set", Dir: int(dir), Imp: imp})
	if err != nil {
		return err
	}
	p.epochs = unixTimes(r.Epochs)
	return nil
}

// Epoch is when the direction's current impairment started: schedule steps are relative to it.
func (p *PathLab) Epoch(dir Direction) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if int(dir) < len(p.epochs) {
		return p.epochs[dir]
	}
	return time.Time{}
}

// Stats returns the direction's delayer counters.
func (p *PathLab) Stats(dir Direction) (DelayerStats, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.delayer == nil {
		return DelayerStats{}, errors.New("netlab: path has no delayer")
	}
	r, err := p.delayer.call(delayerRequest{Op: "stats", Dir: int(dir)})
	if err != nil {
		return DelayerStats{}, err
	}
	return *r.Stats, nil
}

// QueueDrops reads R's /proc/net/netfilter/nfnetlink_queue: packets the kernel dropped
// because a delayer queue was full (queueDropped) or could not be handed to the delayer
// (userDropped). A test pushing high rates checks both are zero to rule out the lab as a
// source of loss.
func (p *PathLab) QueueDrops() (queueDropped, userDropped uint64, err error) {
	err = p.R.Do(func() error {
		b, err := os.ReadFile("/proc/thread-self/net/netfilter/nfnetlink_queue")
		if err != nil {
			return err
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			f := strings.Fields(line)
			if len(f) < 7 {
				continue
			}
			var qd, ud uint64
			fmt.Sscan(f[5], &qd)
			fmt.Sscan(f[6], &ud)
			queueDropped += qd
			userDropped += ud
		}
		return nil
	})
	return
}
