// Package server is the PtP test rendezvous server: it keeps the clients of each mesh, sends
// them each other's addresses (ptptest protocol v2, paged v3 lists), answers their timestamps,
// relays v3 packets between members of a mesh, holds the reachability matrix the clients report
// and answers STUN Binding on its own port.
package server

import (
	"context"
	"encoding/hex"
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

// Defaults: the original's timers (PTP-S1) and probekit's additions.
const (
	DefaultPort           = 23456
	DefaultBeaconInterval = 13 * time.Second
	DefaultExpiry         = 30 * time.Second
	DefaultCoalesce       = time.Second // at most one membership beacon per mesh per second
	DefaultTick           = 200 * time.Millisecond
	DefaultAckTimeout     = 5 * time.Second
	// Relaying: 1,000 packets/s per client (2 probes/s to 250 peers plus a bulk transfer of
	// about 1.4 MB/s) with a burst of 2,000.
	DefaultRelayRate  = 1000
	DefaultRelayBurst = 2000
	// Version is the protocol version the server speaks.
	Version = ptp.ProtoV3
	batch   = 64
)

// ErrConfig reports an invalid configuration.
var ErrConfig = errors.New("ptpserver: invalid configuration")

// Config configures a Server. Zero fields take the defaults.
type Config struct {
	// Addr is the bind address (default 0.0.0.0:23456); ignored with Transport or Conn.
	Addr netip.AddrPort
	// Conn is an injected socket (tests, in-memory networks); Transport takes precedence.
	Conn      net.PacketConn
	Transport Transport
	Log       logrus.FieldLogger
	// Now is the clock (time.Now).
	Now func() time.Time

	BeaconInterval time.Duration // periodic list to every client (13 s)
	Expiry         time.Duration // silence before a client is dropped (30 s)
	Coalesce       time.Duration // minimum gap between membership beacons of one mesh (1 s)
	Tick           time.Duration // timer resolution (200 ms)
	AckTimeout     time.Duration // a beacon not answered within this is lost (5 s)
	RelayRate      float64       // relayed packets/s per client (1000); negative disables relaying
	RelayBurst     int           // token bucket size (2000)

	// NoSTUN stops answering STUN Binding requests on the server's port.
	NoSTUN bool
	// OtherAddress enables RFC 5780 (CHANGE-REQUEST) with this alternate address; the bind
	// address must then be specific.
	OtherAddress netip.AddrPort
	// Listen opens the extra RFC 5780 sockets (net.ListenPacket by default).
	Listen natprobe.ListenFunc

	// Debug logs every packet received and sent; Hexdump adds the bytes sent (with Debug).
	Debug, Hexdump bool
	// Observer receives membership events and reports (may be nil).
	Observer Observer
}

func (c *Config) defaults() {
	if !c.Addr.IsValid() {
		c.Addr = netip.AddrPortFrom(netip.IPv4Unspecified(), DefaultPort)
	}
	if c.Log == nil {
		l := logrus.New()
		l.SetLevel(logrus.PanicLevel)
		c.Log = l
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.BeaconInterval, DefaultBeaconInterval)
	def(&c.Expiry, DefaultExpiry)
	def(&c.Coalesce, DefaultCoalesce)
	def(&c.Tick, DefaultTick)
	def(&c.AckTimeout, DefaultAckTimeout)
	if c.RelayRate == 0 {
		c.RelayRate = DefaultRelayRate
	}
	if c.RelayBurst <= 0 {
		c.RelayBurst = DefaultRelayBurst
	}
}

// Stats are the server's counters since start.
type Stats struct {
	Received     uint64 `json:"received"`      // datagrams read
	Sent         uint64 `json:"sent"`          // datagrams written (lists, replies, relays)
	SendErrors   uint64 `json:"send_errors"`   // writes the kernel refused
	BadChecksum  uint64 `json:"bad_checksum"`  // dropped, never evicting (B2)
	Malformed    uint64 `json:"malformed"`     // dropped: framing or value sizes
	NotClient    uint64 `json:"not_client"`    // dropped: valid but no CLIENTVER+UUID
	STUN         uint64 `json:"stun"`          // STUN messages handed to the responder
	Beacons      uint64 `json:"beacons"`       // list packets sent
	MeshBeacons  uint64 `json:"mesh_beacons"`  // beacon rounds (one per mesh per round)
	Coalesced    uint64 `json:"coalesced"`     // membership changes folded into a pending round
	Truncated    uint64 `json:"truncated"`     // legacy lists cut to one packet
	Relayed      uint64 `json:"relayed"`       // packets forwarded
	RelayedBytes uint64 `json:"relayed_bytes"` // their bytes
	RelayDropped uint64 `json:"relay_dropped"` // unknown/other-mesh/legacy peer or not v3
	RelayLimited uint64 `json:"relay_limited"` // over the per-client rate
	Joined       uint64 `json:"joined"`
	Left         uint64 `json:"left"`
	Expired      uint64 `json:"expired"`
}

type counters struct {
	received, sent, sendErrors, badChecksum, malformed, notClient, stun      atomic.Uint64
	beacons, meshBeacons, coalesced, truncated                               atomic.Uint64
	relayed, relayedBytes, relayDropped, relayLimited, joined, left, expired atomic.Uint64
}

// reachEntry is pointer-free (no time.Time) so 10,000 clients' maps cost the GC nothing to scan.
type reachEntry struct {
	r  ptp.Reach
	at int64 // Unix ns
}

// maxPortMaps bounds the PORTMAP outcomes kept per client (one per protocol: UPnP, NAT-PMP,
// PCP, and one spare for a future protocol); more in a packet are ignored.
const maxPortMaps = 4

type client struct {
	addr       netip.AddrPort
	local      netip.Addr // our address it sent to (reply source on wildcard sockets)
	uuid       ptp.UUID
	version    uint8
	mesh       *mesh
	idx        int // position in mesh.members
	ptpAddr    netip.AddrPort
	cands      [ptp.MaxEntryCandidates]netip.AddrPort
	ncand      uint8
	nat        ptp.NATInfo
	hasNAT     bool
	pmaps      [maxPortMaps]ptp.PortMap // PORTMAP outcomes it last reported
	npmap      uint8
	joined     time.Time
	lastSeen   time.Time
	rcvd       uint64
	sent       uint64 // beacons (list packets carrying MYTS) sent
	acked      uint64
	lost       uint64
	rttLast    time.Duration
	rttSum     time.Duration
	rttMin     time.Duration
	rttMax     time.Duration
	pending    bool
	pendingTS  timestamp.Fixed32
	pendingAt  time.Time
	tokens     float64
	tokensAt   time.Time
	relayed    uint64
	relayDrops uint64
	reach      map[ptp.UUID]reachEntry
}

type mesh struct {
	name       string
	members    []*client
	byUUID     map[ptp.UUID]*client
	changed    bool
	lastBeacon time.Time
	nextBeacon time.Time
	truncLog   bool
}

// Server is a running PtP server. Create it with New, run it with Run.
type Server struct {
	cfg   Config
	tr    Transport
	log   logrus.FieldLogger
	stun  *natprobe.Server
	disp  dispatcher
	local netip.AddrPort

	mu         sync.Mutex
	clients    map[netip.AddrPort]*client
	meshes     map[string]*mesh
	seq        uint32
	lastExpire time.Time
	c          counters
	// evq holds observer events in the order they happened (under mu), whichever goroutine
	// caused them; deliverEvents hands them on in that order.
	evq []event

	// reader state (reader goroutine only)
	stunDst netip.Addr
	rmsgs   []udpsock.Message
	rm      ptp.Message
	rout    outQueue
	// timer state (timer goroutine only)
	tout outQueue
	// afterTickUnlock, set by tests, runs in tick between releasing mu and delivering events.
	afterTickUnlock func()
	lm              ptp.Message // list message scratch (under mu)
	ents            []ptp.Entry // entries scratch (under mu)
}

// outQueue collects datagrams to send after the lock is released; buffers are reused.
type outQueue struct {
	msgs []udpsock.Message
	bufs [][]byte
	used int
}

func (q *outQueue) buf() []byte {
	if q.used == len(q.bufs) {
		q.bufs = append(q.bufs, make([]byte, 0, ptp.MaxPacket))
	}
	b := q.bufs[q.used][:0]
	q.used++
	return b
}

func (q *outQueue) add(b []byte, to netip.AddrPort, from netip.Addr) {
	q.msgs = append(q.msgs, udpsock.Message{Buf: b, N: len(b), Addr: to, Dst: from})
}

func (q *outQueue) reset() {
	clear(q.msgs)
	q.msgs = q.msgs[:0]
	q.used = 0
}

// New opens the socket (unless one is injected) and returns a server ready to Run.
func New(ctx context.Context, cfg Config) (*Server, error) {
	cfg.defaults()
	s := &Server{cfg: cfg, log: cfg.Log, clients: map[netip.AddrPort]*client{}, meshes: map[string]*mesh{}}
	s.disp.obs = cfg.Observer
	switch {
	case cfg.Transport != nil:
		s.tr = cfg.Transport
	case cfg.Conn != nil:
		s.tr = PacketConn(cfg.Conn)
	default:
		network := "udp4"
		if cfg.Addr.Addr().Is6() {
			network = "udp"
		}
		c, err := udpsock.Listen(ctx, network, cfg.Addr.String(), udpsock.Options{RxTimestamps: true, RecvDst: cfg.Addr.Addr().IsUnspecified(), ReadBuffer: 4 << 20})
		if err != nil {
			return nil, fmt.Errorf("ptpserver: listen on %v: %w", cfg.Addr, err)
		}
		s.tr = c
	}
	s.local = s.tr.LocalAddr()
	if !cfg.NoSTUN || cfg.OtherAddress.IsValid() {
		primary := s.local
		st, err := natprobe.NewServer(ctx, natprobe.ServerConfig{
			Primary: primary, Other: cfg.OtherAddress, Listen: cfg.Listen, Software: "probekit ptpserver", Log: s.log,
			// Called synchronously from Handle in the reader goroutine: stunDst is the address
			// the request came to, so a wildcard socket answers from it.
			Send: func(b []byte, to netip.AddrPort) error {
				_, err := s.tr.WriteBatch([]udpsock.Message{{Buf: b, N: len(b), Addr: to, Dst: s.stunDst}})
				return err
			},
		})
		if err != nil {
			s.tr.Close()
			return nil, fmt.Errorf("ptpserver: STUN: %w", err)
		}
		s.stun = st
	}
	s.rmsgs = make([]udpsock.Message, batch)
	for i := range s.rmsgs {
		s.rmsgs[i].Buf = make([]byte, 2048)
	}
	return s, nil
}

// LocalAddr is the address the server's socket is bound to.
func (s *Server) LocalAddr() netip.AddrPort { return s.local }

// Stats returns the counters.
func (s *Server) Stats() Stats {
	c := &s.c
	return Stats{
		Received: c.received.Load(), Sent: c.sent.Load(), SendErrors: c.sendErrors.Load(), BadChecksum: c.badChecksum.Load(),
		Malformed: c.malformed.Load(), NotClient: c.notClient.Load(), STUN: c.stun.Load(), Beacons: c.beacons.Load(),
		MeshBeacons: c.meshBeacons.Load(), Coalesced: c.coalesced.Load(), Truncated: c.truncated.Load(),
		Relayed: c.relayed.Load(), RelayedBytes: c.relayedBytes.Load(), RelayDropped: c.relayDropped.Load(),
		RelayLimited: c.relayLimited.Load(), Joined: c.joined.Load(), Left: c.left.Load(), Expired: c.expired.Load(),
	}
}

// Run opens the server described by cfg and serves until ctx ends (New, then Server.Run).
func Run(ctx context.Context, cfg Config) error {
	s, err := New(ctx, cfg)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

// Run serves until ctx ends or the socket fails; it closes the socket on return. Nothing a
// peer sends stops it: undecodable packets are counted and dropped.
func (s *Server) Run(ctx context.Context) error {
	defer func() {
		if s.stun != nil {
			s.stun.Close()
		}
	}()
	stop := context.AfterFunc(ctx, func() { s.tr.Close() })
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(s.cfg.Tick)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.tick()
			}
		}
	}()
	err := s.readLoop()
	<-done
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (s *Server) readLoop() error {
	fails := 0
	for {
		n, err := s.tr.ReadBatch(s.rmsgs)
		if err != nil {
			if isClosed(err) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// ICMP errors surface as ECONNREFUSED on some reads; they must not stop the loop,
			// and an error that repeats must not spin a CPU either.
			s.log.WithError(err).Debug("read error")
			if fails++; fails > 10 {
				time.Sleep(10 * time.Millisecond)
			}
			if n == 0 {
				continue
			}
		} else {
			fails = 0
		}
		s.handleBatch(s.rmsgs[:n])
	}
}

// handleBatch processes received datagrams and sends what they caused.
func (s *Server) handleBatch(msgs []udpsock.Message) {
	s.c.received.Add(uint64(len(msgs)))
	var stunMsgs [batch]int
	ns := 0
	s.mu.Lock()
	now := s.cfg.Now()
	for i := range msgs {
		m := &msgs[i]
		b := m.Buf[:min(m.N, len(m.Buf))]
		if natprobe.IsSTUN(b) {
			stunMsgs[ns] = i
			ns++
			continue
		}
		s.handle(b, m, now)
	}
	evs := len(s.evq) > 0
	s.mu.Unlock()
	for _, i := range stunMsgs[:ns] {
		s.c.stun.Add(1)
		if s.stun != nil {
			m := &msgs[i]
			s.stunDst = m.Dst
			s.stun.Handle(m.Buf[:m.N], m.Addr)
		}
	}
	s.flush(&s.rout)
	if evs {
		s.deliverEvents()
	}
}

// deliverEvents hands the queued events to the observer. The reader and the timer each call
// it after releasing mu; whichever comes first delivers what both queued, in queue order, so
// a client that expired (timer) and came back (reader) is seen leaving before it joins.
func (s *Server) deliverEvents() {
	d := &s.disp
	d.mu.Lock()
	defer d.mu.Unlock()
	s.mu.Lock()
	evs := s.evq
	s.evq = d.spare[:0]
	s.mu.Unlock()
	d.deliver(evs)
	clear(evs)
	d.spare = evs[:0]
}

func (s *Server) flush(q *outQueue) {
	for off := 0; off < len(q.msgs); {
		n, err := s.tr.WriteBatch(q.msgs[off:])
		s.c.sent.Add(uint64(n))
		off += n
		if err != nil {
			// Skip the refused datagram (no route, unreachable peer) and go on with the rest.
			s.c.sendErrors.Add(1)
			s.log.WithError(err).WithField("to", q.msgs[off].Addr).Debug("send failed")
			off++
		}
	}
	q.reset()
}

func (s *Server) nextSeq() uint32 {
	s.seq++
	return s.seq
}

func (s *Server) handle(b []byte, rx *udpsock.Message, now time.Time) {
	m := &s.rm
	if err := m.UnmarshalBinary(b); err != nil {
		if errors.Is(err, ptp.ErrChecksum) {
			s.c.badChecksum.Add(1)
		} else {
			s.c.malformed.Add(1)
		}
		if s.cfg.Debug {
			s.log.WithError(err).WithField("from", rx.Addr).Debug("dropped packet")
		}
		return
	}
	if m.Role != ptp.RoleClient || m.Has&ptp.FieldUUID == 0 {
		s.c.notClient.Add(1)
		return
	}
	from := rx.Addr
	c := s.clients[from]
	if s.cfg.Debug {
		s.log.WithFields(logrus.Fields{"from": from, "version": m.Version, "seq": m.Sequence, "uuid": m.UUID}).Debug("packet received")
	}
	if m.Has&ptp.FieldShutdown != 0 {
		if c != nil {
			s.remove(c, "shutdown", now, &s.evq)
		}
		return
	}
	v3 := m.Version >= ptp.ProtoV3
	var meshName []byte // aliases the packet: no allocation unless a mesh is created
	if v3 && m.Has&ptp.FieldMesh != 0 {
		meshName = m.Mesh
	}
	if c == nil {
		c = &client{addr: from, uuid: m.UUID, version: m.Version, joined: now, tokens: float64(s.cfg.RelayBurst), tokensAt: now}
		s.clients[from] = c
		// A v3 client announces CLIENTVER=3 with v2 TLVs only until it has seen SERVERVER=3
		// (PTP-W5), then re-registers with its MESH: it joins with that beacon instead of
		// flashing through the default mesh. Legacy clients join at once, as in the original.
		if !v3 || m.Has&ptp.FieldMesh != 0 {
			s.join(c, s.meshFor(meshName), now, &s.evq)
		}
		s.log.WithFields(logrus.Fields{"client": from, "uuid": m.UUID, "mesh": string(meshName), "version": m.Version}).Info("Received packet from a new client")
	} else if m.Has&ptp.FieldPTPAddr != 0 && (c.mesh == nil || c.mesh.name != string(meshName)) {
		// A beacon naming another mesh moves the client (or a waiting v3 client joins).
		if c.mesh != nil {
			s.leave(c, "moved", now, &s.evq)
		}
		s.join(c, s.meshFor(meshName), now, &s.evq)
	}
	c.lastSeen = now
	c.rcvd++
	c.local = rx.Dst
	if c.uuid != m.UUID {
		if c.mesh != nil && c.mesh.byUUID[c.uuid] == c {
			delete(c.mesh.byUUID, c.uuid)
		}
		c.uuid = m.UUID
		if c.mesh != nil {
			c.mesh.byUUID[c.uuid] = c
		}
	}
	c.version = m.Version
	if m.Has&ptp.FieldRelayTo != 0 {
		if v3 {
			s.relay(c, b, m.RelayTo, now)
		} else {
			s.c.relayDropped.Add(1)
		}
		return
	}
	if m.Has&ptp.FieldPTPAddr != 0 {
		c.ptpAddr = m.PTPAddr
		if v3 {
			c.ncand = uint8(copy(c.cands[:], m.Candidates))
		}
	}
	if m.Has&ptp.FieldMyTS != 0 {
		s.reply(c, m, now)
	}
	if m.Has&ptp.FieldYourTS != 0 && c.pending && m.YourTS == c.pendingTS {
		// RTT from our own clock only (PTP-C2): receive time minus the echoed MYTS, with the
		// kernel's receive timestamp when the socket gives one.
		at := now
		if rx.RxSource == timestamp.SourceKernel && !rx.RxTime.IsZero() {
			at = rx.RxTime
		}
		rtt := max(at.Sub(m.YourTS.Time()), 0)
		c.pending = false
		c.acked++
		if c.acked == 1 || rtt < c.rttMin {
			c.rttMin = rtt
		}
		c.rttMax = max(c.rttMax, rtt)
		c.rttSum += rtt
		c.rttLast = rtt
	}
	if v3 && len(m.PortMaps) > 0 {
		c.npmap = uint8(copy(c.pmaps[:], m.PortMaps))
	}
	if v3 && (m.Has&ptp.FieldNATInfo != 0 || len(m.Reach) > 0 || len(m.PortMaps) > 0) {
		s.report(c, m, now)
	}
}

// meshFor returns the mesh called name, creating it.
func (s *Server) meshFor(name []byte) *mesh {
	if ms := s.meshes[string(name)]; ms != nil {
		return ms
	}
	ms := &mesh{name: string(name), byUUID: map[ptp.UUID]*client{}}
	s.meshes[ms.name] = ms
	return ms
}

func (s *Server) info(c *client, now time.Time) ClientInfo {
	ci := ClientInfo{Time: now, UUID: c.uuid, Addr: c.addr, Version: c.version, PTPAddr: c.ptpAddr}
	if c.mesh != nil {
		ci.Mesh = c.mesh.name
	}
	if c.ncand > 0 {
		ci.Candidates = append([]netip.AddrPort(nil), c.cands[:c.ncand]...)
	}
	if c.hasNAT {
		n := c.nat
		ci.NAT = &n
	}
	if c.npmap > 0 {
		ci.PortMaps = append([]ptp.PortMap(nil), c.pmaps[:c.npmap]...)
	}
	return ci
}

func (s *Server) join(c *client, ms *mesh, now time.Time, evs *[]event) {
	c.mesh = ms
	c.idx = len(ms.members)
	ms.members = append(ms.members, c)
	ms.byUUID[c.uuid] = c
	s.changed(ms, now)
	s.c.joined.Add(1)
	*evs = append(*evs, event{kind: evJoined, info: s.info(c, now)})
}

// leave takes c out of its mesh (not out of the client table).
func (s *Server) leave(c *client, reason string, now time.Time, evs *[]event) {
	ms := c.mesh
	last := ms.members[len(ms.members)-1]
	ms.members[c.idx] = last
	last.idx = c.idx
	ms.members[len(ms.members)-1] = nil
	ms.members = ms.members[:len(ms.members)-1]
	if ms.byUUID[c.uuid] == c {
		delete(ms.byUUID, c.uuid)
	}
	for _, o := range ms.members {
		delete(o.reach, c.uuid)
	}
	c.reach = nil
	s.c.left.Add(1)
	*evs = append(*evs, event{kind: evLeft, info: s.info(c, now), reason: reason})
	if len(ms.members) == 0 {
		delete(s.meshes, ms.name)
		return
	}
	s.changed(ms, now)
}

func (s *Server) remove(c *client, reason string, now time.Time, evs *[]event) {
	delete(s.clients, c.addr)
	if c.mesh == nil {
		return // a v3 client that never joined a mesh
	}
	s.leave(c, reason, now, evs)
	if reason == "expired" {
		s.c.expired.Add(1)
		s.log.WithField("client", c.addr).Info("Expiring client " + c.addr.Addr().String() + "-" + fmt.Sprint(c.addr.Port()))
	} else {
		s.log.WithField("client", c.addr).Info("Client shut down")
	}
}

// changed marks a membership change: the mesh gets a beacon round at the next tick that is at
// least Coalesce after its previous round (PTP-S1 without a per-change storm).
func (s *Server) changed(ms *mesh, now time.Time) {
	if ms.changed {
		s.c.coalesced.Add(1)
	}
	ms.changed = true
}

func (s *Server) reply(c *client, m *ptp.Message, now time.Time) {
	r := &s.lm
	r.Reset()
	r.Role, r.Version = ptp.RoleServer, min(c.version, Version)
	if r.Version < ptp.ProtoV2 {
		r.Version = ptp.ProtoV2
	}
	r.Has = ptp.FieldSequence | ptp.FieldUUID | ptp.FieldYourTS
	r.Sequence, r.UUID, r.YourTS = s.nextSeq(), c.uuid, m.MyTS
	if r.Version >= ptp.ProtoV3 && m.Has&ptp.FieldSequence != 0 {
		r.Has |= ptp.FieldEchoSeq
		r.EchoSeq = m.Sequence
	}
	b, err := r.AppendTo(s.rout.buf())
	if err != nil {
		s.log.WithError(err).Error("encoding a reply")
		return
	}
	s.send(&s.rout, b, c)
}

func (s *Server) send(q *outQueue, b []byte, c *client) {
	q.add(b, c.addr, c.local)
	if s.cfg.Debug {
		f := s.log.WithFields(logrus.Fields{"to": c.addr, "len": len(b)})
		if s.cfg.Hexdump {
			f = f.WithField("hex", hex.EncodeToString(b))
		}
		f.Debug("packet sent")
	}
}

// relay forwards b (RELAYTO rewritten in place into RELAYFROM) to a v3 peer of c's mesh.
func (s *Server) relay(c *client, b []byte, to ptp.UUID, now time.Time) {
	var peer *client
	if c.mesh != nil {
		peer = c.mesh.byUUID[to]
	}
	if peer == nil || peer == c || peer.version < ptp.ProtoV3 || s.cfg.RelayRate < 0 || len(b) > ptp.MaxPacket {
		s.c.relayDropped.Add(1)
		c.relayDrops++
		return
	}
	c.tokens = min(float64(s.cfg.RelayBurst), c.tokens+now.Sub(c.tokensAt).Seconds()*s.cfg.RelayRate)
	c.tokensAt = now
	if c.tokens < 1 {
		s.c.relayLimited.Add(1)
		c.relayDrops++
		return
	}
	c.tokens--
	if _, err := ptp.RewriteRelay(b, c.uuid); err != nil {
		s.c.relayDropped.Add(1)
		return
	}
	c.relayed++
	s.c.relayed.Add(1)
	s.c.relayedBytes.Add(uint64(len(b)))
	s.rout.add(b, peer.addr, peer.local)
}

func (s *Server) report(c *client, m *ptp.Message, now time.Time) {
	rep := Report{}
	if m.Has&ptp.FieldNATInfo != 0 {
		c.nat, c.hasNAT = m.NAT, true
		n := m.NAT
		rep.NAT = &n
	}
	if c.mesh == nil {
		return // reports count once the client is a member
	}
	if len(m.Reach) > 0 {
		if c.reach == nil {
			c.reach = make(map[ptp.UUID]reachEntry, len(c.mesh.members))
		}
		rep.Peers = make([]PeerReport, 0, len(m.Reach))
	}
	for _, r := range m.Reach {
		peer := c.mesh.byUUID[r.Peer]
		if peer == nil || peer == c {
			continue // not a member of this mesh (left, or another mesh): ignored
		}
		c.reach[r.Peer] = reachEntry{r: r, at: now.UnixNano()}
		pr := PeerReport{Reach: r, PeerAddr: peer.addr}
		pr.Reason = s.reason(c, peer, r.Path)
		rep.Peers = append(rep.Peers, pr)
	}
	rep.Client = s.info(c, now)
	s.evq = append(s.evq, event{kind: evReported, report: rep})
}

func (s *Server) reason(c, peer *client, p ptp.Path) string {
	var a, b *ptp.NATInfo
	if c.hasNAT {
		a = &c.nat
	}
	if peer.hasNAT {
		b = &peer.nat
	}
	return Reason(p, a, b)
}

// tick expires silent clients, counts unanswered beacons and sends the beacon rounds due.
func (s *Server) tick() {
	s.mu.Lock()
	now := s.cfg.Now()
	if now.Sub(s.lastExpire) >= time.Second || now.Before(s.lastExpire) {
		s.lastExpire = now
		for _, c := range s.clients {
			if now.Sub(c.lastSeen) > s.cfg.Expiry {
				s.remove(c, "expired", now, &s.evq)
				continue
			}
			if c.pending && now.Sub(c.pendingAt) > s.cfg.AckTimeout {
				c.pending = false
				c.lost++
			}
		}
	}
	for _, ms := range s.meshes {
		due := !now.Before(ms.nextBeacon)
		if ms.changed && now.Sub(ms.lastBeacon) >= s.cfg.Coalesce {
			due = true
		}
		if due {
			s.beaconMesh(ms, now)
		}
	}
	evs := len(s.evq) > 0
	s.mu.Unlock()
	s.flush(&s.tout)
	if s.afterTickUnlock != nil {
		s.afterTickUnlock()
	}
	if evs {
		s.deliverEvents()
	}
}

// beaconMesh sends every member its list (PTP-S2), paged for v3 members.
func (s *Server) beaconMesh(ms *mesh, now time.Time) {
	ms.changed = false
	ms.lastBeacon = now
	ms.nextBeacon = now.Add(s.cfg.BeaconInterval)
	s.c.meshBeacons.Add(1)
	ts := timestamp.Fixed32FromTime(now)
	for _, r := range ms.members {
		s.beaconTo(ms, r, ts, now)
	}
}

func (s *Server) beaconTo(ms *mesh, r *client, ts timestamp.Fixed32, now time.Time) {
	v3 := r.version >= ptp.ProtoV3
	ents := s.ents[:0]
	for _, o := range ms.members {
		if o == r {
			continue
		}
		// The original decodes 18-byte addresses wrongly (B9): legacy clients get IPv4 only.
		if !v3 && !o.addr.Addr().Is4() {
			continue
		}
		e := ptp.Entry{Ext: o.addr}
		if o.ptpAddr.IsValid() && o.addr.Addr() == r.addr.Addr() && (v3 || o.ptpAddr.Addr().Unmap().Is4()) {
			e.Int = o.ptpAddr
		}
		if v3 {
			e.UUID, e.HasUUID = o.uuid, true
			e.NCand = uint8(copy(e.Candidates[:], o.cands[:o.ncand]))
		}
		ents = append(ents, e)
	}
	s.ents = ents
	m := &s.lm
	m.Reset()
	m.Role, m.Version = ptp.RoleServer, ptp.ProtoV2
	m.Has = ptp.FieldSequence | ptp.FieldUUID | ptp.FieldMyTS | ptp.FieldYourAddr | ptp.FieldList
	m.UUID, m.MyTS, m.YourAddr = r.uuid, ts, r.addr
	if v3 {
		m.Version = Version
		m.Has |= ptp.FieldListPage
	}
	budget := ptp.MaxPacket - m.Size()
	// Pages: greedy split by size and by CLIENTLEN's one byte.
	var pages [][2]int
	start, used := 0, 0
	for i := range ents {
		sz := ptp.EntrySize(&ents[i])
		if i > start && (used+sz > budget || i-start == 255) {
			pages = append(pages, [2]int{start, i})
			start, used = i, 0
		}
		used += sz
	}
	pages = append(pages, [2]int{start, len(ents)})
	if !v3 && len(pages) > 1 {
		s.c.truncated.Add(1)
		if !ms.truncLog {
			ms.truncLog = true
			s.log.WithFields(logrus.Fields{"mesh": ms.name, "client": r.addr, "entries": len(ents), "sent": pages[0][1]}).
				Warn("list larger than one packet: legacy client gets the entries that fit (logged once per mesh)")
		}
		pages = pages[:1]
	}
	if len(pages) > 255 {
		pages = pages[:255]
	}
	for p, pg := range pages {
		m.Entries = ents[pg[0]:pg[1]]
		m.Sequence = s.nextSeq()
		if v3 {
			m.Page, m.Pages = uint8(p), uint8(len(pages))
		}
		if p == 1 {
			m.Has &^= ptp.FieldMyTS // the timestamp rides on the first page only
		}
		b, err := m.AppendTo(s.tout.buf())
		if err != nil {
			s.log.WithError(err).Error("encoding a list")
			break
		}
		s.send(&s.tout, b, r)
		s.c.beacons.Add(1)
	}
	if r.pending {
		r.lost++ // the previous beacon was never answered
	}
	r.sent++
	r.pending, r.pendingTS, r.pendingAt = true, ts, now
}
