// Package natsim is an in-memory UDP network with NAT routers of every RFC 4787 kind, for unit
// tests of NAT discovery and hole punching without namespaces: sockets are net.PacketConns,
// delivery is immediate (or delayed and lossy when asked), and NAT routers map and filter like
// the Linux rules of the lab (endpoint-independent mapping keeps the source port,
// address-and-port-dependent mapping picks a new port per destination) and hairpin on request.
package natsim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Behavior is an RFC 4787 mapping or filtering behaviour.
type Behavior uint8

// Behaviours (same values as natprobe.Behavior).
const (
	EndpointIndependent  Behavior = 1
	AddressDependent     Behavior = 2
	AddressPortDependent Behavior = 3
)

// Kind is a NAT configuration.
type Kind struct {
	Mapping, Filtering Behavior
	Hairpin            bool
}

// The lab's NAT kinds.
var (
	FullCone          = Kind{EndpointIndependent, EndpointIndependent, true}
	AddressRestricted = Kind{EndpointIndependent, AddressDependent, false}
	PortRestricted    = Kind{EndpointIndependent, AddressPortDependent, false}
	Symmetric         = Kind{AddressPortDependent, AddressPortDependent, false}
)

var errClosed = net.ErrClosed

// Network is the "Internet": public sockets and NAT routers' WAN addresses.
type Network struct {
	mu     sync.Mutex
	public map[netip.AddrPort]*Conn
	nats   map[netip.Addr]*NAT
	rng    *rand.Rand
	// Delay, when set, returns the one-way delay of a packet from src to dst (zero: immediate).
	Delay func(src, dst netip.AddrPort) time.Duration
	// Drop, when set, drops a packet when it returns true.
	Drop func(src, dst netip.AddrPort, b []byte) bool

	Sent, Delivered, Dropped atomic.Uint64
}

// New returns an empty network; seed makes port choices reproducible.
func New(seed uint64) *Network {
	return &Network{public: map[netip.AddrPort]*Conn{}, nats: map[netip.Addr]*NAT{}, rng: rand.New(rand.NewPCG(seed, 1))}
}

// NAT is a router with one WAN address and a LAN.
type NAT struct {
	net  *Network
	WAN  netip.Addr
	Kind Kind
	lan  map[netip.AddrPort]*Conn
	// outbound: key = local + bound destination → public port; inbound: public port → mapping.
	out map[mapKey]*mapping
	in  map[uint16]*mapping
}

type mapKey struct {
	local netip.AddrPort
	bound netip.AddrPort // zero port for address-dependent, zero for endpoint-independent
}

type mapping struct {
	local   netip.AddrPort
	public  netip.AddrPort
	permits map[netip.AddrPort]bool // filter keys (zero port: any port of the address)
}

// NewNAT adds a router with WAN address wan.
func (n *Network) NewNAT(wan netip.Addr, kind Kind) *NAT {
	n.mu.Lock()
	defer n.mu.Unlock()
	t := &NAT{net: n, WAN: wan, Kind: kind, lan: map[netip.AddrPort]*Conn{}, out: map[mapKey]*mapping{}, in: map[uint16]*mapping{}}
	n.nats[wan] = t
	return t
}

// Listen opens a public socket on addr (port 0 picks one).
func (n *Network) Listen(addr netip.AddrPort) (*Conn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if addr.Port() == 0 {
		addr = netip.AddrPortFrom(addr.Addr(), n.freePort(n.public, addr.Addr()))
	}
	if n.public[addr] != nil {
		return nil, fmt.Errorf("natsim: listen %v: address in use", addr)
	}
	c := newConn(n, nil, addr)
	n.public[addr] = c
	return c, nil
}

// ListenPacket is a natprobe.ListenFunc / net.ListenPacket replacement on the public network.
func (n *Network) ListenPacket(network, addr string) (net.PacketConn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, err
	}
	return n.Listen(ap)
}

// Listen opens a socket on a host behind the NAT (addr is its LAN address; port 0 picks one).
func (t *NAT) Listen(addr netip.AddrPort) (*Conn, error) {
	n := t.net
	n.mu.Lock()
	defer n.mu.Unlock()
	if addr.Port() == 0 {
		addr = netip.AddrPortFrom(addr.Addr(), n.freePort(t.lan, addr.Addr()))
	}
	if t.lan[addr] != nil {
		return nil, fmt.Errorf("natsim: listen %v: address in use", addr)
	}
	c := newConn(n, t, addr)
	t.lan[addr] = c
	return c, nil
}

// Mappings returns the number of mappings the NAT holds.
func (t *NAT) Mappings() int {
	t.net.mu.Lock()
	defer t.net.mu.Unlock()
	return len(t.out)
}

func (n *Network) freePort(m map[netip.AddrPort]*Conn, a netip.Addr) uint16 {
	for {
		p := uint16(20000 + n.rng.IntN(40000))
		if m[netip.AddrPortFrom(a, p)] == nil {
			return p
		}
	}
}

// send routes one datagram; the caller holds no lock.
func (n *Network) send(from *Conn, b []byte, dst netip.AddrPort) {
	n.Sent.Add(1)
	src := from.addr
	n.mu.Lock()
	var target *Conn
	if t := from.nat; t != nil {
		if c := t.lan[dst]; c != nil { // same LAN
			target = c
		} else {
			src = t.outbound(from.addr, dst)
			if dst.Addr() == t.WAN && !t.Kind.Hairpin {
				n.mu.Unlock()
				n.Dropped.Add(1)
				return
			}
		}
	}
	if target == nil {
		if t := n.nats[dst.Addr()]; t != nil {
			target = t.inbound(src, dst)
		} else {
			target = n.public[dst]
		}
	}
	drop := n.Drop
	delay := n.Delay
	n.mu.Unlock()
	if target == nil || (drop != nil && drop(src, dst, b)) {
		n.Dropped.Add(1)
		return
	}
	pkt := datagram{b: append([]byte(nil), b...), src: src}
	if delay != nil {
		if d := delay(src, dst); d > 0 {
			time.AfterFunc(d, func() { n.deliver(target, pkt) })
			return
		}
	}
	n.deliver(target, pkt)
}

func (n *Network) deliver(c *Conn, p datagram) {
	select {
	case c.rx <- p:
		n.Delivered.Add(1)
	case <-c.done:
		n.Dropped.Add(1)
	default:
		n.Dropped.Add(1) // receive buffer full
	}
}

// outbound returns the public source address for a datagram from local to dst (n.mu held).
func (t *NAT) outbound(local, dst netip.AddrPort) netip.AddrPort {
	key := mapKey{local: local}
	switch t.Kind.Mapping {
	case AddressDependent:
		key.bound = netip.AddrPortFrom(dst.Addr(), 0)
	case AddressPortDependent:
		key.bound = dst
	}
	m := t.out[key]
	if m == nil {
		port := local.Port()
		if t.Kind.Mapping != EndpointIndependent || t.in[port] != nil {
			for {
				port = uint16(1024 + t.net.rng.IntN(64000))
				if t.in[port] == nil {
					break
				}
			}
		}
		m = &mapping{local: local, public: netip.AddrPortFrom(t.WAN, port), permits: map[netip.AddrPort]bool{}}
		t.out[key] = m
		t.in[port] = m
	}
	switch t.Kind.Filtering {
	case AddressDependent:
		m.permits[netip.AddrPortFrom(dst.Addr(), 0)] = true
	case AddressPortDependent:
		m.permits[dst] = true
	}
	return m.public
}

// inbound returns the LAN socket a datagram from src to the WAN address dst reaches, or nil.
func (t *NAT) inbound(src, dst netip.AddrPort) *Conn {
	m := t.in[dst.Port()]
	if m == nil {
		return nil
	}
	switch t.Kind.Filtering {
	case AddressDependent:
		if !m.permits[netip.AddrPortFrom(src.Addr(), 0)] {
			return nil
		}
	case AddressPortDependent:
		if !m.permits[src] {
			return nil
		}
	}
	return t.lan[m.local]
}

type datagram struct {
	b   []byte
	src netip.AddrPort
}

// Conn is a socket on the simulated network; it implements net.PacketConn.
type Conn struct {
	net  *Network
	nat  *NAT
	addr netip.AddrPort
	rx   chan datagram
	done chan struct{}
	once sync.Once

	mu       sync.Mutex
	deadline time.Time
	dlChange chan struct{}
}

func newConn(n *Network, t *NAT, a netip.AddrPort) *Conn {
	return &Conn{net: n, nat: t, addr: a, rx: make(chan datagram, 4096), done: make(chan struct{}), dlChange: make(chan struct{})}
}

// AddrPort is the socket's own address (its LAN address behind a NAT).
func (c *Conn) AddrPort() netip.AddrPort { return c.addr }

// ReadFromAddrPort reads one datagram.
func (c *Conn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	for {
		c.mu.Lock()
		dl, ch := c.deadline, c.dlChange
		c.mu.Unlock()
		var timer <-chan time.Time
		if !dl.IsZero() {
			d := time.Until(dl)
			if d <= 0 {
				return 0, netip.AddrPort{}, os.ErrDeadlineExceeded
			}
			t := time.NewTimer(d)
			defer t.Stop()
			timer = t.C
		}
		select {
		case p := <-c.rx:
			return copy(b, p.b), p.src, nil
		case <-c.done:
			return 0, netip.AddrPort{}, errClosed
		case <-timer:
			return 0, netip.AddrPort{}, os.ErrDeadlineExceeded
		case <-ch:
		}
	}
}

// ReadFrom implements net.PacketConn.
func (c *Conn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, a, err := c.ReadFromAddrPort(b)
	if err != nil {
		return 0, nil, err
	}
	return n, net.UDPAddrFromAddrPort(a), nil
}

// WriteToAddrPort sends one datagram.
func (c *Conn) WriteToAddrPort(b []byte, a netip.AddrPort) (int, error) {
	select {
	case <-c.done:
		return 0, errClosed
	default:
	}
	c.net.send(c, b, netip.AddrPortFrom(a.Addr().Unmap(), a.Port()))
	return len(b), nil
}

// WriteTo implements net.PacketConn.
func (c *Conn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, errors.New("natsim: not a UDP address")
	}
	return c.WriteToAddrPort(b, ua.AddrPort())
}

// Close implements net.PacketConn.
func (c *Conn) Close() error {
	closed := false
	c.once.Do(func() {
		closed = true
		close(c.done)
		n := c.net
		n.mu.Lock()
		if c.nat != nil {
			delete(c.nat.lan, c.addr)
		} else {
			delete(n.public, c.addr)
		}
		n.mu.Unlock()
	})
	if !closed {
		return errClosed
	}
	return nil
}

// LocalAddr implements net.PacketConn.
func (c *Conn) LocalAddr() net.Addr { return net.UDPAddrFromAddrPort(c.addr) }

// SetDeadline implements net.PacketConn (read deadline only; writes never block).
func (c *Conn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

// SetReadDeadline implements net.PacketConn.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	close(c.dlChange)
	c.dlChange = make(chan struct{})
	c.mu.Unlock()
	return nil
}

// SetWriteDeadline implements net.PacketConn.
func (c *Conn) SetWriteDeadline(time.Time) error { return nil }
