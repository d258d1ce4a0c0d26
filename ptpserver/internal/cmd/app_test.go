package cmd

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/probekit/probekit/ptpserver/internal/server"
	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/shared/ptp"
)

func TestLint(t *testing.T) {
	for _, err := range cliutil.Lint(NewApp("test")) {
		t.Error(err)
	}
}

// TestUsageErrors: one line, exit 2.
func TestUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-s", "not an address!"}, "--server"},
		{[]string{"-p", "70000"}, "70000"},
		{[]string{"--other-address", "127.0.0.2"}, "needs a specific --server"},
		{[]string{"-s", "127.0.0.1", "--other-address", "127.0.0.1:5"}, "must differ"},
		{[]string{"-s", "127.0.0.1", "--other-address", "127.0.0.2", "--nostun"}, "conflicts"},
		{[]string{"extra"}, "unexpected argument"},
		{[]string{"--format", "csv", "-p", "1"}, "csv"},
	}
	for _, c := range cases {
		code, _, stderr := cliutil.RunCapture(context.Background(), NewApp("test"), c.args...)
		if code != cliutil.ExitUsage || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q", c.args, code, stderr)
		}
	}
}

// TestFlags: the original's flags and aliases map onto the config.
func TestFlags(t *testing.T) {
	app := NewApp("test")
	var got server.Config
	app.Action = func(c *cli.Context) error {
		var err error
		got, err = Config(c)
		return err
	}
	code, _, stderr := cliutil.RunCapture(context.Background(), app, "-s", "127.0.0.1", "-p", "4000", "-d", "--hexdump", "--nostun", "--curses", "--loglines", "5", "--relay-rate", "0")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if got.Addr != netip.MustParseAddrPort("127.0.0.1:4000") || !got.Debug || !got.Hexdump || !got.NoSTUN || got.RelayRate >= 0 {
		t.Errorf("%+v", got)
	}
	code, _, _ = cliutil.RunCapture(context.Background(), app, "--no-stun", "-s", "127.0.0.1", "--other-address", "127.0.0.2:7")
	if code != cliutil.ExitUsage {
		t.Errorf("--no-stun with --other-address: exit %d", code)
	}
}

// TestPortInUse: a taken port is one line and exit 1.
func TestPortInUse(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := server.New(ctx, server.Config{Addr: netip.MustParseAddrPort("127.0.0.1:0"), NoSTUN: true})
	if err != nil {
		t.Fatal(err)
	}
	port := srv.LocalAddr().Port()
	go srv.Run(ctx)
	code, _, stderr := cliutil.RunCapture(context.Background(), NewApp("test"), "-s", "127.0.0.1", "-p", strconv.Itoa(int(port)), "--duration", "1s", "--no-tui")
	if code != cliutil.ExitFailure || !strings.Contains(stderr, "listen") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// TestScreen: the server screen on a tcell simulation screen shows client rows in the
// original's columns and events in the log pane; q quits.
func TestScreen(t *testing.T) {
	sim := tcell.NewSimulationScreen("UTF-8")
	s, err := newScreenUI(sim, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer s.fini()
	sim.SetSize(100, 20)
	var u ptp.UUID
	snap := server.Snapshot{Local: netip.MustParseAddrPort("0.0.0.0:23456"), Clients: []server.ClientState{{
		ClientInfo: server.ClientInfo{UUID: u, Addr: netip.MustParseAddrPort("207.162.195.200:23456"), Version: 2},
		Sent:       3, Received: 4, Lost: 1, RTTAvg: 844 * time.Microsecond,
	}}}
	s.ui.SetRows(rows(snap))
	s.ui.SetStatus(status(snap, server.Config{}))
	s.Joined(server.ClientInfo{Addr: netip.MustParseAddrPort("207.162.195.200:23456"), Version: 2})
	s.Left(server.ClientInfo{Addr: netip.MustParseAddrPort("207.162.195.200:23456")}, "expired")
	pmc := server.ClientInfo{Addr: netip.MustParseAddrPort("198.51.100.7:40000"), Version: 3, PortMaps: []ptp.PortMap{
		{Protocol: ptp.PortMapNATPMP, Status: ptp.PortMapGranted, Lifetime: 7200, External: netip.MustParseAddrPort("198.51.100.7:23456")}}}
	s.Reported(server.Report{Client: pmc})
	s.Reported(server.Report{Client: pmc}) // unchanged: not logged again
	snap.Clients = append(snap.Clients, server.ClientState{ClientInfo: pmc})
	s.ui.SetStatus(status(snap, server.Config{}))
	cells, w, h := sim.GetContents()
	var lines []string
	for y := 0; y < h; y++ {
		var b strings.Builder
		for x := 0; x < w; x++ {
			if c := cells[y*w+x]; len(c.Bytes) > 0 {
				b.Write(c.Bytes)
			} else {
				b.WriteByte(' ')
			}
		}
		lines = append(lines, b.String())
	}
	if !strings.HasPrefix(lines[0], "PTP Server version") || !strings.Contains(lines[0], "(protocol version 3)") {
		t.Errorf("header %q", lines[0])
	}
	for _, col := range []string{"Address", "Pkts Sent", "Pkts Rcvd", "Acks Lost", "Avg RTT", "Mesh"} {
		if !strings.Contains(lines[1], col) {
			t.Errorf("column %s missing: %q", col, lines[1])
		}
	}
	row := strings.Join(strings.Fields(lines[2]), " ")
	if row != "('207.162.195.200', 23456) 3 4 1 0.000844 default 2" {
		t.Errorf("row %q", row)
	}
	all := strings.Join(lines, "\n")
	for _, want := range []string{"Received packet from a new client ('207.162.195.200', 23456)", "Expiring client 207.162.195.200-23456", "Address: 0.0.0.0:23456",
		"Client ('198.51.100.7', 40000) port mapping: nat-pmp", "Port mapping: 1 of 1 granted"} {
		if !strings.Contains(all, want) {
			t.Errorf("screen lacks %q:\n%s", want, all)
		}
	}
	if n := strings.Count(all, "port mapping: nat-pmp"); n != 1 {
		t.Errorf("port mapping logged %d times, want once (unchanged outcome):\n%s", n, all)
	}
	done := make(chan struct{})
	go func() { s.ui.Run(context.Background(), func() { close(done) }) }()
	sim.InjectKey(tcell.KeyRune, 'q', tcell.ModNone)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("q did not quit")
	}
}

// TestHook: a registered hook gets its flag, the running server, and its finish call.
func TestHook(t *testing.T) {
	oldHooks, oldFlags := hooks, extraFlags
	defer func() { hooks, extraFlags = oldHooks, oldFlags }()
	var gotFlag string
	var gotAddr netip.AddrPort
	finished := false
	Register(func(c *cli.Context, srv *server.Server, _ logrus.FieldLogger) (server.Observer, func(), error) {
		gotFlag, gotAddr = c.String("store"), srv.LocalAddr()
		return server.ObserverFuncs{}, func() { finished = true }, nil
	}, &cli.StringFlag{Name: "store", Usage: "test `PATH`"})
	code, _, stderr := cliutil.RunCapture(context.Background(), NewApp("test"), "-s", "127.0.0.1", "-p", "0", "--store", "x.db", "--duration", "200ms", "--no-tui")
	_ = code
	if gotFlag != "" || finished {
		// -p 0 is refused (port 1-65535): nothing ran.
		t.Fatalf("hook ran on a usage error: %q", stderr)
	}
	code, _, stderr = cliutil.RunCapture(context.Background(), NewApp("test"), "-s", "127.0.0.1", "-p", strconv.Itoa(freeUDPPort(t)), "--store", "x.db", "--duration", "200ms", "--no-tui")
	if code != 0 || gotFlag != "x.db" || !gotAddr.IsValid() || !finished {
		t.Fatalf("exit %d flag %q addr %v finished %v: %s", code, gotFlag, gotAddr, finished, stderr)
	}
}

func freeUDPPort(t *testing.T) int {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}
