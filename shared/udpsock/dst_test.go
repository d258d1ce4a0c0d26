//go:build linux

package udpsock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/netlab"
	"github.com/probekit/probekit/shared/timestamp"
)

// dstTarget is one request of TestRecvDst: client sends to dst on the server's port.
type dstTarget struct {
	client *Conn
	dst    netip.Addr
	// kernelSrc is the source the kernel picks for a reply to client without a Dst (the
	// route's preferred source); when it differs from dst the test also proves the reply
	// would have come from the wrong address without Message.Dst.
	kernelSrc netip.Addr
}

// dstCase is a server socket bound to a wildcard address and the requests it receives.
type dstCase struct {
	name, network, bind string
	targets             func(t *testing.T) []dstTarget
}

// loIndex is the loopback interface's index (1 in every namespace: lo registers first).
func loIndex(t *testing.T) int {
	ifi, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	return ifi.Index
}

// checkRecvDst runs one case: every target's request must arrive with its destination in Dst
// and the loopback index in IfIndex; the replies, written with Dst set in one WriteBatch (TOS
// and TX timestamps in the same control buffer), must arrive from that address; a reply without
// Dst must arrive from the kernel's choice. lo is the loopback index of the sockets' namespace.
func checkRecvDst(t *testing.T, srv *Conn, targets []dstTarget, lo int) {
	t.Helper()
	port := srv.LocalAddr().Port()
	// Requests go out one by one (WriteTo) and are read in batches (readN: ReadBatch);
	// replies go out in one WriteBatch and are read one by one (ReadFrom).
	for i, tg := range targets {
		m := Message{Buf: []byte{byte(i)}, Addr: netip.AddrPortFrom(tg.dst, port)}
		if err := tg.client.WriteTo(&m); err != nil {
			t.Fatalf("request %d to %v: %v", i, m.Addr, err)
		}
	}
	got := readN(t, srv, len(targets))
	replies := make([]Message, len(got))
	for _, g := range got {
		i := int(g.Buf[0])
		tg := targets[i]
		if g.Dst != tg.dst {
			t.Errorf("request %d to %v: Dst %v", i, tg.dst, g.Dst)
		}
		if g.IfIndex != lo {
			t.Errorf("request %d to %v: IfIndex %d, want lo (%d)", i, tg.dst, g.IfIndex, lo)
		}
		if g.Addr != tg.client.LocalAddr() {
			t.Errorf("request %d: from %v, want %v", i, g.Addr, tg.client.LocalAddr())
		}
		if g.TOS != 0 || g.RxSource != timestamp.SourceKernel {
			t.Errorf("request %d: TOS %#x source %v, want 0 and kernel (other cmsgs still parsed)", i, g.TOS, g.RxSource)
		}
		replies[i] = Message{Buf: []byte{byte(i)}, Addr: g.Addr, Dst: g.Dst, TOS: 0x2a + uint8(i%2)}
	}
	if n, err := srv.WriteBatch(replies); err != nil || n != len(replies) {
		t.Fatalf("WriteBatch of replies: %d %v", n, err)
	}
	for i, tg := range targets {
		in := Message{Buf: make([]byte, 16)}
		tg.client.SetReadDeadline(time.Now().Add(3 * time.Second))
		if err := tg.client.ReadFrom(&in); err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		j := int(in.Buf[0])
		if want := netip.AddrPortFrom(targets[j].dst, port); in.Addr != want {
			t.Errorf("reply %d arrived from %v, want %v", j, in.Addr, want)
		}
		if in.TOS != 0x2a+uint8(j%2) {
			t.Errorf("reply %d: TOS %#x, want %#x", j, in.TOS, 0x2a+uint8(j%2))
		}
	}
	// Every reply got its transmit timestamp.
	stamps := 0
	for i := 0; i < 20 && stamps < len(replies); i++ {
		n, err := srv.WaitTxTimestamps(100*time.Millisecond, func(uint32, time.Time, timestamp.Source) {})
		if err != nil {
			t.Fatal(err)
		}
		stamps += n
	}
	if stamps != len(replies) {
		t.Errorf("%d TX timestamps for %d replies", stamps, len(replies))
	}
	// Control: without Dst the kernel answers from the route's source.
	for i, tg := range targets {
		if tg.kernelSrc == tg.dst {
			continue
		}
		m := Message{Buf: []byte{byte(i)}, Addr: tg.client.LocalAddr()}
		if err := srv.WriteTo(&m); err != nil {
			t.Fatal(err)
		}
		in := Message{Buf: make([]byte, 16)}
		tg.client.SetReadDeadline(time.Now().Add(3 * time.Second))
		if err := tg.client.ReadFrom(&in); err != nil {
			t.Fatal(err)
		}
		if in.Addr.Addr() != tg.kernelSrc {
			t.Errorf("reply without Dst to %v came from %v, want the kernel's choice %v", tg.client.LocalAddr(), in.Addr.Addr(), tg.kernelSrc)
		}
	}
}

var (
	lo4  = netip.MustParseAddr("127.0.0.1")
	lo4b = netip.MustParseAddr("127.0.0.2")
	lo6  = netip.IPv6Loopback()
)

func serverOpts() Options {
	return Options{RecvDst: true, RecvTOS: true, RxTimestamps: true, TxTimestamps: true}
}

// TestRecvDst: a wildcard-bound socket learns each datagram's destination and answers from it
// (udp4, udp6, dual-stack; 127.0.0.2 is local on lo without any setup).
func TestRecvDst(t *testing.T) {
	lo := loIndex(t)
	client := func(t *testing.T, network, addr string) *Conn {
		return listen(t, network, addr, Options{RecvTOS: true})
	}
	for _, tc := range []dstCase{
		{"udp4", "udp4", "0.0.0.0:0", func(t *testing.T) []dstTarget {
			c := client(t, "udp4", "127.0.0.1:0")
			return []dstTarget{{c, lo4, lo4}, {c, lo4b, lo4}}
		}},
		{"udp6", "udp6", "[::]:0", func(t *testing.T) []dstTarget {
			c := client(t, "udp6", "[::1]:0")
			return []dstTarget{{c, lo6, lo6}}
		}},
		{"dual-stack", "udp", "[::]:0", func(t *testing.T) []dstTarget {
			c4 := client(t, "udp4", "127.0.0.1:0")
			c6 := client(t, "udp6", "[::1]:0")
			return []dstTarget{{c4, lo4, lo4}, {c4, lo4b, lo4}, {c6, lo6, lo6}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := listen(t, tc.network, tc.bind, serverOpts())
			if tc.name == "dual-stack" && !srv.Features().DualStack {
				t.Skip("kernel gave a v6-only socket (net.ipv6.bindv6only=1)")
			}
			checkRecvDst(t, srv, tc.targets(t), lo)
		})
	}
}

// TestRecvDstNamespace repeats TestRecvDst with second addresses of both families (an IPv6
// address besides ::1 needs its own namespace) on lo of a namespace this test creates.
func TestRecvDstNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("iproute2 (ip) not installed")
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	// Not netlab.NamePrefix: netlab's orphan reaper would take a lab-shaped name it has no
	// owner marker for.
	ns := "udpsock" + hex.EncodeToString(b[:])
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	ip("-n", ns, "link", "set", "lo", "up")
	// Documentation prefixes, only inside the namespace; lo does no duplicate address
	// detection, so the IPv6 address is usable at once.
	v4b, v6b := netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("2001:db8:7::7")
	ip("-n", ns, "addr", "add", v4b.String()+"/32", "dev", "lo")
	ip("-n", ns, "addr", "add", v6b.String()+"/128", "dev", "lo")
	host := &netlab.Host{Name: "udpsock", NS: ns}
	in := func(t *testing.T, network, addr string, opts Options) *Conn {
		t.Helper()
		var c *Conn
		if err := host.Do(func() error {
			var err error
			c, err = Listen(context.Background(), network, addr, opts)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	var lo int
	if err := host.Do(func() error {
		ifi, err := net.InterfaceByName("lo")
		if err == nil {
			lo = ifi.Index
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	client := func(t *testing.T, network, addr string) *Conn {
		return in(t, network, addr, Options{RecvTOS: true})
	}
	for _, tc := range []dstCase{
		{"udp4", "udp4", "0.0.0.0:0", func(t *testing.T) []dstTarget {
			c := client(t, "udp4", "127.0.0.1:0")
			return []dstTarget{{c, lo4, lo4}, {c, v4b, lo4}}
		}},
		{"udp6", "udp6", "[::]:0", func(t *testing.T) []dstTarget {
			c := client(t, "udp6", "[::1]:0")
			return []dstTarget{{c, lo6, lo6}, {c, v6b, lo6}}
		}},
		{"dual-stack", "udp", "[::]:0", func(t *testing.T) []dstTarget {
			c4 := client(t, "udp4", "127.0.0.1:0")
			c6 := client(t, "udp6", "[::1]:0")
			return []dstTarget{{c4, v4b, lo4}, {c6, lo6, lo6}, {c6, v6b, lo6}, {c4, lo4b, lo4}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := in(t, tc.network, tc.bind, serverOpts())
			if tc.name == "dual-stack" && !srv.Features().DualStack {
				t.Skip("kernel gave a v6-only socket (net.ipv6.bindv6only=1)")
			}
			checkRecvDst(t, srv, tc.targets(t), lo)
		})
	}
}

// TestRecvDstOff: without RecvDst, Dst and IfIndex stay zero (and a reused message that had
// them is cleared).
func TestRecvDstOff(t *testing.T) {
	srv := listen(t, "udp4", "0.0.0.0:0", Options{})
	c := listen(t, "udp4", "127.0.0.1:0", Options{})
	m := Message{Buf: []byte("x"), Addr: netip.AddrPortFrom(lo4b, srv.LocalAddr().Port())}
	if err := c.WriteTo(&m); err != nil {
		t.Fatal(err)
	}
	in := Message{Buf: make([]byte, 8), Dst: lo4, IfIndex: 9}
	srv.SetReadDeadline(time.Now().Add(3 * time.Second))
	if err := srv.ReadFrom(&in); err != nil {
		t.Fatal(err)
	}
	if in.Dst.IsValid() || in.IfIndex != 0 {
		t.Errorf("Dst %v IfIndex %d without RecvDst", in.Dst, in.IfIndex)
	}
}

// TestWriteDstErrors: a source that cannot send to the destination is refused — by family here,
// by the kernel for an address this host does not have.
func TestWriteDstErrors(t *testing.T) {
	c4 := listen(t, "udp4", "0.0.0.0:0", Options{})
	m := Message{Buf: []byte("x"), Addr: netip.AddrPortFrom(lo4, 9), Dst: lo6}
	if err := c4.WriteTo(&m); !errors.Is(err, ErrSourceFamily) {
		t.Errorf("IPv6 source to IPv4: %v, want ErrSourceFamily", err)
	}
	m = Message{Buf: []byte("x"), Addr: netip.AddrPortFrom(lo4, 9), Dst: netip.MustParseAddr("198.51.100.1")}
	if err := c4.WriteTo(&m); err == nil {
		t.Error("a source address this host does not have was accepted")
	}
	c6 := listen(t, "udp6", "[::]:0", Options{})
	m = Message{Buf: []byte("x"), Addr: netip.AddrPortFrom(lo6, 9), Dst: lo4}
	if err := c6.WriteTo(&m); !errors.Is(err, ErrSourceFamily) {
		t.Errorf("IPv4 source to IPv6: %v, want ErrSourceFamily", err)
	}
}
