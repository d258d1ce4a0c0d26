// Package client is the PtP test mesh client: it registers with a ptpserver (or the original
// Python server), probes every peer the server lists, learns direct paths through NATs by
// hole punching with peer-reflexive learning, falls back to a relay through the server, and
// measures RTT, jitter and loss per peer by sequence number with kernel timestamps.
package client

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/probekit/probekit/shared/natprobe"
	"github.com/probekit/probekit/shared/ptp"
	"github.com/probekit/probekit/shared/timestamp"
	"github.com/probekit/probekit/shared/udpsock"
)

// Timers of the original client (PTP-C1) and of the additions.
const (
	DefaultServerInterval = 7 * time.Second
	DefaultProbeInterval  = 500 * time.Millisecond
	DefaultLossTimeout    = 3 * time.Second
	DefaultRelayAfter     = 5 * time.Second
	DefaultPunchInterval  = 2 * time.Second
	DefaultPathTimeout    = 6 * time.Second
	tick                  = 50 * time.Millisecond
	// Version is the protocol version this client announces.
	Version = ptp.ProtoV3
)

// Errors callers branch on.
var (
	ErrNoServer = errors.New("ptpclient: server address not given")
)

// Config configures a client.
type Config struct {
	// Server is the rendezvous server's address.
	Server netip.AddrPort
	// Transport is the socket (nil: a dual-stack kernel socket on Bind).
	Transport Transport
	// Bind is the local address of the socket when Transport is nil (default ":0").
	Bind string
	// Network is "udp" (dual stack, default), "udp4" or "udp6".
	Network string
	// LocalIP is the address announced in PTPADDR (default: the route's source towards the server).
	LocalIP netip.Addr
	// UUID identifies the client (random when zero).
	UUID ptp.UUID
	// Mesh is the v3 mesh name (empty: the default mesh).
	Mesh string
	// STUN servers for NAT discovery besides the rendezvous server itself; NoSTUN turns
	// discovery off, Hairpin adds the hairpin test.
	STUN    []netip.AddrPort
	NoSTUN  bool
	Hairpin bool
	// Legacy makes the client announce version 2 and never send v3 TLVs.
	Legacy bool
	// Timers (zero: defaults).
	ServerInterval, ProbeInterval, LossTimeout, RelayAfter, PunchInterval, PathTimeout, STUNTimeout time.Duration
	// Events receives state changes (called with the client's lock held: do not call back).
	Events func(Event)
	// Extra receives v3 TLVs this package does not handle (bulk transfer, types 20–29) from a
	// peer, with the path they came over. The message is only valid during the call.
	Extra func(peer ptp.UUID, path ptp.Path, m *ptp.Message)
	// Samples, when set, receives every RTT sample (for --samples); called with the lock held.
	Samples func(Sample)
	Log     logrus.FieldLogger
	// Debug logs every packet; Hexdump adds the bytes of sent packets (with Debug).
	Debug, Hexdump bool
}

// Event is a state change the client reports.
type Event struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"event"`
	Peer    string    `json:"peer,omitempty"`
	Address string    `json:"address,omitempty"`
	Path    string    `json:"path,omitempty"`
	Message string    `json:"message"`
}

// Sample is one RTT measurement: the probe's SEQUENCE, the peer (its address; the server has
// no UUID row), how it was sent and the RTT.
type Sample struct {
	Peer    string        `json:"peer"`
	Address string        `json:"address"`
	Seq     uint32        `json:"seq"`
	Relayed bool          `json:"relayed"`
	RTT     time.Duration `json:"rtt_ns"`
	Kernel  bool          `json:"kernel_tx"`
}

// Counters are the client's packet counters.
type Counters struct {
	Received, Sent, BadChecksum, Malformed, Unknown, STUN, SendErrors uint64
	// KernelTx and UserTx count RTT samples whose send time is the kernel's transmit stamp or,
	// when none came, the user-space clock read just before the send.
	KernelTx, UserTx uint64
}

// Client is a running mesh client.
type Client struct {
	cfg    Config
	tr     Transport
	log    logrus.FieldLogger
	uuid   ptp.UUID
	server netip.AddrPort
	local  netip.AddrPort // PTPADDR
	prober *natprobe.Prober

	mu         sync.Mutex
	srv        peer // the server's row
	serverVer  uint8
	public     netip.AddrPort
	nat        natprobe.Result
	natDone    bool
	peers      []*peer
	gone       []*peer // peers the server no longer lists
	byUUID     map[ptp.UUID]*peer
	byAddr     map[netip.AddrPort]*peer
	pages      pageSet
	nextBeacon time.Time
	nextReach  time.Time
	candidates []netip.AddrPort // our own extra candidates
	portMaps   []ptp.PortMap    // port-mapping outcomes sent to a v3 server (PORTMAP)
	txRing     [1024]txEntry
	txm        ptp.Message
	txBuf      []byte
	// SendExtra's own buffer and message, written outside mu (xmu serialises SendExtra).
	xmu      sync.Mutex
	xbuf     []byte
	xout     [1]udpsock.Message
	out      []udpsock.Message // send batch
	outMeta  []outMeta
	txFn     func(uint32, time.Time)
	started  time.Time
	shutdown bool
	listed   bool // a list came from the server: we are registered

	counters struct {
		received, sent, badChecksum, malformed, unknown, stun, sendErrors atomic.Uint64
		kernelTx, userTx                                                  atomic.Uint64
	}
}

type outMeta struct {
	p   *peer
	seq uint32
}

type txEntry struct {
	id    uint32
	p     *peer
	seq   uint32
	valid bool
}

// New prepares a client; Run starts it.
func New(cfg Config) (*Client, error) {
	if !cfg.Server.IsValid() {
		return nil, ErrNoServer
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.ServerInterval, DefaultServerInterval)
	def(&cfg.ProbeInterval, DefaultProbeInterval)
	def(&cfg.LossTimeout, DefaultLossTimeout)
	def(&cfg.RelayAfter, DefaultRelayAfter)
	def(&cfg.PunchInterval, DefaultPunchInterval)
	def(&cfg.PathTimeout, DefaultPathTimeout)
	def(&cfg.STUNTimeout, time.Second)
	if cfg.Log == nil {
		l := logrus.New()
		l.SetLevel(logrus.PanicLevel)
		cfg.Log = l
	}
	if cfg.Network == "" {
		cfg.Network = "udp"
	}
	if cfg.Bind == "" {
		cfg.Bind = ":0"
	}
	c := &Client{
		cfg:    cfg,
		log:    cfg.Log,
		uuid:   cfg.UUID,
		server: netip.AddrPortFrom(cfg.Server.Addr().Unmap(), cfg.Server.Port()),
		byUUID: map[ptp.UUID]*peer{},
		byAddr: map[netip.AddrPort]*peer{},
		txBuf:  make([]byte, 0, ptp.MaxPacket),
	}
	if c.uuid.IsZero() {
		if _, err := rand.Read(c.uuid[:]); err != nil {
			return nil, err
		}
		c.uuid[6] = c.uuid[6]&0x0f | 0x40 // a version-4 UUID
		c.uuid[8] = c.uuid[8]&0x3f | 0x80
	}
	c.srv.probes = make([]probe, ringFor(cfg.LossTimeout, cfg.ServerInterval))
	c.out = make([]udpsock.Message, 0, 64)
	c.outMeta = make([]outMeta, 0, 64)
	for i := 0; i < cap(c.out); i++ {
		c.out[:cap(c.out)][i].Buf = make([]byte, 0, ptp.MaxPacket)
	}
	c.txFn = c.onTxStamp
	c.srv.active = c.server
	c.srv.path = ptp.PathDirect
	c.srv.ext = c.server
	return c, nil
}

// UUID returns the client's UUID.
func (c *Client) UUID() ptp.UUID { return c.uuid }

// Server returns the server address.
func (c *Client) Server() netip.AddrPort { return c.server }

// LocalAddr returns the address announced in PTPADDR (valid once Run has opened the socket).
func (c *Client) LocalAddr() netip.AddrPort {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.local
}

// Counters returns the packet counters.
func (c *Client) Counters() Counters {
	return Counters{Received: c.counters.received.Load(), Sent: c.counters.sent.Load(),
		BadChecksum: c.counters.badChecksum.Load(), Malformed: c.counters.malformed.Load(),
		Unknown: c.counters.unknown.Load(), STUN: c.counters.stun.Load(), SendErrors: c.counters.sendErrors.Load(),
		KernelTx: c.counters.kernelTx.Load(), UserTx: c.counters.userTx.Load()}
}

// Open opens the socket (when the Config has no Transport) and finds the PTPADDR address. Run
// calls it; calling it first separates socket errors (port in use) from the run.
func (c *Client) Open(ctx context.Context) error {
	if c.tr != nil {
		return nil
	}
	tr := c.cfg.Transport
	if tr == nil {
		// No route to the server is a setup error, not something to retry for ever.
		if probe, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(c.server)); err != nil {
			return fmt.Errorf("no route to server %v: %w", c.server, err)
		} else {
			probe.Close()
		}
		network := c.cfg.Network
		// Not bound to ctx: the socket must outlive the run long enough to send SHUTDOWN.
		t, err := NewUDPTransport(context.Background(), network, c.cfg.Bind)
		if err != nil && network == "udp" {
			t, err = NewUDPTransport(context.Background(), "udp4", c.cfg.Bind)
		}
		if err != nil {
			return fmt.Errorf("opening the UDP socket on %s: %w", c.cfg.Bind, err)
		}
		tr = t
	}
	c.tr = tr
	la := tr.LocalAddr()
	ip := c.cfg.LocalIP
	if !ip.IsValid() {
		ip = la.Addr().Unmap()
		if ip.IsUnspecified() || !ip.IsValid() {
			ip = routeSource(c.server)
		}
	}
	c.mu.Lock()
	c.local = netip.AddrPortFrom(ip, la.Port())
	c.mu.Unlock()
	c.prober = natprobe.NewProber(func(b []byte, to netip.AddrPort) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, err := c.tr.WriteTo(b, to)
		return err
	})
	c.prober.RTO = 200 * time.Millisecond
	return nil
}

// routeSource finds the local address the kernel would use towards dst (connect + getsockname,
// as the original does); no packet is sent.
func routeSource(dst netip.AddrPort) netip.Addr {
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
	if err != nil {
		return netip.IPv4Unspecified()
	}
	defer conn.Close()
	return conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
}

// Run runs the client until ctx ends, then sends SHUTDOWN (PTP-C4) and returns nil. It fails
// only when the socket cannot be opened or used.
func (c *Client) Run(ctx context.Context) error {
	if err := c.Open(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	c.started = time.Now()
	c.mu.Unlock()
	c.event("start", nil, "", fmt.Sprintf("client %s on %v, server %v", c.uuid, c.local, c.server))
	var wg sync.WaitGroup
	readErr := make(chan error, 1)
	wg.Add(1)
	go func() { defer wg.Done(); readErr <- c.readLoop() }()
	if !c.cfg.NoSTUN {
		wg.Add(1)
		go func() { defer wg.Done(); c.discover(ctx) }()
	} else {
		c.mu.Lock()
		c.nat.MappingReason = "STUN disabled (--no-stun)"
		c.nat.FilteringReason = c.nat.MappingReason
		c.nat.HairpinReason = c.nat.MappingReason
		c.mu.Unlock()
	}
	t := time.NewTicker(min(tick, c.cfg.ProbeInterval))
	defer t.Stop()
	c.onTick(time.Now())
	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err = <-readErr:
			break loop
		case now := <-t.C:
			c.onTick(now)
		}
	}
	c.sendShutdown()
	// Give the socket a moment to flush the SHUTDOWN, then close it to end the reader.
	c.tr.Close()
	wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

func (c *Client) discover(ctx context.Context) {
	servers := append([]netip.AddrPort{c.server}, c.cfg.STUN...)
	c.event("nat", nil, "", "Running STUN probe")
	res := c.prober.Discover(ctx, natprobe.DiscoverConfig{Servers: servers, Local: c.local, Hairpin: c.cfg.Hairpin, Timeout: c.cfg.STUNTimeout})
	if ctx.Err() != nil {
		return
	}
	c.mu.Lock()
	c.nat = res
	c.natDone = true
	if !c.public.IsValid() && res.Public.IsValid() {
		c.public = res.Public
	}
	pub := "unknown"
	if res.Public.IsValid() {
		pub = res.Public.String()
	}
	c.event("nat", nil, "", fmt.Sprintf("STUN completed: mapping %s, filtering %s, hairpin %s, public %s (%s)",
		res.Mapping, res.Filtering, res.Hairpin, pub, res.Method))
	c.mu.Unlock()
}

// natInfo is our NATINFO (c.mu held).
func (c *Client) natInfo() (ptp.NATInfo, bool) {
	if !c.natDone {
		return ptp.NATInfo{}, false
	}
	pub := c.nat.Public
	if !pub.IsValid() {
		pub = c.public
	}
	if !pub.IsValid() {
		return ptp.NATInfo{}, false
	}
	return ptp.NATInfo{Mapping: ptp.Behavior(c.nat.Mapping), Filtering: ptp.Behavior(c.nat.Filtering),
		Hairpin: uint8(c.nat.Hairpin), Public: pub}, true
}

// event reports a state change (c.mu held or not; Events is called synchronously).
func (c *Client) event(kind string, p *peer, path, msg string) {
	e := Event{Time: time.Now(), Kind: kind, Path: path, Message: msg}
	if p != nil {
		if p.hasUUID {
			e.Peer = p.uuid.String()
		}
		if p.active.IsValid() {
			e.Address = p.active.String()
		} else {
			e.Address = p.ext.String()
		}
	}
	c.log.WithField("event", kind).Debug(msg)
	if c.cfg.Events != nil {
		c.cfg.Events(e)
	}
}

// readLoop receives until the socket closes.
func (c *Client) readLoop() error {
	msgs := make([]udpsock.Message, 16)
	for i := range msgs {
		msgs[i].Buf = make([]byte, 2048)
	}
	var m ptp.Message
	for {
		n, err := c.tr.ReadBatch(msgs)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || errors.Is(err, udpsock.ErrClosed) {
				return net.ErrClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// ICMP errors (ECONNREFUSED from a peer that went away) must not stop the loop.
			c.log.WithError(err).Debug("read")
			select {
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		for i := 0; i < n; i++ {
			c.handle(&m, &msgs[i])
		}
		c.mu.Lock()
		c.flush() // the replies of this batch in one sendmmsg
		c.mu.Unlock()
	}
}

// handle processes one datagram. It must not allocate on the probe/reply path.
func (c *Client) handle(m *ptp.Message, d *udpsock.Message) {
	b := d.Buf[:d.N]
	c.counters.received.Add(1)
	if natprobe.IsSTUN(b) {
		c.counters.stun.Add(1)
		if c.prober != nil {
			c.prober.Handle(b, d.Addr)
		}
		return
	}
	if d.Truncated {
		c.counters.malformed.Add(1)
		return
	}
	if err := m.UnmarshalBinary(b); err != nil {
		if errors.Is(err, ptp.ErrChecksum) {
			c.counters.badChecksum.Add(1) // B2: counted and dropped, never an eviction
		} else {
			c.counters.malformed.Add(1)
		}
		return
	}
	src := netip.AddrPortFrom(d.Addr.Addr().Unmap(), d.Addr.Port())
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cfg.Debug {
		c.log.Debugf("received %d bytes from %v: %s", len(b), src, describe(m))
	}
	if src == c.server {
		if m.Has&ptp.FieldRelayFrom != 0 {
			c.handlePeer(m, src, d.RxTime, true)
			return
		}
		c.handleServer(m, d.RxTime)
		return
	}
	c.handlePeer(m, src, d.RxTime, false)
}

func (c *Client) handleServer(m *ptp.Message, rx time.Time) {
	if m.Role == ptp.RoleServer && m.Version != c.serverVer {
		old := c.serverVer
		c.serverVer = m.Version
		if old == 0 || (old < ptp.ProtoV3) != (m.Version < ptp.ProtoV3) {
			c.event("server", &c.srv, "", fmt.Sprintf("server speaks protocol version %d", m.Version))
		}
		if m.Version >= ptp.ProtoV3 && old < ptp.ProtoV3 && !c.cfg.Legacy {
			c.nextBeacon = time.Time{} // re-register at once with the v3 TLVs (MESH, NATINFO)
		}
	}
	c.srv.rcvd++
	if m.Has&ptp.FieldYourAddr != 0 && m.YourAddr != c.public && m.YourAddr.IsValid() {
		c.public = m.YourAddr
		c.event("server", &c.srv, "", fmt.Sprintf("Server sees us as %v", m.YourAddr))
	}
	if m.Has&ptp.FieldMyTS != 0 {
		c.reply(&c.srv, m, c.server, false, c.serverVer)
	}
	if m.Has&ptp.FieldYourTS != 0 {
		c.ack(&c.srv, m, rx, viaDirect)
	}
	if m.Has&ptp.FieldList != 0 {
		c.list(m)
	}
}

// ourVersion is the version announced in CLIENTVER: 3, or 2 in legacy mode. Announcing 3 is
// harmless to a legacy peer (the original stores the number); v3 TLVs themselves go only to
// peers that announced 3 (v3ok, PTP-W5).
func (c *Client) ourVersion() uint8 {
	if c.cfg.Legacy {
		return ptp.ProtoV2
	}
	return ptp.ProtoV3
}

// v3ok reports whether v3 TLVs may go to a peer that announced v.
func (c *Client) v3ok(v uint8) bool { return !c.cfg.Legacy && v >= ptp.ProtoV3 }

func (c *Client) handlePeer(m *ptp.Message, src netip.AddrPort, rx time.Time, relayed bool) {
	var p *peer
	if relayed {
		p = c.byUUID[m.RelayFrom]
		if p == nil {
			c.counters.unknown.Add(1)
			return
		}
	} else {
		p = c.byAddr[src]
		if p == nil && m.Has&ptp.FieldUUID != 0 {
			// Peer-reflexive learning (B8): an unlisted address carrying a listed peer's UUID.
			p = c.byUUID[m.UUID]
			if p == nil {
				p = c.uniqueUnidentified(src.Addr())
			}
			if p != nil {
				if cand, added := p.addCandidate(src, candLearned); added {
					c.byAddr[src] = p
					_ = cand
					c.event("learned", p, "", fmt.Sprintf("peer %v answers from unlisted address %v: learned", p.ext, src))
				}
			}
		}
		if p == nil {
			c.counters.unknown.Add(1) // the original's "Unknown client"
			return
		}
	}
	if m.Has&ptp.FieldUUID != 0 && !p.hasUUID {
		p.uuid, p.hasUUID = m.UUID, true
		c.byUUID[m.UUID] = p
	}
	if m.Has&ptp.FieldUUID != 0 && m.UUID != p.uuid && !relayed {
		if p.uuidListed {
			c.counters.unknown.Add(1) // the server names another client at this address
			return
		}
		// Learned from packets only (v2 list): a restarted peer on the same address.
		if c.byUUID[p.uuid] == p {
			delete(c.byUUID, p.uuid)
		}
		p.uuid = m.UUID
		c.byUUID[m.UUID] = p
	}
	if m.Role == ptp.RoleClient {
		p.version = m.Version
	}
	p.rcvd++
	if m.Has&ptp.FieldNATInfo != 0 {
		p.nat = natprobe.Info{Mapping: natprobe.Behavior(m.NAT.Mapping), Filtering: natprobe.Behavior(m.NAT.Filtering),
			Hairpin: natprobe.Hairpin(m.NAT.Hairpin), Public: m.NAT.Public}
		p.hasNAT = true
	}
	if relayed {
		p.gotRelayed = true
	} else if cand := p.candidate(src); cand != nil {
		cand.lastRx = rx
	}
	if m.Has&ptp.FieldMyTS != 0 {
		c.reply(p, m, src, relayed, p.version)
	}
	if m.Has&ptp.FieldYourTS != 0 {
		v := viaDirect
		if relayed {
			v = viaRelay
		}
		if c.ack(p, m, rx, v) {
			if !relayed {
				c.confirmDirect(p, src, rx)
			} else {
				p.lastRelay = rx
				if p.path == ptp.PathNone {
					p.path = ptp.PathRelay
					c.event("path", p, ptp.PathRelay.String(), fmt.Sprintf("path to %v: relayed through the server", p.ext))
				}
			}
		}
	}
	if len(m.Extra) > 0 && c.cfg.Extra != nil {
		path := ptp.PathRelay // how this packet came
		if !relayed {
			path, _ = c.pathOf(p, src)
		}
		c.cfg.Extra(p.uuid, path, m)
	}
}

// uniqueUnidentified returns the only listed peer at address ip whose UUID is still unknown (a
// v2 server's list carries no UUIDs), or nil.
func (c *Client) uniqueUnidentified(ip netip.Addr) *peer {
	var found *peer
	for _, p := range c.peers {
		if p.hasUUID || p.ext.Addr() != ip {
			continue
		}
		if found != nil {
			return nil
		}
		found = p
	}
	return found
}

// pathOf classifies a direct address that answered.
func (c *Client) pathOf(p *peer, a netip.AddrPort) (ptp.Path, candKind) {
	k := candPublic
	if cand := p.candidate(a); cand != nil {
		k = cand.kind
	}
	switch {
	case k == candLAN:
		return ptp.PathLAN, k
	case c.public.IsValid() && a.Addr() == c.public.Addr():
		return ptp.PathHairpin, k
	}
	return ptp.PathDirect, k
}

// confirmDirect records a reply on the direct path from a.
func (c *Client) confirmDirect(p *peer, a netip.AddrPort, rx time.Time) {
	p.lastDirect = rx
	p.everDirect = true
	path, k := c.pathOf(p, a)
	if p.path == path && p.active == a {
		return
	}
	if p.path != ptp.PathNone && p.path != ptp.PathRelay && rank(path) <= rank(p.path) && rx.Sub(p.lastDirect) < c.cfg.PathTimeout && p.active != a {
		// A worse (or equal) direct path answered while the active one works: keep it.
		if p.path != ptp.PathNone && p.active.IsValid() {
			return
		}
	}
	old := p.path
	p.path, p.active, p.activeKind = path, a, k
	p.learned = k == candLearned
	p.relaying = false
	msg := fmt.Sprintf("path to %v: %s via %v", p.ext, path, a)
	if p.learned {
		msg += " (learned from the peer's packets)"
	}
	if old == ptp.PathRelay {
		msg += ", replaces the relay"
	}
	c.event("path", p, path.String(), msg)
}

// ack matches a YOURTS reply to its probe and records the RTT; it reports whether the reply
// answered a probe of ours.
func (c *Client) ack(p *peer, m *ptp.Message, rx time.Time, v via) bool {
	var pr *probe
	if m.Has&ptp.FieldEchoSeq != 0 {
		s := p.slot(m.EchoSeq)
		if s.state != probeFree && s.seq == m.EchoSeq && s.myts == m.YourTS {
			pr = s
		}
	} else {
		for i := range p.probes {
			s := &p.probes[i]
			if s.state != probeFree && s.myts == m.YourTS {
				pr = s
				break
			}
		}
	}
	if pr == nil {
		return false
	}
	st := p.stats(pr.via)
	if pr.state != probePending {
		st.dup++
		return true
	}
	pr.rx = rx
	if pr.counted {
		st.received++
	}
	if pr.tx.IsZero() && c.tr.TxStamps() {
		c.drainTx() // the stamp is normally queued by now (it left an RTT ago)
	}
	if pr.tx.IsZero() && c.tr.TxStamps() {
		pr.state = probeAnswered // the kernel's send time is still on its way
		return true
	}
	c.complete(p, pr)
	return true
}

// complete adds the RTT of an answered probe.
func (c *Client) complete(p *peer, pr *probe) {
	t0 := pr.tx
	if t0.IsZero() {
		t0 = pr.sent
		c.counters.userTx.Add(1)
	} else {
		c.counters.kernelTx.Add(1)
	}
	rtt := pr.rx.Sub(t0)
	if rtt < 0 {
		rtt = 0
	}
	st := p.stats(pr.via)
	st.rtt.Add(rtt)
	st.jitter.Add(rtt)
	st.last = rtt
	pr.state = probeDone
	if c.cfg.Samples != nil {
		smp := Sample{Address: p.active.String(), Seq: pr.seq, Relayed: pr.via == viaRelay, RTT: rtt, Kernel: !pr.tx.IsZero()}
		if p.hasUUID {
			smp.Peer = p.uuid.String()
		}
		if p == &c.srv {
			smp.Address = c.server.String()
		}
		c.cfg.Samples(smp)
	}
	if p != &c.srv && c.cfg.Debug {
		c.log.Debugf("ACK from client %v; RTT %.6fs (seq %d, rtt_ns %d)", p.active, rtt.Seconds(), pr.seq, rtt.Nanoseconds())
	}
}

// drainTx reads the kernel send times that are ready (c.mu held).
func (c *Client) drainTx() {
	if c.tr.TxStamps() {
		if err := c.tr.TxTimestamps(c.txFn); err != nil {
			c.log.WithError(err).Debug("transmit timestamps")
		}
	}
}

// onTxStamp records a probe's kernel send time (c.mu held).
func (c *Client) onTxStamp(id uint32, t time.Time) {
	e := &c.txRing[id%uint32(len(c.txRing))]
	if !e.valid || e.id != id {
		return
	}
	e.valid = false
	pr := e.p.slot(e.seq)
	if pr.seq != e.seq || pr.state == probeFree {
		return
	}
	pr.tx = t
	if pr.state == probeAnswered {
		c.complete(e.p, pr)
	}
}

// queue adds a packet to the send batch (c.mu held); flush sends the batch. p and seq name the
// probe whose kernel send time to record (p nil for other packets).
func (c *Client) queue(b []byte, to netip.AddrPort, p *peer, seq uint32) {
	if c.cfg.Debug {
		c.log.Debugf("sending %d bytes to %v", len(b), to)
		if c.cfg.Hexdump {
			c.log.Debugf("%x", b)
		}
	}
	if len(c.out) == cap(c.out) {
		c.flush()
	}
	i := len(c.out)
	c.out = c.out[:i+1]
	c.outMeta = c.outMeta[:i+1]
	m := &c.out[i]
	m.Buf = append(m.Buf[:0], b...)
	m.N, m.Addr, m.TxID = len(b), to, 0
	c.outMeta[i] = outMeta{p: p, seq: seq}
}

// flush sends the queued packets with one sendmmsg (c.mu held). A message the kernel refuses
// is skipped (counted), the others still go.
func (c *Client) flush() {
	for start := 0; start < len(c.out); {
		n, err := c.tr.WriteBatch(c.out[start:])
		c.counters.sent.Add(uint64(n))
		if c.tr.TxStamps() {
			for i := start; i < start+n; i++ {
				if mt := c.outMeta[i]; mt.p != nil {
					id := c.out[i].TxID
					c.txRing[id%uint32(len(c.txRing))] = txEntry{id: id, p: mt.p, seq: mt.seq, valid: true}
				}
			}
		}
		if err == nil {
			break
		}
		bad := start + n
		if bad >= len(c.out) {
			break
		}
		c.counters.sendErrors.Add(1)
		c.log.WithError(err).WithField("to", c.out[bad].Addr).Debug("send")
		if mt := c.outMeta[bad]; mt.p != nil {
			// A probe that never left is not in flight.
			if pr := mt.p.slot(mt.seq); pr.seq == mt.seq && pr.state == probePending {
				pr.state = probeFree
				if pr.counted {
					mt.p.stats(pr.via).sent--
				}
			}
		}
		start = bad + 1
	}
	c.out, c.outMeta = c.out[:0], c.outMeta[:0]
}

// base starts a client message to a peer speaking version v (c.mu held).
func (c *Client) base(p *peer, v uint8) *ptp.Message {
	m := &c.txm
	m.Reset()
	m.Role = ptp.RoleClient
	m.Version = v
	m.Has = ptp.FieldSequence | ptp.FieldUUID
	m.Sequence = p.seqOut
	p.seqOut++
	m.UUID = c.uuid
	return m
}

// relayVia sets RELAYTO (c.mu held).
func relayVia(m *ptp.Message, p *peer) {
	m.Has |= ptp.FieldRelayTo
	m.RelayTo = p.uuid
}

// reply answers a MYTS with YOURTS (PTP-C2) the way the probe came.
func (c *Client) reply(p *peer, in *ptp.Message, src netip.AddrPort, relayed bool, peerVer uint8) {
	yourTS, inSeq, uuid := in.MyTS, in.Sequence, in.UUID
	hasSeq := in.Has&ptp.FieldSequence != 0
	m := c.base(p, c.ourVersion())
	if p == &c.srv && in.Has&ptp.FieldUUID != 0 {
		m.UUID = uuid // the server echoes our UUID; the original replies with it
	}
	m.Has |= ptp.FieldYourTS
	m.YourTS = yourTS
	if (c.v3ok(peerVer) || relayed) && hasSeq {
		m.Has |= ptp.FieldEchoSeq
		m.EchoSeq = inSeq
	}
	to := src
	if relayed {
		relayVia(m, p)
		to = c.server
	}
	if c.finishSend(m, to) != nil {
		return
	}
}

func (c *Client) finishSend(m *ptp.Message, to netip.AddrPort) error {
	b, err := m.AppendTo(c.txBuf[:0])
	if err != nil {
		c.counters.sendErrors.Add(1)
		c.log.WithError(err).Debug("encoding")
		return err
	}
	c.txBuf = b
	c.queue(b, to, nil, 0)
	return nil
}

// probe sends one MYTS to p at addr (or via the relay) and remembers it.
func (c *Client) probe(p *peer, to netip.AddrPort, v via, counted bool, now time.Time) {
	m := c.base(p, c.ourVersion())
	seq := m.Sequence
	m.Has |= ptp.FieldMyTS
	if v == viaRelay {
		relayVia(m, p)
		to = c.server
	}
	if p == &c.srv {
		c.beaconFields(m)
	} else if c.v3ok(p.version) || v == viaRelay {
		if ni, ok := c.natInfo(); ok {
			m.Has |= ptp.FieldNATInfo
			m.NAT = ni
		}
	}
	pr := p.slot(seq)
	if pr.state == probePending && pr.counted {
		// Overwritten before its timeout (never with the default timers): count it lost.
		p.stats(pr.via).lost++
	}
	ts := time.Now()
	m.MyTS = timestamp.Fixed32FromTime(ts)
	*pr = probe{seq: seq, myts: m.MyTS, sent: ts, state: probePending, via: v, counted: counted}
	b, err := m.AppendTo(c.txBuf[:0])
	if err != nil {
		pr.state = probeFree
		c.counters.sendErrors.Add(1)
		return
	}
	c.txBuf = b
	c.queue(b, to, p, seq)
	if counted {
		p.stats(v).sent++
	}
}
