package client

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"

	"github.com/probekit/probekit/shared/udpsock"
)

// scriptTransport plays a script of read results, then reports the socket closed.
type scriptTransport struct {
	*memTransport
	steps []func(msgs []udpsock.Message) (int, error)
}

func (s *scriptTransport) ReadBatch(msgs []udpsock.Message) (int, error) {
	if len(s.steps) == 0 {
		return 0, net.ErrClosed
	}
	f := s.steps[0]
	s.steps = s.steps[1:]
	return f(msgs)
}

// TestReadLoopSurvives: ICMP errors on the socket (ECONNREFUSED from a peer that went away),
// garbage and an oversized (truncated) datagram do not stop the client's read loop: a listed
// peer's probe after them is still answered, and only a closed socket ends the loop.
func TestReadLoopSurvives(t *testing.T) {
	vec := vectors(t)
	mem := newMem("10.0.1.2:40000")
	datagram := func(b []byte, from string) func([]udpsock.Message) (int, error) {
		return func(msgs []udpsock.Message) (int, error) {
			msgs[0].N = copy(msgs[0].Buf, b)
			msgs[0].Addr = netip.MustParseAddrPort(from)
			return 1, nil
		}
	}
	refused := func([]udpsock.Message) (int, error) {
		return 0, os.NewSyscallError("recvmmsg", syscall.ECONNREFUSED)
	}
	big := make([]byte, 4096)
	copy(big, vec["c2c_beacon"])
	tr := &scriptTransport{memTransport: mem, steps: []func([]udpsock.Message) (int, error){
		datagram(vec["s2c_beacon"], "192.0.2.1:23456"),
		refused,
		datagram([]byte{1, 2, 0xff}, "203.0.113.9:50001"),
		refused,
		datagram(big, "203.0.113.9:50001"),
		datagram(vec["c2c_beacon"], "203.0.113.9:50001"),
	}}
	c, err := New(Config{Server: netip.MustParseAddrPort("192.0.2.1:23456"), Transport: tr, UUID: vecUUID, Legacy: true, NoSTUN: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := c.readLoop(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("readLoop: %v", err)
	}
	var replies int
	for _, s := range mem.take() {
		if s.to.String() == "203.0.113.9:50001" && string(s.b) == string(vec["c2c_yourts"]) {
			replies++
		}
	}
	n := c.Counters()
	if replies != 1 || n.Malformed+n.BadChecksum != 2 || n.Received != 4 {
		t.Errorf("%d replies to the peer's probe (want 1), counters %+v", replies, n)
	}
}
