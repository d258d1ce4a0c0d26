package client

import (
	"context"
	"net/netip"
	"testing"

	"github.com/probekit/probekit/shared/natprobe"
	"github.com/probekit/probekit/shared/natprobe/natsim"
)

var (
	stunA = netip.MustParseAddrPort("45.71.0.1:3478")
	stunB = netip.MustParseAddrPort("45.71.0.2:3479")
)

// stunSrv runs an RFC 5780 STUN server (two addresses) on the simulated network.
func stunSrv(t testing.TB, n *natsim.Network) {
	c, err := n.Listen(stunA)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := natprobe.NewServer(context.Background(), natprobe.ServerConfig{Primary: stunA, Other: stunB, Listen: n.ListenPacket,
		Send: func(b []byte, to netip.AddrPort) error { _, err := c.WriteToAddrPort(b, to); return err }})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 1500)
		for {
			k, src, err := c.ReadFromAddrPort(buf)
			if err != nil {
				return
			}
			srv.Handle(buf[:k], src)
		}
	}()
	t.Cleanup(func() { c.Close(); srv.Close() })
}
