package server

import (
	"context"
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

// memNet is an in-memory UDP network: datagrams go to the conn bound at the destination.
type memNet struct {
	mu    sync.Mutex
	conns map[netip.AddrPort]*memConn
}

type datagram struct {
	b    []byte
	from netip.AddrPort
}

type memConn struct {
	n      *memNet
	addr   netip.AddrPort
	ch     chan datagram
	closed chan struct{}
	once   sync.Once
}

func newMemNet() *memNet { return &memNet{conns: map[netip.AddrPort]*memConn{}} }

func (n *memNet) listen(a string) *memConn {
	ap := netip.MustParseAddrPort(a)
	c := &memConn{n: n, addr: ap, ch: make(chan datagram, 4096), closed: make(chan struct{})}
	n.mu.Lock()
	n.conns[ap] = c
	n.mu.Unlock()
	return c
}

func (c *memConn) ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	select {
	case d := <-c.ch:
		return copy(b, d.b), d.from, nil
	case <-c.closed:
		return 0, netip.AddrPort{}, net.ErrClosed
	}
}

func (c *memConn) WriteToUDPAddrPort(b []byte, to netip.AddrPort) (int, error) {
	c.n.mu.Lock()
	dst := c.n.conns[to]
	c.n.mu.Unlock()
	if dst == nil {
		return len(b), nil // nobody listening: lost, as UDP
	}
	select {
	case dst.ch <- datagram{append([]byte(nil), b...), c.addr}:
	default:
	}
	return len(b), nil
}

func (c *memConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, a, err := c.ReadFromUDPAddrPort(b)
	return n, net.UDPAddrFromAddrPort(a), err
}
func (c *memConn) WriteTo(b []byte, a net.Addr) (int, error) {
	return c.WriteToUDPAddrPort(b, a.(*net.UDPAddr).AddrPort())
}
func (c *memConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}
func (c *memConn) LocalAddr() net.Addr              { return net.UDPAddrFromAddrPort(c.addr) }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// recv waits for the next datagram (the timeout only guards against a hang; nothing asserts time).
func (c *memConn) recv(t *testing.T) datagram {
	t.Helper()
	select {
	case d := <-c.ch:
		return d
	case <-time.After(20 * time.Second):
		t.Fatalf("%v: no datagram", c.addr)
	}
	return datagram{}
}

// recvMsg waits for the next datagram and decodes it.
func (c *memConn) recvMsg(t *testing.T) (*ptp.Message, []byte) {
	t.Helper()
	d := c.recv(t)
	m := &ptp.Message{}
	if err := m.UnmarshalBinary(d.b); err != nil {
		t.Fatalf("%v received undecodable %x: %v", c.addr, d.b, err)
	}
	return m, d.b
}

// recvReply skips lists until a reply (YOURTS, no list) arrives: the server sends its reply from
// the reader and a join's list round from the timer, so either may come first.
func (c *memConn) recvReply(t *testing.T) (*ptp.Message, []byte) {
	t.Helper()
	for {
		m, b := c.recvMsg(t)
		if m.Has&ptp.FieldList == 0 {
			return m, b
		}
	}
}

// recvList skips datagrams until a list arrives.
func (c *memConn) recvList(t *testing.T) (*ptp.Message, []byte) {
	t.Helper()
	for {
		m, b := c.recvMsg(t)
		if m.Has&ptp.FieldList != 0 {
			return m, b
		}
	}
}

// recvListN skips lists until one with n entries arrives (earlier rounds may still be in flight).
func (c *memConn) recvListN(t *testing.T, n int) *ptp.Message {
	t.Helper()
	for {
		m, _ := c.recvList(t)
		if len(m.Entries) == n {
			return m
		}
	}
}

func (c *memConn) drain() {
	for {
		select {
		case <-c.ch:
		default:
			return
		}
	}
}

func (c *memConn) send(t *testing.T, to netip.AddrPort, b []byte) {
	t.Helper()
	c.WriteToUDPAddrPort(b, to)
}

// fakeClock is the server's clock in tests; the real ticker only makes the server look at it.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeClock) Now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.t }
func (f *fakeClock) Add(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}

// vectorTime is MYTS of the golden vectors: 1718000000.5 s.
var vectorTime = time.Unix(1718000000, 5e8)

type rig struct {
	net   *memNet
	srv   *Server
	clock *fakeClock
	addr  netip.AddrPort
	obs   *recObserver
	done  chan error
}

type recObserver struct {
	mu      sync.Mutex
	joined  []ClientInfo
	left    []string
	reports []Report
}

func (r *recObserver) Joined(c ClientInfo) {
	r.mu.Lock()
	r.joined = append(r.joined, c)
	r.mu.Unlock()
}
func (r *recObserver) Left(c ClientInfo, why string) {
	r.mu.Lock()
	r.left = append(r.left, c.Addr.String()+" "+why)
	r.mu.Unlock()
}
func (r *recObserver) Reported(rep Report) {
	r.mu.Lock()
	r.reports = append(r.reports, rep)
	r.mu.Unlock()
}

func newRig(t *testing.T, mod func(*Config)) *rig {
	t.Helper()
	n := newMemNet()
	r := &rig{net: n, clock: &fakeClock{t: vectorTime}, addr: netip.MustParseAddrPort("192.0.2.1:23456"), obs: &recObserver{}, done: make(chan error, 1)}
	cfg := Config{Conn: n.listen(r.addr.String()), Now: r.clock.Now, Tick: time.Millisecond, NoSTUN: true, Observer: r.obs}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.srv = srv
	go func() { r.done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-r.done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return r
}

// swept waits until the server's expiry and ack-loss pass has run at the clock's current
// reading (a fixed sleep could end before the timer goroutine ran, and prove nothing).
func (r *rig) swept(t *testing.T) {
	t.Helper()
	now := r.clock.Now()
	waitFor(t, "expiry pass", func() bool {
		r.srv.mu.Lock()
		defer r.srv.mu.Unlock()
		return !r.srv.lastExpire.Before(now)
	})
}

// waitFor polls cond (a guard timeout only).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 20000; i++ {
		if cond() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func vectors(t testing.TB) map[string][]byte {
	b, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]struct{ Hex string }
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for k, e := range v {
		out[k], _ = hex.DecodeString(e.Hex)
	}
	return out
}

func uuidN(n byte) ptp.UUID {
	var u ptp.UUID
	for i := range u {
		u[i] = n
	}
	return u
}

// beacon is a client→server beacon as the original sends it (v2) or a v3 one.
func beacon(ver uint8, seq uint32, u ptp.UUID, ptpAddr string, mesh string, ts time.Time) []byte {
	m := &ptp.Message{Role: ptp.RoleClient, Version: ver, Has: ptp.FieldSequence | ptp.FieldUUID | ptp.FieldPTPAddr | ptp.FieldMyTS,
		Sequence: seq, UUID: u, PTPAddr: netip.MustParseAddrPort(ptpAddr)}
	m.MyTS = fixed(ts)
	if mesh != "" {
		m.Mesh, m.Has = []byte(mesh), m.Has|ptp.FieldMesh
	}
	b, err := m.AppendTo(nil)
	if err != nil {
		panic(err)
	}
	return b
}

// discard is a Transport that reads nothing and drops writes (benchmarks, fuzzing).
type discard struct{ n int }

func (d *discard) ReadBatch([]udpsock.Message) (int, error) { select {} }
func (d *discard) WriteBatch(m []udpsock.Message) (int, error) {
	d.n += len(m)
	return len(m), nil
}
func (d *discard) LocalAddr() netip.AddrPort { return netip.MustParseAddrPort("192.0.2.1:23456") }
func (d *discard) Close() error              { return nil }
