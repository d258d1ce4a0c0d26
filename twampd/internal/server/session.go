package server

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/probekit/probekit/shared/reflector"
	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/twampctl"
	"github.com/probekit/probekit/shared/udpsock"
)

// sessionRcvBuf absorbs ~150 ms of a 100 kpps session while the reflector goroutine is
// descheduled on a busy host (the kernel charges ~768 octets per small datagram). A session
// gets it at Start-Sessions; before, its socket keeps the kernel's default buffer.
const sessionRcvBuf = 64 << 20

// sessionBatch is the recvmmsg/sendmmsg depth of a negotiated session's loop: 16 datagrams
// of up to 9 KiB each way, ~300 KiB per running session (reflector.Config.Batch). Light
// mode serves one socket for every sender and keeps the reflector's default.
const sessionBatch = 16

// session is one negotiated test session: its own UDP socket, provisioned in the shared
// reflector's table between Start-Sessions and Stop-Sessions + Timeout.
//
// A requested session costs a bound socket with one-message batch state (udpsock grows it
// on the first read), the kernel's default receive buffer and this struct: a few
// kilobytes. Its reflector loop — the batch buffers (~300 KiB), the goroutine and the
// large receive buffer — starts only at Start-Sessions (issue 11 H1: 1.1 MB per requested
// session before).
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

	mu      sync.Mutex // orders startSession against the end of a session never started
	ended   bool
	endOnce sync.Once
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
	opts.Batch = 1                       // grown by the first ReadBatch, after Start-Sessions
	opts.ReadBuffer = 0                  // sessionRcvBuf at Start-Sessions
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
	// Ended before Start-Sessions (connection closed, Stop-N-Sessions, shutdown): release it
	// here, since no reflector loop will.
	context.AfterFunc(ss.ctx, func() {
		ss.mu.Lock()
		started := ss.started.Load()
		ss.ended = true
		ss.mu.Unlock()
		if !started {
			s.endSession(ss)
		}
	})
	return ss, nil
}

// startSession provisions the session and starts its reflector loop.
func (s *Server) startSession(ss *session) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.ended || ss.started.Load() {
		return
	}
	if err := s.refl.Table().Provision(ss.rs, true); err != nil {
		ss.owner.log.WithError(err).Warn("provisioning test session failed")
		return
	}
	if err := setReadBuffer(ss.sock, sessionRcvBuf); err != nil {
		ss.owner.log.WithError(err).Debug("test session: receive buffer not enlarged")
	}
	drain(ss.sock) // datagrams sent before Start-Sessions get no reply
	ss.startAt.Store(time.Now().UnixNano())
	ss.started.Store(true)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.serve(ss)
	}()
}

// setReadBuffer sets SO_RCVBUF, past rmem_max with CAP_NET_ADMIN (SO_RCVBUFFORCE).
func setReadBuffer(c *udpsock.Conn, n int) error {
	rc, err := c.UDPConn().SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n) != nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, n)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// drain discards the datagrams queued on c (bounded by the small pre-start buffer).
func drain(c *udpsock.Conn) {
	rc, err := c.UDPConn().SyscallConn()
	if err != nil {
		return
	}
	var b [1]byte
	_ = rc.Control(func(fd uintptr) {
		for range 4096 {
			if _, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_DONTWAIT|unix.MSG_TRUNC); err != nil {
				return
			}
		}
	})
}

// stopSession keeps reflecting for the session's Timeout, then ends it (TW-T4).
func (s *Server) stopSession(ss *session) {
	if ss.stopped.Swap(true) {
		return
	}
	time.AfterFunc(ss.timeout, ss.cancel)
}

// serve runs a started session until it is cancelled or REFWAIT passes without packets.
func (s *Server) serve(ss *session) {
	defer s.endSession(ss)
	err := s.refl.ServeWith(ss.ctx, ss.sock, reflector.ServeOptions{Idle: s.cfg.RefWait})
	switch {
	case errors.Is(err, reflector.ErrIdle):
		s.m.refwaitExpired.Add(1)
		ss.owner.log.WithField("sid", fmt.Sprintf("%x", ss.sid)).Info("REFWAIT expired; ending idle test session")
	case err != nil:
		ss.owner.log.WithField("sid", fmt.Sprintf("%x", ss.sid)).WithError(err).Warn("test session socket failed")
	}
}

// endSession releases a session once: table entry, socket, server bookkeeping.
func (s *Server) endSession(ss *session) {
	ss.endOnce.Do(func() {
		var rx, tx uint32
		if ss.started.Load() {
			for _, si := range s.refl.Table().Snapshot() {
				if si.Peer == ss.rs.Key.Peer.String() && si.Local == ss.rs.Key.Local.String() {
					rx, tx = si.Received, si.Reflected
				}
			}
		}
		l := ss.owner.log.WithField("sid", fmt.Sprintf("%x", ss.sid)).WithField("received", rx).
			WithField("reflected", tx)
		if !ss.started.Load() {
			l = l.WithField("started", false)
		}
		if ss.refl.enabled {
			l = l.WithField("octets_reflected_replies", ss.refl.copied.Load()).
				WithField("server_octets_mismatches", ss.refl.mismatches.Load())
		}
		l.Info("test session ended")
		ss.owner.held.Add(-1)
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
	})
}
