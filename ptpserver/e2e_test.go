package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/stun/v3"

	"github.com/probekit/probekit/shared/ptp"
	"github.com/probekit/probekit/shared/timestamp"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
	buildDir  string
)

// TestMain removes the binary the tests built (once, shared by the tests).
func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// buildBinary builds the real ptpserver once per test run; a failed build fails the test.
func buildBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "ptpserver-e2e"); buildErr != nil {
			return
		}
		builtBin = filepath.Join(buildDir, "ptpserver")
		cmd := exec.Command("go", "build", "-o", builtBin, ".")
		cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

func freePort(t *testing.T) int {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

type legacyClient struct {
	t    *testing.T
	c    *net.UDPConn
	uuid ptp.UUID
	seq  uint32
	srv  netip.AddrPort
}

func newLegacy(t *testing.T, srv netip.AddrPort, id byte) *legacyClient {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var u ptp.UUID
	for i := range u {
		u[i] = id
	}
	return &legacyClient{t: t, c: c, uuid: u, srv: srv}
}

func (l *legacyClient) addr() netip.AddrPort { return l.c.LocalAddr().(*net.UDPAddr).AddrPort() }

// send writes a v2 message as the original client lays it out.
func (l *legacyClient) send(m *ptp.Message) {
	m.Role, m.Version, m.UUID, m.Sequence = ptp.RoleClient, 2, l.uuid, l.seq
	m.Has |= ptp.FieldSequence | ptp.FieldUUID
	l.seq++
	b, err := m.AppendTo(nil)
	if err != nil {
		l.t.Fatal(err)
	}
	if _, err := l.c.WriteToUDPAddrPort(b, l.srv); err != nil {
		l.t.Fatal(err)
	}
}

func (l *legacyClient) beacon(ts timestamp.Fixed32) {
	l.send(&ptp.Message{Has: ptp.FieldPTPAddr | ptp.FieldMyTS | ptp.FieldMeta, PTPAddr: l.addr(), MyTS: ts, Meta: []byte("{}")})
}

// recv returns the next PtP message (a read deadline guards against a hang only).
func (l *legacyClient) recv() (*ptp.Message, []byte) {
	buf := make([]byte, 2048)
	l.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, _, err := l.c.ReadFromUDPAddrPort(buf)
	if err != nil {
		l.t.Fatalf("%v: %v", l.addr(), err)
	}
	m := &ptp.Message{}
	if err := m.UnmarshalBinary(buf[:n]); err != nil {
		l.t.Fatalf("undecodable %x: %v", buf[:n], err)
	}
	return m, buf[:n]
}

func (l *legacyClient) listWith(n int) *ptp.Message {
	for {
		m, _ := l.recv()
		if m.Has&ptp.FieldList != 0 && len(m.Entries) == n {
			if m.IsV3() || !m.ListComplete() || m.Version != 2 {
				l.t.Fatalf("list for a legacy client: %+v", m)
			}
			return m
		}
	}
}

// TestE2E runs the real binary on loopback and speaks protocol v2 to it, plus STUN.
func TestE2E(t *testing.T) {
	bin := buildBinary(t)
	port := freePort(t)
	srv := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	cmd := exec.Command(bin, "-s", "127.0.0.1", "-p", strconv.Itoa(port), "--json", "--duration", "60s")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
	}()

	a := newLegacy(t, srv, 0xa)
	b := newLegacy(t, srv, 0xb)
	ts := timestamp.Fixed32FromTime(time.Now())
	// The server may not be bound yet: resend A's beacon until its reply comes.
	var reply *ptp.Message
	for i := 0; ; i++ {
		a.beacon(ts)
		a.c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		buf := make([]byte, 2048)
		n, _, err := a.c.ReadFromUDPAddrPort(buf)
		if err == nil {
			reply = &ptp.Message{}
			if err := reply.UnmarshalBinary(buf[:n]); err != nil {
				t.Fatal(err)
			}
			break
		}
		if i > 100 {
			t.Fatalf("no reply from the server: %s", stderr.String())
		}
	}
	// The first answer may be the list (join round) or the YOURTS reply.
	for reply.Has&ptp.FieldYourTS == 0 {
		reply, _ = a.recv()
	}
	if reply.Role != ptp.RoleServer || reply.Version != 2 || reply.YourTS != ts || reply.UUID != a.uuid || reply.IsV3() {
		t.Fatalf("reply %+v", reply)
	}
	b.beacon(ts)
	// A's list names B with B's LAN address (same public IP 127.0.0.1); CLIENTLEN 1.
	la := a.listWith(1)
	if la.Entries[0].Ext != b.addr() || la.Entries[0].Int != b.addr() || la.YourAddr != a.addr() || la.UUID != a.uuid {
		t.Fatalf("A's list %+v", la)
	}
	// A corrupted packet is dropped without evicting A (B2).
	bad := []byte{1, 2, 3, 2, 0xde, 0xad}
	a.c.WriteToUDPAddrPort(bad, srv)

	// STUN Binding on the same port: XOR-MAPPED-ADDRESS is A's address.
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest)
	a.c.WriteToUDPAddrPort(req.Raw, srv)
	for {
		buf := make([]byte, 2048)
		a.c.SetReadDeadline(time.Now().Add(20 * time.Second))
		n, _, err := a.c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatal(err)
		}
		if !stun.IsMessage(buf[:n]) {
			continue
		}
		res := &stun.Message{Raw: buf[:n]}
		if err := res.Decode(); err != nil {
			t.Fatal(err)
		}
		var xa stun.XORMappedAddress
		if err := xa.GetFrom(res); err != nil {
			t.Fatal(err)
		}
		if res.TransactionID != req.TransactionID || xa.Port != int(a.addr().Port()) || !xa.IP.Equal(net.IPv4(127, 0, 0, 1)) {
			t.Fatalf("STUN answer %v %v", res, xa)
		}
		break
	}
	// A leaves with SHUTDOWN (as c2s_shutdown): B's list becomes empty.
	a.send(&ptp.Message{Has: ptp.FieldPTPAddr | ptp.FieldShutdown | ptp.FieldMeta, PTPAddr: a.addr(), Meta: []byte("{}")})
	b.listWith(0)

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	var types []string
	var summary struct {
		Clients []struct {
			UUID, Address string
			Received      uint64
		}
		Stats struct {
			BadChecksum uint64 `json:"bad_checksum"`
			STUN        uint64
		}
	}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var ev struct{ Type, Address, Reason string }
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("not JSON: %q", sc.Text())
		}
		types = append(types, ev.Type+" "+ev.Address+" "+ev.Reason)
		if ev.Type == "summary" {
			json.Unmarshal(sc.Bytes(), &summary)
		}
	}
	want := []string{"join " + a.addr().String() + " ", "join " + b.addr().String() + " ", "leave " + a.addr().String() + " shutdown", "summary  "}
	if strings.Join(types, "|") != strings.Join(want, "|") {
		t.Errorf("events %q\nwant %q", types, want)
	}
	if len(summary.Clients) != 1 || summary.Clients[0].Address != b.addr().String() || summary.Clients[0].Received < 1 ||
		summary.Stats.BadChecksum != 1 || summary.Stats.STUN != 1 {
		t.Errorf("summary %+v", summary)
	}
}

// TestTmux runs the binary on a real terminal (a detached tmux session): the original's
// screen comes up, a client appears as a row, and q quits with status 0.
func TestTmux(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux not installed")
	}
	bin := buildBinary(t)
	port := freePort(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "tmux.sock")
	status := filepath.Join(dir, "status")
	tmux := func(args ...string) string {
		out, err := exec.Command("tmux", append([]string{"-S", sock}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %v: %v %s", args, err, out)
		}
		return string(out)
	}
	tmux("new-session", "-d", "-s", "ptp", "-x", "120", "-y", "30",
		bin+" -s 127.0.0.1 -p "+strconv.Itoa(port)+" --loglines 5; echo $? > "+status+"; sleep 30")
	defer exec.Command("tmux", "-S", sock, "kill-server").Run()
	screen := func() string { return tmux("capture-pane", "-p", "-t", "ptp") }
	waitScreen := func(what string) string {
		for i := 0; i < 400; i++ {
			if s := screen(); strings.Contains(s, what) {
				return s
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("screen never showed %q:\n%s", what, screen())
		return ""
	}
	// tcell's frame reaches the terminal in pieces: wait until one capture shows it whole.
	parts := []string{"PTP Server version", "Address", "Pkts Sent", "Pkts Rcvd", "Acks Lost", "Avg RTT", "Log output", "Status"}
	for i := 0; ; i++ {
		s, missing := screen(), ""
		for _, p := range parts {
			if !strings.Contains(s, p) {
				missing = p
				break
			}
		}
		if missing == "" {
			break
		}
		if i == 400 {
			t.Fatalf("screen lacks %q:\n%s", missing, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
	srv := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	a := newLegacy(t, srv, 0xa)
	a.beacon(timestamp.Fixed32FromTime(time.Now()))
	row := "('127.0.0.1', " + strconv.Itoa(int(a.addr().Port())) + ")"
	// The row and the log pane's join line (which also holds the row's text).
	waitScreen("Received packet from a new client " + row)
	for i := 0; strings.Count(screen(), row) < 2; i++ {
		if i == 400 {
			t.Fatalf("no table row %s:\n%s", row, screen())
		}
		time.Sleep(50 * time.Millisecond)
	}
	tmux("send-keys", "-t", "ptp", "q")
	for i := 0; i < 400; i++ {
		if b, err := os.ReadFile(status); err == nil {
			if strings.TrimSpace(string(b)) != "0" {
				t.Fatalf("exit status %s", b)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("q did not end ptpserver:\n%s", screen())
}
