package server

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/probekit/probekit/shared/reflector"
	"github.com/probekit/probekit/shared/udpsock"
)

// startLight opens a TWAMP Light reflector socket (RFC 5357 Appendix I): no control
// connection; sessions are learned from the first packet of each sender address and port,
// each with its own sequence counter, in the unauthenticated layout (TW-L1).
func (s *Server) startLight(ctx context.Context, addr string) (net.Addr, error) {
	opts := reflector.ListenOptions(0)
	opts.RxTimestamps = s.cfg.KernelTimestamps
	opts.ReadBuffer = sessionRcvBuf
	sock, err := udpsock.Listen(ctx, "udp", addr, opts)
	if err != nil {
		return nil, fmt.Errorf("twampd: TWAMP Light listen %s: %w", addr, err)
	}
	_ = sock.SetTTL(255)
	local := sock.LocalAddr()
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	s.log.WithField("addr", local.String()).Info("TWAMP Light reflector listening")
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer sock.Close()
		_ = s.reflectLoop(ctx, sock, local, true, 0, nil, nil)
	}()
	return net.UDPAddrFromAddrPort(local), nil
}
