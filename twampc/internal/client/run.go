package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/shared/timestamp"
	"github.com/probekit/probekit/shared/twampctl"
	"github.com/probekit/probekit/shared/udpsock"
)

// Columns of the per-packet output (--json lines, --format csv). New
// columns go at the end so CSV consumers that index columns keep working; err_us is the
// packet's round-trip error bound (Record.Err, twping -v's "err=").
var Columns = []string{"type", "session", "seq", "reflector_seq", "received", "t1_ns", "t1_kernel_ns", "t2_ns", "t3_ns", "t4_ns",
	"rtt_us", "send_us", "reflect_us", "sender_ttl", "ttl", "fwd_tos", "rev_tos", "err_us"}

// Output says where and how results go.
type Output struct {
	W       io.Writer
	Format  cliutil.Format
	Verbose bool // twping -v per-packet lines in text mode
	// Unit of the text summary's times (twping -n); zero means milliseconds.
	Unit Unit
	// Raw prints twping's -R per-packet lines instead of any other output (see WriteRaw).
	Raw bool
}

func addrOf(a net.Addr) netip.AddrPort {
	switch v := a.(type) {
	case *net.TCPAddr:
		ap := v.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	case *net.UDPAddr:
		ap := v.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

// ErrControlLost: the TWAMP-Control connection failed during or at the end of the test.
var ErrControlLost = errors.New("TWAMP-Control connection lost")

// Run measures as configured and writes the results; it returns them for callers (tests).
// An interrupted run (ctx cancelled) still reports what it measured. The results are written
// complete before any error: a lost control connection (ErrControlLost), a session that got
// no reply (sender.ErrNoReply) or whose replies stopped (sender.ErrReflectorGone).
func Run(ctx context.Context, cfg Config, out Output) ([]*Result, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	var sessions []*session
	var ctl *twampctl.Conn
	used := map[uint16]bool{}
	closeAll := func() {
		for _, s := range sessions {
			s.sock.Close()
		}
		if ctl != nil {
			ctl.Close()
		}
	}
	defer closeAll()
	if cfg.Light {
		raddr, err := net.ResolveUDPAddr(udpNet(cfg.Network), hostPort(cfg.Target))
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", cfg.Target, err)
		}
		remote := addrOf(raddr)
		// The route's source address (a connected probe socket sends nothing) names the
		// sender in the output and lets the test socket bind to it.
		local := netip.IPv4Unspecified()
		if remote.Addr().Is6() {
			local = netip.IPv6Unspecified()
		}
		if probe, err := net.DialUDP(udpNet(cfg.Network), nil, raddr); err == nil {
			local = addrOf(probe.LocalAddr()).Addr()
			probe.Close()
		}
		if cfg.Source != "" {
			if local, err = netip.ParseAddr(cfg.Source); err != nil {
				return nil, fmt.Errorf("bad source address %q", cfg.Source)
			}
		}
		pad := cfg.Padding
		if pad < 0 {
			pad = 27
		}
		for i := 0; i < cfg.Sessions; i++ {
			sock, err := listenTest(ctx, local, cfg.TestPortLo, cfg.TestPortHi, used)
			if err != nil {
				return nil, fmt.Errorf("test socket: %w", err)
			}
			s := newSession(i, &cfg, sock, remote, twampctl.ModeUnauthenticated, pad)
			s.res.Mode = "light"
			sessions = append(sessions, s)
		}
	} else {
		var err error
		ctl, err = connect(ctx, &cfg)
		if err != nil {
			return nil, err
		}
		if sessions, err = requestSessions(ctx, &cfg, ctl, used); err != nil {
			return nil, err
		}
		sids := make([][16]byte, len(sessions))
		for i, s := range sessions {
			sids[i] = s.sid
		}
		_ = ctl.NetConn().SetDeadline(time.Now().Add(cfg.ConnectTimeout))
		if cfg.Individual && ctl.Mode()&twampctl.ModeIndividualSessionControl != 0 {
			if _, err := ctl.NSessionsCommand(twampctl.CmdStartNSessions, sids); err != nil {
				return nil, fmt.Errorf("%w", err)
			}
		} else if err := ctl.StartSessions(); err != nil {
			return nil, fmt.Errorf("%w", err)
		}
		_ = ctl.NetConn().SetDeadline(time.Time{})
		log.WithField("sessions", len(sessions)).WithField("mode", ctl.Mode().String()).Info("test sessions started")
	}

	start := time.Now().Add(cfg.StartDelay)
	for _, s := range sessions {
		if err := s.newPipeline(s.sock, start, cfg.LossTimeout, log); err != nil {
			return nil, err
		}
	}
	// During the test the server sends nothing on TWAMP-Control (Stop-Sessions comes from
	// the client, RFC 5357 §3.8), so a read that returns means the connection is gone (the
	// server died or dropped us): every session stops at once and the run fails like
	// twping's "Test session(s) Failed", after printing what was measured.
	var ctlErr error
	watchDone := make(chan struct{})
	var stopWatch atomic.Bool
	if ctl != nil {
		go func() {
			defer close(watchDone)
			var b [1]byte
			_, err := ctl.NetConn().Read(b[:])
			if stopWatch.Load() {
				return
			}
			if err == nil {
				err = errors.New("unexpected data from the server during the test")
			}
			ctlErr = fmt.Errorf("%w: %v", ErrControlLost, err)
			for _, s := range sessions {
				s.p.Abort(ctlErr)
			}
		}()
	} else {
		close(watchDone)
	}

	var wg sync.WaitGroup
	errs := make([]error, len(sessions))
	for i, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := s.p.Run(ctx)
			if st != nil {
				s.collect(st)
			}
			if err != nil && !errors.Is(err, ErrControlLost) {
				errs[i] = fmt.Errorf("session %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	if ctl != nil {
		stopWatch.Store(true)
		_ = ctl.NetConn().SetReadDeadline(time.Now()) // ends the watcher's read
		<-watchDone
	}

	if ctl != nil && ctlErr == nil {
		_ = ctl.NetConn().SetDeadline(time.Now().Add(cfg.ConnectTimeout))
		stopped := false
		if cfg.Individual && ctl.Mode()&twampctl.ModeIndividualSessionControl != 0 {
			sids := make([][16]byte, len(sessions))
			for i, s := range sessions {
				sids[i] = s.sid
			}
			if _, err := ctl.NSessionsCommand(twampctl.CmdStopNSessions, sids); err != nil {
				ctlErr = fmt.Errorf("%w: Stop-N-Sessions: %v", ErrControlLost, err)
			} else {
				stopped = true
			}
		}
		// Stop-Sessions must count the sessions still in progress (RFC 5357 §3.8).
		if !stopped && ctlErr == nil {
			if err := ctl.StopSessions(uint32(len(sessions)), twampctl.AcceptOK); err != nil {
				ctlErr = fmt.Errorf("%w: Stop-Sessions: %v", ErrControlLost, err)
			}
		}
	}
	results := make([]*Result, len(sessions))
	for i, s := range sessions {
		results[i] = s.res
	}
	if ctlErr != nil {
		// twping's words, after the results gathered so far.
		errs = append([]error{fmt.Errorf("%w; Test session(s) Failed", ctlErr)}, errs...)
	}
	if err := write(out, &cfg, sessions); err != nil {
		return results, err
	}
	return results, errors.Join(errs...)
}

func udpNet(tcpNet string) string {
	switch tcpNet {
	case "tcp4":
		return "udp4"
	case "tcp6":
		return "udp6"
	}
	return "udp"
}

func newSession(i int, cfg *Config, sock *udpsock.Conn, remote netip.AddrPort, mode twampctl.Mode, pad int) *session {
	s := &session{idx: i, sock: sock, local: sock.LocalAddr(), remote: remote, mode: mode, padding: pad,
		dscp: cfg.DSCP, count: cfg.Count, schedule: cfg.Schedule, zeroPad: cfg.ZeroPadding, ee: clockEE(),
		records: make([]Record, cfg.Count)}
	s.res = &Result{Session: i, Sender: s.local.String(), Reflector: remote.String(), DSCP: cfg.DSCP, Padding: pad}
	_ = sock.SetTTL(255)
	if cfg.DSCP != 0 {
		_ = sock.SetTOS(cfg.DSCP << 2)
	}
	return s
}

// connect dials the server and runs connection setup.
func connect(ctx context.Context, cfg *Config) (*twampctl.Conn, error) {
	d := net.Dialer{Timeout: cfg.ConnectTimeout}
	if cfg.Source != "" {
		a, err := netip.ParseAddr(cfg.Source)
		if err != nil {
			return nil, fmt.Errorf("bad source address %q", cfg.Source)
		}
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, 0))
	}
	nc, err := d.DialContext(ctx, cfg.Network, hostPort(cfg.Target))
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	_ = nc.SetDeadline(time.Now().Add(cfg.ConnectTimeout))
	ext := twampctl.Mode(0)
	if cfg.Individual {
		ext |= twampctl.ModeIndividualSessionControl
	}
	if cfg.DSCPECN {
		ext |= twampctl.ModeDSCPECN
	}
	if cfg.ReflectOctets {
		ext |= twampctl.ModeReflectOctets
	}
	if cfg.Symmetric {
		ext |= twampctl.ModeSymmetricalSize
	}
	ctl, err := twampctl.ClientHandshake(nc, twampctl.ClientConfig{Modes: cfg.Modes, Extensions: ext,
		Identity: cfg.Identity, Secret: cfg.Secret})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("%s: %w", cfg.Target, err)
	}
	cfg.Logger.WithField("mode", ctl.Mode().String()).WithField("server", nc.RemoteAddr().String()).Info("control connection established")
	return ctl, nil
}

// requestSessions binds a socket and sends Request-TW-Session for each session.
func requestSessions(ctx context.Context, cfg *Config, ctl *twampctl.Conn, used map[uint16]bool) ([]*session, error) {
	local, remote := addrOf(ctl.NetConn().LocalAddr()).Addr(), addrOf(ctl.NetConn().RemoteAddr()).Addr()
	mode := ctl.Mode().TestSecurity()
	monitor := ctl.Mode()&twampctl.ModeDSCPECN != 0
	if cfg.DSCPECN && !monitor {
		cfg.Logger.Warn("server does not offer RFC 7750 DSCP and ECN monitoring; forward DS field not reported")
	}
	neg := ctl.Mode()
	if cfg.ReflectOctets && neg&twampctl.ModeReflectOctets == 0 {
		return nil, fmt.Errorf("server does not offer RFC 6038 reflect octets (negotiated %s)", neg)
	}
	if cfg.Symmetric && neg&twampctl.ModeSymmetricalSize == 0 {
		return nil, fmt.Errorf("server does not offer RFC 6038 symmetrical size (negotiated %s)", neg)
	}
	reflectLen := 0
	if cfg.ReflectOctets {
		reflectLen = cfg.ReflectPadding
		if reflectLen < 0 {
			reflectLen = twampctl.ServerOctetsLen
		}
	}
	layout := twampctl.NewReflectLayout(neg, uint16(reflectLen))
	pad := cfg.Padding
	if pad < 0 {
		// Equal sizes both ways, plus room for the reflected octets.
		pad = max(0, layout.ReflectorOff-layout.SenderOff) + reflectLen
		if cfg.ReflectOctets {
			pad = max(pad, twampctl.ServerOctetsLen)
		}
	}
	if err := layout.Check(uint32(pad)); err != nil {
		return nil, err
	}
	ipvn := uint8(4)
	if local.Is6() {
		ipvn = 6
	}
	var out []*session
	for i := 0; i < cfg.Sessions; i++ {
		sock, err := listenTest(ctx, local, cfg.TestPortLo, cfg.TestPortHi, used)
		if err != nil {
			for _, s := range out {
				s.sock.Close()
			}
			return nil, fmt.Errorf("test socket: %w", err)
		}
		lp := sock.LocalAddr().Port()
		rq := twampctl.RequestTWSession{
			IPVN: ipvn, SenderPort: lp, ReceiverPort: lp, PaddingLength: uint32(pad),
			StartTime: uint64(timestamp.NTPFromTime(time.Now().Add(cfg.StartDelay))),
			Timeout:   ntpDuration(cfg.LossTimeout), TypeP: twampctl.TypePFromDSCP(cfg.DSCP),
		}
		if cfg.ReflectOctets {
			rq.OctetsToBeReflected, rq.PaddingToReflect = cfg.OctetsToBeReflected, uint16(reflectLen)
		}
		if !cfg.ZeroAddresses {
			rq.SenderAddress, rq.ReceiverAddress = twampctl.AddrField(local), twampctl.AddrField(remote)
		}
		as, err := ctl.RequestSession(&rq)
		if err != nil {
			sock.Close()
			for _, s := range out {
				s.sock.Close()
			}
			return nil, fmt.Errorf("session %d: %w", i, err)
		}
		s := newSession(i, cfg, sock, netip.AddrPortFrom(remote, as.Port), mode, pad) // TW-C4
		if cfg.ReflectOctets && as.ReflectedOctets != cfg.OctetsToBeReflected {
			sock.Close()
			for _, o := range out {
				o.sock.Close()
			}
			return nil, fmt.Errorf("session %d: server returned Reflected Octets %04x, want %04x (RFC 6038)", i, as.ReflectedOctets, cfg.OctetsToBeReflected)
		}
		s.sid = as.SID
		s.monitor = monitor
		s.symmetric, s.reflect, s.layout, s.serverOctets = neg&twampctl.ModeSymmetricalSize != 0, cfg.ReflectOctets, layout, as.ServerOctets
		s.res.Symmetric, s.res.Reflect = s.symmetric, s.reflect
		s.res.ReflectedOctets, s.res.ServerOctets, s.res.ReflectPadding = as.ReflectedOctets, as.ServerOctets, reflectLen
		s.prepare()
		s.res.Monitor = monitor
		s.res.SID = as.SID
		s.res.Mode = ctl.Mode().Security().String()
		if mode == twampctl.ModeAuthenticated || mode == twampctl.ModeEncrypted {
			if s.tc, err = twampctl.NewTestCrypto(mode, as.SID, ctl.Keys()); err != nil {
				return nil, err
			}
			s.rtc = s.tc.Clone()
		}
		out = append(out, s)
	}
	return out, nil
}

func write(o Output, cfg *Config, sessions []*session) error {
	if o.W == nil {
		return nil
	}
	if o.Raw {
		for _, s := range sessions {
			if err := s.writeRaw(o.W); err != nil {
				return err
			}
		}
		return nil
	}
	u := o.Unit
	if u == 0 {
		u = 'm'
	}
	if o.Format == cliutil.FormatText && o.Verbose {
		for _, s := range sessions {
			s.res.writePackets(o.W, s.records[:s.sent], u)
		}
	}
	if o.Format != cliutil.FormatText {
		em := cliutil.NewEmitter(o.W, o.Format, Columns...)
		for _, s := range sessions {
			for i := range s.records[:s.sent] {
				r := &s.records[i]
				if r.Received {
					if err := em.Emit("packet", s.idx, r.Seq, r.ReflectorSeq, true, r.T1, r.T1Kernel, r.T2, r.T3, r.T4,
						us(r.RTT()), us(time.Duration(r.T2-r.Depart())), us(time.Duration(r.T4-r.T3)), r.SenderTTL, r.TTL, r.FwdTOS, r.RevTOS, r.Err()*1e6); err != nil {
						return err
					}
				} else if err := em.Emit("packet", s.idx, r.Seq, 0, false, r.T1, r.T1Kernel, 0, 0, 0, 0.0, 0.0, 0.0, 0, 0, 0, 0, 0.0); err != nil {
					return err
				}
			}
		}
		if err := em.Flush(); err != nil {
			return err
		}
	}
	switch o.Format {
	case cliutil.FormatJSON:
		enc := json.NewEncoder(o.W)
		for _, s := range sessions {
			if err := enc.Encode(s.res.Summary(cfg.Percentiles)); err != nil {
				return err
			}
		}
	case cliutil.FormatText:
		for _, s := range sessions {
			s.res.WriteTextUnit(o.W, cfg.Percentiles, u)
		}
	}
	return nil
}
