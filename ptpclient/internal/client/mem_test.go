package client

import (
	"encoding/hex"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/ptp"
	"github.com/probekit/probekit/shared/udpsock"
)

// memTransport records what the client sends and never receives by itself.
type memTransport struct {
	mu     sync.Mutex
	local  netip.AddrPort
	sent   []sentPkt
	keep   bool
	closed chan struct{}
	once   sync.Once
}

type sentPkt struct {
	b  []byte
	to netip.AddrPort
}

func newMem(local string) *memTransport {
	return &memTransport{local: netip.MustParseAddrPort(local), keep: true, closed: make(chan struct{})}
}

func (t *memTransport) ReadBatch([]udpsock.Message) (int, error) {
	<-t.closed
	return 0, net.ErrClosed
}

func (t *memTransport) WriteTo(b []byte, to netip.AddrPort) (uint32, error) {
	if t.keep {
		t.mu.Lock()
		t.sent = append(t.sent, sentPkt{append([]byte(nil), b...), to})
		t.mu.Unlock()
	}
	return 0, nil
}
func (t *memTransport) WriteBatch(msgs []udpsock.Message) (int, error) {
	for i := range msgs {
		t.WriteTo(msgs[i].Buf[:msgs[i].N], msgs[i].Addr)
	}
	return len(msgs), nil
}
func (t *memTransport) LocalAddr() netip.AddrPort                  { return t.local }
func (t *memTransport) TxStamps() bool                             { return false }
func (t *memTransport) Close() error                               { t.once.Do(func() { close(t.closed) }); return nil }
func (t *memTransport) TxTimestamps(func(uint32, time.Time)) error { return nil }

func (t *memTransport) take() []sentPkt {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.sent
	t.sent = nil
	return s
}

type vector struct {
	Hex string `json:"hex"`
}

func vectors(t testing.TB) map[string][]byte {
	t.Helper()
	b, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]vector
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for k, x := range v {
		out[k], _ = hex.DecodeString(x.Hex)
	}
	return out
}

var vecUUID, _ = ptp.ParseUUID("0f1e2d3c4b5a69788796a5b4c3d2e1f0")

// newTestClient returns a client on a memTransport, opened but not running.
func newTestClient(t testing.TB, legacy bool) (*Client, *memTransport) {
	t.Helper()
	tr := newMem("10.0.1.2:40000")
	c, err := New(Config{Server: netip.MustParseAddrPort("192.0.2.1:23456"), Transport: tr, UUID: vecUUID, Legacy: legacy, NoSTUN: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	return c, tr
}

func feed(c *Client, b []byte, from string) {
	var m ptp.Message
	d := udpsock.Message{Buf: b, N: len(b), Addr: netip.MustParseAddrPort(from), RxTime: time.Now()}
	c.handle(&m, &d)
	c.mu.Lock()
	c.flush()
	c.mu.Unlock()
}

type netipAddrPort = netip.AddrPort

func mustParseAP(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
