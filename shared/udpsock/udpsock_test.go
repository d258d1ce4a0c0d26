//go:build linux

package udpsock

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/probekit/probekit/shared/timestamp"
)

func listen(t testing.TB, network, addr string, opts Options) *Conn {
	t.Helper()
	c, err := Listen(context.Background(), network, addr, opts)
	if err != nil {
		if network == "udp6" || addr == "[::1]:0" {
			t.Skipf("IPv6 loopback unavailable: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mkMsgs(n, size int) []Message {
	ms := make([]Message, n)
	for i := range ms {
		ms[i].Buf = make([]byte, size)
	}
	return ms
}

// readN reads until n datagrams arrived or the deadline passes.
func readN(t *testing.T, c *Conn, n int) []Message {
	t.Helper()
	out := make([]Message, 0, n)
	ms := mkMsgs(16, 2048)
	if err := c.SetReadDeadline(time.Now().Add(3 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for len(out) < n {
		k, err := c.ReadBatch(ms)
		if err != nil {
			t.Fatalf("after %d of %d datagrams: %v", len(out), n, err)
		}
		for i := 0; i < k; i++ {
			m := ms[i]
			m.Buf = append([]byte(nil), m.Buf[:m.N]...)
			out = append(out, m)
		}
	}
	return out
}

func seqMsgs(n int, to netip.AddrPort) []Message {
	ms := make([]Message, n)
	for i := range ms {
		ms[i].Buf = make([]byte, 44)
		binary.BigEndian.PutUint32(ms[i].Buf, uint32(i))
		ms[i].Addr = to
	}
	return ms
}

func TestTOSRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name, network, addr string
	}{
		{"ipv4", "udp4", "127.0.0.1:0"},
		{"ipv6", "udp6", "[::1]:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rx := listen(t, tc.network, tc.addr, Options{RecvTOS: true})
			tx := listen(t, tc.network, tc.addr, Options{})
			// DSCP EF with each ECN codepoint, AF11, CS1 with ECT(1), zero.
			tos := []uint8{0xb8, 0xb9, 0xba, 0xbb, 0x28, 0x21, 0x00, 0x03}
			ms := seqMsgs(len(tos), rx.LocalAddr())
			for i := range ms {
				ms[i].TOS = tos[i]
			}
			if n, err := tx.WriteBatch(ms); err != nil || n != len(ms) {
				t.Fatalf("WriteBatch = %d, %v", n, err)
			}
			got := readN(t, rx, len(tos))
			for _, m := range got {
				seq := binary.BigEndian.Uint32(m.Buf)
				if m.TOS != tos[seq] {
					t.Errorf("packet %d: TOS %#02x, sent %#02x", seq, m.TOS, tos[seq])
				}
				if m.Addr != tx.LocalAddr() {
					t.Errorf("packet %d: from %v, want %v", seq, m.Addr, tx.LocalAddr())
				}
			}
		})
	}
}

func TestSetTOSDefaultAndOverride(t *testing.T) {
	rx := listen(t, "udp4", "127.0.0.1:0", Options{RecvTOS: true})
	tx := listen(t, "udp4", "127.0.0.1:0", Options{})
	if err := tx.SetTOS(0xb8); err != nil {
		t.Fatal(err)
	}
	// Message 0 uses the socket default (no cmsg), message 1 overrides it with 0.
	ms := seqMsgs(2, rx.LocalAddr())
	ms[0].TOS, ms[1].TOS = 0xb8, 0x00
	if _, err := tx.WriteBatch(ms); err != nil {
		t.Fatal(err)
	}
	want := []uint8{0xb8, 0x00}
	for _, m := range readN(t, rx, 2) {
		seq := binary.BigEndian.Uint32(m.Buf)
		if m.TOS != want[seq] {
			t.Errorf("packet %d: TOS %#02x, want %#02x", seq, m.TOS, want[seq])
		}
	}
}

func TestTTLReceived(t *testing.T) {
	for _, tc := range []struct {
		name, network, addr string
		set, want           int
	}{
		{"ipv4 default", "udp4", "127.0.0.1:0", 0, 64},
		{"ipv4 set", "udp4", "127.0.0.1:0", 17, 17},
		{"ipv6 set", "udp6", "[::1]:0", 9, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rx := listen(t, tc.network, tc.addr, Options{RecvTTL: true})
			tx := listen(t, tc.network, tc.addr, Options{})
			if tc.set != 0 {
				if err := tx.SetTTL(tc.set); err != nil {
					t.Fatal(err)
				}
			}
			m := Message{Buf: []byte("ttl"), Addr: rx.LocalAddr()}
			if err := tx.WriteTo(&m); err != nil {
				t.Fatal(err)
			}
			got := readN(t, rx, 1)[0]
			if got.TTL != tc.want {
				t.Errorf("TTL = %d, want %d", got.TTL, tc.want)
			}
		})
	}
}

func TestRxTimestamps(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		kind string
	}{
		{"timestampns", Options{RxTimestamps: true}, "SO_TIMESTAMPNS"},
		{"timestamping", Options{RxTimestamps: true, TxTimestamps: true}, "SO_TIMESTAMPING"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rx := listen(t, "udp4", "127.0.0.1:0", tc.opts)
			f := rx.Features()
			if f.RxTimestamp != tc.kind {
				t.Fatalf("Features().RxTimestamp = %q, want %q", f.RxTimestamp, tc.kind)
			}
			if kernelAtLeast(5, 1) && !f.NewABI {
				t.Errorf("kernel ≥ 5.1 but the _NEW timestamp option was not used")
			}
			tx := listen(t, "udp4", "127.0.0.1:0", Options{})
			// On loopback the kernel stamps a datagram while the sender is still inside its
			// send call (netif_rx), so each stamp lies between two clock reads taken around
			// that call; the windows are disjoint (a sleep separates them), which a
			// user-space stamp taken once per read batch could not satisfy. No bound on how
			// long anything took: only the order of the clock reads.
			const n = 20
			var windows [n][2]time.Time
			for i := 0; i < n; i++ {
				ms := seqMsgs(1, rx.LocalAddr())
				binary.BigEndian.PutUint32(ms[0].Buf, uint32(i))
				windows[i][0] = time.Now()
				if _, err := tx.WriteBatch(ms); err != nil {
					t.Fatal(err)
				}
				windows[i][1] = time.Now()
				time.Sleep(200 * time.Microsecond)
			}
			got := readN(t, rx, n)
			var prev time.Time
			for i, m := range got {
				if m.RxSource != timestamp.SourceKernel {
					t.Fatalf("packet %d: source %v, want kernel", i, m.RxSource)
				}
				if binary.BigEndian.Uint32(m.Buf) != uint32(i) {
					t.Fatalf("packet %d arrived out of order", i)
				}
				if w := windows[i]; m.RxTime.Before(w[0]) || m.RxTime.After(w[1]) {
					t.Errorf("packet %d: RxTime %v outside its send call [%v, %v]", i, m.RxTime, w[0], w[1])
				}
				if !m.RxTime.After(prev) {
					t.Errorf("packet %d: RxTime %v not after previous %v", i, m.RxTime, prev)
				}
				prev = m.RxTime
			}
		})
	}
}

func TestUserTimestampFallback(t *testing.T) {
	rx := listen(t, "udp4", "127.0.0.1:0", Options{})
	tx := listen(t, "udp4", "127.0.0.1:0", Options{})
	m := Message{Buf: []byte("x"), Addr: rx.LocalAddr()}
	if err := tx.WriteTo(&m); err != nil {
		t.Fatal(err)
	}
	got := readN(t, rx, 1)[0]
	if got.RxSource != timestamp.SourceUser {
		t.Errorf("source %v, want user", got.RxSource)
	}
	if d := time.Since(got.RxTime); d < 0 || d > time.Second {
		t.Errorf("user RxTime %v off by %v", got.RxTime, d)
	}
}

func TestTxTimestamps(t *testing.T) {
	for _, tc := range []struct {
		name, network, addr string
		raw                 bool
	}{
		{"ipv4", "udp4", "127.0.0.1:0", false},
		{"ipv6", "udp6", "[::1]:0", false},
		{"ipv4-raw", "udp4", "127.0.0.1:0", true},
		{"ipv6-raw", "udp6", "[::1]:0", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rx := listen(t, tc.network, tc.addr, Options{RxTimestamps: true, RawSyscalls: tc.raw})
			tx := listen(t, tc.network, tc.addr, Options{TxTimestamps: true, RawSyscalls: tc.raw})
			if !tx.Features().TxTimestamps {
				t.Fatal("TxTimestamps not enabled")
			}
			// A batch of 10, then 5 single sends; each send call is bracketed by clock reads
			// (windows[i] for message i; the batch shares one window).
			var sent []Message
			var windows [][2]time.Time
			ms := seqMsgs(10, rx.LocalAddr())
			t0 := time.Now()
			if _, err := tx.WriteBatch(ms); err != nil {
				t.Fatal(err)
			}
			t1 := time.Now()
			sent = append(sent, ms...)
			for range ms {
				windows = append(windows, [2]time.Time{t0, t1})
			}
			for i := 10; i < 15; i++ {
				time.Sleep(300 * time.Microsecond)
				m := seqMsgs(1, rx.LocalAddr())[0]
				binary.BigEndian.PutUint32(m.Buf, uint32(i))
				t0 := time.Now()
				if err := tx.WriteTo(&m); err != nil {
					t.Fatal(err)
				}
				windows = append(windows, [2]time.Time{t0, time.Now()})
				sent = append(sent, m)
			}
			for i, m := range sent {
				if m.TxID != uint32(i) {
					t.Fatalf("message %d: TxID %d, want %d", i, m.TxID, i)
				}
			}
			txTimes := map[uint32]time.Time{}
			deadline := time.Now().Add(3 * time.Second)
			for len(txTimes) < len(sent) && time.Now().Before(deadline) {
				_, err := tx.WaitTxTimestamps(100*time.Millisecond, func(id uint32, ts time.Time, src timestamp.Source) {
					if src != timestamp.SourceKernel {
						t.Errorf("id %d: source %v", id, src)
					}
					if _, dup := txTimes[id]; dup {
						t.Errorf("id %d reported twice", id)
					}
					txTimes[id] = ts
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			if len(txTimes) != len(sent) {
				t.Fatalf("got %d TX timestamps, want %d", len(txTimes), len(sent))
			}
			got := readN(t, rx, len(sent))
			for _, m := range got {
				seq := binary.BigEndian.Uint32(m.Buf)
				txt, ok := txTimes[sent[seq].TxID]
				if !ok {
					t.Fatalf("no TX stamp for packet %d", seq)
				}
				// What the kernel guarantees on loopback (software TX stamp in the driver,
				// RX stamp in netif_rx, both inside the send call): the TX stamp lies in the
				// packet's own send window and precedes its RX stamp. The send windows are
				// disjoint, so a TX stamp matched to the wrong packet falls outside its window.
				if w := windows[seq]; txt.Before(w[0]) || txt.After(w[1]) {
					t.Errorf("packet %d (id %d): TX stamp %v outside its send call [%v, %v]", seq, sent[seq].TxID, txt, w[0], w[1])
				}
				if m.RxTime.Before(txt) {
					t.Errorf("packet %d (id %d): RX stamp %v before TX stamp %v", seq, sent[seq].TxID, m.RxTime, txt)
				}
			}
		})
	}
}

// TestNoTxStamp: datagrams sent with NoTxStamp get no transmit timestamp and take no TxID,
// so the stamped ones around them still map to their own stamps: each single send is
// bracketed by clock reads, the windows are disjoint, and a stamp matched to the wrong
// datagram falls outside its window. No report arrives for an unstamped datagram.
func TestNoTxStamp(t *testing.T) {
	for _, tc := range []struct{ name, network, addr string }{
		{"ipv4", "udp4", "127.0.0.1:0"},
		{"ipv6", "udp6", "[::1]:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rx := listen(t, tc.network, tc.addr, Options{})
			tx := listen(t, tc.network, tc.addr, Options{TxTimestamps: true})
			ms := seqMsgs(6, rx.LocalAddr()) // a batch: stamped, unstamped, … (3 each)
			for i := range ms {
				ms[i].NoTxStamp = i%2 == 1
			}
			if _, err := tx.WriteBatch(ms); err != nil {
				t.Fatal(err)
			}
			want := map[uint32][2]time.Time{} // TxID → send window of the stamped singles
			for i, id := 0, uint32(0); i < 6; i++ {
				if ms[i].NoTxStamp {
					continue
				}
				if ms[i].TxID != id {
					t.Fatalf("batch message %d: TxID %d, want %d", i, ms[i].TxID, id)
				}
				id++
			}
			stamped := 3
			for i := 6; i < 16; i++ {
				time.Sleep(300 * time.Microsecond)
				m := seqMsgs(1, rx.LocalAddr())[0]
				m.NoTxStamp = i%3 == 0
				t0 := time.Now()
				if err := tx.WriteTo(&m); err != nil {
					t.Fatal(err)
				}
				t1 := time.Now()
				if m.NoTxStamp {
					continue
				}
				if m.TxID != uint32(stamped) {
					t.Fatalf("single %d: TxID %d, want %d", i, m.TxID, stamped)
				}
				want[m.TxID] = [2]time.Time{t0, t1}
				stamped++
			}
			got := map[uint32]time.Time{}
			for end := time.Now().Add(3 * time.Second); len(got) < stamped && time.Now().Before(end); {
				if _, err := tx.WaitTxTimestamps(100*time.Millisecond, func(id uint32, ts time.Time, _ timestamp.Source) { got[id] = ts }); err != nil {
					t.Fatal(err)
				}
			}
			// Anything late would be a report for an unstamped datagram (or a stray).
			if _, err := tx.WaitTxTimestamps(200*time.Millisecond, func(id uint32, ts time.Time, _ timestamp.Source) { got[id] = ts }); err != nil {
				t.Fatal(err)
			}
			if len(got) != stamped {
				t.Fatalf("%d TX reports, want %d (one per stamped datagram): %v", len(got), stamped, got)
			}
			for id, w := range want {
				if ts, ok := got[id]; !ok || ts.Before(w[0]) || ts.After(w[1]) {
					t.Errorf("id %d: stamp %v not inside its send call [%v, %v]", id, ts, w[0], w[1])
				}
			}
			readN(t, rx, 16)
		})
	}
}

func TestTxTimestampsDisabled(t *testing.T) {
	c := listen(t, "udp4", "127.0.0.1:0", Options{})
	if _, err := c.TxTimestamps(func(uint32, time.Time, timestamp.Source) {}); !errors.Is(err, ErrNoTxTimestamps) {
		t.Errorf("err = %v, want ErrNoTxTimestamps", err)
	}
}

func TestDualStack(t *testing.T) {
	dual := listen(t, "udp", "[::]:0", Options{RecvTOS: true, RecvTTL: true, RxTimestamps: true})
	if !dual.Features().DualStack {
		t.Skip("kernel gave a v6-only socket (net.ipv6.bindv6only=1)")
	}
	v4 := listen(t, "udp4", "127.0.0.1:0", Options{RecvTOS: true})
	to := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), dual.LocalAddr().Port())
	m := Message{Buf: []byte("hello"), Addr: to, TOS: 0xb9}
	if err := v4.WriteTo(&m); err != nil {
		t.Fatal(err)
	}
	got := readN(t, dual, 1)[0]
	if got.Addr != v4.LocalAddr() {
		t.Errorf("peer %v, want unmapped %v", got.Addr, v4.LocalAddr())
	}
	if got.TOS != 0xb9 || got.TTL != 64 || got.RxSource != timestamp.SourceKernel {
		t.Errorf("TOS %#x TTL %d source %v, want 0xb9 64 kernel", got.TOS, got.TTL, got.RxSource)
	}
	// Reply from the dual-stack socket to the IPv4 peer with a per-message TOS.
	reply := Message{Buf: []byte("back"), Addr: got.Addr, TOS: 0x2a}
	if err := dual.WriteTo(&reply); err != nil {
		t.Fatal(err)
	}
	back := readN(t, v4, 1)[0]
	if string(back.Buf) != "back" || back.TOS != 0x2a {
		t.Errorf("reply %q TOS %#x, want \"back\" 0x2a", back.Buf, back.TOS)
	}
	// The same socket carries IPv6: traffic class and hop limit arrive as IPv6 cmsgs.
	v6, err := Listen(context.Background(), "udp6", "[::1]:0", Options{})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer v6.Close()
	if err := v6.SetTTL(5); err != nil {
		t.Fatal(err)
	}
	m6 := Message{Buf: []byte("six"), Addr: netip.AddrPortFrom(netip.IPv6Loopback(), dual.LocalAddr().Port()), TOS: 0xbb}
	if err := v6.WriteTo(&m6); err != nil {
		t.Fatal(err)
	}
	got6 := readN(t, dual, 1)[0]
	if got6.Addr != v6.LocalAddr() || got6.TOS != 0xbb || got6.TTL != 5 || got6.RxSource != timestamp.SourceKernel {
		t.Errorf("IPv6 on dual-stack: from %v TOS %#x hop limit %d source %v", got6.Addr, got6.TOS, got6.TTL, got6.RxSource)
	}
}

func TestReusePortDistributes(t *testing.T) {
	a := listen(t, "udp4", "127.0.0.1:0", Options{ReusePort: true})
	b := listen(t, "udp4", a.LocalAddr().String(), Options{ReusePort: true})
	if a.LocalAddr() != b.LocalAddr() {
		t.Fatalf("second socket bound %v, want %v", b.LocalAddr(), a.LocalAddr())
	}
	// The kernel hashes the 4-tuple, so vary the source port.
	const senders = 64
	for i := 0; i < senders; i++ {
		tx := listen(t, "udp4", "127.0.0.1:0", Options{})
		m := Message{Buf: []byte{byte(i)}, Addr: a.LocalAddr()}
		if err := tx.WriteTo(&m); err != nil {
			t.Fatal(err)
		}
		tx.Close()
	}
	count := func(c *Conn) int {
		n := 0
		ms := mkMsgs(senders, 16)
		for {
			c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			k, err := c.ReadBatch(ms)
			if err != nil {
				return n
			}
			n += k
		}
	}
	na, nb := count(a), count(b)
	if na+nb != senders {
		t.Fatalf("received %d+%d, want %d", na, nb, senders)
	}
	// With 64 flows a fair hash leaves either socket empty with probability 2^-63.
	if na == 0 || nb == 0 {
		t.Errorf("no fan-out: %d and %d", na, nb)
	}
}

func TestListenGroup(t *testing.T) {
	conns, err := ListenGroup(context.Background(), "udp4", "127.0.0.1:0", 3, Options{RecvTTL: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if len(conns) != 3 || conns[1].LocalAddr() != conns[0].LocalAddr() || conns[2].LocalAddr() != conns[0].LocalAddr() {
		t.Fatalf("group bound %v %v %v", conns[0].LocalAddr(), conns[1].LocalAddr(), conns[2].LocalAddr())
	}
	// A plain socket cannot join the group's port.
	if c, err := Listen(context.Background(), "udp4", conns[0].LocalAddr().String(), Options{}); err == nil {
		c.Close()
		t.Error("bound a non-reuseport socket to the group's port")
	}
	if _, err := ListenGroup(context.Background(), "udp4", "127.0.0.1:0", 0, Options{}); err == nil {
		t.Error("empty group accepted")
	}
}

// checkCancelUnblocks cancels the context of a socket blocked in ReadBatch: the read must
// end with ErrClosed (wrapping net.ErrClosed) and a second Close must be harmless.
func checkCancelUnblocks(t *testing.T, opts Options) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c, err := Listen(ctx, "udp4", "127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.ReadBatch(mkMsgs(4, 64))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) || !errors.Is(err, ErrClosed) {
			t.Errorf("err = %v, want ErrClosed", err)
		}
	case <-time.After(30 * time.Second):
		// A hang guard, not a latency bound: BusyPoll callers use a one-minute window, which
		// a read that missed the cancel would run to its end.
		t.Fatal("ReadBatch still blocked 30 s after cancel")
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestContextCancelUnblocksRead(t *testing.T) { checkCancelUnblocks(t, Options{}) }

func TestReadDeadline(t *testing.T) {
	c := listen(t, "udp4", "127.0.0.1:0", Options{})
	c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	_, err := c.ReadBatch(mkMsgs(2, 64))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("err = %v, want deadline exceeded", err)
	}
}

func TestTruncated(t *testing.T) {
	rx := listen(t, "udp4", "127.0.0.1:0", Options{})
	tx := listen(t, "udp4", "127.0.0.1:0", Options{})
	m := Message{Buf: make([]byte, 100), Addr: rx.LocalAddr()}
	if err := tx.WriteTo(&m); err != nil {
		t.Fatal(err)
	}
	in := Message{Buf: make([]byte, 10)}
	rx.SetReadDeadline(time.Now().Add(time.Second))
	if err := rx.ReadFrom(&in); err != nil {
		t.Fatal(err)
	}
	if !in.Truncated || in.N != 10 {
		t.Errorf("N %d Truncated %v, want 10 true", in.N, in.Truncated)
	}
}

func TestWriteBatchErrors(t *testing.T) {
	c := listen(t, "udp4", "127.0.0.1:0", Options{})
	for _, tc := range []struct {
		name string
		addr netip.AddrPort
		want error
	}{
		{"no address", netip.AddrPort{}, ErrNoAddress},
		{"ipv6 on ipv4", netip.MustParseAddrPort("[::1]:9"), ErrAddressFamily},
	} {
		m := Message{Buf: []byte("x"), Addr: tc.addr}
		if err := c.WriteTo(&m); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	// A v4-mapped destination on an IPv4 socket is plain IPv4.
	rx := listen(t, "udp4", "127.0.0.1:0", Options{})
	mapped := netip.AddrPortFrom(netip.AddrFrom16(rx.LocalAddr().Addr().As16()), rx.LocalAddr().Port())
	m := Message{Buf: []byte("mapped"), Addr: mapped}
	if err := c.WriteTo(&m); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, rx, 1)[0]; string(got.Buf) != "mapped" {
		t.Errorf("got %q", got.Buf)
	}

	// A message that cannot be encoded ends the batch after the ones before it went out;
	// the count says which, so a caller can skip it and send the rest.
	batch := []Message{{Buf: []byte("a"), Addr: rx.LocalAddr()}, {Buf: []byte("b")}, {Buf: []byte("c"), Addr: rx.LocalAddr()}}
	n, err := c.WriteBatch(batch)
	if n != 1 || !errors.Is(err, ErrNoAddress) {
		t.Fatalf("batch with a message lacking an address: sent %d, err %v; want 1, ErrNoAddress", n, err)
	}
	if n, err := c.WriteBatch(batch[n+1:]); n != 1 || err != nil {
		t.Fatalf("rest of the batch: sent %d, err %v", n, err)
	}
	got := readN(t, rx, 2)
	if string(got[0].Buf) != "a" || string(got[1].Buf) != "c" {
		t.Errorf("received %q, %q; want a, c", got[0].Buf, got[1].Buf)
	}
}

func TestListenErrors(t *testing.T) {
	if _, err := Listen(context.Background(), "tcp", "127.0.0.1:0", Options{}); err == nil {
		t.Error("tcp accepted")
	}
	if _, err := Listen(context.Background(), "udp4", "256.0.0.1:0", Options{}); err == nil {
		t.Error("bad address accepted")
	}
}

func TestConcurrentReadWrite(t *testing.T) {
	t.Run("syscalls", func(t *testing.T) { testConcurrentReadWrite(t, false) })
	// RawSyscalls: the same non-blocking calls without the scheduler's bookkeeping; a read
	// that finds nothing must still park in the poller and wake for the next datagram.
	t.Run("raw", func(t *testing.T) { testConcurrentReadWrite(t, true) })
}

func testConcurrentReadWrite(t *testing.T, raw bool) {
	// a sends while another goroutine reads a's replies; b echoes. Both sockets have a reader
	// and a writer in flight at once, which -race checks for shared scratch state.
	a := listen(t, "udp4", "127.0.0.1:0", Options{RxTimestamps: true, RawSyscalls: raw})
	b := listen(t, "udp4", "127.0.0.1:0", Options{RawSyscalls: raw})
	if a.r.raw != raw || a.w.raw != raw || a.e.raw != raw {
		t.Fatalf("RawSyscalls %v: read %v, write %v, error queue %v", raw, a.r.raw, a.w.raw, a.e.raw)
	}
	const total = 2000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ms := mkMsgs(32, 64)
		b.SetReadDeadline(time.Now().Add(10 * time.Second))
		for n := 0; n < total; {
			k, err := b.ReadBatch(ms)
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := b.WriteBatch(ms[:k]); err != nil {
				t.Error(err)
				return
			}
			n += k
		}
	}()
	var received atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		ms := mkMsgs(32, 64)
		a.SetReadDeadline(time.Now().Add(10 * time.Second))
		for received.Load() < total {
			k, err := a.ReadBatch(ms)
			if err != nil {
				return
			}
			received.Add(int64(k))
		}
	}()
	out := seqMsgs(20, b.LocalAddr())
	for sent := 0; sent < total; sent += len(out) {
		// Keep at most 100 packets in flight so loopback socket buffers never overflow.
		for int64(sent)-received.Load() > 100 {
			time.Sleep(50 * time.Microsecond)
		}
		if _, err := a.WriteBatch(out); err != nil {
			t.Fatal(err)
		}
	}
	<-done
	if n := received.Load(); n != total {
		t.Errorf("echoed %d of %d", n, total)
	}
	wg.Wait()
}

// kernelAtLeast compares the running kernel's version.
func kernelAtLeast(major, minor int) bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	var ma, mi int
	fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &ma, &mi)
	return ma > major || ma == major && mi >= minor
}

func TestBlockingMode(t *testing.T) {
	t.Run("syscalls", func(t *testing.T) { testBlockingMode(t, false) })
	// RawSyscalls leaves a Blocking socket's calls to the scheduler (they wait in the kernel).
	t.Run("raw", func(t *testing.T) { testBlockingMode(t, true) })
}

func testBlockingMode(t *testing.T, raw bool) {
	opts := Options{Blocking: true, RxTimestamps: true, RecvTOS: true, RawSyscalls: raw}
	rx := listen(t, "udp4", "127.0.0.1:0", opts)
	if rx.r.raw || rx.w.raw {
		t.Fatal("a Blocking socket's reads or writes are raw system calls")
	}
	tx := listen(t, "udp4", "127.0.0.1:0", Options{})
	ms := seqMsgs(8, rx.LocalAddr())
	for i := range ms {
		ms[i].TOS = 0xb8 | uint8(i&3)
	}
	if _, err := tx.WriteBatch(ms); err != nil {
		t.Fatal(err)
	}
	got := readN(t, rx, len(ms))
	for _, m := range got {
		seq := binary.BigEndian.Uint32(m.Buf)
		if m.TOS != ms[seq].TOS || m.RxSource != timestamp.SourceKernel || m.Addr != tx.LocalAddr() {
			t.Errorf("packet %d: TOS %#x source %v from %v", seq, m.TOS, m.RxSource, m.Addr)
		}
	}

	// A read deadline ends a blocked read with os.ErrDeadlineExceeded.
	start := time.Now()
	rx.SetReadDeadline(start.Add(30 * time.Millisecond))
	if _, err := rx.ReadBatch(mkMsgs(2, 64)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("err = %v, want deadline exceeded", err)
	}
	// Never before the deadline. No upper bound on the wake-up (a loaded machine may stall for
	// any time): a blocked read that ignored the deadline would never return, which go test's
	// -timeout reports.
	if el := time.Since(start); el < 30*time.Millisecond {
		t.Errorf("deadline of 30ms returned after %v", el)
	}
	rx.SetReadDeadline(time.Time{})

	checkCancelUnblocks(t, opts)
}

func TestHardwareTimestampsOption(t *testing.T) {
	// Loopback has no NIC clock: the socket accepts the hardware flags, the interface refuses
	// to stamp, and datagrams still carry the kernel's software stamp.
	if err := EnableHardwareTimestamps("lo"); err == nil {
		t.Error("EnableHardwareTimestamps(lo) succeeded")
	}
	if err := EnableHardwareTimestamps("no-such-if0"); err == nil {
		t.Error("EnableHardwareTimestamps on a missing interface succeeded")
	}
	rx := listen(t, "udp4", "127.0.0.1:0", Options{HardwareTimestamps: true})
	if f := rx.Features(); f.RxTimestamp != "SO_TIMESTAMPING" || f.TxTimestamps {
		t.Errorf("features %+v", f)
	}
	tx := listen(t, "udp4", "127.0.0.1:0", Options{})
	m := Message{Buf: []byte("hw"), Addr: rx.LocalAddr()}
	before := time.Now()
	if err := tx.WriteTo(&m); err != nil {
		t.Fatal(err)
	}
	got := readN(t, rx, 1)[0]
	if got.RxSource != timestamp.SourceKernel || got.RxTime.Before(before.Add(-time.Millisecond)) {
		t.Errorf("source %v time %v (sent after %v)", got.RxSource, got.RxTime, before)
	}
}

// Busy polling (Options.BusyPoll) must read what arrives within the window and what arrives
// after it, with the same fields as a sleeping read, and end early for a read deadline or
// Close, in both the poller and the Blocking mode.
func TestBusyPoll(t *testing.T) {
	for _, blocking := range []bool{false, true} {
		t.Run(fmt.Sprintf("blocking=%v", blocking), func(t *testing.T) {
			opts := Options{BusyPoll: 20 * time.Millisecond, Blocking: blocking, RxTimestamps: true, RecvTOS: true}
			rx := listen(t, "udp4", "127.0.0.1:0", opts)
			tx := listen(t, "udp4", "127.0.0.1:0", Options{})
			// Within the window: sent while the reader polls.
			for _, delay := range []time.Duration{5 * time.Millisecond, 60 * time.Millisecond} {
				go func() {
					time.Sleep(delay)
					m := Message{Buf: []byte{1, 2, 3, 4}, Addr: rx.LocalAddr(), TOS: 0x2e << 2}
					if err := tx.WriteTo(&m); err != nil {
						t.Error(err)
					}
				}()
				rx.SetReadDeadline(time.Now().Add(5 * time.Second))
				in := mkMsgs(4, 64)
				n, err := rx.ReadBatch(in)
				if err != nil || n != 1 {
					t.Fatalf("delay %v: n %d err %v", delay, n, err)
				}
				if m := in[0]; m.N != 4 || m.TOS != 0x2e<<2 || m.RxSource != timestamp.SourceKernel || m.Addr != tx.LocalAddr() {
					t.Errorf("delay %v: got %+v", delay, m)
				}
			}

			// A read deadline inside the window ends the polling with a timeout. The window is
			// a minute, so a poll that ran to its end instead of the deadline takes 60 s; the
			// bound is half the window, not a latency.
			const window = time.Minute
			rx.SetBusyPoll(window)
			start := time.Now()
			rx.SetReadDeadline(start.Add(10 * time.Millisecond))
			if _, err := rx.ReadBatch(mkMsgs(2, 64)); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("err = %v, want deadline exceeded", err)
			}
			if el := time.Since(start); el < 10*time.Millisecond || el > window/2 {
				t.Errorf("deadline of 10ms inside a %v window returned after %v", window, el)
			}
			rx.SetReadDeadline(time.Time{})
			rx.SetBusyPoll(0)
			checkCancelUnblocks(t, Options{BusyPoll: time.Minute, Blocking: blocking})
		})
	}
}
