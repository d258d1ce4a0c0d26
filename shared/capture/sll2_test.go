package capture

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_NET_RAW) for packet capture")
	}
}

// udpPayload decodes the IP packet of a frame and returns the UDP destination port and payload.
func udpPayload(t testing.TB, lt LinkType, frame []byte) (uint16, []byte, bool) {
	t.Helper()
	ip, et, err := NetworkLayer(lt, frame)
	if err != nil {
		t.Fatalf("NetworkLayer: %v", err)
	}
	var l4 []byte
	switch et {
	case EtherTypeIPv4:
		if len(ip) < 20 || ip[9] != 17 {
			return 0, nil, false
		}
		l4 = ip[int(ip[0]&0x0f)*4:]
	case EtherTypeIPv6:
		if len(ip) < 40 || ip[6] != 17 {
			return 0, nil, false
		}
		l4 = ip[40:]
	default:
		return 0, nil, false
	}
	if len(l4) < 8 {
		return 0, nil, false
	}
	return binary.BigEndian.Uint16(l4[2:]), l4[8:], true
}

// TestTcpdumpAnySLL2: a LINUX_SLL2 capture made by `tcpdump -i any` while this test sends UDP
// datagrams over IPv4 and IPv6 loopback decodes to exactly the datagrams sent, each stamped
// within its send call, and agrees with tcpdump -r.
func TestTcpdumpAnySLL2(t *testing.T) {
	needRoot(t)
	ln4, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln4.Close()
	port := ln4.LocalAddr().(*net.UDPAddr).Port
	ln6, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback, Port: port})
	if err != nil {
		t.Skipf("IPv6 loopback unavailable: %v", err)
	}
	defer ln6.Close()

	path := filepath.Join(t.TempDir(), "any.pcap")
	td := startTcpdump(t, "-i", "any", "-s", "256", "-w", path, fmt.Sprintf("udp dst port %d", port))
	if !strings.Contains(td.listening, "LINUX_SLL2") {
		t.Skipf("this tcpdump does not capture LINUX_SLL2 on any: %s", td.listening)
	}

	const n = 20
	c4, err := net.DialUDP("udp4", nil, ln4.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c4.Close()
	c6, err := net.DialUDP("udp6", nil, ln6.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c6.Close()
	type call struct{ before, after time.Time }
	sent := map[string]call{}
	for i := range n {
		for fam, c := range map[string]*net.UDPConn{"ipv4": c4, "ipv6": c6} {
			msg := fmt.Sprintf("probekit sll2 %s %d", fam, i)
			before := time.Now()
			if _, err := c.Write([]byte(msg)); err != nil {
				t.Fatal(err)
			}
			sent[msg] = call{before, time.Now()}
		}
		time.Sleep(2 * time.Millisecond)
	}
	td.waitRecords(t, path, 2*n)
	td.stop()

	got := compareWithTcpdump(t, path)
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.LinkType() != LinuxSLL2 {
		t.Fatalf("link type %v, want LINUX_SLL2", r.LinkType())
	}
	seen := map[string]bool{}
	for {
		p, err := r.Next()
		if err != nil {
			break
		}
		dport, payload, ok := udpPayload(t, p.LinkType, p.Data)
		if !ok || int(dport) != port {
			t.Fatalf("unexpected packet %x", p.Data)
		}
		msg := string(payload)
		at, ok := sent[msg]
		if !ok {
			t.Fatalf("captured a datagram that was not sent: %q", msg)
		}
		if seen[msg] {
			t.Fatalf("datagram %q captured twice", msg)
		}
		seen[msg] = true
		// On loopback the kernel timestamps the datagram inside the send call; the µs pcap
		// truncates that time.
		if p.Time.Before(at.before.Add(-time.Microsecond)) || p.Time.After(at.after) {
			t.Errorf("%q: captured at %v, outside its send call [%v, %v]", msg, p.Time.Format(time.RFC3339Nano),
				at.before.Format(time.RFC3339Nano), at.after.Format(time.RFC3339Nano))
		}
	}
	if len(seen) != 2*n || got != 2*n {
		t.Fatalf("decoded %d distinct datagrams (tcpdump -r: %d), sent %d", len(seen), got, 2*n)
	}
}

// tcpdump is a running `tcpdump -w` started by startTcpdump.
type tcpdump struct {
	cmd       *exec.Cmd
	listening string        // tcpdump's "listening on …" line
	done      chan struct{} // closed when stderr is drained
	stderr    bytes.Buffer
}

// startTcpdump starts a capturing tcpdump with args and returns once it listens and has had a
// second to settle; it is killed at the end of the test unless stopped. Skips without tcpdump.
func startTcpdump(t *testing.T, args ...string) *tcpdump {
	t.Helper()
	bin, err := exec.LookPath("tcpdump")
	if err != nil {
		t.Skip("tcpdump not installed (apt-get install tcpdump)")
	}
	// -Z root: tcpdump otherwise drops privileges to user tcpdump, which cannot write
	// t.TempDir. --immediate-mode: libpcap's ring blocks otherwise retire after 1 s, and
	// packets in an open block are lost when tcpdump is stopped.
	td := &tcpdump{done: make(chan struct{})}
	td.cmd = exec.Command(bin, append([]string{"--immediate-mode", "-U", "-n", "-Z", "root"}, args...)...)
	stderr, err := td.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := td.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { td.cmd.Process.Kill(); td.cmd.Wait() })
	listening := make(chan string, 1)
	go func() {
		defer close(td.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			td.stderr.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "listening on") {
				listening <- sc.Text()
			}
		}
	}()
	select {
	case td.listening = <-listening:
	case <-td.done:
		t.Fatalf("tcpdump exited: %s", td.stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("tcpdump did not start listening")
	}
	time.Sleep(time.Second) // the kernel filter is attached by now; let it settle
	return td
}

// waitRecords waits until tcpdump has written want complete records to the pcap file at
// path (it flushes each with -U), so that stopping it loses none still in its ring: a
// loaded machine may leave tcpdump unscheduled for longer than any fixed pause. The
// records are counted from their headers here, independently of the package under test;
// the 30 s limit is a hang guard.
func (td *tcpdump) waitRecords(t *testing.T, path string, want int) {
	t.Helper()
	var have int
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if have = pcapRecords(path); have >= want {
			return
		}
	}
	t.Fatalf("tcpdump wrote %d of %d records in 30 s", have, want)
}

// pcapRecords counts the complete records of a classic pcap file (either byte order).
func pcapRecords(path string) int {
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 24 {
		return 0
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if m := binary.BigEndian.Uint32(b); m == 0xa1b2c3d4 || m == 0xa1b23c4d {
		bo = binary.BigEndian
	}
	n := 0
	for off := 24; off+16 <= len(b); n++ {
		off += 16 + int(bo.Uint32(b[off+8:]))
		if off > len(b) {
			break
		}
	}
	return n
}

// stop ends the capture with SIGTERM and returns tcpdump's stderr (its packet counts).
func (td *tcpdump) stop() string {
	td.cmd.Process.Signal(syscall.SIGTERM)
	<-td.done
	td.cmd.Wait()
	return td.stderr.String()
}
