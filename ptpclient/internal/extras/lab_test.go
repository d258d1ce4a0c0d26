package extras

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/probekit/probekit/ptpclient/internal/testbin"
	"github.com/probekit/probekit/shared/netlab"
	"github.com/probekit/probekit/shared/portmap"
	"github.com/probekit/probekit/shared/ptpbulk"
	"github.com/probekit/probekit/shared/testsupport/labtest"
)

const srvPort = 23456

type labSummary struct {
	UUID  string `json:"uuid"`
	Peers []struct {
		UUID   string `json:"uuid"`
		Path   string `json:"path"`
		Reason string `json:"reason"`
	} `json:"peers"`
	PortMapping []portmap.Result `json:"port_mapping"`
	Transfers   []TransferJSON   `json:"transfers"`
}

func lastSummary(t *testing.T, out string) labSummary {
	t.Helper()
	var s labSummary
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, `{"type":"summary"`) {
			if err := json.Unmarshal([]byte(l), &s); err != nil {
				t.Fatal(err)
			}
		}
	}
	if s.UUID == "" {
		t.Fatalf("no summary:\n%s", out)
	}
	return s
}

func pathTo(s labSummary, uuid string) (string, string) {
	for _, p := range s.Peers {
		if p.UUID == uuid {
			return p.Path, p.Reason
		}
	}
	return "", ""
}

// TestLabPortMapping: a client behind a port-restricted NAT and one behind a symmetric NAT
// reach each other only through the relay; with --port-mapping (miniupnpd on the first
// router) the pair is direct, and the mapping is gone from the router after SIGTERM.
func TestLabPortMapping(t *testing.T) {
	labtest.SkipUnlessAvailable(t)
	srvBin, cliBin := testbin.Build(t, "ptpserver"), testbin.Build(t, "ptpclient")
	n := labtest.NAT(t, netlab.NATConfig{NATs: []netlab.NATSpec{{Kind: netlab.PortRestricted, UPnP: true}, {Kind: netlab.Symmetric}}})
	srv, err := n.Rendezvous.Start(srvBin, "-s", netlab.Rendezvous.String(), "-p", strconv.Itoa(srvPort), "--json", "--no-tui")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	time.Sleep(300 * time.Millisecond)
	y, x := n.NATs[0].Clients[0], n.NATs[1].Clients[0]
	yPort := int(y.Ports[0]) + 11
	common := []string{"-s", netlab.Rendezvous.String(), "-p", strconv.Itoa(srvPort), "--json", "--nostun"}
	run := func(mapping bool) (labSummary, labSummary, string) {
		args := append(append([]string{}, common...), "--bind", "0.0.0.0:"+strconv.Itoa(yPort))
		if mapping {
			args = append(args, "--port-mapping")
		}
		yp, err := y.Start(cliBin, args...)
		if err != nil {
			t.Fatal(err)
		}
		xp, err := x.Start(cliBin, append(append([]string{}, common...), "--bind", "0.0.0.0:"+strconv.Itoa(int(x.Ports[0])+11), "--duration", "14s")...)
		if err != nil {
			t.Fatal(err)
		}
		if err := xp.Wait(); err != nil {
			t.Fatalf("x: %v\n%s", err, xp.Output())
		}
		// Rules while Y still runs, then SIGTERM.
		rules := upnpRules(t, n.NATs[0].Router)
		yp.Cmd.Process.Signal(syscall.SIGTERM)
		yp.Wait()
		return lastSummary(t, yp.Output()), lastSummary(t, xp.Output()), rules
	}
	ys, xs, _ := run(false)
	if p, r := pathTo(xs, ys.UUID); p != "relay" {
		t.Fatalf("without port mapping x->y is %q (%s), want relay", p, r)
	}
	ys, xs, rules := run(true)
	granted := ""
	for _, r := range ys.PortMapping {
		t.Logf("%s: gateway %q external %q lifetime %d error %q deleted %v", r.Protocol, r.Gateway, r.External, r.Lifetime, r.Error, r.Deleted)
		if r.External != "" {
			granted = r.External
			if !r.Deleted {
				t.Errorf("%s mapping not deleted on SIGTERM", r.Protocol)
			}
		}
	}
	if granted == "" {
		t.Fatalf("no mapping granted: %+v", ys.PortMapping)
	}
	if !strings.Contains(rules, strconv.Itoa(yPort)) {
		t.Errorf("router has no rule for port %d while the client runs", yPort)
	}
	if p, r := pathTo(xs, ys.UUID); p != "direct" {
		t.Errorf("with port mapping x->y is %q (%s), want direct", p, r)
	}
	if p, r := pathTo(ys, xs.UUID); p != "direct" {
		t.Errorf("with port mapping y->x is %q (%s), want direct", p, r)
	}
	if after := upnpRules(t, n.NATs[0].Router); strings.Contains(after, strconv.Itoa(yPort)) {
		t.Errorf("rule for port %d still in the router after SIGTERM", yPort)
	}
}

// TestLabBulk: 20 MB from A to B through 5 % random loss each way and reordering (the NFQUEUE
// delayer, 1 ms ± 1 ms), on the direct path and, with the direct path blocked, through the
// server's relay.
func TestLabBulk(t *testing.T) {
	labtest.SkipUnlessAvailable(t)
	srvBin, cliBin := testbin.Build(t, "ptpserver"), testbin.Build(t, "ptpclient")
	imp := netlab.Impairment{Delay: time.Millisecond, Jitter: time.Millisecond, Reorder: true, Loss: 0.05}
	p := labtest.Path(t, netlab.PathConfig{Out: imp, In: imp})
	srv, err := p.B.Start(srvBin, "-s", netlab.PathB.String(), "-p", strconv.Itoa(srvPort), "--json", "--no-tui", "--relay-rate", "100000", "--relay-burst", "10000")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	time.Sleep(300 * time.Millisecond)
	data := make([]byte, 20<<20)
	rand.Read(data)
	src := t.TempDir()
	file := filepath.Join(src, "twenty.bin")
	os.WriteFile(file, data, 0o644)
	for _, relayed := range []bool{false, true} {
		name := map[bool]string{false: "direct", true: "relay"}[relayed]
		t.Run(name, func(t *testing.T) {
			dst := t.TempDir()
			common := []string{"-s", netlab.PathB.String(), "-p", strconv.Itoa(srvPort), "--json", "--nostun"}
			const aPort, bPort = 41001, 41002
			if relayed {
				// A and B cannot reach each other's client port: only the server's relay works.
				for _, r := range [][]string{{"-A", "OUTPUT", "-p", "udp", "--dport", strconv.Itoa(bPort), "-j", "DROP"},
					{"-A", "INPUT", "-p", "udp", "--sport", strconv.Itoa(bPort), "-j", "DROP"}} {
					if out, err := p.A.Exec("iptables", r...); err != nil {
						t.Fatalf("iptables: %v %s", err, out)
					}
				}
				defer p.A.Exec("iptables", "-F")
			}
			bp, err := p.B.Start(cliBin, append(append([]string{}, common...), "--bind", netlab.PathB.String()+":"+strconv.Itoa(bPort), "--accept-dir", dst, "--duration", "150s")...)
			if err != nil {
				t.Fatal(err)
			}
			defer bp.Stop()
			time.Sleep(time.Second)
			ap, err := p.A.Start(cliBin, append(append([]string{}, common...), "--bind", netlab.PathA.String()+":"+strconv.Itoa(aPort),
				"--send", file, "--to", netlab.PathB.String()+":"+strconv.Itoa(bPort))...)
			if err != nil {
				t.Fatal(err)
			}
			if err := ap.Wait(); err != nil {
				t.Fatalf("sender: %v\n%s", err, tail(ap.Output()))
			}
			got, err := os.ReadFile(filepath.Join(dst, "twenty.bin"))
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("file not received intact (%v)\nsender:\n%s\nreceiver:\n%s", err, tail(ap.Output()), tail(bp.Output()))
			}
			s := lastSummary(t, ap.Output())
			if len(s.Transfers) != 1 || !s.Transfers[0].OK {
				t.Fatalf("sender transfers %+v", s.Transfers)
			}
			tr := s.Transfers[0]
			t.Logf("%s: %.1f s, %.1f Mbit/s, %d blocks sent again", name, tr.DurationS, tr.GoodputBps*8/1e6, tr.Retransmits)
			path, _ := pathTo(s, lastPeerUUID(s))
			if relayed && path != "relay" || !relayed && path != "direct" {
				t.Errorf("path during the transfer: %q", path)
			}
		})
	}
}

// upnpRules returns the rules miniupnpd manages (its chains in the router's ruleset); the
// router's own sets also hold the client's port while it talks, so the whole ruleset is no
// evidence.
func upnpRules(t *testing.T, r *netlab.Host) string {
	t.Helper()
	all, err := r.Exec("nft", "list", "ruleset")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	in := false
	for _, l := range strings.Split(all, "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "chain" {
			in = strings.Contains(f[1], "miniupnpd")
			continue
		}
		if in {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func lastPeerUUID(s labSummary) string {
	if len(s.Peers) == 0 {
		return ""
	}
	return s.Peers[0].UUID
}

func tail(s string) string {
	if len(s) > 3000 {
		return s[len(s)-3000:]
	}
	return s
}

// TestLabBulkRate: on a path limited to 100 Mbit/s each way (tbf), ptpclient --send between two
// real client processes moves the file intact, and its goodput is at least 80 % of what TCP
// (socat) moves on the same path in the same run (best of two each, alternating, so a burst of
// load during one run does not decide). The ratio is asserted without the race detector (the
// bench script, scripts/bench.d/ptp.sh); CI runs -race on a shared machine, where it is logged.
// Each run logs where packets could have been lost: the tbf queues, the receiving socket
// (/proc/net/udp drops) and the clients' hand-off queues. With --rate the sender never puts
// more than the cap on the path.
func TestLabBulkRate(t *testing.T) {
	labtest.SkipUnlessAvailable(t)
	if testing.Short() {
		t.Skip("throughput comparison")
	}
	srvBin, cliBin := testbin.Build(t, "ptpserver"), testbin.Build(t, "ptpclient")
	imp := netlab.Impairment{RateBps: 100e6}
	p := labtest.Path(t, netlab.PathConfig{Out: imp, In: imp})
	srv, err := p.B.Start(srvBin, "-s", netlab.PathB.String(), "-p", strconv.Itoa(srvPort), "--json", "--no-tui")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	const size = 20 << 20
	data := make([]byte, size)
	rand.Read(data)
	file := filepath.Join(t.TempDir(), "rate.bin")
	os.WriteFile(file, data, 0o644)
	common := []string{"-s", netlab.PathB.String(), "-p", strconv.Itoa(srvPort), "--json", "--nostun"}
	transfer := func(i int, extra ...string) TransferJSON {
		dst := t.TempDir()
		bPort := 42000 + 2*i
		bargs := append(append([]string{}, common...), "--bind", netlab.PathB.String()+":"+strconv.Itoa(bPort), "--accept-dir", dst, "--duration", "120s")
		if d := os.Getenv("PTPBULK_PROFILE_DIR"); d != "" { // CPU profiles of both clients
			bargs = append(bargs, "--cpuprofile", filepath.Join(d, "recv"+strconv.Itoa(i)+".prof"))
			extra = append(extra, "--cpuprofile", filepath.Join(d, "send"+strconv.Itoa(i)+".prof"))
		}
		bp, err := p.B.Start(cliBin, bargs...)
		if err != nil {
			t.Fatal(err)
		}
		defer bp.Stop()
		time.Sleep(500 * time.Millisecond)
		args := append(append([]string{}, common...), "--bind", netlab.PathA.String()+":"+strconv.Itoa(bPort+1), "--send", file,
			"--to", netlab.PathB.String()+":"+strconv.Itoa(bPort))
		ap, err := p.A.Start(cliBin, append(args, extra...)...)
		if err != nil {
			t.Fatal(err)
		}
		if err := ap.Wait(); err != nil {
			t.Fatalf("sender: %v\n%s", err, tail(ap.Output()))
		}
		sockDrops := udpDrops(p.B, bPort)
		got, err := os.ReadFile(filepath.Join(dst, "rate.bin"))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("file not received intact: %v", err)
		}
		s := lastSummary(t, ap.Output())
		if len(s.Transfers) != 1 || !s.Transfers[0].OK {
			t.Fatalf("transfers %+v", s.Transfers)
		}
		var recv TransferJSON
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if r := transferLines(t, bp.Output()); len(r) > 0 {
				recv = r[0]
				break
			}
		}
		tr := s.Transfers[0]
		bp.Stop()
		t.Logf("run %d: %.1f Mbit/s in %.2f s; %d blocks sent again; receiver: %d re-requests, %d timeouts, window max %d, RTT min %.2f avg %.2f ms; "+
			"dropped: receiving socket %s, hand-off sender %d receiver %d, sender queue %d; tbf %s; CPU and context switches (voluntary/preempted) sender %s, receiver %s",
			i, tr.GoodputBps*8/1e6, tr.DurationS, tr.Retransmits, recv.Retransmits, recv.Timeouts, recv.MaxWindow, recv.RTTMinMs, recv.RTTAvgMs,
			sockDrops, tr.HandoffDrops, recv.HandoffDrops, tr.QueueDrops, tbfDrops(p.R), usage(ap), usage(bp))
		return tr
	}
	var tcp, bulk float64
	for i := 0; i < 2; i++ {
		port := 5001 + i
		ls, err := p.B.Start("socat", "-u", "TCP-LISTEN:"+strconv.Itoa(port)+",reuseaddr", "OPEN:/dev/null")
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		start := time.Now()
		if out, err := p.A.Exec("socat", "-u", "FILE:"+file, "TCP:"+netlab.PathB.String()+":"+strconv.Itoa(port)); err != nil {
			t.Fatalf("socat: %v %s", err, out)
		}
		<-ls.Done()
		tcp = max(tcp, float64(size)/time.Since(start).Seconds())
		bulk = max(bulk, transfer(i).GoodputBps)
	}
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("TCP (socat) %.1f Mbit/s, ptpclient --send %.1f Mbit/s (%.0f %%); load average %s", tcp*8/1e6, bulk*8/1e6, 100*bulk/tcp, strings.TrimSpace(string(load)))
	if bulk < 0.8*tcp {
		if raceEnabled {
			t.Logf("below 80 %% of TCP (not asserted under -race)")
		} else {
			t.Errorf("ptpclient --send %.1f Mbit/s: below 80 %% of TCP's %.1f Mbit/s on the same path", bulk*8/1e6, tcp*8/1e6)
		}
	}
	// --rate 2M: what the sender put on the path, repeats included, over the transfer.
	const capBps = 2e6
	tr := transfer(2, "--rate", "2M")
	sent := float64(tr.SentBytes) / tr.DurationS
	t.Logf("--rate 2M: %.0f B/s sent (%.0f B/s goodput)", sent, tr.GoodputBps)
	if sent > capBps*1.01 {
		t.Errorf("--rate 2M: sent %.0f B/s", sent)
	}
}

// usage is an exited process's CPU time and context switches.
func usage(p *netlab.Proc) string {
	if p.Cmd.ProcessState == nil {
		return "?"
	}
	ru, ok := p.Cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return "?"
	}
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return fmt.Sprintf("%.2f s %d/%d", cpu.Seconds(), ru.Nvcsw, ru.Nivcsw)
}

// udpDrops is the drops column of /proc/net/udp for the socket on port in h's namespace.
func udpDrops(h *netlab.Host, port int) string {
	out, _ := h.Exec("cat", "/proc/net/udp")
	suffix := fmt.Sprintf(":%04X", port)
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 12 && strings.HasSuffix(f[1], suffix) {
			return f[12]
		}
	}
	return "?"
}

// tbfDrops lists the router's tbf qdiscs' drop counters (cumulative over the test).
func tbfDrops(r *netlab.Host) string {
	out, _ := r.Exec("tc", "-s", "qdisc")
	var b strings.Builder
	dev := ""
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && f[0] == "qdisc" && f[1] == "tbf" {
			dev = f[4]
		}
		if i := strings.Index(l, "dropped "); i >= 0 && dev != "" {
			fmt.Fprintf(&b, "%s %s ", dev, strings.TrimSuffix(strings.Fields(l[i+8:])[0], ","))
			dev = ""
		}
	}
	return strings.TrimSpace(b.String())
}

// checkpointed counts the blocks the receiver's resume record (the .part.have file in dir)
// holds: "PKBULK1\n", size, SHA-256, then one bit per block.
func checkpointed(t *testing.T, dir string) int {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, ".*.part.have"))
	if len(m) != 1 {
		return -1
	}
	b, err := os.ReadFile(m[0])
	if err != nil || len(b) < 48 {
		return -1
	}
	n := 0
	for _, x := range b[48:] {
		n += bits.OnesCount8(x)
	}
	return n
}

// TestLabResumeAfterKill: the receiving ptpclient (--accept-dir) is killed with SIGKILL in the
// middle of a transfer; restarted on the same directory, it takes the file again from a new
// `ptpclient --send` and asks only for the blocks its last checkpoint does not hold: the
// receiver reports exactly the checkpointed bytes as resumed, the sender's first copies are
// exactly the rest (so no checkpointed block crossed the path again), and the file is intact
// (SHA-256 verified by the receiver, compared byte for byte here).
func TestLabResumeAfterKill(t *testing.T) {
	labtest.SkipUnlessAvailable(t)
	srvBin, cliBin := testbin.Build(t, "ptpserver"), testbin.Build(t, "ptpclient")
	p := labtest.Path(t, netlab.PathConfig{})
	srv, err := p.B.Start(srvBin, "-s", netlab.PathB.String(), "-p", strconv.Itoa(srvPort), "--json", "--no-tui")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	const size = 8<<20 + 333
	data := make([]byte, size)
	rand.Read(data)
	file := filepath.Join(t.TempDir(), "resume.bin")
	os.WriteFile(file, data, 0o644)
	dst := t.TempDir()
	nblocks := (size + ptpbulk.BlockSize - 1) / ptpbulk.BlockSize
	common := []string{"-s", netlab.PathB.String(), "-p", strconv.Itoa(srvPort), "--json", "--nostun"}
	const aPort, bPort = 43001, 43002
	receiver := func() *netlab.Proc {
		bp, err := p.B.Start(cliBin, append(append([]string{}, common...), "--bind", netlab.PathB.String()+":"+strconv.Itoa(bPort), "--accept-dir", dst, "--duration", "120s")...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(bp.Stop)
		time.Sleep(500 * time.Millisecond)
		return bp
	}
	sender := func() *netlab.Proc {
		// 2 MB/s: the transfer lasts seconds, so the kill lands in its middle.
		ap, err := p.A.Start(cliBin, append(append([]string{}, common...), "--bind", netlab.PathA.String()+":"+strconv.Itoa(aPort),
			"--send", file, "--to", netlab.PathB.String()+":"+strconv.Itoa(bPort), "--rate", "2M")...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(ap.Stop)
		return ap
	}
	b1 := receiver()
	a1 := sender()
	// Kill the receiver once its checkpoint holds a third of the file.
	for deadline := time.Now().Add(60 * time.Second); checkpointed(t, dst) < nblocks/3; time.Sleep(5 * time.Millisecond) {
		select {
		case <-a1.Done():
			t.Fatalf("sender ended before the kill:\n%s", tail(a1.Output()))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkpoint never reached a third (%d of %d blocks)\nreceiver:\n%s", checkpointed(t, dst), nblocks, tail(b1.Output()))
		}
	}
	if err := b1.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	b1.Wait()
	held := checkpointed(t, dst) // what the dead receiver left on disk
	if held <= 0 || held >= nblocks {
		t.Fatalf("checkpoint after the kill: %d of %d blocks", held, nblocks)
	}
	// The first sender loses its peer; stop it (the CLI user runs --send again).
	a1.Cmd.Process.Signal(syscall.SIGTERM)
	a1.Wait()
	var sent1 int64 // the first sender's report, printed when SIGTERM cancels its transfer
	for _, tr := range transferLines(t, a1.Output()) {
		sent1 = tr.SentBytes
	}
	b2 := receiver()
	a2 := sender()
	if err := a2.Wait(); err != nil {
		t.Fatalf("second sender: %v\n%s", err, tail(a2.Output()))
	}
	got, err := os.ReadFile(filepath.Join(dst, "resume.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("file not received intact (%v)\nreceiver:\n%s", err, tail(b2.Output()))
	}
	if m, _ := filepath.Glob(filepath.Join(dst, ".*")); len(m) != 0 {
		t.Errorf("left behind: %v", m)
	}
	s2 := lastSummary(t, a2.Output())
	if len(s2.Transfers) != 1 || !s2.Transfers[0].OK {
		t.Fatalf("second sender transfers %+v", s2.Transfers)
	}
	// The receiver reports after its last word to the sender (up to a second later).
	var r2 []TransferJSON
	for deadline := time.Now().Add(30 * time.Second); len(r2) == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		r2 = transferLines(t, b2.Output())
	}
	if len(r2) != 1 || !r2[0].OK {
		t.Fatalf("receiver transfers %+v\n%s", r2, tail(b2.Output()))
	}
	recv, send := r2[0], s2.Transfers[0]
	heldBytes := int64(held) * ptpbulk.BlockSize // the last block is never among them: the kill came first
	t.Logf("killed at %d of %d blocks checkpointed; first sender sent %d bytes; resumed %d, moved %d, second sender's first copies %d (%d bytes sent)",
		held, nblocks, sent1, recv.Resumed, recv.Moved, send.Moved, send.SentBytes)
	if recv.Resumed != heldBytes {
		t.Errorf("receiver resumed %d bytes, its checkpoint held %d", recv.Resumed, heldBytes)
	}
	if recv.Moved != size-heldBytes || send.Moved != size-heldBytes {
		t.Errorf("second run moved %d (receiver) / %d (sender's first copies), want exactly the %d bytes not checkpointed",
			recv.Moved, send.Moved, size-heldBytes)
	}
	if sent1 > 0 {
		// What the first run carried beyond the checkpoint was carried again: the blocks that
		// arrived after the last checkpoint (200 ms) and those in flight or sent to the dead peer.
		t.Logf("carried twice: %d bytes", sent1+send.Moved-size)
	}
}

// transferLines returns the transfer reports a client printed (JSON lines of type transfer).
func transferLines(t *testing.T, out string) []TransferJSON {
	t.Helper()
	var trs []TransferJSON
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, `{"type":"transfer"`) {
			var tr TransferJSON
			if err := json.Unmarshal([]byte(l), &tr); err != nil {
				t.Fatal(err)
			}
			trs = append(trs, tr)
		}
	}
	return trs
}
