package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/probekit/probekit/shared/reflector"
	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/twampctl"
	"github.com/probekit/probekit/shared/udpsock"
)

// maxDatagram is the largest test packet a session socket receives.
const maxDatagram = 9216

// sessionRcvBuf absorbs ~150 ms of a 100 kpps session while the reflector goroutine is
// descheduled on a busy host (the kernel charges ~768 octets per small datagram).
const sessionRcvBuf = 64 << 20

// session is one negotiated test session: its own UDP socket, provisioned in the shared
// reflector's table between Start-Sessions and Stop-Sessions + Timeout.
type session struct {
	sid      [16]byte
	owner    *controlConn
	identity string
	mode     twampctl.Mode
	sock     *udpsock.Conn
	local    netip.AddrPort
	peer     netip.AddrPort
	rs       *reflector.Session
	mon      *dscpMon
	refl     *reflect6038
	timeout  time.Duration
	padding  uint32
	dscp     uint8
	created  time.Time
	ctx      context.Context
	cancel   context.CancelFunc
	started  atomic.Bool
	stopped  atomic.Bool
	startAt  atomic.Int64
	done     chan struct{}
}

// RFC 7750 "Sender DSCP and ECN" octet: right after Sender TTL in both reflector layouts.
const (
	dscpECNOffOpen = testpkt.TWAMPReflectedLen // 41
	dscpECNOffAuth = 81
)

// dscpMon carries the DS field of the packet being reflected into the reply (RFC 7750). The
// session's socket loop sets tos before each Reflect; Seal runs inside that call.
type dscpMon struct {
	enabled bool
	tos     uint8
}

// reflect6038 is a session's RFC 6038 state: the padding octets the reflector copies back
// and the Server Octets every sender packet must carry.
type reflect6038 struct {
	enabled      bool
	layout       twampctl.ReflectLayout
	serverOctets uint16
	mismatches   atomic.Uint64 // sender packets whose Server Octets differ from Accept-Session's
	copied       atomic.Uint64 // replies carrying all the reflected octets
}

// apply copies the requested octets of req into reply and checks req's Server Octets.
func (r *reflect6038) apply(reply, req []byte) {
	if !r.enabled {
		return
	}
	if v, ok := r.layout.ServerOctets(req); ok && v != r.serverOctets {
		r.mismatches.Add(1)
	}
	if r.layout.Length > 0 && r.layout.Reflect(reply, req) == r.layout.Length {
		r.copied.Add(1)
	}
}

// newServerOctets draws a non-zero 16-bit value (zero would mean "no Server Octets").
func newServerOctets(sid [16]byte) uint16 {
	v := uint16(sid[14])<<8 | uint16(sid[15])
	if v == 0 {
		v = 1
	}
	return v
}

// twampAuth adapts twampctl.TestCrypto to the reflector's Authenticator.
type twampAuth struct {
	tc  *twampctl.TestCrypto
	mon *dscpMon
}

func (a twampAuth) Open(pkt []byte) bool { return a.tc.OpenSender(pkt) == nil }

func (a twampAuth) Seal(pkt []byte) {
	if a.mon.enabled {
		pkt[dscpECNOffAuth] = a.mon.tos // inside the encrypted, authenticated span
	}
	_ = a.tc.SealReflector(pkt)
}

// listenTest binds a UDP socket for a session: the requested port first, then the range
// (rotating start), then — when no range is configured — a kernel-chosen port (TW-C3).
func (s *Server) listenTest(ctx context.Context, local netip.Addr, requested uint16) (*udpsock.Conn, error) {
	network := "udp4"
	if local.Is6() {
		network = "udp6"
	}
	opts := reflector.ListenOptions(0) // large socket buffers, TTL and TOS delivery
	opts.RxTimestamps = s.cfg.KernelTimestamps
	opts.ReadBuffer = sessionRcvBuf
	try := func(port uint16) (*udpsock.Conn, error) {
		return udpsock.Listen(ctx, network, netip.AddrPortFrom(local, port).String(), opts)
	}
	r := s.cfg.TestPorts
	if requested != 0 {
		if c, err := try(requested); err == nil {
			return c, nil
		}
	}
	if r.Size() == 0 {
		return try(0)
	}
	s.mu.Lock()
	start := s.nextPort
	s.nextPort = (s.nextPort + 1) % r.Size()
	s.mu.Unlock()
	var last error
	for i := 0; i < r.Size(); i++ {
		p := r.Lo + uint16((start+i)%r.Size())
		if p == requested {
			continue
		}
		c, err := try(p)
		if err == nil {
			return c, nil
		}
		last = err
	}
	return nil, fmt.Errorf("no free test port in %d-%d: %w", r.Lo, r.Hi, last)
}

func (s *Server) newSession(ctx context.Context, c *controlConn, rq *twampctl.RequestTWSession, sender, receiver netip.Addr, dscp uint8, timeout time.Duration) (*session, error) {
	sock, err := s.listenTest(ctx, receiver, rq.ReceiverPort)
	if err != nil {
		return nil, err
	}
	_ = sock.SetTTL(255) // TW-T3
	now := time.Now()
	ss := &session{
		sid:      NewSID(receiver, now),
		owner:    c,
		identity: c.identity,
		mode:     c.ctl.Mode(),
		sock:     sock,
		local:    sock.LocalAddr(),
		peer:     netip.AddrPortFrom(sender, rq.SenderPort),
		timeout:  timeout,
		padding:  rq.PaddingLength,
		dscp:     dscp,
		created:  now,
		done:     make(chan struct{}),
		mon:      &dscpMon{enabled: c.ctl.Mode()&twampctl.ModeDSCPECN != 0},
	}
	ss.refl = &reflect6038{enabled: ss.mode&twampctl.ModeReflectOctets != 0,
		layout: twampctl.NewReflectLayout(ss.mode, rq.PaddingToReflect), serverOctets: newServerOctets(ss.sid)}
	ss.local = netip.AddrPortFrom(ss.local.Addr().Unmap(), ss.local.Port())
	rs := &reflector.Session{
		Key:         reflector.SessionKey{Peer: ss.peer, Local: ss.local},
		Format:      reflector.FormatTWAMP,
		Mode:        testpkt.ModeUnauthenticated,
		DSCP:        int(dscp),
		Provisioned: true,
	}
	switch ts := ss.mode.TestSecurity(); ts {
	case twampctl.ModeAuthenticated, twampctl.ModeEncrypted:
		tc, err := twampctl.NewTestCrypto(ts, ss.sid, c.ctl.Keys())
		if err != nil {
			sock.Close()
			return nil, err
		}
		rs.Mode = testpkt.ModeTWAMPAuthenticated
		rs.Auth = twampAuth{tc: tc, mon: ss.mon}
	default:
		// Open replies are the STAMP layout without its last 3 MBZ octets; the engine
		// builds ≥ 44 and serve trims to max(n, 41) (TW-T2).
		rs.ReplyLen = func(n int) int { return max(n, testpkt.BaseLen) }
	}
	ss.rs = rs
	ss.ctx, ss.cancel = context.WithCancel(ctx)
	s.mu.Lock()
	s.sessions[ss.sid] = ss
	s.perUser[ss.identity]++
	s.mu.Unlock()
	s.m.sessionsTotal.Add(1)
	c.log.WithField("sid", fmt.Sprintf("%x", ss.sid)).WithField("sender", ss.peer.String()).
		WithField("reflector", ss.local.String()).WithField("requested_port", rq.ReceiverPort).
		WithField("padding", rq.PaddingLength).WithField("dscp", dscp).Info("test session accepted")
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.serve(ss)
	}()
	return ss, nil
}

func (s *Server) startSession(ss *session) {
	if err := s.refl.Table().Provision(ss.rs, true); err != nil {
		ss.owner.log.WithError(err).Warn("provisioning test session failed")
		return
	}
	ss.startAt.Store(time.Now().UnixNano())
	ss.started.Store(true)
}

// stopSession keeps reflecting for the session's Timeout, then ends it (TW-T4).
func (s *Server) stopSession(ss *session) {
	if ss.stopped.Swap(true) {
		return
	}
	time.AfterFunc(ss.timeout, ss.cancel)
}

// serve runs a negotiated session until it is cancelled or REFWAIT passes without packets.
func (s *Server) serve(ss *session) {
	defer func() {
		var rx, tx uint32
		for _, si := range s.refl.Table().Snapshot() {
			if si.Peer == ss.rs.Key.Peer.String() && si.Local == ss.rs.Key.Local.String() {
				rx, tx = si.Received, si.Reflected
			}
		}
		l := ss.owner.log.WithField("sid", fmt.Sprintf("%x", ss.sid)).WithField("received", rx).
			WithField("reflected", tx)
		if ss.refl.enabled {
			l = l.WithField("octets_reflected_replies", ss.refl.copied.Load()).
				WithField("server_octets_mismatches", ss.refl.mismatches.Load())
		}
		l.Info("test session ended")
		s.refl.Table().Remove(ss.rs.Key)
		ss.sock.Close()
		s.mu.Lock()
		delete(s.sessions, ss.sid)
		s.perUser[ss.identity]--
		if s.perUser[ss.identity] <= 0 {
			delete(s.perUser, ss.identity)
		}
		s.mu.Unlock()
		close(ss.done)
	}()
	context.AfterFunc(ss.ctx, func() { ss.sock.Close() })
	err := s.reflectLoop(ss.ctx, ss.sock, ss.local, ss.rs.Mode == testpkt.ModeUnauthenticated, s.cfg.RefWait, ss.mon, ss.refl)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		s.m.refwaitExpired.Add(1)
		ss.owner.log.WithField("sid", fmt.Sprintf("%x", ss.sid)).Info("REFWAIT expired; ending idle test session")
	}
}

// reflectLoop serves one socket: batched receive, reflection by the shared engine, batched
// send. Open-mode replies are trimmed to the TWAMP size max(n, 41) (TW-T2), or max(n, 42)
// when mon enables RFC 7750 monitoring; refl copies RFC 6038 reflected octets. idle > 0 ends
// the loop with a timeout error after that long without packets.
func (s *Server) reflectLoop(ctx context.Context, sock *udpsock.Conn, local netip.AddrPort, open bool, idle time.Duration, mon *dscpMon, refl *reflect6038) error {
	if mon == nil {
		mon = &dscpMon{}
	}
	if refl == nil {
		refl = &reflect6038{}
	}
	w := s.refl.NewWorker()
	const batch = udpsock.DefaultBatch
	in := make([]udpsock.Message, batch)
	out := make([]udpsock.Message, batch)
	bufs := make([][]byte, batch)
	for i := range in {
		in[i].Buf = make([]byte, maxDatagram)
		bufs[i] = make([]byte, maxDatagram+testpkt.AuthBaseLen)
	}
	var pkt reflector.Packet
	for {
		if idle > 0 {
			_ = sock.SetReadDeadline(time.Now().Add(idle))
		}
		n, err := sock.ReadBatch(in)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// An ICMP error for an earlier reply (the sender's port closed, ECONNREFUSED),
			// a signal or a full device queue is no reason to end the session.
			if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.ENOBUFS) ||
				errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
				continue
			}
			return err
		}
		k := 0
		for i := 0; i < n; i++ {
			m := &in[i]
			if m.Truncated {
				continue
			}
			pkt = reflector.Packet{Data: m.Buf[:m.N], Peer: unmapAP(m.Addr), Local: local,
				RxTime: m.RxTime, RxSource: m.RxSource, TOS: m.TOS, TTL: m.TTL}
			mon.tos = m.TOS
			reply, tos, ok := w.Reflect(&pkt, bufs[i][:0])
			if !ok {
				continue
			}
			if open {
				if mon.enabled {
					reply = reply[:max(m.N, dscpECNOffOpen+1)]
					reply[dscpECNOffOpen] = m.TOS
				} else {
					reply = reply[:max(m.N, testpkt.TWAMPReflectedLen)]
				}
			}
			// Padding lies outside the HMAC and encryption spans in every layout, so the
			// reflected octets can follow sealing.
			refl.apply(reply, m.Buf[:m.N])
			out[k] = udpsock.Message{Buf: reply, N: len(reply), Addr: m.Addr, TOS: tos}
			k++
		}
		if k > 0 {
			if _, err := sock.WriteBatch(out[:k]); err != nil && ctx.Err() == nil {
				s.log.WithError(err).Debug("sending reflected packets failed")
			}
		}
	}
}

func unmapAP(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}
