// Package e2e runs the real stampref and stampsend binaries, built by the test, on loopback
// and in the lab's path topology.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/loadgen"
	"github.com/probekit/probekit/shared/pace"
	"github.com/probekit/probekit/shared/sender/sendertest"
	"github.com/probekit/probekit/shared/testsupport/syncbuf"
)

var bins struct{ stampref, stampsend string }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stamp-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins.stampref = filepath.Join(dir, "stampref")
	bins.stampsend = filepath.Join(dir, "stampsend")
	for _, b := range []struct{ out, dir string }{{bins.stampref, "../../../stampref"}, {bins.stampsend, "../.."}} {
		cmd := exec.Command("go", "build", "-o", b.out, ".")
		cmd.Dir = b.dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", b.dir, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// startReflector runs stampref on 127.0.0.1 and waits until it logs that it serves.
func startReflector(t *testing.T, args ...string) string {
	t.Helper()
	port, err := loadgen.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return startReflectorOn(t, "127.0.0.1:"+strconv.Itoa(int(port)), args...)
}

// startReflectorOn runs stampref on addr; it is stopped with SIGTERM at the end of the test
// and must exit 0 (30 s hang guard).
func startReflectorOn(t *testing.T, addr string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bins.stampref, append([]string{"--listen", addr, "--no-monitor", "--log-format", "json"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("stampref after SIGTERM: %v", err)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Error("stampref did not stop on SIGTERM")
		}
	})
	sc := bufio.NewScanner(stderr)
	ready := make(chan bool, 1)
	go func() {
		signalled := false
		for sc.Scan() {
			if !signalled && strings.Contains(sc.Text(), "stampref: serving") {
				ready <- true
				signalled = true
			}
		}
		if !signalled {
			ready <- false
		}
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("stampref exited before serving")
		}
	case <-time.After(30 * time.Second): // hang guard
		t.Fatal("stampref not ready")
	}
	return addr
}

// record is one --json line of stampsend (a reply, or the summary when type is set).
type record struct {
	Type       string  `json:"type"`
	Seq        uint32  `json:"seq"`
	Bytes      int     `json:"bytes"`
	TTL        int     `json:"ttl"`
	SenderTTL  int     `json:"sender_ttl"`
	RTTUS      float64 `json:"rtt_us"`
	Residence  float64 `json:"residence_us"`
	Forward    float64 `json:"forward_us"`
	Backward   float64 `json:"backward_us"`
	SSID       int     `json:"ssid"`
	TxSource   string  `json:"tx_source"`
	RxSource   string  `json:"rx_source"`
	Duplicate  bool    `json:"duplicate"`
	TOS        int     `json:"tos"`
	CoS        string  `json:"cos"`
	Sent       uint64  `json:"sent"`
	Received   uint64  `json:"received"`
	Lost       uint64  `json:"lost"`
	LossPct    float64 `json:"loss_pct"`
	Duplicates uint64  `json:"duplicates"`
	RTT        struct {
		Count int64   `json:"count"`
		P50   float64 `json:"p50_us"`
		Min   float64 `json:"min_us"`
		Max   float64 `json:"max_us"`
	} `json:"rtt"`
	SSIDEchoed bool   `json:"ssid_echoed"`
	Warning    string `json:"warning"`
	LocSrc     string `json:"location_source"`
	LocDst     string `json:"location_destination"`
}

func parseJSONLines(t *testing.T, out []byte) ([]record, record) {
	t.Helper()
	var recs []record
	var sum record
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		var r record
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("bad JSON line %q: %v", line, err)
		}
		if r.Type == "summary" {
			// The summary every active sender shares (shared/sender/summary.schema.json).
			if err := sendertest.ValidateSummary(line); err != nil {
				t.Errorf("summary does not match the sender summary schema: %v\n%s", err, line)
			}
			sum = r
		} else {
			recs = append(recs, r)
		}
	}
	if sum.Type != "summary" {
		t.Fatalf("no summary in:\n%s", out)
	}
	return recs, sum
}

func runSender(t *testing.T, ctx context.Context, args ...string) []byte {
	t.Helper()
	cmd := exec.CommandContext(ctx, bins.stampsend, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("stampsend %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

// TestLoopback: 300 packets with TLVs through the real reflector: every packet answered once,
// in order, with kernel timestamps, SSID echoed, TTL 64, a plausible RTT and residence.
func TestLoopback(t *testing.T) {
	addr := startReflector(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := runSender(t, ctx, "--json", "-c", "300", "-i", "1ms", "--ssid", "4242", "--tlv", "time",
		"--tlv", "cos:dscp=af41", "--tlv", "followup", addr)
	recs, sum := parseJSONLines(t, out)
	if len(recs) != 300 || sum.Sent != 300 || sum.Received != 300 || sum.Lost != 0 || sum.Duplicates != 0 || !sum.SSIDEchoed {
		t.Fatalf("summary %+v (%d records)", sum, len(recs))
	}
	for i, r := range recs {
		if r.Seq != uint32(i) || r.Bytes != 44+8+8+20 || r.SSID != 4242 || r.TTL != 64 || r.SenderTTL != 64 ||
			r.RTTUS <= 0 || r.RTTUS > 1e6 || r.Residence < 0 || r.Residence > 1e6 || r.TxSource != "kernel" || r.RxSource != "kernel" {
			t.Fatalf("record %d: %+v", i, r)
		}
	}
	if sum.RTT.Count != 300 || sum.RTT.Min > sum.RTT.P50 || sum.RTT.P50 > sum.RTT.Max {
		t.Errorf("rtt summary %+v", sum.RTT)
	}
	if !strings.Contains(sum.Warning, "not synchronised") {
		t.Errorf("no clock warning: %q", sum.Warning)
	}
}

// TestLoopbackAuthText: authenticated mode with key files, text output like ping.
func TestLoopbackAuthText(t *testing.T) {
	kf := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(kf, []byte("interop-test-key-2026\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := startReflector(t, "--auth", "--key-file", kf, "--stateless")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := string(runSender(t, ctx, "-c", "5", "-i", "10ms", "-k", kf, "--tlv", "time", addr))
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 8 {
		t.Fatalf("output:\n%s", out)
	}
	for i := 0; i < 5; i++ {
		want := fmt.Sprintf("140 bytes from %s: seq=%d ttl=64 rtt=", addr, i)
		if !strings.HasPrefix(lines[i], want) {
			t.Errorf("line %d %q, want prefix %q", i, lines[i], want)
		}
	}
	if !strings.Contains(out, "5 packets transmitted, 5 received, 0.00% packet loss") ||
		!strings.Contains(out, "timestamps: T1 kernel (5/5), T4 kernel (5/5)") {
		t.Errorf("summary:\n%s", out)
	}
	// A wrong key gets no reply at all: exit status 1 like ping.
	bad := filepath.Join(t.TempDir(), "bad")
	_ = os.WriteFile(bad, []byte("wrong-key-0123456\n"), 0o600)
	cmd := exec.CommandContext(ctx, bins.stampsend, "-c", "3", "-i", "10ms", "-W", "200ms", "-q", "-k", bad, addr)
	out2, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out2), "3 packets transmitted, 0 received, 100.00% packet loss") {
		t.Errorf("wrong key: %v\n%s", err, out2)
	}
}

// TestCSV: --format csv gives a header and one row per reply on stdout.
func TestCSV(t *testing.T) {
	addr := startReflector(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := runSender(t, ctx, "--format", "csv", "-c", "4", "-i", "5ms", addr)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "seq,bytes,from,ttl,sender_ttl,reflector_seq,ssid,rtt_us,") {
		t.Fatalf("csv:\n%s", out)
	}
	if !strings.HasPrefix(lines[4], "3,44,"+addr+",64,64,3,") {
		t.Errorf("row %q", lines[4])
	}
}

// TestUsageErrors: bad command lines exit 2 with one line on stderr.
func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"--tlv", "bogus", "127.0.0.1"}, {"-i", "-1s", "127.0.0.1"}, {"--schedule", "x", "127.0.0.1"}} {
		cmd := exec.Command(bins.stampsend, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 {
			t.Errorf("%v: %v stderr %q", args, err, stderr.String())
		}
	}
	cmd := exec.Command(bins.stampref, "--listen", "nonsense")
	if err := cmd.Run(); err == nil {
		t.Error("stampref accepted a bad --listen")
	} else if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Errorf("stampref bad --listen: %v", err)
	}
}

// TestLoopbackIPv6: the same over ::1.
func TestLoopbackIPv6(t *testing.T) {
	c, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	addr := c.LocalAddr().String()
	c.Close()
	startReflectorOn(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	recs, sum := parseJSONLines(t, runSender(t, ctx, "--json", "-c", "20", "-i", "2ms", "--tlv", "location", addr))
	if sum.Received != 20 || len(recs) != 20 || recs[0].TTL != 64 || recs[0].SenderTTL != 64 || recs[0].Bytes != 44+4+4+2*(4+16) {
		t.Errorf("IPv6: %+v %+v", sum, recs[0])
	}
	// The reflector's Location answer: our loopback source and the address it listens on.
	if !strings.HasPrefix(sum.LocSrc, "[::1]:") || sum.LocDst != addr {
		t.Errorf("location %q -> %q, want [::1]:port -> %s", sum.LocSrc, sum.LocDst, addr)
	}
}

// TestDropPrivileges: started as root with --user nobody, stampref binds and then runs as
// nobody, and still reflects.
func TestDropPrivileges(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	port, err := loadgen.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(int(port))
	cmd := exec.Command(bins.stampref, "--listen", addr, "--no-monitor", "--user", "nobody")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var uid string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 2 && f[0] == "Uid:" {
				uid = f[1] + "/" + f[2]
			}
		}
		if uid == u.Uid+"/"+u.Uid {
			break
		}
	}
	if uid != u.Uid+"/"+u.Uid {
		t.Fatalf("stampref runs as uid %s, want %s", uid, u.Uid)
	}
	_, sum := parseJSONLines(t, runSender(t, ctx, "--json", "-c", "5", "-i", "5ms", addr))
	if sum.Received != 5 {
		t.Errorf("after dropping privileges: %+v", sum)
	}
}

// TestSchedules: the departures (kernel T1 of each record) follow the seeded schedule
// (periodic, RFC 3432; Poisson with mean 1 ms, RFC 2330) packet by packet: departure i is due
// at start + the sum of the schedule's first i gaps (pace.NewSchedule with the same seed).
// A stall of the loaded test machine delays a run of packets (the pacer catches up in a
// burst), so the check is that most packets left within 200 µs of their due time (offset by
// the median lateness, the start being unknown); up to 3 runs for a quiet one. The median gap
// of the punctual pairs' errors (measured gap − scheduled gap) is within 20 µs of zero.
func TestSchedules(t *testing.T) {
	addr := startReflector(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n, tol = 400, 200 * time.Microsecond
	for _, tc := range []struct {
		schedule string
		poisson  bool
	}{
		{"periodic", false},
		{"poisson", true},
	} {
		due := make([]time.Duration, n)
		sched := pace.NewSchedule(time.Millisecond, tc.poisson, 7)
		for i := 1; i < n; i++ {
			due[i] = due[i-1] + sched.Next()
		}
		var punctual int
		var gapErr float64
		for attempt := 1; attempt <= 3; attempt++ {
			out := runSender(t, ctx, "--json", "-c", strconv.Itoa(n), "-i", "1ms", "--schedule", tc.schedule, "--seed", "7", addr)
			t1 := map[uint32]time.Time{}
			for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
				var r struct {
					Type string    `json:"type"`
					Seq  uint32    `json:"seq"`
					T1   time.Time `json:"t1"`
				}
				if err := json.Unmarshal(line, &r); err != nil {
					t.Fatal(err)
				}
				if r.Type == "" && r.Seq < n {
					t1[r.Seq] = r.T1
				}
			}
			if len(t1) < n-10 {
				t.Fatalf("%s: %d replies", tc.schedule, len(t1))
			}
			var late []float64
			for seq, at := range t1 {
				late = append(late, float64(at.UnixNano()-int64(due[seq])))
			}
			offset := int64(median(late))
			on := func(seq uint32) bool {
				at, ok := t1[seq]
				d := time.Duration(at.UnixNano() - int64(due[seq]) - offset)
				return ok && d > -tol && d < tol
			}
			punctual = 0
			var gaps []float64
			for seq := uint32(0); seq < n; seq++ {
				if !on(seq) {
					continue
				}
				punctual++
				if seq > 0 && on(seq-1) {
					gaps = append(gaps, float64(t1[seq].Sub(t1[seq-1])-(due[seq]-due[seq-1]))/1e3)
				}
			}
			gapErr = median(gaps)
			t.Logf("%s: run %d: %d of %d packets within %v of the schedule, median gap error %.2f µs", tc.schedule, attempt, punctual, n, tol, gapErr)
			if punctual >= n/2 {
				break
			}
		}
		if punctual < n/2 || math.Abs(gapErr) > 20 {
			t.Errorf("%s: %d of %d packets on schedule, median gap error %.2f µs (want ≥ %d and within ±20 µs)", tc.schedule, punctual, n, gapErr, n/2)
		}
	}
}

// TestDSCPECN: the test packets carry --dscp/--ecn (the reflector reports what it received in
// the Class of Service TLV: DSCP2, ECN2), and the reflector applies the requested DSCP1/ECN1
// to its reply (seen in the reply's TOS byte).
func TestDSCPECN(t *testing.T) {
	addr := startReflector(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	recs, _ := parseJSONLines(t, runSender(t, ctx, "--json", "-c", "3", "-i", "5ms", "--dscp", "af41", "--ecn", "ect1",
		"--tlv", "cos:dscp=ef,ecn=ect0", addr))
	for _, r := range recs {
		if r.CoS != "dscp1=46 dscp2=34 ecn2=1 rp=0" || r.TOS != 46<<2|2 {
			t.Errorf("seq %d: cos %q tos %#x", r.Seq, r.CoS, r.TOS)
		}
	}
	// With --refuse-dscp the reply keeps the received DSCP and says so (RP=1).
	addr = startReflector(t, "--refuse-dscp")
	recs, _ = parseJSONLines(t, runSender(t, ctx, "--json", "-c", "2", "-i", "5ms", "--dscp", "cs1",
		"--tlv", "cos:dscp=ef", addr))
	for _, r := range recs {
		if r.CoS != "dscp1=46 dscp2=8 ecn2=0 rp=1" || r.TOS != 8<<2 {
			t.Errorf("refused: seq %d: cos %q tos %#x", r.Seq, r.CoS, r.TOS)
		}
	}
}

// startSender runs stampsend with args and returns it with a scanner over its stdout lines.
func startSender(t *testing.T, args ...string) (*exec.Cmd, *bufio.Scanner, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(bins.stampsend, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd, bufio.NewScanner(stdout), &stderr
}

// readAll reads stdout to EOF and returns it, calling at once the n-th line was read.
func readAll(t *testing.T, sc *bufio.Scanner, n int, at func()) []byte {
	t.Helper()
	var out bytes.Buffer
	replies := 0
	for sc.Scan() {
		out.Write(sc.Bytes())
		out.WriteByte('\n')
		if replies++; replies == n {
			at()
		}
	}
	return out.Bytes()
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// issue 11 H7: the reflector killed mid-run. stampsend prints its complete summary of what
// came back and exits 1 naming the dead reflector.
func TestReflectorKilled(t *testing.T) {
	port, err := loadgen.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(int(port))
	refl := exec.Command(bins.stampref, "--listen", addr, "--no-monitor", "--log-format", "json")
	stderr, err := refl.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := refl.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = refl.Process.Kill()
		_ = refl.Wait()
	})
	sc := bufio.NewScanner(stderr)
	for sc.Scan() && !strings.Contains(sc.Text(), "stampref: serving") {
	}
	go func() { _, _ = io.Copy(io.Discard, stderr) }()

	cmd, out, errOut := startSender(t, "--json", "-c", "400", "-i", "5ms", "-W", "200ms", addr)
	lines := readAll(t, out, 20, func() { _ = refl.Process.Kill() })
	err = cmd.Wait()
	recs, sum := parseJSONLines(t, lines)
	if code := exitCode(err); code != 1 || !strings.Contains(errOut.String(), "reflector stopped answering") {
		t.Errorf("exit %d, stderr %q; want 1 and the dead reflector named", code, errOut.String())
	}
	if sum.Sent != 400 || sum.Received < 20 || sum.Received >= 400 || sum.Received != uint64(len(recs)) || sum.Lost != 400-sum.Received {
		t.Errorf("summary %+v with %d reply lines", sum, len(recs))
	}
}

// issue 11: Ctrl-C after replies came back ends like a finished run (summary, exit 0), as
// ping does; with no reply at all it exits 1.
func TestInterruptAfterReplies(t *testing.T) {
	addr := startReflector(t)
	cmd, out, _ := startSender(t, "--json", "-i", "5ms", addr)
	lines := readAll(t, out, 5, func() { _ = cmd.Process.Signal(os.Interrupt) })
	err := cmd.Wait()
	recs, sum := parseJSONLines(t, lines)
	if code := exitCode(err); code != 0 || sum.Received < 5 || sum.Received != sum.Sent || len(recs) != int(sum.Received) {
		t.Errorf("exit %d, summary %+v", code, sum)
	}

	// Nothing listens on this port: no reply, then Ctrl-C.
	port, err := loadgen.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	// The signal goes once the session's debug line shows the handler is installed.
	cmd = exec.Command(bins.stampsend, "--json", "--log-level", "debug", "-i", "5ms", "-W", "100ms", "127.0.0.1:"+strconv.Itoa(int(port)))
	cmd.Stderr = new(syncbuf.Buffer).OnMatch("stampsend: session", func() {
		time.AfterFunc(50*time.Millisecond, func() { _ = cmd.Process.Signal(os.Interrupt) })
	})
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines = readAll(t, bufio.NewScanner(stdout), -1, nil)
	err = cmd.Wait()
	if _, sum := parseJSONLines(t, lines); exitCode(err) != 1 || sum.Received != 0 || sum.Sent == 0 {
		t.Errorf("no reply: exit %d, summary %+v", exitCode(err), sum)
	}
}
