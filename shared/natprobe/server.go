package natprobe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/sirupsen/logrus"
)

// SendFunc writes one datagram b to addr on the caller's socket. b is only valid during the call.
type SendFunc func(b []byte, addr netip.AddrPort) error

// ListenFunc opens a UDP socket on addr ("ip:port"); net.ListenPacket("udp", addr) by default,
// an in-memory network in tests.
type ListenFunc func(network, addr string) (net.PacketConn, error)

// ServerConfig configures a STUN server that shares the caller's main socket.
type ServerConfig struct {
	// Primary is the main socket's address (IP1:P1). With Other set its IP must be a specific
	// address, because clients are told where the other three sockets are.
	Primary netip.AddrPort
	// Send writes on the main socket.
	Send SendFunc
	// Other is the alternate address for RFC 5780 (IP2:P2). Its port 0 means P1+1. Zero (the
	// default) serves plain Binding and refuses CHANGE-REQUEST.
	Other netip.AddrPort
	// Listen opens the extra sockets (default net.ListenPacket).
	Listen   ListenFunc
	Software string
	Log      logrus.FieldLogger
}

// ServerStats counts what a Server did.
type ServerStats struct {
	// Requests is every STUN message handed to the server; Answered the ones it answered
	// (success or error response); Ignored the non-requests; Malformed the undecodable ones;
	// SendErrors the answers that could not be sent.
	Requests, Answered, Ignored, Malformed, SendErrors uint64
}

// Server answers STUN Binding on the caller's main socket (the caller hands it every STUN
// message that arrives there, see IsSTUN) and, with an alternate address, on the three other
// sockets RFC 5780 needs, which it opens and reads itself.
type Server struct {
	resp  Responder
	send  map[netip.AddrPort]SendFunc
	conns []net.PacketConn
	log   logrus.FieldLogger
	wg    sync.WaitGroup

	requests, answered, ignored, malformed, sendErrors atomic.Uint64
	bufs                                               sync.Pool
}

// NewServer starts a STUN server. The extra sockets close when ctx ends or on Close.
func NewServer(ctx context.Context, cfg ServerConfig) (*Server, error) {
	if cfg.Send == nil {
		return nil, errors.New("natprobe: ServerConfig.Send is nil")
	}
	if cfg.Log == nil {
		l := logrus.New()
		l.SetLevel(logrus.PanicLevel)
		cfg.Log = l
	}
	if cfg.Listen == nil {
		cfg.Listen = net.ListenPacket
	}
	s := &Server{
		resp: Responder{Primary: cfg.Primary, Software: cfg.Software},
		send: map[netip.AddrPort]SendFunc{cfg.Primary: cfg.Send},
		log:  cfg.Log,
	}
	s.bufs.New = func() any { b := make([]byte, 0, 1500); return &b }
	if !cfg.Other.IsValid() || !cfg.Other.Addr().IsValid() {
		return s, nil
	}
	p1 := cfg.Primary
	if !p1.Addr().IsValid() || p1.Addr().IsUnspecified() {
		return nil, fmt.Errorf("natprobe: an alternate address needs a specific primary address, not %v", p1)
	}
	other := cfg.Other
	if other.Port() == 0 {
		if p1.Port() == 65535 {
			return nil, fmt.Errorf("natprobe: primary port 65535 has no next port for the alternate address: give %v a port", other.Addr())
		}
		other = netip.AddrPortFrom(other.Addr(), p1.Port()+1)
	}
	if other.Addr().Is4() != p1.Addr().Is4() {
		return nil, fmt.Errorf("natprobe: alternate address %v is not in the family of %v", other, p1)
	}
	if other.Addr() == p1.Addr() || other.Port() == p1.Port() {
		return nil, fmt.Errorf("natprobe: alternate address %v must differ from %v in address and port", other, p1)
	}
	s.resp.Other = other
	for _, a := range []netip.AddrPort{
		netip.AddrPortFrom(p1.Addr(), other.Port()),
		netip.AddrPortFrom(other.Addr(), p1.Port()),
		other,
	} {
		c, err := cfg.Listen("udp", a.String())
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("natprobe: RFC 5780 socket: %w", err)
		}
		s.conns = append(s.conns, c)
		s.send[a] = func(b []byte, to netip.AddrPort) error {
			_, err := c.WriteTo(b, net.UDPAddrFromAddrPort(to))
			return err
		}
	}
	for i, c := range s.conns {
		local := []netip.AddrPort{netip.AddrPortFrom(p1.Addr(), other.Port()), netip.AddrPortFrom(other.Addr(), p1.Port()), other}[i]
		s.wg.Add(1)
		go s.serve(c, local)
	}
	if ctx != nil {
		go func() { <-ctx.Done(); s.Close() }()
	}
	return s, nil
}

// Other returns the alternate address (IP2:P2) announced in OTHER-ADDRESS, invalid without one.
func (s *Server) Other() netip.AddrPort { return s.resp.Other }

// Handle answers one STUN message that arrived on the main socket from src. Malformed messages
// and non-requests are counted and dropped.
func (s *Server) Handle(req []byte, src netip.AddrPort) {
	s.handle(req, src, s.resp.Primary)
}

func (s *Server) handle(req []byte, src, local netip.AddrPort) {
	s.requests.Add(1)
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	out, from, err := s.resp.Respond((*bp)[:0], req, src, local)
	*bp = out[:0]
	switch {
	case errors.Is(err, ErrNotBindingRequest):
		s.ignored.Add(1)
		return
	case err != nil:
		s.malformed.Add(1)
		s.log.WithError(err).WithField("from", src).Debug("STUN: dropped malformed message")
		return
	}
	send := s.send[from]
	if send == nil {
		send = s.send[local]
	}
	if err := send(out, src); err != nil {
		s.sendErrors.Add(1)
		s.log.WithError(err).WithField("to", src).Debug("STUN: send failed")
		return
	}
	s.answered.Add(1)
}

func (s *Server) serve(c net.PacketConn, local netip.AddrPort) {
	defer s.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, addr, err := c.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// Transient errors (ICMP-induced ECONNREFUSED and the like) must not stop the loop.
			s.log.WithError(err).Debug("STUN: read error")
			continue
		}
		ua, ok := addr.(*net.UDPAddr)
		if !ok || !IsSTUN(buf[:n]) {
			s.malformed.Add(1)
			continue
		}
		src := ua.AddrPort()
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		s.handle(buf[:n], src, local)
	}
}

// Stats returns the counters.
func (s *Server) Stats() ServerStats {
	return ServerStats{Requests: s.requests.Load(), Answered: s.answered.Load(), Ignored: s.ignored.Load(),
		Malformed: s.malformed.Load(), SendErrors: s.sendErrors.Load()}
}

// Close closes the extra sockets and waits for their readers; the main socket is the caller's.
func (s *Server) Close() error {
	var first error
	for _, c := range s.conns {
		if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) && first == nil {
			first = err
		}
	}
	s.wg.Wait()
	return first
}
