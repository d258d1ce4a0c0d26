package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/probekit/probekit/ptpclient/internal/testbin"
	"github.com/probekit/probekit/shared/testsupport/syncbuf"
)

// waitServer returns once the ptpserver at addr answers a STUN Binding request on its port
// (it is bound and serving): a fixed sleep let clients under load start before the server
// and find no NAT answer. The deadline is a hang guard only.
func waitServer(t *testing.T, network, addr string, exited <-chan error) {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Binding request: type 1, length 0, the magic cookie, a transaction ID.
	req := []byte{0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 'w', 'a', 'i', 't', 's', 'e', 'r', 'v', 'e', 'r', 0, 1}
	buf := make([]byte, 1500)
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); {
		select {
		case err := <-exited:
			t.Fatalf("server exited before serving: %v", err)
		default:
		}
		c.Write(req)
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, err := c.Read(buf); err == nil && n >= 20 && buf[0] == 1 && buf[1] == 1 && bytes.Equal(buf[8:20], req[8:20]) {
			return
		}
	}
	t.Fatal("server never answered")
}

func freePort(t *testing.T) int {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// TestE2ELoopback runs the real ptpserver (with RFC 5780 from 127.0.0.2) and three ptpclients on
// loopback addresses 127.0.0.3-5 (distinct "public" addresses, so the paths are direct).
func TestE2ELoopback(t *testing.T) {
	srvBin, cliBin := testbin.Build(t, "ptpserver"), testbin.Build(t, "ptpclient")
	port := strconv.Itoa(freePort(t))
	// The RFC 5780 sockets: 127.0.0.1:P2, 127.0.0.2:P, 127.0.0.2:P2 (a second free port).
	other := "127.0.0.2:" + strconv.Itoa(freePort(t))
	// No --duration: the server runs until the clients are done and it has seen their
	// SHUTDOWNs (a fixed 8 s could end it first on a loaded machine); SIGTERM then.
	srv := exec.Command(srvBin, "-s", "127.0.0.1", "-p", port, "--other-address", other, "--json")
	var srvOut syncbuf.Buffer
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Process.Kill()
	srvExit := make(chan error, 1)
	go func() { srvExit <- srv.Wait() }()
	waitServer(t, "udp4", "127.0.0.1:"+port, srvExit)
	var outs [3]bytes.Buffer
	var cmds [3]*exec.Cmd
	for i := range cmds {
		cmds[i] = exec.Command(cliBin, "-s", "127.0.0.1", "-p", port, "--bind", "127.0.0."+strconv.Itoa(3+i)+":0", "--json", "--duration", "4s", "--hairpin")
		cmds[i].Stdout = &outs[i]
		cmds[i].Stderr = &outs[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("client %d: %v\n%s", i, err, outs[i].String())
		}
	}
	uuids := make([]string, 3)
	sums := make([]any, 3)
	for i := range outs {
		s := testbin.Summary(t, outs[i].String())
		uuids[i] = s.UUID
		sums[i] = s
		if s.Self.NAT.Mapping != "endpoint-independent" || s.Self.NAT.Filtering != "endpoint-independent" || s.Self.NAT.Method != "rfc5780" || s.Self.NAT.Hairpin != "yes" {
			t.Errorf("client %d NAT %+v (loopback: no NAT, RFC 5780 via ptpserver --other-address)", i, s.Self.NAT)
		}
		if s.Self.Public != s.Self.Local {
			t.Errorf("client %d public %s local %s", i, s.Self.Public, s.Self.Local)
		}
		if s.ServerR.Received == 0 || s.ServerR.Version != 3 {
			t.Errorf("client %d server row %+v", i, s.ServerR)
		}
	}
	for i := range outs {
		s := testbin.Summary(t, outs[i].String())
		for j := range uuids {
			if i == j {
				continue
			}
			r := testbin.Peer(s, uuids[j])
			if r == nil {
				t.Errorf("client %d does not list client %d: %+v", i, j, s.Peers)
				continue
			}
			// No ceiling on the RTT (this VM stalls for milliseconds at random): the figures
			// are checked against ground truth in the lab test and the client's unit tests;
			// here they must be a consistent summary.
			q := r.RTT
			if r.Path != "direct" || r.Received < 3 || r.Lost != 0 || q.Min <= 0 || q.P50 < q.Min || q.P99 < q.P50 || q.Max < q.P99 ||
				q.Avg < q.Min || q.Avg > q.Max || r.Version != 3 {
				t.Errorf("client %d -> %d: %+v", i, j, *r)
			}
		}
	}
	// Every client said goodbye (SHUTDOWN) rather than expiring (the server expires a
	// client after 30 s; the guard is shorter).
	shutdowns := func() int {
		so := srvOut.String()
		return strings.Count(so, `"shutdown"`) + strings.Count(so, "SHUTDOWN")
	}
	for end := time.Now().Add(20 * time.Second); shutdowns() < 3 && time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond)
	}
	if n := shutdowns(); n < 3 {
		t.Errorf("server saw %d shutdowns:\n%s", n, srvOut.String())
	}
	srv.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-srvExit:
		if err != nil {
			t.Fatalf("server: %v\n%s", err, srvOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("server did not exit on SIGTERM:\n%s", srvOut.String())
	}
}

// TestSIGTERM: SIGTERM and SIGINT (Ctrl-C) send SHUTDOWN and print the report (PTP-C4).
func TestSIGTERM(t *testing.T) {
	cliBin := testbin.Build(t, "ptpclient")
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) { signalShutdown(t, cliBin, sig) })
	}
}

func signalShutdown(t *testing.T, cliBin string, sig syscall.Signal) {
	port := freePort(t)
	srv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cmd := exec.Command(cliBin, "-s", "127.0.0.1", "-p", strconv.Itoa(port), "--json", "--nostun")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	srv.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, _, err := srv.ReadFromUDP(buf); err != nil { // the first beacon: the client is up
		t.Fatal(err)
	}
	cmd.Process.Signal(sig)
	var shutdown bool
	for !shutdown {
		n, _, err := srv.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("no SHUTDOWN after %v: %v\n%s", sig, err, out.String())
		}
		// SHUTDOWN TLV: type 45, len 3, value 1.
		shutdown = bytes.Contains(buf[:n], []byte{45, 3, 1})
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, out.String())
	}
	testbin.Summary(t, out.String())
}

// TestE2EIPv6: server and two clients on ::1 (18-byte address TLVs, B9): both list each other
// and measure (same public address: the LAN path).
func TestE2EIPv6(t *testing.T) {
	if c, err := net.ListenPacket("udp6", "[::1]:0"); err != nil {
		t.Skip("no IPv6 loopback:", err)
	} else {
		c.Close()
	}
	srvBin, cliBin := testbin.Build(t, "ptpserver"), testbin.Build(t, "ptpclient")
	port := strconv.Itoa(freePort(t))
	srv := exec.Command(srvBin, "-s", "::1", "-p", port, "--json")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	srvExit := make(chan error, 1)
	go func() { srvExit <- srv.Wait() }()
	defer func() { srv.Process.Kill(); <-srvExit }()
	waitServer(t, "udp6", "[::1]:"+port, srvExit)
	var outs [2]bytes.Buffer
	var cmds [2]*exec.Cmd
	for i := range cmds {
		cmds[i] = exec.Command(cliBin, "-s", "::1", "-p", port, "--bind", "[::1]:0", "--json", "--duration", "3s")
		cmds[i].Stdout, cmds[i].Stderr = &outs[i], &outs[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("client %d: %v\n%s", i, err, outs[i].String())
		}
	}
	a, b := testbin.Summary(t, outs[0].String()), testbin.Summary(t, outs[1].String())
	ra, rb := testbin.Peer(a, b.UUID), testbin.Peer(b, a.UUID)
	if ra == nil || rb == nil || ra.Address != b.Self.Local || rb.Address != a.Self.Local || ra.Received == 0 || rb.Received == 0 {
		t.Fatalf("IPv6 mesh: %+v / %+v", a.Peers, b.Peers)
	}
	if !strings.HasPrefix(a.Self.Public, "[::1]:") {
		t.Errorf("public address %q", a.Self.Public)
	}
}

// TestNoRoute: a server address without a route is one clear line and exit 1 (run in an empty
// network namespace, which has no routes at all).
func TestNoRoute(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	ipBin, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("iproute2 not installed")
	}
	cliBin := testbin.Build(t, "ptpclient")
	ns := fmt.Sprintf("pkptpc-noroute-%d", os.Getpid())
	if out, err := exec.Command(ipBin, "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("ip netns add: %v %s", err, out)
	}
	defer exec.Command(ipBin, "netns", "del", ns).Run()
	cmd := exec.Command(ipBin, "netns", "exec", ns, cliBin, "-s", "192.0.2.1", "--duration", "1s")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "no route to server 192.0.2.1:23456") ||
		strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
		t.Errorf("exit %v, output %q; want exit 1 and one line", err, out)
	}
}
