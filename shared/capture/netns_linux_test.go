//go:build linux

package capture

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ipCmd runs ip(8) and fails the test with its output on error.
func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// inNetns runs f on a thread switched into network namespace ns; sockets opened by f keep
// the namespace afterwards.
func inNetns(t *testing.T, ns string, f func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			panic(fmt.Sprintf("cannot return to the original network namespace: %v", err))
		}
	}()
	f()
}

// TestLiveVLAN injects 802.1Q-tagged UDP frames into a veth pair between two namespaces and
// captures on the receiving end, where the kernel moves the tag into packet metadata
// (skb_vlan_untag): the handle must re-insert it (Ethernet) or encode it after the SLL2
// header (cooked), as libpcap does. It also checks that handles on b0 see nothing of other
// interfaces and that Promisc raises b0's promiscuity only while the handle is open.
func TestLiveVLAN(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip(8) not installed")
	}
	a, b := fmt.Sprintf("pkcapA%d", os.Getpid()), fmt.Sprintf("pkcapB%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", a).CombinedOutput(); err != nil {
		t.Skipf("cannot create network namespaces: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", a).Run() })
	ipCmd(t, "netns", "add", b)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", b).Run() })
	ipCmd(t, "-n", a, "link", "add", "a0", "type", "veth", "peer", "name", "b0", "netns", b)
	ipCmd(t, "-n", a, "link", "set", "a0", "up")
	ipCmd(t, "-n", b, "link", "set", "b0", "up")

	const port = 4789
	match := &Filter{Protocol: ProtoUDP, Ports: []uint16{port}}
	var eth, cooked *Live
	inNetns(t, b, func() {
		var err error
		if eth, err = OpenLive("b0", LiveOptions{Match: match, Timeout: 100 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		if cooked, err = OpenLive("b0", LiveOptions{Match: match, Timeout: 100 * time.Millisecond, Cooked: true}); err != nil {
			t.Fatal(err)
		}
	})
	defer eth.Close()
	defer cooked.Close()
	promiscuity := func() string {
		out, err := exec.Command("ip", "-n", b, "-d", "link", "show", "b0").CombinedOutput()
		if err != nil {
			t.Fatalf("ip link show: %v: %s", err, out)
		}
		_, after, _ := strings.Cut(string(out), "promiscuity ")
		v, _, _ := strings.Cut(after, " ")
		return v
	}
	if p := promiscuity(); p != "0" {
		t.Fatalf("b0 promiscuity %s before Promisc", p)
	}
	var promisc *Live
	inNetns(t, b, func() {
		var err error
		if promisc, err = OpenLive("b0", LiveOptions{Promisc: true, Match: match}); err != nil {
			t.Fatal(err)
		}
	})
	if p := promiscuity(); p != "1" {
		t.Errorf("b0 promiscuity %s with a Promisc handle open, want 1", p)
	}
	promisc.Close()
	if p := promiscuity(); p != "0" {
		t.Errorf("b0 promiscuity %s after Close, want 0", p)
	}

	const n = 5
	var frames [][]byte
	for i := range n {
		payload := fmt.Appendf(nil, "probekit live %d;", i)
		ip := ip4Packet("10.199.0.1", "10.199.0.2", ProtoUDP, 40000, port, 0, 5)
		ip = append(ip[:28], payload...)
		binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
		binary.BigEndian.PutUint16(ip[24:], uint16(8+len(payload)))
		fr := wrap(Ethernet, EtherTypeIPv4, ip, 100)
		copy(fr[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		frames = append(frames, fr)
	}
	// Matching traffic on B's loopback goes first: handles bound to b0 must not see it.
	var b0Index int
	inNetns(t, b, func() {
		ipCmd(t, "-n", b, "link", "set", "lo", "up")
		ifc, err := net.InterfaceByName("b0")
		if err != nil {
			t.Fatal(err)
		}
		b0Index = ifc.Index
		sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		if err != nil {
			t.Fatal(err)
		}
		defer sink.Close()
		sendUDP(t, sink.LocalAddr().(*net.UDPAddr), 1000, 3, 20)
	})
	inNetns(t, a, func() {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		ifc, err := net.InterfaceByName("a0")
		if err != nil {
			t.Fatal(err)
		}
		for _, fr := range frames {
			if err := unix.Sendto(fd, fr, 0, &unix.SockaddrLinklayer{Ifindex: ifc.Index, Halen: 6}); err != nil {
				t.Fatal(err)
			}
		}
	})
	for _, h := range []*Live{eth, cooked} {
		got := collect(t, h, port, n, minMaxRecord)
		if len(got) != n {
			t.Fatalf("%v: captured %d of %d frames", h.LinkType(), len(got), n)
		}
		for i, p := range got {
			if i >= n {
				t.Fatalf("%v handle on b0 captured loopback datagram %d", h.LinkType(), i)
			}
			var tpid, tci uint16
			wantLen := len(frames[i])
			if h.LinkType() == Ethernet {
				tpid, tci = binary.BigEndian.Uint16(p.Data[12:]), binary.BigEndian.Uint16(p.Data[14:])
				if string(p.Data) != string(frames[i]) {
					t.Errorf("frame %d: captured %x, sent %x", i, p.Data, frames[i])
				}
			} else {
				if idx := int(binary.BigEndian.Uint32(p.Data[4:])); idx != b0Index {
					t.Errorf("cooked frame %d: SLL2 ifindex %d, b0 is %d", i, idx, b0Index)
				}
				tpid, tci = binary.BigEndian.Uint16(p.Data[0:]), binary.BigEndian.Uint16(p.Data[20:])
				wantLen += linuxSLL2HeaderLen - ethernetHeaderLen
				if string(p.Data[20:]) != string(frames[i][14:]) {
					t.Errorf("frame %d: cooked payload %x, sent %x", i, p.Data[20:], frames[i][14:])
				}
			}
			if tpid != EtherTypeVLAN || tci&0x0fff != 100 {
				t.Errorf("%v frame %d: tag %#04x/%#04x, want 0x8100 / VLAN 100", h.LinkType(), i, tpid, tci)
			}
			if p.OrigLen != wantLen || p.CaptureLen != wantLen {
				t.Errorf("%v frame %d: caplen %d origlen %d, want %d", h.LinkType(), i, p.CaptureLen, p.OrigLen, wantLen)
			}
		}
	}
}

// TestLiveTun captures on a tun device (ARPHRD_NONE): frames are bare IP packets (LinkType
// Raw), and the kernel runs the Raw filter on them. The datagrams are routed out of the tun
// (to the test's unread tun file), so the handle sees them as outgoing.
func TestLiveTun(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip(8) not installed")
	}
	ns := fmt.Sprintf("pkcapT%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	// The tun needs an open file for carrier, else the datagrams never reach the device.
	inNetns(t, ns, func() {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Skipf("cannot open /dev/net/tun: %v", err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		ifr, err := unix.NewIfreq("tun0")
		if err != nil {
			t.Fatal(err)
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			t.Skipf("cannot create a tun device: %v", err)
		}
	})
	ipCmd(t, "-n", ns, "addr", "add", "10.198.0.1/24", "dev", "tun0")
	ipCmd(t, "-n", ns, "link", "set", "tun0", "up")
	const port = 5555
	var h *Live
	inNetns(t, ns, func() {
		var err error
		h, err = OpenLive("tun0", LiveOptions{Match: &Filter{Hosts: []netip.Addr{netip.MustParseAddr("10.198.0.2")}, Protocol: ProtoUDP, Ports: []uint16{port}}, Timeout: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if h.LinkType() != Raw || h.FilterLinkType() != Raw {
			t.Errorf("tun: link type %v, filter %v, want RAW", h.LinkType(), h.FilterLinkType())
		}
		sendUDP(t, &net.UDPAddr{IP: net.IPv4(10, 198, 0, 3), Port: port}, 100, 3, 30) // other host: filtered out
		sendUDP(t, &net.UDPAddr{IP: net.IPv4(10, 198, 0, 2), Port: port}, 0, 5, 30)
	})
	defer h.Close()
	got := collect(t, h, port, 5, minMaxRecord)
	if len(got) != 5 {
		t.Fatalf("captured %d of 5 datagrams", len(got))
	}
	for i, p := range got {
		if i >= 5 || p.Data[0]>>4 != 4 || p.CaptureLen != 20+8+30 || p.OrigLen != 20+8+30 {
			t.Fatalf("datagram %d: %d/%d bytes %x", i, p.CaptureLen, p.OrigLen, p.Data)
		}
	}
}
