package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
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

	"github.com/sirupsen/logrus"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/shared/sender/sendertest"
	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/testsupport/daemontest"
	"github.com/probekit/probekit/shared/testsupport/gobuild"
	"github.com/probekit/probekit/shared/testsupport/syncbuf"
	"github.com/probekit/probekit/shared/timestamp"
	"github.com/probekit/probekit/shared/twampctl"
	"github.com/probekit/probekit/shared/udpsock"
)

// TestMain removes the binaries the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	gobuild.Cleanup()
	os.Exit(code)
}

// twampd is the real server binary, built once from the sibling module; the test fails when
// it cannot be built (issue 10: never skip because a needed binary is broken).
func twampd(t testing.TB) string { return gobuild.Binary(t, "../../../twampd") }

// twampc is this module's binary.
func twampc(t testing.TB) string { return gobuild.Binary(t, "../..") }

type daemon struct {
	ctl, metrics string
	light        string
	d            *daemontest.Daemon
}

// kill ends twampd at once (SIGKILL), as a crash would.
func (d daemon) kill() { _ = syscall.Kill(d.d.Pid(), syscall.SIGKILL) }

// startTwampd runs twampd with args and returns its bound addresses from its JSON log. It is
// stopped with SIGTERM at the end of the test and must then exit 0 (daemontest).
func startTwampd(t testing.TB, args ...string) daemon {
	t.Helper()
	dd := daemontest.Start(t, twampd(t), append([]string{"--log-format", "json", "--metrics", "127.0.0.1:0"}, args...)...)
	// twampd logs its listeners before the metrics endpoint.
	d := daemon{d: dd, metrics: dd.WaitMsg(30*time.Second, "metrics and status listening").Str("addr")}
	if dd.Count("TWAMP-Control listening") > 0 {
		d.ctl = dd.WaitMsg(time.Second, "TWAMP-Control listening").Str("addr")
	}
	if dd.Count("TWAMP Light reflector listening") > 0 {
		d.light = dd.WaitMsg(time.Second, "TWAMP Light reflector listening").Str("addr")
	}
	return d
}

func keyFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(p, []byte("testuser\t74657374736563726574\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func quiet() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// e2eLossTimeout is the loss timeout of the lossless e2e runs: a reply later than it counts
// as lost, and a loaded machine may stall twampd or this process for a second (a run at
// -cpu 1 under load lost 4 of 30 with 1 s). A lossless run ends when its last reply is in,
// so it costs nothing.
const e2eLossTimeout = 3 * time.Second

// checkResult verifies a lossless session's numbers against its own raw timestamps.
func checkResult(t *testing.T, r *Result, count int) {
	t.Helper()
	if r.Sent != count || r.Seq.Received() != uint64(count) || r.Seq.Lost() != 0 || r.SendDuplicates != 0 || r.ReflectDuplicates != 0 {
		t.Fatalf("session %d: sent %d received %d lost %d dups %d/%d", r.Session, r.Sent, r.Seq.Received(), r.Seq.Lost(), r.SendDuplicates, r.ReflectDuplicates)
	}
	// Every caller sets e2eLossTimeout; a reply counted in the RTT came back within it.
	if r.RTT.Count() != int64(count) || r.RTT.Min() <= 0 || r.RTT.Max() > e2eLossTimeout {
		t.Errorf("session %d: RTT count %d min %v max %v", r.Session, r.RTT.Count(), r.RTT.Min(), r.RTT.Max())
	}
	if r.Processing.Min() < 0 {
		t.Errorf("negative reflector processing time %v", r.Processing.Min())
	}
	if r.FwdHopsMax != 0 || r.BackHopsMax != 0 {
		t.Errorf("loopback hops %d/%d, want 0", r.FwdHopsMax, r.BackHopsMax)
	}
}

// twampc ↔ twampd in all four modes, IPv4 and IPv6, several sessions at once (issue proof).
func TestE2EModes(t *testing.T) {
	kf := keyFile(t)
	keys, _ := twampctl.LoadKeyFile(kf)
	d4 := startTwampd(t, "-S", "127.0.0.1:0", "-a", "OAEM", "-k", kf)
	d6 := startTwampd(t, "-S", "[::1]:0", "-a", "OAEM", "-k", kf)
	for _, d := range []daemon{d4, d6} {
		for _, m := range []twampctl.Mode{twampctl.ModeUnauthenticated, twampctl.ModeAuthenticated, twampctl.ModeEncrypted, twampctl.ModeMixed} {
			t.Run(d.ctl+"/"+m.String(), func(t *testing.T) {
				const count = 30
				var buf bytes.Buffer
				res, err := Run(context.Background(), Config{Target: d.ctl, Count: count, Schedule: Schedule{Interval: time.Millisecond},
					Padding: -1, Modes: m, Identity: "testuser", Secret: keys["testuser"], Sessions: 3, LossTimeout: e2eLossTimeout,
					Logger: quiet()}, Output{W: &buf, Format: cliutil.FormatText})
				if err != nil {
					t.Fatal(err)
				}
				if len(res) != 3 {
					t.Fatalf("%d results", len(res))
				}
				for _, r := range res {
					checkResult(t, r, count)
					if want := m.Security().String(); r.Mode != want {
						t.Errorf("mode %q, want %q", r.Mode, want)
					}
				}
				if got := strings.Count(buf.String(), "30 sent, 0 lost (0.000%)"); got != 3 {
					t.Errorf("text output has %d session summaries:\n%s", got, buf.String())
				}
			})
		}
	}
}

// A wrong key fails cleanly on both sides: clear client error, nothing left on the server.
func TestE2EWrongKey(t *testing.T) {
	kf := keyFile(t)
	d := startTwampd(t, "-S", "127.0.0.1:0", "-a", "AE", "-k", kf)
	_, err := Run(context.Background(), Config{Target: d.ctl, Count: 5, Modes: twampctl.ModeEncrypted, Identity: "testuser",
		Secret: []byte("not the secret"), Logger: quiet()}, Output{})
	if err == nil || !strings.Contains(err.Error(), "wrong identity or key") {
		t.Fatalf("error %v, want a clear key error", err)
	}
	resp, err := http.Get("http://" + d.metrics + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Sessions []any            `json:"sessions"`
		Counters map[string]int64 `json:"counters"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if len(st.Sessions) != 0 || st.Counters["auth_failures_total"] != 1 {
		t.Errorf("server state after wrong key: %+v", st)
	}
	// Open mode only server: an encrypted-only client gets a mode error.
	d2 := startTwampd(t, "-S", "127.0.0.1:0")
	if _, err := Run(context.Background(), Config{Target: d2.ctl, Count: 1, Modes: twampctl.ModeEncrypted, Identity: "testuser",
		Secret: []byte("x"), Logger: quiet()}, Output{}); err == nil || !strings.Contains(err.Error(), "bad mode") {
		t.Errorf("mode mismatch: %v", err)
	}
}

// RFC 5938 individual session control end to end.
func TestE2EIndividual(t *testing.T) {
	d := startTwampd(t, "-S", "127.0.0.1:0")
	res, err := Run(context.Background(), Config{Target: d.ctl, Count: 10, Schedule: Schedule{Interval: time.Millisecond},
		Padding: -1, Sessions: 2, Individual: true, LossTimeout: e2eLossTimeout, Logger: quiet()}, Output{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		checkResult(t, r, 10)
	}
}

// proxy relays UDP between the sender and a TWAMP Light reflector, dropping, duplicating
// and delaying sender packets by sequence number: the injected ground truth.
type proxy struct {
	// forge is sent to the client, from the relay's (the reflector's) address, just before
	// the first reply: spoofed replies.
	forge  [][]byte
	conn   *net.UDPConn
	target *net.UDPAddr
	drop   map[uint32]bool
	dup    map[uint32]bool
	slow   map[uint32]bool // held back until its 8th successor has been forwarded
	delay  time.Duration
}

func (p *proxy) run(ctx context.Context) {
	var client *net.UDPAddr
	type held struct {
		at  time.Time
		pkt []byte
		n   int
	}
	// One FIFO keeps the order of everything but the slow packets, so the only reordering
	// is the injected one.
	fifo := make(chan held, 4096)
	type slowPkt struct {
		seq uint32
		pkt []byte
	}
	var pending []slowPkt
	go func() {
		for h := range fifo {
			time.Sleep(time.Until(h.at))
			for i := 0; i < h.n; i++ {
				_, _ = p.conn.WriteToUDP(h.pkt, p.target)
			}
		}
	}()
	defer close(fifo)
	b := make([]byte, 9000)
	for ctx.Err() == nil {
		_ = p.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, from, err := p.conn.ReadFromUDP(b)
		if err != nil {
			continue
		}
		pkt := append([]byte(nil), b[:n]...)
		if from.Port == p.target.Port && from.IP.Equal(p.target.IP) {
			if client != nil {
				for _, f := range p.forge {
					_, _ = p.conn.WriteToUDP(f, client)
				}
				p.forge = nil
				_, _ = p.conn.WriteToUDP(pkt, client)
			}
			continue
		}
		client = from
		seq := binary.BigEndian.Uint32(pkt)
		if p.drop[seq] {
			continue
		}
		copies := 1
		if p.dup[seq] {
			copies = 2
		}
		if p.slow[seq] {
			pending = append(pending, slowPkt{seq, pkt})
			continue
		}
		at := time.Now().Add(p.delay)
		fifo <- held{at, pkt, copies}
		// A slow packet leaves right behind its 8th successor, through the same FIFO: it is
		// overtaken by exactly those, however the host's scheduler times the goroutines (a
		// timer of its own let a stalled FIFO reorder its predecessors too).
		for len(pending) > 0 && seq >= pending[0].seq+8 {
			fifo <- held{at, pending[0].pkt, 1}
			pending = pending[1:]
		}
	}
}

// lightRelay starts twampd --light and p relaying to it on loopback, returning the relay's
// socket (the address to send to); both stop when the test ends.
func lightRelay(t *testing.T, p *proxy) *net.UDPConn {
	t.Helper()
	d := startTwampd(t, "--light", "-S", "127.0.0.1:0")
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	target, _ := net.ResolveUDPAddr("udp4", d.light)
	p.conn, p.target = pc, target
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		pc.Close()
	})
	return pc
}

// TWAMP Light against twampd --light through a lossy, duplicating, delaying relay: loss and
// duplicates are reported exactly, the RTT includes the injected delay. The loss timeout is
// 3 s because a reply later than it counts as lost, and the relay runs in this process,
// which a loaded machine may stall for hundreds of ms.
func TestE2ELightInjected(t *testing.T) {
	pc := lightRelay(t, &proxy{drop: map[uint32]bool{3: true, 17: true, 42: true, 99: true},
		dup: map[uint32]bool{10: true, 60: true}, slow: map[uint32]bool{30: true}, delay: 3 * time.Millisecond})
	var buf bytes.Buffer
	res, err := Run(context.Background(), Config{Target: pc.LocalAddr().String(), Light: true, Count: 100,
		Schedule: Schedule{Interval: time.Millisecond}, Padding: -1, LossTimeout: 3 * time.Second, Logger: quiet()},
		Output{W: &buf, Format: cliutil.FormatJSON})
	if err != nil {
		t.Fatal(err)
	}
	r := res[0]
	if r.Seq.Lost() != 4 || r.SendDuplicates != 2 || r.ReflectDuplicates != 0 || r.Seq.Received() != 96 {
		t.Errorf("lost %d (want 4) send dups %d (want 2) reflect dups %d received %d", r.Seq.Lost(), r.SendDuplicates, r.ReflectDuplicates, r.Seq.Received())
	}
	// Seq 30 overtaken by its successors is the one reordered packet (RFC 4737 §3.3).
	if r.Seq.Reordered() != 1 || r.Seq.MaxExtent() < 2 {
		t.Errorf("reordered %d (want 1), max extent %d", r.Seq.Reordered(), r.Seq.MaxExtent())
	}
	// The relay runs in this (possibly busy) process: only the lower bound is exact.
	if r.RTT.Min() < 3*time.Millisecond {
		t.Errorf("RTT min %v median %v with 3 ms injected", r.RTT.Min(), r.RTT.Percentile(50))
	}
	// JSON lines: 100 packet lines (4 lost) and one summary.
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 101 {
		t.Fatalf("%d JSON lines, want 101", len(lines))
	}
	var lost int
	for _, l := range lines[:100] {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		if m["received"] == false {
			lost++
		}
	}
	var sum Summary
	if err := json.Unmarshal([]byte(lines[100]), &sum); err != nil || sum.Type != "summary" {
		t.Fatal(err, lines[100])
	}
	if lost != 4 || sum.Loss.Lost != 4 || sum.SendDuplicates != 2 || sum.Loss.LossPct != 4 {
		t.Errorf("lost lines %d, summary %+v", lost, sum.Loss)
	}
	// The summary every active sender shares (shared/sender/summary.schema.json), with the
	// same figures at the top level as stampsend prints them.
	if err := sendertest.ValidateSummary([]byte(lines[100])); err != nil {
		t.Errorf("summary does not match the sender summary schema: %v\n%s", err, lines[100])
	}
	if sum.Tool != "twampc" || sum.Sent != 100 || sum.Received != 96 || sum.Lost != 4 || sum.LossPct != 4 || sum.Duplicates != 2 ||
		sum.Reordered != 1 || sum.Invalid != 0 || sum.RTTms == nil || sum.RTTms.Count != 96 || math.Abs(sum.RTTms.Min*1e3-sum.RTT.MinUS) > 1e-6 ||
		sum.Target != sum.Reflector {
		t.Errorf("shared summary %+v rtt_ms %+v", sum.Summary, sum.RTTms)
	}
}

// Light replies straight from twampd: IPv6, CSV output with one row per packet.
func TestE2ELightCSV(t *testing.T) {
	d := startTwampd(t, "--light", "-S", "[::1]:0")
	var buf bytes.Buffer
	res, err := Run(context.Background(), Config{Target: d.light, Light: true, Count: 20, Schedule: Schedule{Interval: time.Millisecond},
		Padding: -1, Sessions: 2, LossTimeout: e2eLossTimeout, Logger: quiet()}, Output{W: &buf, Format: cliutil.FormatCSV})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		checkResult(t, r, 20)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 41 || lines[0] != strings.Join(Columns, ",") {
		t.Errorf("%d CSV lines, header %q", len(lines), lines[0])
	}
}

func TestParseSchedule(t *testing.T) {
	for s, want := range map[string]Schedule{
		"0.1e": {100 * time.Millisecond, true}, "0.01f": {10 * time.Millisecond, false},
		"10ms": {10 * time.Millisecond, false}, "100use": {100 * time.Microsecond, true}, "1": {time.Second, false},
	} {
		if got, err := ParseSchedule(s); err != nil || got != want {
			t.Errorf("ParseSchedule(%q) = %+v, %v", s, got, err)
		}
	}
	for _, bad := range []string{"x", "-1", "1e9"} {
		if _, err := ParseSchedule(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if hostPort("example.net") != "example.net:862" || hostPort("::1") != "[::1]:862" || hostPort("[::1]:9") != "[::1]:9" {
		t.Error("hostPort")
	}
}

// End to end, the departures (T1 of the JSON output, the ground truth of when each packet
// left) follow the schedule on average. A busy host may delay the sender; it then catches
// up by sending what fell due, so the mean gap stays near the interval.
func TestE2ESchedules(t *testing.T) {
	d := startTwampd(t, "--light", "-S", "127.0.0.1:0")
	const mean = 500 * time.Microsecond
	for _, poisson := range []bool{false, true} {
		const n = 600
		var buf bytes.Buffer
		if _, err := Run(context.Background(), Config{Target: d.light, Light: true, Count: n,
			Schedule: Schedule{Interval: mean, Poisson: poisson}, Padding: -1, LossTimeout: time.Second, Logger: quiet()},
			Output{W: &buf, Format: cliutil.FormatJSON}); err != nil {
			t.Fatal(err)
		}
		var t1 []int64
		for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			var m struct {
				Type string `json:"type"`
				T1   int64  `json:"t1_ns"`
			}
			if json.Unmarshal([]byte(l), &m) == nil && m.Type == "packet" {
				t1 = append(t1, m.T1)
			}
		}
		if len(t1) != n {
			t.Fatalf("%d packet lines", len(t1))
		}
		got := time.Duration((t1[n-1] - t1[0]) / (n - 1))
		t.Logf("poisson=%v: mean gap %v", poisson, got)
		// Never faster than scheduled (beyond the Poisson sample's spread). No upper bound:
		// how late a loaded host's scheduler lets the last packet leave is not the code's to
		// guarantee (this VM stalls for milliseconds).
		if got < 400*time.Microsecond {
			t.Errorf("poisson=%v: mean gap %v, want ≈%v", poisson, got, mean)
		}
	}
}

// RFC 6038 end to end against twampd in every mode, with and without the Symmetrical Size
// format: the server confirms the Octets to be Reflected, every reply returns the requested
// padding octets (Server Octets first) and none mismatches.
func TestE2ERFC6038(t *testing.T) {
	kf := keyFile(t)
	keys, _ := twampctl.LoadKeyFile(kf)
	d := startTwampd(t, "-S", "127.0.0.1:0", "-a", "OAEM", "-k", kf)
	for _, m := range []twampctl.Mode{twampctl.ModeUnauthenticated, twampctl.ModeAuthenticated, twampctl.ModeEncrypted, twampctl.ModeMixed} {
		for _, sym := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/symmetric=%v", m, sym), func(t *testing.T) {
				const count = 20
				var buf bytes.Buffer
				res, err := Run(context.Background(), Config{Target: d.ctl, Count: count, Schedule: Schedule{Interval: time.Millisecond},
					Padding: -1, Modes: m, Identity: "testuser", Secret: keys["testuser"], LossTimeout: e2eLossTimeout,
					ReflectOctets: true, OctetsToBeReflected: 0xbeef, ReflectPadding: 24, Symmetric: sym, DSCPECN: m == twampctl.ModeMixed,
					Logger: quiet()}, Output{W: &buf, Format: cliutil.FormatJSON})
				if err != nil {
					t.Fatal(err)
				}
				r := res[0]
				checkResult(t, r, count)
				if !r.Reflect || r.Symmetric != sym || r.ReflectedOctets != 0xbeef || r.ServerOctets == 0 || r.ReflectPadding != 24 {
					t.Errorf("RFC 6038 result %+v", r)
				}
				if r.ReflectMismatch != 0 {
					t.Errorf("%d replies with wrong reflected octets", r.ReflectMismatch)
				}
				if !strings.Contains(buf.String(), `"rfc6038":{"symmetrical_size":`+fmt.Sprint(sym)+`,"reflect_octets":true,"reflected_octets":"beef"`) {
					t.Errorf("JSON summary lacks the RFC 6038 block:\n%s", buf.String())
				}
			})
		}
	}
	// Reflected octets that cannot fit in the reply are refused before the request.
	if _, err := Run(context.Background(), Config{Target: d.ctl, Count: 1, Padding: 27, ReflectOctets: true, ReflectPadding: 1,
		Logger: quiet()}, Output{}); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("padding 27 with 1 reflected octet: %v", err)
	}
}

// A reply whose reflected octets differ from those sent is counted, not dropped.
func TestReflectMismatchCounted(t *testing.T) {
	s := &session{mode: twampctl.ModeUnauthenticated, padding: 10, count: 2, records: make([]Record, 2), res: &Result{},
		reflect: true, symmetric: true, serverOctets: 0x1234,
		layout: twampctl.NewReflectLayout(twampctl.ModeUnauthenticated|twampctl.ModeReflectOctets|twampctl.ModeSymmetricalSize, 4)}
	s.remote = netip.MustParseAddrPort("127.0.0.1:9")
	s.prepare()
	offline(t, s)
	now := time.Now()
	if want := []byte{0x12, 0x34}; !bytes.Equal(s.expect[:2], want) {
		t.Fatalf("expected reflected octets % x do not start with the Server Octets", s.expect)
	}
	var rp testpkt.ReflectedPacket
	rp.Mode = testpkt.ModeUnauthenticated
	for seq, corrupt := range []bool{false, true} {
		reply := make([]byte, 51)
		binary.BigEndian.PutUint32(reply[0:], uint32(seq))
		binary.BigEndian.PutUint32(reply[24:], uint32(seq))
		copy(reply[41:], s.expect)
		if corrupt {
			reply[44] ^= 1
		}
		s.sendAt(uint32(seq), now)
		s.handleReply(&udpsock.Message{Buf: reply, N: len(reply), Addr: s.remote, RxTime: now}, &rp)
	}
	s.finishOffline()
	if s.res.ReflectMismatch != 1 || s.res.Seq.Received() != 2 {
		t.Errorf("mismatches %d received %d, want 1 and 2", s.res.ReflectMismatch, s.res.Seq.Received())
	}
}

// twping's -R raw lines through a relay that drops seqs 2 and 7 and delays by 3 ms: one line
// per sent packet with 16 columns, the dropped ones with zero reflector/receive columns, and
// the RTT rebuilt from the NTP columns ((RTIME − STIME) − (RSTIME − SRTIME)) at least the
// injected delay and equal to the summary's minimum within 1 µs.
func TestE2ERawOutput(t *testing.T) {
	pc := lightRelay(t, &proxy{drop: map[uint32]bool{2: true, 7: true}, delay: 3 * time.Millisecond})
	var buf bytes.Buffer
	const count = 20
	res, err := Run(context.Background(), Config{Target: pc.LocalAddr().String(), Light: true, Count: count,
		Schedule: Schedule{Interval: time.Millisecond}, Padding: -1, LossTimeout: 3 * time.Second, Logger: quiet()},
		Output{W: &buf, Format: cliutil.FormatText, Raw: true})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != count {
		t.Fatalf("%d raw lines, want %d:\n%s", len(lines), count, buf.String())
	}
	minRTT := time.Duration(1 << 62)
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) != 16 {
			t.Fatalf("line %d has %d columns: %q", i, len(f), l)
		}
		col := func(k int) uint64 {
			v, err := strconv.ParseUint(f[k], 10, 64)
			if err != nil {
				t.Fatalf("line %d column %d: %v", i, k, err)
			}
			return v
		}
		if col(0) != uint64(i) || col(1) == 0 {
			t.Errorf("line %d: SSEQ %s STIME %s", i, f[0], f[1])
		}
		if i == 2 || i == 7 {
			if col(4) != 0 || col(12) != 0 || f[15] != "255" {
				t.Errorf("lost packet %d: %q", i, l)
			}
			continue
		}
		// The relay re-sends with its own TTL: both columns match the hops in the summary.
		if col(7) != uint64(255-res[0].FwdHopsMin) || col(15) != uint64(255-res[0].BackHopsMin) {
			t.Errorf("line %d TTLs %s/%s, summary hops %d/%d", i, f[7], f[15], res[0].FwdHopsMin, res[0].BackHopsMin)
		}
		ntp := func(v uint64) time.Time { return timestamp.NTP(v).Time() }
		rtt := ntp(col(12)).Sub(ntp(col(1))) - ntp(col(9)).Sub(ntp(col(4)))
		if rtt < 3*time.Millisecond {
			t.Errorf("line %d: RTT %v below the injected 3 ms", i, rtt)
		}
		minRTT = min(minRTT, rtt)
	}
	if d := minRTT - res[0].RTT.Min(); d > time.Microsecond || d < -time.Microsecond {
		t.Errorf("raw minimum RTT %v, summary %v", minRTT, res[0].RTT.Min())
	}
	if res[0].Seq.Lost() != 2 {
		t.Errorf("lost %d, want 2", res[0].Seq.Lost())
	}
}

// twping -n: the text summary prints the same numbers in the chosen unit, with three
// significant digits as owamp's PrintDelayStats ("%.3g" of the value times the scale factor).
func TestWriteTextUnits(t *testing.T) {
	r := &Result{Sent: 2}
	for _, d := range []time.Duration{1500 * time.Microsecond, 2500 * time.Microsecond} {
		r.RTT.Add(d)
		r.Forward.Add(d / 2)
		r.Backward.Add(d / 2)
		r.Processing.Add(10 * time.Microsecond)
	}
	for _, tc := range []struct {
		u    string
		want string
	}{
		{"m", "round-trip time min/median/max = 1.5/"},
		{"u", "round-trip time min/median/max = 1.5e+03/"},
		{"n", "round-trip time min/median/max = 1.5e+06/"},
		{"s", "round-trip time min/median/max = 0.0015/"},
	} {
		u, err := ParseUnit(tc.u)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		r.WriteTextUnit(&buf, []float64{50}, u)
		if !strings.Contains(buf.String(), tc.want) || !strings.Contains(buf.String(), "/2.5"[:1]) ||
			!strings.Contains(buf.String(), " "+u.String()+", (") || !strings.Contains(buf.String(), "\t50.0: ") {
			t.Errorf("unit %s:\n%s", tc.u, buf.String())
		}
	}
	if _, err := ParseUnit("h"); err == nil {
		t.Error("unit h accepted")
	}
}

// issue 11 H6: a spoofed open-mode reply (from the reflector's address and port) with sender
// sequence number 0xFFFFFFFF, and one naming a packet never sent, are counted invalid; they
// change neither loss nor reordering, and every genuine reply counts.
func TestE2EForgedReplyIgnored(t *testing.T) {
	forged := func(seq uint32) []byte {
		rp := testpkt.ReflectedPacket{Seq: 7, SenderSeq: seq, Timestamp: 1 << 62, ReceiveTimestamp: 1 << 62}
		return rp.AppendTo(nil)[:testpkt.TWAMPReflectedLen]
	}
	pc := lightRelay(t, &proxy{forge: [][]byte{forged(0xFFFFFFFF), forged(5000)}})
	var buf bytes.Buffer
	res, err := Run(context.Background(), Config{Target: pc.LocalAddr().String(), Light: true, Count: 100,
		Schedule: Schedule{Interval: time.Millisecond}, Padding: -1, LossTimeout: time.Second, Logger: quiet()},
		Output{W: &buf, Format: cliutil.FormatText})
	if err != nil {
		t.Fatal(err)
	}
	r := res[0]
	if r.Seq.Received() != 100 || r.Seq.Lost() != 0 || r.Seq.Reordered() != 0 || r.Seq.Stale() != 0 || r.Invalid != 2 ||
		r.RTT.Count() != 100 || r.ReflectDuplicates != 0 {
		t.Errorf("received %d lost %d reordered %d stale %d invalid %d rtt %d reflect dups %d", r.Seq.Received(), r.Seq.Lost(),
			r.Seq.Reordered(), r.Seq.Stale(), r.Invalid, r.RTT.Count(), r.ReflectDuplicates)
	}
	out := buf.String()
	if !strings.Contains(out, "100 sent, 0 lost (0.000%)") || !strings.Contains(out, "2 invalid replies discarded") || strings.Contains(out, "4294967") {
		t.Errorf("summary:\n%s", out)
	}
}

// issue 11 H7: twampd killed mid-run. The lost TWAMP-Control connection ends every session at
// once; the results gathered so far are written complete and the run fails with twping's
// "Test session(s) Failed".
func TestE2EServerKilled(t *testing.T) {
	d := startTwampd(t, "-S", "127.0.0.1:0")
	log := logrus.New()
	log.SetOutput(io.Discard)
	log.AddHook(&onMessage{msg: "test sessions started", fn: func() {
		time.AfterFunc(300*time.Millisecond, d.kill)
	}})
	var buf bytes.Buffer
	_, err := Run(context.Background(), Config{Target: d.ctl, Count: 1000, Schedule: Schedule{Interval: 10 * time.Millisecond},
		Padding: -1, LossTimeout: time.Second, Logger: log}, Output{W: &buf, Format: cliutil.FormatText})
	// The client can see the connection drop before daemontest has reaped the killed
	// process; its cleanup would then take it for alive and stop it (a killed twampd is not
	// an exit 0). Wait until it is reaped (30 s hang guard).
	for deadline := time.Now().Add(30 * time.Second); d.d.Alive(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("twampd still running 30 s after SIGKILL")
		}
	}
	if !errors.Is(err, ErrControlLost) || !strings.Contains(err.Error(), "Test session(s) Failed") {
		t.Fatalf("err %v, want the lost control connection", err)
	}
	out := buf.String()
	if !strings.Contains(out, "--- twampc statistics") || !strings.Contains(out, "round-trip time") ||
		strings.Contains(out, "1000 sent") {
		t.Errorf("results after the server died:\n%s", out)
	}
}

// onMessage is a logrus hook that runs fn once when a record with msg is logged.
type onMessage struct {
	msg  string
	fn   func()
	once sync.Once
}

func (h *onMessage) Levels() []logrus.Level { return logrus.AllLevels }

func (h *onMessage) Fire(e *logrus.Entry) error {
	if e.Message == h.msg {
		h.once.Do(h.fn)
	}
	return nil
}

// The exit rule with the real binary (issue 10, issue 11 H7/H12): Ctrl-C after replies came
// back ends the run as a finished one (exit 0, every output line whole, a summary counting
// every reply), and a run that got no reply at all exits 1 after printing its summary.
func TestE2EExitStatus(t *testing.T) {
	d := startTwampd(t, "-S", "127.0.0.1:0")
	bin := twampc(t)
	exit := func(err error) int {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	}
	type summary struct {
		Type     string `json:"type"`
		Sent     uint64 `json:"sent"`
		Received uint64 `json:"received"`
		Lost     uint64 `json:"lost"`
	}
	// The signal goes 300 ms after the sessions started (about 60 packets); the per-packet
	// JSON lines are written when the run ends.
	cmd := exec.Command(bin, "--json", "-c", "100000", "-i", "5ms", "-L", "1s", d.ctl)
	stderr := new(syncbuf.Buffer).OnMatch("test sessions started", func() {
		time.AfterFunc(300*time.Millisecond, func() { _ = cmd.Process.Signal(os.Interrupt) })
	})
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	guard := time.AfterFunc(60*time.Second, func() { _ = cmd.Process.Kill() }) // hang guard
	defer guard.Stop()
	sc := bufio.NewScanner(out)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	code := exit(cmd.Wait())
	var last summary
	packets := 0
	for _, l := range lines {
		var m struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("output line not whole JSON: %q", l)
		}
		switch m.Type {
		case "packet":
			packets++
		case "summary":
			if err := json.Unmarshal([]byte(l), &last); err != nil {
				t.Fatal(err)
			}
			if err := sendertest.ValidateSummary([]byte(l)); err != nil {
				t.Errorf("summary: %v", err)
			}
		}
	}
	// Every packet answered on loopback; a stall that left none answered by the signal
	// must exit 1 by the same rule.
	want := 0
	if last.Received == 0 {
		want = 1
	}
	if code != want || last.Type != "summary" || last.Sent == 0 || last.Received+last.Lost != last.Sent || packets != int(last.Sent) {
		t.Errorf("Ctrl-C: exit %d (want %d), %d packet lines, summary %+v; stderr %s", code, want, packets, last, stderr.String())
	}
	t.Logf("Ctrl-C after %d of %d replies: exit %d", last.Received, last.Sent, code)

	// Nothing listens on this UDP port: every packet lost, exit 1, the summary still printed.
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	silent := uc.LocalAddr().String()
	uc.Close()
	cmd = exec.Command(bin, "--json", "--light", "-c", "20", "-i", "5ms", "-L", "200ms", silent)
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	o, err := cmd.Output()
	code = exit(err)
	outLines := strings.Split(strings.TrimSpace(string(o)), "\n")
	if err := json.Unmarshal([]byte(outLines[len(outLines)-1]), &last); err != nil {
		t.Fatalf("last line %q: %v", outLines[len(outLines)-1], err)
	}
	if code != 1 || last.Type != "summary" || last.Sent != 20 || last.Received != 0 || last.Lost != 20 ||
		strings.Count(strings.TrimSpace(errBuf.String()), "\n") != 0 || !strings.Contains(errBuf.String(), "no reply") {
		t.Errorf("no reply: exit %d, summary %+v, stderr %q", code, last, errBuf.String())
	}
}
