package server

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/probekit/probekit/shared/httpside"
	"github.com/probekit/probekit/shared/metrics"
	"github.com/probekit/probekit/shared/reflector"
	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/timestamp"
	"github.com/probekit/probekit/shared/twampctl"
)

// Server is a running twampd.
type Server struct {
	cfg  Config
	log  logrus.FieldLogger
	refl *reflector.Reflector

	mu       sync.Mutex
	sessions map[[16]byte]*session
	perUser  map[string]int
	conns    map[*controlConn]struct{}
	perHost  map[netip.Addr]int
	addrs    []net.Addr
	nextPort int
	wg       sync.WaitGroup

	m         counters
	refuseLog rateLog // refused and timed-out control connections
	rejectLog rateLog // rejected Request-TW-Session messages
	regOnce   sync.Once
	reg       *metrics.Registry
	side      atomic.Pointer[httpside.Stats]
}

type counters struct {
	connsTotal, connsRejected, connsRefusedHost, authFailures atomic.Uint64
	connsEvicted                                              atomic.Uint64
	protocolErrors, handshakeTimeouts                         atomic.Uint64
	sessionsTotal, sessionsRejected, refwaitExpired           atomic.Uint64
	stopMismatch, servwaitExpired                             atomic.Uint64
	metricsUnavailable                                        atomic.Bool
}

// New validates cfg and prepares a server; Run starts it.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	rcfg := reflector.Config{
		Mode:            testpkt.ModeUnauthenticated,
		Format:          reflector.FormatTWAMP,
		ProvisionedOnly: !cfg.Light,
		Batch:           sessionBatchFor(cfg.Light),
		MaxSessions:     cfg.MaxSessions,
		Synchronized:    cfg.Synchronized,
		IdleTimeout:     cfg.RefWait,
		BusyPoll:        cfg.BusyPoll,
		Realtime:        cfg.Realtime,
		StrictSize:      cfg.StrictSize,
		Logger:          cfg.Logger,
	}
	if !cfg.Light && cfg.MaxSessions == 0 {
		// The table holds only the provisioned control sessions, which --max-sessions 0
		// leaves unlimited; the reflector's default bound is for learned ones.
		rcfg.MaxSessions = math.MaxInt32
	}
	r, err := reflector.New(rcfg)
	if err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, log: cfg.Logger, refl: r, sessions: map[[16]byte]*session{},
		perUser: map[string]int{}, conns: map[*controlConn]struct{}{}, perHost: map[netip.Addr]int{}}, nil
}

// Run serves until ctx is cancelled. It returns after every connection and session ended.
func Run(ctx context.Context, cfg Config) error {
	s, err := New(cfg)
	if err != nil {
		return err
	}
	return s.Run(ctx, nil)
}

// Run listens on the configured addresses and serves until ctx is cancelled. ready, when
// not nil, is called with the bound addresses once every listener is up.
func (s *Server) Run(ctx context.Context, ready func([]net.Addr)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var addrs []net.Addr
	if s.cfg.Light {
		for _, a := range s.cfg.Listen {
			la, err := s.startLight(ctx, a)
			if err != nil {
				return err
			}
			addrs = append(addrs, la)
		}
	} else {
		for _, a := range s.cfg.Listen {
			ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", a)
			if err != nil {
				return fmt.Errorf("twampd: listen %s: %w", a, err)
			}
			addrs = append(addrs, ln.Addr())
			s.log.WithField("addr", ln.Addr().String()).WithField("modes", s.cfg.Modes.String()).Info("TWAMP-Control listening")
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.acceptLoop(ctx, ln)
			}()
			context.AfterFunc(ctx, func() { ln.Close() })
		}
	}
	if s.cfg.MetricsAddr != "" {
		// An optional side port: a second twampd on the host (or any other owner of the
		// port) costs the metrics, never the TWAMP service.
		ma, err := s.startMetrics(ctx, s.cfg.MetricsAddr)
		if err != nil {
			s.m.metricsUnavailable.Store(true)
			s.log.WithError(err).WithField("addr", s.cfg.MetricsAddr).
				Warn("metrics and status endpoint unavailable; serving TWAMP without it (choose another --metrics address or --metrics= to disable)")
		} else {
			s.log.WithField("addr", ma.String()).Info("metrics and status listening")
			addrs = append(addrs, ma)
		}
	}
	s.mu.Lock()
	s.addrs = addrs
	s.mu.Unlock()
	if ready != nil {
		ready(addrs)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.expireLoop(ctx)
	}()
	<-ctx.Done()
	s.mu.Lock()
	for c := range s.conns {
		c.nc.Close()
	}
	for _, ss := range s.sessions {
		ss.cancel()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Server) expireLoop(ctx context.Context) {
	if !s.cfg.Light {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if n := s.refl.ExpireIdle(now); n > 0 {
				s.log.WithField("expired", n).Debug("TWAMP Light sessions expired")
			}
		}
	}
}

func (s *Server) acceptLoop(ctx context.Context, ln net.Listener) {
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: back off instead of spinning.
			delay = min(max(delay*2, 5*time.Millisecond), time.Second)
			s.log.WithError(err).Warn("accept failed")
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return
			}
			continue
		}
		delay = 0
		s.m.connsTotal.Add(1)
		c := &controlConn{s: s, nc: nc, sessions: map[[16]byte]*session{}, since: time.Now()}
		host := hostKey(addrPortOf(nc.RemoteAddr()).Addr())
		s.mu.Lock()
		var why string
		switch {
		case s.cfg.MaxConnectionsPerHost > 0 && s.perHost[host] >= s.cfg.MaxConnectionsPerHost:
			why = "--max-connections-per-host reached for this address"
			s.m.connsRefusedHost.Add(1)
		case s.cfg.MaxConnections > 0 && len(s.conns) >= s.cfg.MaxConnections && !s.evictIdleLocked(c.since):
			why = "--max-connections reached"
			s.m.connsRejected.Add(1)
		}
		if why != "" {
			s.mu.Unlock()
			s.refuseLog.warn(s.log.WithField("peer", nc.RemoteAddr().String()), "control connection refused: "+why)
			// RFC 4656 §3.1: Modes 0 tells the client it is refused, rather than an
			// unexplained EOF.
			_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
			_ = twampctl.Refuse(nc)
			nc.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.perHost[host]++
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			c.serve(ctx)
			s.mu.Lock()
			delete(s.conns, c)
			if s.perHost[host]--; s.perHost[host] <= 0 {
				delete(s.perHost, host)
			}
			s.mu.Unlock()
		}()
	}
}

// controlConn is one TWAMP-Control connection and the sessions it negotiated.
type controlConn struct {
	s        *Server
	nc       net.Conn
	ctl      *twampctl.Conn
	log      logrus.FieldLogger
	identity string
	limits   Limits
	sessions map[[16]byte]*session
	order    [][16]byte
	since    time.Time    // accepted
	held     atomic.Int32 // sessions requested or running, not yet ended
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

func (c *controlConn) serve(ctx context.Context) {
	s := c.s
	defer c.nc.Close()
	c.log = s.log.WithField("peer", c.nc.RemoteAddr().String())
	// The handshake has its own short deadline; SERVWAIT applies after it (issue 11 H2).
	_ = c.nc.SetDeadline(time.Now().Add(min(s.cfg.HandshakeTimeout, s.cfg.ServWait)))
	ctl, err := twampctl.ServerHandshake(c.nc, twampctl.ServerConfig{
		Modes: s.cfg.Modes | SupportedExtensions,
		Count: s.cfg.Count,
		Secret: func(id string) ([]byte, bool) {
			k, ok := s.cfg.Keys[id]
			return k, ok
		},
	})
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		s.m.handshakeTimeouts.Add(1)
		s.refuseLog.warn(c.log, "control connection closed: no Set-Up-Response within --handshake-timeout")
		return
	case errors.Is(err, twampctl.ErrAuth):
		s.m.authFailures.Add(1)
		c.log.WithError(err).Warn("control connection rejected: authentication failed")
		return
	case err != nil:
		s.m.protocolErrors.Add(1)
		c.log.WithError(err).Info("control connection setup failed")
		return
	case ctl == nil:
		c.log.Info("client abandoned the connection (Mode 0)")
		return
	}
	_ = c.nc.SetDeadline(time.Time{})
	c.ctl, c.identity = ctl, ctl.Identity
	c.log = c.log.WithField("mode", ctl.Mode().Security().String())
	if c.identity != "" {
		c.log = c.log.WithField("identity", c.identity)
	}
	c.limits = s.cfg.Limits.For(c.identity)
	c.log.Info("control connection established")
	defer c.cleanup()
	for {
		// SERVWAIT runs while no session is in progress (RFC 5357 §3.1).
		if c.running() == 0 {
			_ = c.nc.SetReadDeadline(time.Now().Add(s.cfg.ServWait))
		} else {
			_ = c.nc.SetReadDeadline(time.Time{})
		}
		cmd, msg, err := ctl.ReadCommand()
		if err != nil {
			var ne net.Error
			switch {
			case errors.Is(err, twampctl.ErrCommand):
				s.m.protocolErrors.Add(1)
				c.log.WithField("command", int(cmd)).Warn("unsupported command; answering Accept=3 and closing")
				_ = c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
				_ = ctl.Send(&twampctl.AcceptSession{Accept: twampctl.AcceptNotSupported})
			case errors.Is(err, twampctl.ErrHMAC):
				s.m.protocolErrors.Add(1)
				c.log.WithError(err).Warn("command failed authentication; closing")
			case errors.As(err, &ne) && ne.Timeout():
				s.m.servwaitExpired.Add(1)
				c.log.Info("SERVWAIT expired; closing idle control connection")
			case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed):
				c.log.Debug("control connection closed by client")
			default:
				c.log.WithError(err).Info("control connection ended")
			}
			return
		}
		_ = c.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if err := c.handle(ctx, cmd, msg); err != nil {
			c.log.WithError(err).Warn("closing control connection")
			return
		}
	}
}

func (c *controlConn) running() int {
	n := 0
	for _, ss := range c.sessions {
		if ss.started.Load() && !ss.stopped.Load() {
			n++
		}
	}
	return n
}

func (c *controlConn) handle(ctx context.Context, cmd twampctl.Command, msg []byte) error {
	switch cmd {
	case twampctl.CmdRequestTWSession:
		var rq twampctl.RequestTWSession
		if err := rq.UnmarshalBinary(msg); err != nil {
			return err
		}
		as := c.request(ctx, &rq)
		return c.ctl.Send(&as)
	case twampctl.CmdStartSessions:
		var n int
		for _, sid := range c.order {
			if ss := c.sessions[sid]; ss != nil && !ss.started.Load() {
				c.s.startSession(ss)
				n++
			}
		}
		c.log.WithField("sessions", n).Info("Start-Sessions")
		return c.ctl.Send(&twampctl.StartAck{Accept: twampctl.AcceptOK})
	case twampctl.CmdStopSessions:
		var st twampctl.StopSessions
		if err := st.UnmarshalBinary(msg); err != nil {
			return err
		}
		running := c.running()
		if int(st.NumSessions) != running {
			c.s.m.stopMismatch.Add(1)
			l := c.log.WithField("declared", st.NumSessions).WithField("running", running)
			if c.s.cfg.StrictStop {
				l.Warn("Stop-Sessions does not account for all sessions; closing (strict)")
				return fmt.Errorf("stop-sessions count %d vs %d running", st.NumSessions, running)
			}
			l.Warn("Stop-Sessions does not account for all sessions; stopping them anyway")
		}
		if st.Accept != twampctl.AcceptOK {
			c.log.WithField("accept", st.Accept.String()).Info("client reports its results invalid")
		}
		for _, sid := range c.order {
			if ss := c.sessions[sid]; ss != nil {
				c.s.stopSession(ss)
			}
		}
		c.log.Info("Stop-Sessions")
		return nil
	case twampctl.CmdStartNSessions, twampctl.CmdStopNSessions:
		var nm twampctl.NSessions
		if err := nm.UnmarshalBinary(msg); err != nil {
			return err
		}
		ack := twampctl.NSessions{Command: cmd + 1, SIDs: nm.SIDs}
		if c.ctl.Mode()&twampctl.ModeIndividualSessionControl == 0 {
			ack.Accept = twampctl.AcceptNotSupported
			return c.ctl.Send(&ack)
		}
		for _, sid := range nm.SIDs {
			if c.sessions[sid] == nil {
				ack.Accept = twampctl.AcceptFailure
			}
		}
		if ack.Accept == twampctl.AcceptOK {
			for _, sid := range nm.SIDs {
				ss := c.sessions[sid]
				if cmd == twampctl.CmdStartNSessions {
					if !ss.started.Load() {
						c.s.startSession(ss)
					}
				} else {
					c.s.stopSession(ss)
				}
			}
		}
		c.log.WithField("sessions", len(nm.SIDs)).WithField("accept", ack.Accept.String()).Info(cmd.String())
		return c.ctl.Send(&ack)
	}
	return fmt.Errorf("unexpected %s", cmd)
}

// request validates a Request-TW-Session and creates the session (TW-C3, TW-C5, TW-C6).
func (c *controlConn) request(ctx context.Context, rq *twampctl.RequestTWSession) twampctl.AcceptSession {
	s := c.s
	reject := func(a twampctl.Accept, why string) twampctl.AcceptSession {
		s.m.sessionsRejected.Add(1)
		s.rejectLog.warn(c.log.WithField("reason", why).WithField("accept", a.String()), "Request-TW-Session rejected")
		return twampctl.AcceptSession{Accept: a}
	}
	if rq.ConfSender != 0 || rq.ConfReceiver != 0 || rq.ScheduleSlots != 0 || rq.Packets != 0 {
		return reject(twampctl.AcceptNotSupported, "Conf-Sender/Conf-Receiver/slots/packets must be 0")
	}
	mode := c.ctl.Mode()
	if mode&twampctl.ModeReflectOctets == 0 && (rq.OctetsToBeReflected != 0 || rq.PaddingToReflect != 0) {
		return reject(twampctl.AcceptNotSupported, "RFC 6038 reflect octets requested without the Reflect Octets mode")
	}
	if err := twampctl.NewReflectLayout(mode, rq.PaddingToReflect).Check(rq.PaddingLength); err != nil {
		return reject(twampctl.AcceptNotSupported, err.Error())
	}
	local, peer := addrPortOf(c.nc.LocalAddr()), addrPortOf(c.nc.RemoteAddr())
	sender, err := twampctl.AddrFromField(rq.IPVN, rq.SenderAddress)
	if err != nil {
		return reject(twampctl.AcceptNotSupported, err.Error())
	}
	receiver, _ := twampctl.AddrFromField(rq.IPVN, rq.ReceiverAddress)
	if !sender.IsValid() {
		sender = peer.Addr()
	}
	if !receiver.IsValid() {
		receiver = local.Addr()
	}
	if (rq.IPVN == 4) != receiver.Is4() || (rq.IPVN == 4) != sender.Is4() {
		return reject(twampctl.AcceptNotSupported, "address family differs from IPVN")
	}
	dscp, ok := twampctl.TypePDSCP(rq.TypeP)
	if !ok {
		return reject(twampctl.AcceptNotSupported, fmt.Sprintf("Type-P %#x is not a DSCP descriptor", rq.TypeP))
	}
	if c.limits.Deny {
		return reject(twampctl.AcceptFailure, "identity denied by limits")
	}
	if c.limits.MaxPadding > 0 && rq.PaddingLength > c.limits.MaxPadding {
		return reject(twampctl.AcceptPermanentResource, fmt.Sprintf("padding %d above the limit %d", rq.PaddingLength, c.limits.MaxPadding))
	}
	if rq.PaddingLength > 65000 {
		return reject(twampctl.AcceptPermanentResource, "padding larger than a UDP datagram")
	}
	s.mu.Lock()
	total, mine := len(s.sessions), s.perUser[c.identity]
	s.mu.Unlock()
	if s.cfg.MaxSessions > 0 && total >= s.cfg.MaxSessions {
		return reject(twampctl.AcceptTemporaryResource, "--max-sessions reached")
	}
	if c.limits.MaxSessions > 0 && mine >= c.limits.MaxSessions {
		return reject(twampctl.AcceptTemporaryResource, "per-user session limit reached")
	}
	if n := s.cfg.MaxSessionsPerConnection; n > 0 && len(c.sessions) >= n {
		return reject(twampctl.AcceptTemporaryResource, "--max-sessions-per-connection reached")
	}
	timeout := time.Duration(float64(rq.Timeout) / (1 << 32) * float64(time.Second))
	timeout = min(max(timeout, 0), s.cfg.MaxTimeout)
	ss, err := s.newSession(ctx, c, rq, sender, receiver, dscp, timeout)
	if err != nil {
		return reject(twampctl.AcceptTemporaryResource, err.Error())
	}
	c.sessions[ss.sid] = ss
	c.held.Add(1)
	c.order = append(c.order, ss.sid)
	as := twampctl.AcceptSession{Accept: twampctl.AcceptOK, Port: ss.local.Port(), SID: ss.sid}
	if mode&twampctl.ModeReflectOctets != 0 {
		// RFC 6038: confirm the Octets to be Reflected, and ask for Server Octets in every
		// test packet so the reflector can tell this session's packets apart.
		as.ReflectedOctets, as.ServerOctets = rq.OctetsToBeReflected, ss.refl.serverOctets
	}
	return as
}

// cleanup ends the connection's sessions: stopped ones finish their Timeout, others end now.
func (c *controlConn) cleanup() {
	for _, ss := range c.sessions {
		if !ss.stopped.Load() {
			ss.cancel()
		}
	}
	c.log.Info("control connection closed")
}

// NewSID builds a SID per RFC 4656 §3.5: receiver address (IPv6: low 32 bits) ‖ NTP time ‖ random.
func NewSID(receiver netip.Addr, now time.Time) [16]byte {
	var sid [16]byte
	if receiver.Is4() {
		a := receiver.As4()
		copy(sid[:4], a[:])
	} else {
		a := receiver.As16()
		copy(sid[:4], a[12:])
	}
	binary.BigEndian.PutUint64(sid[4:], uint64(timestamp.NTPFromTime(now)))
	_, _ = rand.Read(sid[12:])
	return sid
}

// Addrs returns the bound addresses once Run is listening.
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]net.Addr(nil), s.addrs...)
}

// sessionBatchFor is the reflector batch: small for per-session sockets, the reflector's
// default for the one TWAMP Light socket.
func sessionBatchFor(light bool) int {
	if light {
		return 0
	}
	return sessionBatch
}

// rateLog logs at most one warning per second and counts the ones it left out, so that a
// flood of refused connections shows in the log without filling it.
type rateLog struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (r *rateLog) warn(l logrus.FieldLogger, msg string) {
	r.mu.Lock()
	now := time.Now()
	if now.Sub(r.last) < time.Second {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	n := r.suppressed
	r.last, r.suppressed = now, 0
	r.mu.Unlock()
	if n > 0 {
		l = l.WithField("suppressed", n)
	}
	l.Warn(msg)
}

// hostKey is the unit --max-connections-per-host counts: the IPv4 address, or the /64 of an
// IPv6 address (one subscriber's prefix, where every address is the same attacker's).
func hostKey(a netip.Addr) netip.Addr {
	if a.Is6() && !a.Is4In6() {
		return netip.PrefixFrom(a, 64).Masked().Addr()
	}
	return a.Unmap()
}

// evictIdleLocked makes room for a newcomer when every control connection slot is taken: it
// closes the oldest connection, open longer than EvictIdleAfter (the handshake timeout),
// none of whose started sessions received a test packet (or started) within EvictIdleAfter.
// So connections that only wait, hoard requested sessions they never start (those end with
// the connection) or start sessions and send nothing cannot lock real clients out until
// SERVWAIT or REFWAIT: holding a slot takes test traffic, and --max-connections-per-host
// caps what one address holds. It reports whether it closed one; s.mu is held.
func (s *Server) evictIdleLocked(now time.Time) bool {
	measuring := map[*controlConn]bool{}
	for _, ss := range s.sessions {
		if measuring[ss.owner] || !ss.started.Load() {
			continue
		}
		last := time.Unix(0, ss.startAt.Load())
		if t, ok := s.refl.Table().LastSeen(ss.rs.Key); ok && t.After(last) {
			last = t
		}
		if now.Sub(last) <= s.cfg.EvictIdleAfter {
			measuring[ss.owner] = true
		}
	}
	var victim *controlConn
	for c := range s.conns {
		if !measuring[c] && now.Sub(c.since) > s.cfg.EvictIdleAfter && (victim == nil || c.since.Before(victim.since)) {
			victim = c
		}
	}
	if victim == nil {
		return false
	}
	s.m.connsEvicted.Add(1)
	s.refuseLog.warn(s.log.WithField("peer", victim.nc.RemoteAddr().String()).WithField("open_for", now.Sub(victim.since).Round(time.Millisecond).String()),
		"control connection without test traffic closed to make room (--max-connections reached)")
	victim.nc.Close()
	delete(s.conns, victim) // its slot is free now; its goroutine's own delete is a no-op
	return true
}
