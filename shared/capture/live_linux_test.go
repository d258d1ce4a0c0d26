//go:build linux

package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sent brackets one send call: the kernel timestamps a loopback datagram inside it.
type sent struct{ before, after time.Time }

// sendUDP sends n datagrams "probekit live <first+i>" padded to size bytes to dst and returns
// the time just before and just after each send call.
func sendUDP(t *testing.T, dst *net.UDPAddr, first, n, size int) []sent {
	t.Helper()
	c, err := net.DialUDP("udp", nil, dst)
	if err != nil {
		t.Error(err)
		return nil
	}
	defer c.Close()
	times := make([]sent, n)
	for i := range n {
		msg := make([]byte, size)
		copy(msg, fmt.Sprintf("probekit live %d;", first+i))
		times[i].before = time.Now()
		if _, err := c.Write(msg); err != nil {
			t.Error(err)
			return nil
		}
		times[i].after = time.Now()
		time.Sleep(time.Millisecond)
	}
	return times
}

// liveSink is a UDP socket that the test traffic goes to, so no ICMP errors are generated.
func liveSink(t *testing.T, network, addr string) *net.UDPAddr {
	t.Helper()
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Skipf("%s %s: %v", network, addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c.LocalAddr().(*net.UDPAddr)
}

// collect reads packets until want datagrams to port arrived or the deadline passes,
// returning the capture time of each datagram index.
func collect(t *testing.T, h *Live, port uint16, want, snaplen int) map[int]Packet {
	t.Helper()
	got := map[int]Packet{}
	deadline := time.Now().Add(3 * time.Second)
	for len(got) < want && time.Now().Before(deadline) {
		p, err := h.Next()
		if errors.Is(err, ErrTimeout) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if p.LinkType != h.LinkType() || p.CaptureLen != len(p.Data) || p.CaptureLen > snaplen {
			t.Fatalf("packet: link type %v, caplen %d, len %d", p.LinkType, p.CaptureLen, len(p.Data))
		}
		dport, payload, ok := udpPayload(t, p.LinkType, p.Data)
		if !ok || dport != port {
			t.Fatalf("the filter let through a packet that is not UDP to port %d: %x", port, p.Data)
		}
		var i int
		if _, err := fmt.Sscanf(string(payload), "probekit live %d;", &i); err != nil {
			t.Fatalf("payload %q: %v", payload, err)
		}
		if _, dup := got[i]; dup {
			t.Fatalf("datagram %d captured twice", i)
		}
		p.Data = append([]byte(nil), p.Data...)
		got[i] = p
	}
	if len(got) < want {
		st, err := h.Stats()
		var missing []int
		for i := range want {
			if _, ok := got[i]; !ok {
				missing = append(missing, i)
			}
		}
		t.Logf("collect: %d of %d datagrams after 3 s; kernel stats %+v (%v); not seen (if numbered from 0): %v", len(got), want, st, err, missing)
	}
	return got
}

// checkTimes checks that datagrams first, first+1, … were captured with kernel timestamps
// inside their send calls: on loopback the receive timestamp is taken during sendmsg, and
// time.Now reads the same clock.
func checkTimes(t *testing.T, got map[int]Packet, times []sent, first int) {
	t.Helper()
	if len(got) != len(times) {
		t.Fatalf("captured %d of %d datagrams", len(got), len(times))
	}
	for j, s := range times {
		i := first + j
		p, ok := got[i]
		if !ok {
			t.Fatalf("datagram %d not captured", i)
		}
		if p.Time.Before(s.before.Add(-time.Microsecond)) || p.Time.After(s.after.Add(time.Microsecond)) {
			t.Errorf("datagram %d: kernel timestamp %v is outside its send call [%v, %v]", i,
				p.Time.Format(time.RFC3339Nano), s.before.Format(time.RFC3339Nano), s.after.Format(time.RFC3339Nano))
		}
	}
}

func TestLiveLoopback(t *testing.T) {
	needRoot(t)
	dst := liveSink(t, "udp4", "127.0.0.1:0")
	noise := liveSink(t, "udp4", "127.0.0.1:0")
	port := uint16(dst.Port)
	const snaplen = 96
	h, err := OpenLive("lo", LiveOptions{
		Snaplen: snaplen,
		Promisc: true,
		Match:   &Filter{Hosts: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Protocol: ProtoUDP, Ports: []uint16{port}},
		Timeout: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if h.LinkType() != Ethernet || h.FilterLinkType() != Ethernet || h.Snaplen() != snaplen {
		t.Fatalf("lo: link type %v, filter %v, snaplen %d", h.LinkType(), h.FilterLinkType(), h.Snaplen())
	}
	h.Stats() // reset the counters
	const n, size = 40, 300
	done := make(chan []sent)
	go func() {
		sendUDP(t, noise, 0, 10, 20) // must be filtered out
		done <- sendUDP(t, dst, 0, n, size)
	}()
	got := collect(t, h, port, n, snaplen)
	sent := <-done
	checkTimes(t, got, sent, 0)
	for i, p := range got {
		if p.CaptureLen != snaplen || p.OrigLen != 14+20+8+size {
			t.Fatalf("datagram %d: caplen %d origlen %d, want %d and %d", i, p.CaptureLen, p.OrigLen, snaplen, 14+20+8+size)
		}
	}
	st, err := h.Stats()
	if err != nil {
		t.Fatal(err)
	}
	// Loopback packets pass the socket twice (out and in); the kernel counts both.
	if st.Packets < n || st.Packets > 2*n || st.Drops != 0 {
		t.Fatalf("stats %+v after %d datagrams", st, n)
	}
	// Nothing more arrives: the noise never matched.
	if p, err := h.Next(); !errors.Is(err, ErrTimeout) {
		t.Fatalf("after the traffic: %v %x", err, p.Data)
	}
	// Counters not read before Close are not lost: Close keeps them for one last Stats.
	sendUDP(t, dst, 0, n, size)
	time.Sleep(50 * time.Millisecond)
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err := h.Stats(); err != nil || st.Packets < n || st.Packets > 2*n {
		t.Fatalf("final stats after Close: %+v, %v; want %d…%d packets", st, err, n, 2*n)
	}
}

func TestLiveAnyCooked(t *testing.T) {
	needRoot(t)
	dst6 := liveSink(t, "udp6", "[::1]:0")
	port := uint16(dst6.Port)
	dst4 := liveSink(t, "udp4", fmt.Sprintf("127.0.0.1:%d", port))
	prog, err := FilterPort(KernelCooked, ProtoUDP, port)
	if err != nil {
		t.Fatal(err)
	}
	h, err := OpenLive("any", LiveOptions{Filter: prog, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if h.LinkType() != LinuxSLL2 || h.FilterLinkType() != KernelCooked {
		t.Fatalf("any: link type %v, filter %v", h.LinkType(), h.FilterLinkType())
	}
	// A second handle selects by address: only the IPv4 half of the traffic.
	// Its snaplen counts the SLL2 header, as libpcap's does.
	const snap4 = 70 // SLL2 + IPv4 + UDP + "probekit live NN;", less than the 88-byte frame
	h4, err := OpenLive("any", LiveOptions{
		Match:   &Filter{Hosts: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Protocol: ProtoUDP, Ports: []uint16{port}},
		Timeout: 100 * time.Millisecond,
		Snaplen: snap4,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h4.Close()
	const n = 20
	done := make(chan []sent)
	go func() {
		s6 := sendUDP(t, dst6, 0, n, 40)
		done <- append(s6, sendUDP(t, dst4, n, n, 40)...)
	}()
	got := collect(t, h, port, 2*n, minMaxRecord)
	sent := <-done
	checkTimes(t, got, sent, 0)
	for i, p := range got {
		// SLL2 header synthesized from sockaddr_ll: protocol, ifindex of lo, ARPHRD_LOOPBACK.
		et, ipLen := EtherTypeIPv6, 40
		if i >= n {
			et, ipLen = EtherTypeIPv4, 20
		}
		if got := binary.BigEndian.Uint16(p.Data); got != et {
			t.Fatalf("datagram %d: SLL2 protocol %#x, want %#x", i, got, et)
		}
		if idx := int(binary.BigEndian.Uint32(p.Data[4:])); idx != h.loIndex {
			t.Fatalf("datagram %d: ifindex %d, loopback is %d", i, idx, h.loIndex)
		}
		if ha := binary.BigEndian.Uint16(p.Data[8:]); ha != 772 {
			t.Fatalf("datagram %d: hatype %d", i, ha)
		}
		if p.OrigLen != 20+ipLen+8+40 {
			t.Fatalf("datagram %d: origlen %d", i, p.OrigLen)
		}
	}
	got4 := collect(t, h4, port, n, snap4)
	checkTimes(t, got4, sent[n:], n)
	for i, p := range got4 {
		if i < n {
			t.Fatalf("the IPv4 host filter let IPv6 datagram %d through", i)
		}
		if p.CaptureLen != snap4 || p.OrigLen != 20+20+8+40 {
			t.Fatalf("datagram %d: caplen %d origlen %d, want %d and %d", i, p.CaptureLen, p.OrigLen, snap4, 20+20+8+40)
		}
	}
	if p, err := h4.Next(); !errors.Is(err, ErrTimeout) {
		t.Fatalf("IPv4 handle after the traffic: %v %x", err, p.Data)
	}
}

func TestLiveCloseAndTimeout(t *testing.T) {
	needRoot(t)
	// A port this test owns, so that no other traffic on the machine matches.
	quiet := &Filter{Protocol: ProtoUDP, Ports: []uint16{uint16(liveSink(t, "udp4", "127.0.0.1:0").Port)}}
	h, err := OpenLive("lo", LiveOptions{Match: quiet})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := h.Next()
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Next after Close: %v", err)
		}
	case <-time.After(30 * time.Second): // hang guard
		t.Fatal("Close did not wake a blocked Next")
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Stats(); err != nil {
		t.Fatalf("first Stats after Close (the final counters): %v", err)
	}
	if _, err := h.Stats(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Stats after Close: %v", err)
	}

	h, err = OpenLive("lo", LiveOptions{Match: quiet, Timeout: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	start := time.Now()
	if _, err := h.Next(); !errors.Is(err, ErrTimeout) {
		t.Fatalf("idle Next: %v", err)
	}
	// Not before the timeout (less the poll's millisecond rounding). The upper bound is a
	// hang guard 100× the timeout, not a latency: a Next that ignored Timeout would block
	// for as long as lo stays quiet.
	if d := time.Since(start); d < 29*time.Millisecond || d > 100*30*time.Millisecond {
		t.Fatalf("timeout after %v, want 30ms", d)
	}
	if _, err := OpenLive("no-such-if0", LiveOptions{}); err == nil {
		t.Fatal("opened a missing interface")
	}
}

// TestLiveMatchesTcpdump captures the same loopback traffic with OpenLive and tcpdump (libpcap,
// its own AF_PACKET socket): both must see the same datagrams, bytes and kernel timestamps.
func TestLiveMatchesTcpdump(t *testing.T) {
	needRoot(t)
	dst := liveSink(t, "udp4", "127.0.0.1:0")
	port := uint16(dst.Port)
	path := filepath.Join(t.TempDir(), "lo.pcap")
	td := startTcpdump(t, "-i", "lo", "--nano", "-w", path, fmt.Sprintf("udp dst port %d", port))
	h, err := OpenLive("lo", LiveOptions{Match: &Filter{Protocol: ProtoUDP, Ports: []uint16{port}}, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	const n = 30
	done := make(chan []sent)
	go func() { done <- sendUDP(t, dst, 0, n, 64) }()
	got := collect(t, h, port, n, minMaxRecord)
	checkTimes(t, got, <-done, 0)
	td.waitRecords(t, path, n)
	tdErr := td.stop()

	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m := 0
	for {
		p, err := r.Next()
		if err != nil {
			break
		}
		_, payload, _ := udpPayload(t, p.LinkType, p.Data)
		var i int
		if _, err := fmt.Sscanf(string(payload), "probekit live %d;", &i); err != nil {
			t.Fatalf("tcpdump captured %q", payload)
		}
		live, ok := got[i]
		if !ok {
			t.Fatalf("tcpdump captured datagram %d, OpenLive did not", i)
		}
		if live.TimeNanos != p.TimeNanos || !bytes.Equal(live.Data, p.Data) || live.OrigLen != p.OrigLen {
			t.Errorf("datagram %d: OpenLive %s (%d bytes), tcpdump %s (%d bytes)", i, fmtNanos(live.TimeNanos), len(live.Data), fmtNanos(p.TimeNanos), len(p.Data))
		}
		m++
	}
	if m != n {
		t.Fatalf("tcpdump captured %d datagrams, sent %d (tcpdump: %s)", m, n, tdErr)
	}
}

func TestLiveLinkType(t *testing.T) {
	for _, tc := range []struct {
		hatype uint16
		lt     LinkType
		cooked bool
	}{
		{unix.ARPHRD_ETHER, Ethernet, false},
		{unix.ARPHRD_LOOPBACK, Ethernet, false},
		{unix.ARPHRD_NONE, Raw, false},
		{unix.ARPHRD_IPGRE, LinuxSLL2, true},
		{unix.ARPHRD_PPP, LinuxSLL2, true},
		{unix.ARPHRD_TUNNEL6, LinuxSLL2, true},
	} {
		if lt, cooked := liveLinkType(tc.hatype); lt != tc.lt || cooked != tc.cooked {
			t.Errorf("ARPHRD %d: %v cooked=%v, want %v cooked=%v", tc.hatype, lt, cooked, tc.lt, tc.cooked)
		}
	}
}
