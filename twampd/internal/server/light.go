package server

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/probekit/probekit/shared/reflector"
	"github.com/probekit/probekit/shared/udpsock"
)

// listenOptions are the socket options of every test socket (sessions and TWAMP Light): the
// reflector's (TTL and TOS delivery, batch buffers) with a receive buffer for ~150 ms of a
// 100 kpps session, kernel receive timestamps unless disabled, and blocking reads on request.
func (s *Server) listenOptions() udpsock.Options {
	opts := reflector.ListenOptions(0)
	opts.RxTimestamps = s.cfg.KernelTimestamps
	opts.ReadBuffer = sessionRcvBuf
	opts.Blocking = s.cfg.Blocking
	return opts
}

// startLight opens a TWAMP Light reflector socket (RFC 5357 Appendix I): no control
// connection; sessions are learned from the first packet of each sender address and port,
// each with its own sequence counter, in the unauthenticated layout (TW-L1).
// With Workers > 1 the address gets that many SO_REUSEPORT sockets, one worker each.
func (s *Server) startLight(ctx context.Context, addr string) (net.Addr, error) {
	var socks []*udpsock.Conn
	var err error
	if s.cfg.Workers > 1 {
		socks, err = udpsock.ListenGroup(ctx, "udp", addr, s.cfg.Workers, s.listenOptions())
	} else {
		var sock *udpsock.Conn
		sock, err = udpsock.Listen(ctx, "udp", addr, s.listenOptions())
		socks = []*udpsock.Conn{sock}
	}
	if err != nil {
		return nil, fmt.Errorf("twampd: TWAMP Light listen %s: %w", addr, err)
	}
	local := socks[0].LocalAddr()
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	s.log.WithField("addr", local.String()).WithField("rx_timestamps", socks[0].Features().RxTimestamp).
		WithField("sockets", len(socks)).Info("TWAMP Light reflector listening")
	for _, sock := range socks {
		_ = sock.SetTTL(255)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer sock.Close()
			if err := s.refl.Serve(ctx, sock); err != nil {
				s.log.WithError(err).WithField("addr", local.String()).Error("TWAMP Light reflector stopped")
			}
		}()
	}
	return net.UDPAddrFromAddrPort(local), nil
}
