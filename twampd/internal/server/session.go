package server

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/probekit/probekit/shared/reflector"
	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/twampctl"
	"github.com/probekit/probekit/shared/udpsock"
)

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

// reflect6038 is a session's RFC 6038 state: the padding octets the reflector copies back
// and the Server Octets every sender packet must carry. It is the session's
// reflector.ReplyHook; padding lies outside the HMAC and encryption spans in every layout,
// so the copy needs nothing from the Authenticator.
type reflect6038 struct {
	enabled      bool
	layout       twampctl.ReflectLayout
	serverOctets uint16
	mismatches   atomic.Uint64 // sender packets whose Server Octets differ from Accept-Session's
	copied       atomic.Uint64 // replies carrying all the reflected octets
}

// Reply copies the requested octets of req into reply and checks req's Server Octets.
func (r *reflect6038) Reply(reply, req []byte) {
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

// twampAuth adapts twampctl.TestCrypto to the reflector's Authenticator. The reflector
// writes the RFC 7750 octet (Session.SenderDSCPECN) before Seal, inside the sealed span.
type twampAuth struct{ tc *twampctl.TestCrypto }

func (a twampAuth) Open(pkt []byte) bool { return a.tc.OpenSender(pkt) == nil }

func (a twampAuth) Seal(pkt []byte) { _ = a.tc.SealReflector(pkt) }

// listenTest binds a UDP socket for a session: the requested port first, then the range
// (rotating start), then — when no range is configured — a kernel-chosen port (TW-C3).
func (s *Server) listenTest(ctx context.Context, local netip.Addr, requested uint16) (*udpsock.Conn, error) {
	network := "udp4"
	if local.Is6() {
		network = "udp6"
	}
	opts := s.listenOptions()
	opts.RecvDst = local.IsUnspecified() // a bound address is the only destination
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
	}
	ss.refl = &reflect6038{enabled: ss.mode&twampctl.ModeReflectOctets != 0,
		layout: twampctl.NewReflectLayout(ss.mode, rq.PaddingToReflect), serverOctets: newServerOctets(ss.sid)}
	ss.local = netip.AddrPortFrom(ss.local.Addr().Unmap(), ss.local.Port())
	rs := &reflector.Session{
		Key:           reflector.SessionKey{Peer: ss.peer, Local: ss.local},
		Format:        reflector.FormatTWAMP, // open replies max(n, 41) octets (TW-T2)
		Mode:          testpkt.ModeUnauthenticated,
		DSCP:          int(dscp),
		SenderDSCPECN: ss.mode&twampctl.ModeDSCPECN != 0,
		Provisioned:   true,
	}
	if ss.refl.enabled {
		rs.Hook = ss.refl
	}
	switch ts := ss.mode.TestSecurity(); ts {
	case twampctl.ModeAuthenticated, twampctl.ModeEncrypted:
		tc, err := twampctl.NewTestCrypto(ts, ss.sid, c.ctl.Keys())
		if err != nil {
			sock.Close()
			return nil, err
		}
		rs.Mode = testpkt.ModeTWAMPAuthenticated
		rs.Auth = twampAuth{tc: tc}
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
	err := s.refl.ServeWith(ss.ctx, ss.sock, reflector.ServeOptions{Idle: s.cfg.RefWait})
	switch {
	case errors.Is(err, reflector.ErrIdle):
		s.m.refwaitExpired.Add(1)
		ss.owner.log.WithField("sid", fmt.Sprintf("%x", ss.sid)).Info("REFWAIT expired; ending idle test session")
	case err != nil:
		ss.owner.log.WithField("sid", fmt.Sprintf("%x", ss.sid)).WithError(err).Warn("test session socket failed")
	}
}
