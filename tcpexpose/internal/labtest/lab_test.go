// Package labtest runs tcpexpose (responder and test binaries) through the netlab middlebox
// lab (client — router — server) in every router mode, and checks the reported codes against
// what tcpdump captures on the router's two interfaces show.
package labtest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/probekit/probekit/shared/netlab"
	"github.com/probekit/probekit/shared/testsupport/gobuild"
	"github.com/probekit/probekit/shared/testsupport/labtest"
	"github.com/probekit/probekit/tcpexpose/internal/probe"
)

func TestMain(m *testing.M) {
	code := m.Run()
	gobuild.Cleanup()
	os.Exit(code)
}

type testLine struct {
	Type    string               `json:"type"`
	Test    string               `json:"test"`
	Verdict string               `json:"verdict"`
	Results map[string]int       `json:"results"`
	Codes   map[string]int       `json:"codes"`
	Sent    []string             `json:"sent"`
	Mods    []probe.Modification `json:"modifications"`
	// Reflected is the header the responder reports it received (and its payload length).
	Reflected *struct {
		Received    string `json:"received"`
		ReceivedLen int    `json:"received_len"`
	} `json:"reflected"`
}

// runTest runs `tcpexpose test --json` in the client namespace and returns the final codes
// and the per-test lines.
func runTest(t *testing.T, m *netlab.MiddleboxLab, bin string, port int, tests string, extra ...string) (map[string]int, []testLine) {
	t.Helper()
	args := append([]string{"test", "--json", "--log-level", "error", "--manage-firewall", "--timeout", "300ms"}, extra...)
	if tests != "" {
		args = append(args, "--tests", tests)
	}
	args = append(args, fmt.Sprintf("%s:%d", netlab.MiddleboxServer, port))
	out, err := m.Client.Exec(bin, args...)
	var lines []testLine
	var final map[string]int
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "{") {
			continue
		}
		var tl testLine
		if err := json.Unmarshal([]byte(l), &tl); err != nil {
			t.Fatalf("bad JSON line %q: %v", l, err)
		}
		if tl.Type == "result" {
			final = tl.Results
		} else {
			lines = append(lines, tl)
		}
	}
	if final == nil {
		t.Fatalf("no result line (err %v):\n%s", err, out)
	}
	for _, l := range lines {
		t.Logf("%-26s %v: %s", l.Test, l.Codes, l.Verdict)
	}
	return final, lines
}

// capFacts are what the router's captures show about the crafted segments (decoded with
// gopacket, independently of tcpexpose's decoder).
type capFacts struct {
	// client side (mc) and server side (ms) of the router
	c, s []netlab.CapturedPacket
}

func hasOpt(tcp *layers.TCP, kind layers.TCPOptionKind) bool {
	for _, o := range tcp.Options {
		if o.OptionType == kind {
			return true
		}
	}
	return false
}

func optMSS(tcp *layers.TCP) int {
	for _, o := range tcp.Options {
		if o.OptionType == layers.TCPOptionKindMSS && len(o.OptionData) == 2 {
			return int(o.OptionData[0])<<8 | int(o.OptionData[1])
		}
	}
	return -1
}

// toServer / toClient select the crafted flow's directions on one side.
func toServer(p netlab.CapturedPacket, port uint16) bool {
	return p.TCP != nil && p.Dst.Port() == port && p.Dst.Addr() == netlab.MiddleboxServer
}

func fromServer(p netlab.CapturedPacket, port uint16) bool {
	return p.TCP != nil && p.Src.Port() == port && p.Src.Addr() == netlab.MiddleboxServer
}

func count(ps []netlab.CapturedPacket, f func(netlab.CapturedPacket) bool) int {
	n := 0
	for _, p := range ps {
		if f(p) {
			n++
		}
	}
	return n
}

func capture(t *testing.T, m *netlab.MiddleboxLab, name string, port int, run func()) capFacts {
	t.Helper()
	dir := t.TempDir()
	filter := fmt.Sprintf("tcp port %d", port)
	stopC := labtest.StartCapture(t, m.Router, "mc", filepath.Join(dir, name+"-mc.pcap"), filter)
	stopS := labtest.StartCapture(t, m.Router, "ms", filepath.Join(dir, name+"-ms.pcap"), filter)
	run()
	stopC()
	stopS()
	var f capFacts
	var err error
	if f.c, err = netlab.ReadCapture(filepath.Join(dir, name+"-mc.pcap")); err != nil {
		t.Fatal(err)
	}
	if f.s, err = netlab.ReadCapture(filepath.Join(dir, name+"-ms.pcap")); err != nil {
		t.Fatal(err)
	}
	if len(f.c) == 0 {
		t.Fatal("nothing captured on the client side of the router")
	}
	return f
}

// killRelayChildren kills the relay's per-connection children (socat processes in the router
// namespace whose parent is a socat too, or was: orphans re-parented away from it).
func killRelayChildren(t *testing.T, m *netlab.MiddleboxLab) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "pids", m.Router.NS).Output()
	if err != nil {
		t.Log(err)
		return
	}
	comm := func(pid string) string {
		b, _ := os.ReadFile("/proc/" + pid + "/comm")
		return strings.TrimSpace(string(b))
	}
	var relays, children []string
	for _, pid := range strings.Fields(string(out)) {
		if comm(pid) != "socat" {
			continue
		}
		stat, _ := os.ReadFile("/proc/" + pid + "/stat")
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) > 1 && comm(f[1]) == "socat" {
			children = append(children, pid)
		} else {
			relays = append(relays, pid)
		}
	}
	// The relay is the oldest socat; the others are its children (or orphans of it).
	if len(relays) > 1 {
		children = append(children, relays[1:]...)
	}
	for _, pid := range children {
		if n, err := strconv.Atoi(pid); err == nil {
			_ = syscall.Kill(n, syscall.SIGKILL)
		}
	}
}

// expectAll compares every key with want (keys absent from want must be 0: "no change").
func expectAll(t *testing.T, got map[string]int, want map[string]int) {
	t.Helper()
	for _, k := range probe.AllKeys() {
		w, ok := want[k]
		if !ok {
			w = 0
		}
		if got[k] != w {
			t.Errorf("%s = %d, want %d", k, got[k], w)
		}
	}
}

var (
	lineSrcPort = regexp.MustCompile(`^\S+\.(\d+) > `)
	lineSeq     = regexp.MustCompile(`, seq (\d+)`)
	lineWin     = regexp.MustCompile(`, win (\d+)`)
	lineLen     = regexp.MustCompile(`, length (\d+)$`)
)

func lineNum(t *testing.T, re *regexp.Regexp, line string) int {
	t.Helper()
	m := re.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no %v in %q", re, line)
	}
	v, err := strconv.ParseUint(m[1], 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	return int(v)
}

// sentDataLens are the payload lengths of the data segments (not SYNs) a test sent.
func sentDataLens(t *testing.T, l testLine) []int {
	var n []int
	for _, s := range l.Sent {
		if strings.Contains(s, "Flags [S") {
			continue
		}
		if m := lineLen.FindStringSubmatch(s); m != nil && m[1] != "0" {
			v, _ := strconv.Atoi(m[1])
			n = append(n, v)
		}
	}
	return n
}

// checkReflections grounds every header reflection a test printed in the router's
// server-side capture: the responder must really have received a segment with that source
// port, sequence number, window and payload length. The reflection-based keys are then
// derived from that captured segment against what the test sent: Split (shorter than the
// full-size segment), ChangeAwnd (window not 8064), Coalesce (not the ½-MSS reference size),
// and the *Opt variants are non-zero exactly when the plain decision is. Returns how many
// reflections it checked.
func checkReflections(t *testing.T, f capFacts, lines []testLine, port uint16) int {
	t.Helper()
	n := 0
	for _, l := range lines {
		if l.Reflected == nil {
			continue
		}
		r := l.Reflected.Received
		win := lineNum(t, lineWin, r)
		ground := groundOf(t, f, &l, port)
		if ground == nil {
			t.Errorf("%s: reflected header %q (%d bytes) is in no segment the server side of the router carried", l.Test, r, l.Reflected.ReceivedLen)
			continue
		}
		n++
		if int(ground.TCP.Window) != win {
			t.Errorf("%s: reflection says window %d, the capture %d", l.Test, win, ground.TCP.Window)
		}
		lens := sentDataLens(t, l)
		if len(lens) == 0 {
			continue // syn_reflect: the SYN's payload reflected; nothing to derive here
		}
		full, half := lens[0], lens[0]
		for _, v := range lens {
			full, half = max(full, v), min(half, v)
		}
		got := len(ground.Payload)
		awnd := 0
		if ground.TCP.Window != 8064 {
			awnd = 1
		}
		nonzero := func(key string, want bool) {
			if v, ok := l.Codes[key]; ok && (v > 0) != want {
				t.Errorf("%s: %s = %d, but the responder received %d bytes (sent %d…%d): want non-zero %v", l.Test, key, v, got, half, full, want)
			}
		}
		exact := func(key string, want int) {
			if v, ok := l.Codes[key]; ok && v != want {
				t.Errorf("%s: %s = %d, want %d from the server-side capture (%d bytes, window %d)", l.Test, key, v, want, got, ground.TCP.Window)
			}
		}
		switch l.Test {
		case "data", "data_known_opt", "data_opt":
			checkMods(t, l, ground, full)
			split := 0
			if got < full {
				split = 1
			} else if got > full {
				split = -1
			}
			exact("Split", split)
			nonzero("SplitKnownOpt", split == 1)
			nonzero("SplitOpt", split == 1)
			exact("ChangeAwnd", awnd)
			exact("ChangeAwnd4KnownOpt", awnd)
			exact("ChangeAwnd4Opt", awnd)
		case "pseudo_rtx", "pseudo_larger_rtx", "pseudo_smaller_rtx":
			// The reflection answers the retransmission (the last data segment sent): its
			// new payload delivered whole (0) or resized (4).
			rtx := 0
			if got != lens[len(lens)-1] {
				rtx = 4
			}
			for _, k := range []string{"PseudoRtx", "PseudoRtxL", "PseudoRtxS"} {
				exact(k, rtx)
			}
		case "seg_coalesce", "seg_coalesce_known_opt", "seg_coalesce_opt", "seg_coalesce_fq", "seg_coalesce_fq_known_opt", "seg_coalesce_fq_opt":
			co := 0
			if got != half {
				co = 1
			}
			exact("Coalesce", co)
			exact("CoalesceFq", co)
			for _, k := range []string{"CoalesceKnownOpt", "CoalesceOpt", "CoalesceFqKnownOpt", "CoalesceFqOpt"} {
				nonzero(k, co == 1)
			}
		}
	}
	return n
}

// groundOf is the segment on the server side of the router that a test's printed reflection
// stands for (same source port, sequence number and payload length), or nil.
func groundOf(t *testing.T, f capFacts, l *testLine, port uint16) *netlab.CapturedPacket {
	t.Helper()
	if l == nil || l.Reflected == nil {
		return nil
	}
	r := l.Reflected.Received
	sport, seq := lineNum(t, lineSrcPort, r), lineNum(t, lineSeq, r)
	for i := range f.s {
		p := &f.s[i]
		if toServer(*p, port) && int(p.Src.Port()) == sport && int(p.TCP.Seq) == seq && len(p.Payload) == l.Reflected.ReceivedLen {
			return p
		}
	}
	return nil
}

// waitResponder waits until a responder started with --log-level info logs that it is
// answering (its table, capture and socket are open): until then the server's kernel resets
// the SYNs. Polls for up to 10 s (hang guard).
func waitResponder(t *testing.T, p *netlab.Proc) {
	t.Helper()
	for range 200 {
		if strings.Contains(p.Output(), "responder: answering") {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("responder not answering after 10 s:\n%s", p.Output())
}

// lineWithKey returns the test line that reports key.
func lineWithKey(lines []testLine, key string) *testLine {
	for i := range lines {
		if _, ok := lines[i].Codes[key]; ok {
			return &lines[i]
		}
	}
	return nil
}

// sentPorts are the client ports of a test's flows (from its printed sent segments).
func sentPorts(l *testLine) map[int]bool {
	ports := map[int]bool{}
	for _, s := range l.Sent {
		if m := lineSrcPort.FindStringSubmatch(s); m != nil {
			v, _ := strconv.Atoi(m[1])
			ports[v] = true
		}
	}
	return ports
}

// pureAckCodes are the IndAck codes the client side of the router allows: a pure ACK (no
// payload, no SYN/FIN/RST) came back to the test's flows after its last data segment (1); none
// since the client segment before it (0); one in between crossed the data on the wire, so the
// client may have seen it before or after sending (0 or 1).
func pureAckCodes(f capFacts, l *testLine, port uint16) []int {
	if l == nil {
		return nil
	}
	ports := sentPorts(l)
	var prev, last time.Time
	for _, p := range f.c {
		if toServer(p, port) && ports[int(p.Src.Port())] {
			if len(p.Payload) > 0 {
				last = p.Time
			} else if last.IsZero() || p.Time.Before(last) {
				prev = p.Time
			}
		}
	}
	pure := func(since time.Time) int {
		return count(f.c, func(p netlab.CapturedPacket) bool {
			return fromServer(p, port) && ports[int(p.Dst.Port())] && p.Time.After(since) && p.TCP.ACK && p.TCP.Ack != 0 &&
				!p.TCP.SYN && !p.TCP.FIN && !p.TCP.RST && len(p.Payload) == 0
		})
	}
	switch {
	case pure(last) > 0:
		return []int{1}
	case pure(prev) == 0:
		return []int{0}
	}
	return []int{0, 1}
}

// sackFromCapture derives SackTranslated from the test's last segment with a SACK block on
// the client side of the router and the same segment (port, seq) on the server side: 3 block
// removed, 0 unchanged, 4 ACK and both edges shifted alike, 5 otherwise; -1 when the segment
// never reached the server.
func sackFromCapture(t *testing.T, f capFacts, l *testLine, port uint16) int {
	t.Helper()
	if l == nil {
		t.Error("no test line with SackTranslated")
		return -1
	}
	ports := sentPorts(l)
	block := func(x *layers.TCP) (uint32, uint32, bool) {
		for _, o := range x.Options {
			if o.OptionType == layers.TCPOptionKindSACK && len(o.OptionData) == 8 {
				d := o.OptionData
				return uint32(d[0])<<24 | uint32(d[1])<<16 | uint32(d[2])<<8 | uint32(d[3]),
					uint32(d[4])<<24 | uint32(d[5])<<16 | uint32(d[6])<<8 | uint32(d[7]), true
			}
		}
		return 0, 0, false
	}
	var sent *layers.TCP
	for _, p := range f.c {
		if toServer(p, port) && ports[int(p.Src.Port())] {
			if _, _, ok := block(p.TCP); ok {
				sent = p.TCP
			}
		}
	}
	if sent == nil {
		t.Error("SackTranslated: the client side shows no segment with a SACK block")
		return -1
	}
	for _, p := range f.s {
		if !toServer(p, port) || p.TCP.SrcPort != sent.SrcPort || p.TCP.Seq != sent.Seq || len(p.Payload) == 0 {
			continue
		}
		l0, r0, _ := block(sent)
		l1, r1, ok := block(p.TCP)
		dAck := p.TCP.Ack - sent.Ack
		switch {
		case !ok:
			return 3
		case dAck == 0 && l1 == l0 && r1 == r0:
			return 0
		case l1-l0 == dAck && r1-r0 == dAck:
			return 4
		}
		return 5
	}
	return -1
}

// probeOf is a test's last data segment on the client side of the router (its flows' ports,
// from the segments the test printed) and the segments that came back to those flows after it
// until the client's next segment (the close): what the test judged the probe by.
func probeOf(t *testing.T, f capFacts, l *testLine, port uint16) (probe *netlab.CapturedPacket, before []netlab.CapturedPacket, answers []netlab.CapturedPacket) {
	t.Helper()
	if l == nil {
		return nil, nil, nil
	}
	ports := sentPorts(l)
	out := func(p netlab.CapturedPacket) bool { return toServer(p, port) && ports[int(p.Src.Port())] }
	at := -1
	for i, p := range f.c {
		if out(p) && len(p.Payload) > 0 {
			at = i
		}
	}
	if at < 0 {
		return nil, nil, nil
	}
	for _, p := range f.c[:at] {
		if out(p) && len(p.Payload) > 0 {
			before = append(before, p)
		}
	}
	for _, p := range f.c[at+1:] {
		if out(p) {
			break
		}
		if fromServer(p, port) && ports[int(p.Dst.Port())] {
			answers = append(answers, p)
		}
	}
	return &f.c[at], before, answers
}

func tsOpt(x *layers.TCP) (val, ecr uint32, ok bool) {
	for _, o := range x.Options {
		if o.OptionType == layers.TCPOptionKindTimestamps && len(o.OptionData) == 8 {
			d := o.OptionData
			return uint32(d[0])<<24 | uint32(d[1])<<16 | uint32(d[2])<<8 | uint32(d[3]),
				uint32(d[4])<<24 | uint32(d[5])<<16 | uint32(d[6])<<8 | uint32(d[7]), true
		}
	}
	return 0, 0, false
}

// knownOptFromCapture derives DataKnownOpt (reference §2, test 5) from the captures: the data
// segment with TSval 13572468 as the responder received it (the reflected segment on the
// server side of the router: timestamp passed, removed, zeroed or changed) and the answers
// the client side carried back (the first with a timestamp: TSecr echoed, zero or other; or
// none has one). 1 when no answer ACKs the data. Codes: 0 both pass, 2 outgoing removed, 3
// TSval changed, 4 zeroed, 5 incoming removed, 6 TSecr changed, 7 TSecr zeroed, 8 changed but
// re-synced (TSecr echoes our TSval although the responder got another), 9 other combinations.
func knownOptFromCapture(t *testing.T, f capFacts, l *testLine, port uint16) (int, string) {
	t.Helper()
	const tsval = 13572468
	d, _, answers := probeOf(t, f, l, port)
	if d == nil {
		return -1, "no data segment on the client side"
	}
	end := d.TCP.Seq + uint32(len(d.Payload))
	acked := false
	for _, p := range answers {
		if p.TCP.ACK && !p.TCP.RST && p.TCP.Ack == end {
			acked = true
		}
	}
	if !acked {
		return 1, fmt.Sprintf("no answer ACKs %d", end)
	}
	g := groundOf(t, f, l, port)
	if g == nil {
		return -1, "the reflected segment is not in the server-side capture"
	}
	out := "changed"
	switch v, _, ok := tsOpt(g.TCP); {
	case !ok:
		out = "removed"
	case v == tsval:
		out = "passed"
	case v == 0:
		out = "zeroed"
	}
	in := "absent"
	for _, p := range answers {
		if _, e, ok := tsOpt(p.TCP); ok {
			in = map[bool]string{true: "echoed", false: "other"}[e == tsval]
			if e == 0 {
				in = "zero"
			}
			break
		}
	}
	code := 9
	switch {
	case in == "echoed" && out == "passed":
		code = 0
	case in == "echoed":
		code = 8
	case in == "zero" && out == "passed":
		code = 7
	case in == "zero" && out == "zeroed":
		code = 4
	case in == "other" && out == "passed":
		code = 6
	case in == "other" && out == "changed":
		code = 3
	case in == "absent" && out == "passed":
		code = 5
	case in == "absent" && out == "removed":
		code = 2
	}
	why := fmt.Sprintf("outgoing TS %s (server side: seq %d from %v), incoming TS %s in %d answers", out, g.TCP.Seq, g.Src, in, len(answers))
	return code, why
}

// seqHoleFromCapture derives SeqHole (reference §2, test 11) from the client side of the
// router: the test's last data segment starts one segment beyond the end of its data before
// it (the hole); the highest ACK that came back after it: covers it (0), none (1), stays at the
// start of the hole (2), anything else (3).
func seqHoleFromCapture(t *testing.T, f capFacts, l *testLine, port uint16) (int, string) {
	t.Helper()
	d, before, answers := probeOf(t, f, l, port)
	if d == nil || len(before) == 0 {
		return -1, "no hole segment after data on the client side"
	}
	var holeStart uint32
	for _, p := range before {
		if e := p.TCP.Seq + uint32(len(p.Payload)); int32(e-d.TCP.Seq) < 0 && int32(e-holeStart) > 0 {
			holeStart = e
		}
	}
	var hi uint32
	ok := false
	for _, p := range answers {
		if p.TCP.ACK && !p.TCP.RST && (!ok || int32(p.TCP.Ack-hi) > 0) {
			hi, ok = p.TCP.Ack, true
		}
	}
	why := fmt.Sprintf("hole %d–%d, segment %d+%d, highest ACK back %d (%v)", holeStart, d.TCP.Seq, d.TCP.Seq, len(d.Payload), hi, ok)
	switch {
	case !ok || hi == 0:
		return 1, why
	case hi == d.TCP.Seq+uint32(len(d.Payload)):
		return 0, why
	case hi == holeStart:
		return 2, why
	}
	return 3, why
}

// ackHoleFromCapture derives AckHole (reference §2, test 12) from the client side of the
// router: the test's last data segment acknowledges one segment beyond what came back before
// it; the highest sequence number of the (non-RST) answers after it: that ACK (0, "normal
// response"), none (1), the ACK less the skipped segment ("corrected", 2), anything else (3).
func ackHoleFromCapture(t *testing.T, f capFacts, l *testLine, port uint16) (int, string) {
	t.Helper()
	d, _, answers := probeOf(t, f, l, port)
	if d == nil {
		return -1, "no data segment on the client side"
	}
	var hi uint32
	ok := false
	var seqs []string
	for _, p := range answers {
		if p.TCP.RST {
			continue
		}
		seqs = append(seqs, fmt.Sprintf("%d(%s%d)", p.TCP.Seq, map[bool]string{true: "A", false: ""}[p.TCP.ACK], len(p.Payload)))
		if !ok || int32(p.TCP.Seq-hi) > 0 {
			hi, ok = p.TCP.Seq, true
		}
	}
	skip := uint32(len(d.Payload))
	why := fmt.Sprintf("probe acks %d (skip %d); answers' seq %v", d.TCP.Ack, skip, seqs)
	switch {
	case ok && hi == d.TCP.Ack:
		return 0, why
	case !ok || hi == 0:
		return 1, why
	case hi == d.TCP.Ack-skip:
		return 2, why
	}
	return 3, why
}

// holeKeys are the keys whose codes withDerived re-derives from the captures in every mode.
var holeKeys = map[string]func(*testing.T, capFacts, *testLine, uint16) (int, string){
	"DataKnownOpt": knownOptFromCapture, "SeqHole": seqHoleFromCapture, "AckHole": ackHoleFromCapture,
}

// withDerived adds the capture-derived codes of DataKnownOpt, SeqHole and AckHole (for the
// tests that ran) to a mode's expectations; an expectation the mode already states must agree
// with the derivation.
func withDerived(t *testing.T, f capFacts, lines []testLine, port uint16, want map[string]int) map[string]int {
	t.Helper()
	if want == nil {
		want = map[string]int{}
	}
	for k, derive := range holeKeys {
		l := lineWithKey(lines, k)
		if l == nil {
			continue
		}
		w, why := derive(t, f, l, port)
		t.Logf("%s from the captures: %d (%s)", k, w, why)
		if w == -1 {
			t.Errorf("%s: the captures do not show the probe: %s", k, why)
		}
		if old, ok := want[k]; ok && old != w {
			t.Errorf("%s: the mode expects %d, the captures show %d (%s)", k, old, w, why)
		}
		want[k] = w
	}
	return want
}

// noAnswerInCapture reports whether the client side of the router shows that a test's data
// got no answer: after its first data segment, nothing came back to its flows carrying
// payload (the responder answers every data segment with one) or acknowledging any of the
// data (a SYN proxy's window update acknowledges only the handshake).
func noAnswerInCapture(f capFacts, l *testLine, port uint16) (bool, string) {
	if l == nil {
		return false, "no test line"
	}
	ports := sentPorts(l)
	var first *netlab.CapturedPacket
	for i, p := range f.c {
		if toServer(p, port) && ports[int(p.Src.Port())] && len(p.Payload) > 0 && !p.TCP.SYN {
			first = &f.c[i]
			break
		}
	}
	if first == nil {
		return true, "no data segment sent"
	}
	n := count(f.c, func(p netlab.CapturedPacket) bool {
		return fromServer(p, port) && ports[int(p.Dst.Port())] && p.Time.After(first.Time) && !p.TCP.RST &&
			(len(p.Payload) > 0 || p.TCP.ACK && int32(p.TCP.Ack-first.TCP.Seq) > 0)
	})
	return n == 0, fmt.Sprintf("%d answers after the first data segment (seq %d)", n, first.TCP.Seq)
}

// checkMods: the header fields a data test reports modified (tracebox-like, old → new) are
// exactly those in which the segment the server side of the router carried (ground) differs
// from what the client sent (source 10.199.1.2, one of the test's ports, one of its data
// segments' sequence numbers, window 8064, full payload), each with the captured value as its new value.
func checkMods(t *testing.T, l testLine, ground *netlab.CapturedPacket, full int) {
	t.Helper()
	ports := sentPorts(&l)
	want := map[string]string{}
	if a := ground.Src.Addr(); a != netlab.MiddleboxClient {
		want["ip.src"] = a.String()
	}
	if p := int(ground.Src.Port()); !ports[p] {
		want["tcp.sport"] = strconv.Itoa(p)
	}
	sentSeq := map[int]bool{} // the data segments' sequence numbers (a retry sends later ones)
	for _, s := range l.Sent {
		if m := lineSeq.FindStringSubmatch(s); m != nil && !strings.Contains(s, "Flags [S") {
			v, _ := strconv.Atoi(m[1])
			sentSeq[v] = true
		}
	}
	if !sentSeq[int(ground.TCP.Seq)] {
		want["tcp.seq"] = strconv.FormatUint(uint64(ground.TCP.Seq), 10)
	}
	if ground.TCP.Window != 8064 {
		want["tcp.win"] = strconv.Itoa(int(ground.TCP.Window))
	}
	if len(ground.Payload) != full {
		want["tcp.len"] = strconv.Itoa(len(ground.Payload))
	}
	got := map[string]string{}
	for _, m := range l.Mods {
		if _, ok := map[string]bool{"ip.src": true, "tcp.sport": true, "tcp.seq": true, "tcp.win": true, "tcp.len": true}[m.Field]; ok {
			got[m.Field] = m.New
		}
	}
	for f, v := range want {
		if got[f] != v {
			t.Errorf("%s: modification %s → %q reported, the capture shows %q", l.Test, f, got[f], v)
		}
	}
	for f, v := range got {
		if _, ok := want[f]; !ok {
			t.Errorf("%s: modification %s → %q reported, the capture shows no change", l.Test, f, v)
		}
	}
}

// TestMiddleboxModes builds the lab once and runs the whole catalogue through each router
// mode. The expected code of every affected key is derived from the router's captures.
func TestMiddleboxModes(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test (about a minute): not in -short mode")
	}
	bin := gobuild.Binary(t, "../..")
	m := labtest.Middlebox(t, netlab.MiddleboxConfig{Mode: netlab.ModeTransparent})
	srv := fmt.Sprintf("%s:%d", netlab.MiddleboxServer, 34343)
	resp, err := m.Server.Start(bin, "responder", "--listen", srv, "--manage-firewall", "--log-level", "info")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Stop()
	waitResponder(t, resp)
	const port = 34343
	cSYN := func(p netlab.CapturedPacket) bool { return toServer(p, port) && p.TCP.SYN }
	cData := func(p netlab.CapturedPacket) bool { return toServer(p, port) && len(p.Payload) > 0 }

	t.Run("transparent", func(t *testing.T) {
		var got map[string]int
		var lines []testLine
		pcap := filepath.Join(t.TempDir(), "tool.pcap") // written by the root-run tool inside the client namespace
		// Everything the client sends over its only link, to any address (IPv4).
		all := filepath.Join(t.TempDir(), "client-all.pcap")
		stopAll := labtest.StartCapture(t, m.Router, "mc", all, "ip and src host "+netlab.MiddleboxClient.String())
		f := capture(t, m, "transparent", port, func() { got, lines = runTest(t, m, bin, port, "", "--pcap", pcap) })
		stopAll()
		// Only the destination named on the command line is probed: no packet of the run
		// went to any other address.
		sentAll, err := netlab.ReadCapture(all)
		if err != nil {
			t.Fatal(err)
		}
		if len(sentAll) < len(f.c)/2 {
			t.Errorf("client capture holds %d packets, the router's port capture %d", len(sentAll), len(f.c))
		}
		for _, p := range sentAll {
			if p.Dst.Addr() != netlab.MiddleboxServer {
				t.Errorf("the client sent a packet to %v (proto %v): only %v was named", p.Dst, p.Proto, netlab.MiddleboxServer)
			}
		}
		if n := checkReflections(t, f, lines, port); n == 0 {
			t.Error("no header reflection to ground in the capture")
		}
		// Ground truth: the SYNs with MP_CAPABLE reach the server with it.
		if count(f.s, func(p netlab.CapturedPacket) bool { return cSYN(p) && hasOpt(p.TCP, 30) }) == 0 {
			t.Fatal("capture: no SYN with kind 30 on the server side in transparent mode")
		}
		expectAll(t, got, withDerived(t, f, lines, port, nil))
		// --pcap holds every segment the router saw on the client link, in the same order per
		// direction (the tool's own AF_PACKET recording with kernel timestamps; segments
		// crossing on the wire are seen in different orders at the two ends).
		tool, err := netlab.ReadCapture(pcap)
		if err != nil {
			t.Fatal(err)
		}
		if len(tool) != len(f.c) {
			t.Errorf("--pcap has %d segments, the router's client side %d", len(tool), len(f.c))
		}
		for _, dir := range []func(netlab.CapturedPacket) bool{
			func(p netlab.CapturedPacket) bool { return toServer(p, port) },
			func(p netlab.CapturedPacket) bool { return fromServer(p, port) },
		} {
			a, b := slices.DeleteFunc(slices.Clone(tool), func(p netlab.CapturedPacket) bool { return !dir(p) }),
				slices.DeleteFunc(slices.Clone(f.c), func(p netlab.CapturedPacket) bool { return !dir(p) })
			if len(a) != len(b) {
				t.Errorf("--pcap has %d segments in one direction, the router's client side %d", len(a), len(b))
			}
			for i := range min(len(a), len(b)) {
				if a[i].TCP.Seq != b[i].TCP.Seq || a[i].TCP.Ack != b[i].TCP.Ack || a[i].Src != b[i].Src || len(a[i].Payload) != len(b[i].Payload) {
					t.Errorf("--pcap segment %d of %v differs from the router's capture", i, a[i].Src)
					break
				}
			}
		}
	})

	// tcpexpose send: the crafted SYN reaches the server with exactly the options given on
	// the command line, in that order and padded with EOL (no NOP was asked for);
	// and the SYN/ACK the tool prints is the one the router carried back.
	t.Run("send", func(t *testing.T) {
		var out string
		f := capture(t, m, "send", port, func() {
			var err error
			out, err = m.Client.Exec(bin, "send", "--manage-firewall", "--log-level", "error", "--flags", "S",
				"--opts", "mss:1460,sackok,ts:1:0,ws:7,253:0x1234cafe", srv)
			if err != nil {
				t.Errorf("send: %v\n%s", err, out)
			}
		})
		syns := 0
		for _, p := range f.s {
			if !toServer(p, port) || !p.TCP.SYN {
				continue
			}
			syns++
			var kinds []string
			for _, o := range p.TCP.Options {
				kinds = append(kinds, fmt.Sprintf("%d:%x", o.OptionType, o.OptionData))
			}
			if got, want := strings.Join(kinds, " "), "2:05b4 4: 8:0000000100000000 3:07 253:1234cafe 0:"; got != want {
				t.Errorf("SYN at the server: options %s, want %s", got, want)
			}
			if p.TCP.Seq != 252001 {
				t.Errorf("SYN at the server: seq %d", p.TCP.Seq)
			}
		}
		if syns != 1 {
			t.Errorf("%d SYNs reached the server, want 1", syns)
		}
		var sa *layers.TCP
		for _, p := range f.c {
			if fromServer(p, port) && p.TCP.SYN && p.TCP.ACK {
				sa = p.TCP
			}
		}
		if sa == nil {
			t.Fatalf("no SYN/ACK on the client side; tool printed:\n%s", out)
		}
		found := false
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "Flags [S.]") && strings.Contains(l, fmt.Sprintf("seq %d,", sa.Seq)) &&
				strings.Contains(l, fmt.Sprintf("ack %d,", sa.Ack)) && strings.Contains(l, fmt.Sprintf("win %d,", sa.Window)) &&
				strings.Contains(l, "unknown-253 0x1234cafe") {
				found = true
			}
		}
		if !found {
			t.Errorf("the captured SYN/ACK (seq %d ack %d win %d, kind-253 echo) is not among the printed lines:\n%s", sa.Seq, sa.Ack, sa.Window, out)
		}

		// --script: handshake and 100 bytes of data on one flow; relative numbers resolve
		// against the flow (isn) and the peer's ISN as the router carried it.
		f = capture(t, m, "send-script", port, func() {
			var err error
			out, err = m.Client.Exec(bin, "send", "--manage-firewall", "--log-level", "error",
				"--script", "flags=S opts=mss:512; flags=A seq=isn+1 ack=peer+1; flags=PA seq=isn+1 ack=peer+1 payload=a1 len=99", srv)
			if err != nil {
				t.Errorf("send --script: %v\n%s", err, out)
			}
		})
		var peerISN uint32
		for _, p := range f.c {
			if fromServer(p, port) && p.TCP.SYN && p.TCP.ACK {
				peerISN = p.TCP.Seq
			}
		}
		var acks, data int
		for _, p := range f.s {
			if !toServer(p, port) || p.TCP.SYN {
				continue
			}
			if p.TCP.Seq != 252002 || p.TCP.Ack != peerISN+1 {
				t.Errorf("scripted segment at the server: seq %d ack %d, want 252002 and %d", p.TCP.Seq, p.TCP.Ack, peerISN+1)
			}
			if len(p.Payload) == 0 {
				acks++
			} else if len(p.Payload) == 100 && p.Payload[0] == 0xa1 {
				data++
			}
		}
		if acks != 1 || data != 1 {
			t.Errorf("server side: %d pure ACKs and %d data segments, want 1 and 1", acks, data)
		}
		if !strings.Contains(out, "ack 252102,") {
			t.Errorf("the responder's ACK of the 100 bytes (ack 252102) is not printed:\n%s", out)
		}
	})

	// --manage-firewall's table is removed when a run ends by SIGINT or SIGTERM, for the
	// initiator (stopped while it waits for an address nobody answers) and the responder; also
	// when a second Ctrl-C ends the process at once (cliutil.OnForcedExit).
	t.Run("firewall-cleanup-on-signal", func(t *testing.T) {
		for _, c := range []struct {
			host  *netlab.Host
			table string
			sig   syscall.Signal
			args  []string
			twice bool
		}{
			{m.Client, "tcpexpose_%d", syscall.SIGINT, []string{"test", "--manage-firewall", "--timeout", "5s", "10.199.2.99:34343"}, false},
			{m.Client, "tcpexpose_%d", syscall.SIGTERM, []string{"test", "--manage-firewall", "--timeout", "5s", "10.199.2.99:34343"}, false},
			{m.Server, "tcpexpose_responder_%d", syscall.SIGINT, []string{"responder", "--manage-firewall", "--listen", "10.199.2.2:34500"}, false},
			{m.Server, "tcpexpose_responder_%d", syscall.SIGTERM, []string{"responder", "--manage-firewall", "--listen", "10.199.2.2:34500"}, false},
			{m.Client, "tcpexpose_%d", syscall.SIGINT, []string{"test", "--manage-firewall", "--timeout", "5s", "10.199.2.99:34343"}, true},
			{m.Server, "tcpexpose_responder_%d", syscall.SIGINT, []string{"responder", "--manage-firewall", "--listen", "10.199.2.2:34500"}, true},
		} {
			p, err := c.host.Start(bin, c.args...)
			if err != nil {
				t.Fatal(err)
			}
			table := fmt.Sprintf(c.table, p.Cmd.Process.Pid)
			tables := func() string { out, _ := c.host.Exec("nft", "list", "tables"); return out + "\n" }
			table = " " + table + "\n" // a whole line of `nft list tables`
			for range 200 {            // hang guard: up to 10 s for the table to appear
				if strings.Contains(tables(), table) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if !strings.Contains(tables(), table) {
				p.Stop()
				t.Fatalf("%s: table %s never installed:\n%s", c.args[0], table, p.Output())
			}
			_ = p.Cmd.Process.Signal(c.sig)
			if c.twice {
				_ = p.Cmd.Process.Signal(c.sig)
			}
			select {
			case <-p.Done():
			case <-time.After(30 * time.Second): // hang guard only
				p.Stop()
				t.Fatalf("%s: still running 30 s after %v", c.args[0], c.sig)
			}
			if out := tables(); strings.Contains(out, table) {
				t.Errorf("%s after %v: left behind:\n%s", c.args[0], c.sig, out)
			}
		}
	})

	// The responder started as root drops to --user (default nobody) once its sockets and
	// table are open: /proc shows nobody's uid and gid, no supplementary group and no
	// capability; it still answers through the router (the raw socket and the capture opened
	// as root keep working); SIGTERM still removes its table (owned by its netlink socket,
	// closed without privilege). --user "" keeps root.
	t.Run("privileges", func(t *testing.T) {
		nobody, err := user.Lookup("nobody")
		if err != nil {
			t.Fatal(err)
		}
		// A copy of the binary with the file capabilities the package grants (cap_net_raw and
		// cap_net_admin, effective), in a directory nobody can reach, for a start as nobody.
		dir, err := os.MkdirTemp("", "tcpexpose-caps-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		capBin := filepath.Join(dir, "tcpexpose")
		if b, err := os.ReadFile(bin); err != nil {
			t.Fatal(err)
		} else if err := os.WriteFile(capBin, b, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		// struct vfs_cap_data, revision 2, effective: permitted CAP_NET_ADMIN (12), CAP_NET_RAW (13).
		xattr := []byte{1, 0, 0, 2, 0, 0x30, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
		if err := syscall.Setxattr(capBin, "security.capability", xattr, 0); err != nil {
			t.Fatalf("setting file capabilities on %s: %v", capBin, err)
		}
		asNobody := []string{"setpriv", "--reuid=" + nobody.Uid, "--regid=" + nobody.Gid, "--clear-groups", "--inh-caps=-all", "--", capBin}
		for _, c := range []struct {
			cmd      []string
			args     []string
			uid, gid string
			dropped  bool
		}{
			{[]string{bin}, nil, nobody.Uid, nobody.Gid, true},
			{[]string{bin}, []string{"--user", ""}, "0", "0", false},
			{asNobody, nil, nobody.Uid, nobody.Gid, true}, // capabilities cleared
		} {
			args := append(append(c.cmd[1:], "responder", "--manage-firewall", "--log-level", "info", "--listen", "10.199.2.2:34501"), c.args...)
			p, err := m.Server.Start(c.cmd[0], args...)
			if err != nil {
				t.Fatal(err)
			}
			waitResponder(t, p)
			pid := p.Cmd.Process.Pid
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			if err != nil {
				p.Stop()
				t.Fatal(err)
			}
			status := map[string]string{}
			for _, l := range strings.Split(string(b), "\n") {
				if k, v, ok := strings.Cut(l, ":"); ok {
					status[k] = strings.Join(strings.Fields(v), " ")
				}
			}
			t.Logf("%v %v: Uid %s, Gid %s, Groups %q, CapEff %s, CapPrm %s", c.cmd[0], c.args, status["Uid"], status["Gid"], status["Groups"], status["CapEff"], status["CapPrm"])
			ids := func(v string) string { return strings.Join([]string{v, v, v, v}, " ") }
			if status["Uid"] != ids(c.uid) || status["Gid"] != ids(c.gid) {
				t.Errorf("%v: Uid %q Gid %q, want all %s / %s", c.args, status["Uid"], status["Gid"], c.uid, c.gid)
			}
			noCaps := "0000000000000000"
			if c.dropped {
				if status["Groups"] != "" {
					t.Errorf("supplementary groups left: %q", status["Groups"])
				}
				for _, k := range []string{"CapEff", "CapPrm", "CapInh", "CapAmb"} {
					if status[k] != noCaps {
						t.Errorf("%s = %s after the drop", k, status[k])
					}
				}
			} else if status["CapEff"] == noCaps {
				t.Errorf("--user \"\": no capability left (CapEff %s)", status["CapEff"])
			}
			table := fmt.Sprintf(" tcpexpose_responder_%d\n", pid)
			tables := func() string { out, _ := m.Server.Exec("nft", "list", "tables"); return out + "\n" }
			if !strings.Contains(tables(), table) {
				t.Errorf("%v: table%s not installed", c.args, strings.TrimSpace(table))
			}
			out, err := m.Client.Exec(bin, "send", "--manage-firewall", "--log-level", "error", "--flags", "S", "10.199.2.2:34501")
			if err != nil || !regexp.MustCompile(`Flags \[S\.\], cksum \S+ \(correct\), seq 11259375, ack 252002, win 32768,`).MatchString(out) {
				t.Errorf("%v: no SYN/ACK from the responder (%v):\n%s", c.args, err, out)
			}
			_ = p.Cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.Done():
			case <-time.After(30 * time.Second): // hang guard only
				p.Stop()
				t.Fatalf("%v: still running 30 s after SIGTERM", c.args)
			}
			for range 100 { // the kernel destroys the table as the socket closes; hang guard 5 s
				if !strings.Contains(tables(), table) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if out := tables(); strings.Contains(out, table) {
				t.Errorf("%v: table left behind after SIGTERM:\n%s\n%s", c.args, out, p.Output())
			}
			if strings.Contains(p.Output(), "level=error") {
				t.Errorf("%v: errors in the responder's log:\n%s", c.args, p.Output())
			}
		}
	})

	t.Run("transparent-ipv6", func(t *testing.T) {
		r6, err := m.Server.Start(bin, "responder", "--listen", "[fd99:2::2]:34343", "--manage-firewall", "--log-level", "info")
		if err != nil {
			t.Fatal(err)
		}
		defer r6.Stop()
		waitResponder(t, r6)
		out, err := m.Client.Exec(bin, "test", "--log-level", "error", "--manage-firewall", "--timeout", "300ms", "[fd99:2::2]")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		want := "Result: Syn 0 SynOpt 0 SynOpt2 0 Data 0"
		if !strings.Contains(out, want) || strings.Contains(out[strings.Index(out, "Result:"):], " -1") ||
			strings.Count(out[strings.Index(out, "Result:"):], " 0") != len(probe.AllKeys()) {
			t.Errorf("IPv6 through the transparent router: not every key 0:\n%s", out)
		}
	})

	t.Run("strip-unknown", func(t *testing.T) {
		if err := m.SetMode(netlab.ModeTransparent); err != nil {
			t.Fatal(err)
		}
		if err := m.StripOptionKinds(30, 31, 32); err != nil {
			t.Fatal(err)
		}
		var got map[string]int
		var lines []testLine
		f := capture(t, m, "strip-unknown", port, func() { got, lines = runTest(t, m, bin, port, "") })
		if n := checkReflections(t, f, lines, port); n == 0 {
			t.Error("no header reflection to ground in the capture")
		}
		want := map[string]int{}
		// SYNs left the client with kind 30 and reached the server without it: removed (3).
		if count(f.c, func(p netlab.CapturedPacket) bool { return cSYN(p) && hasOpt(p.TCP, 30) }) > 0 &&
			count(f.s, func(p netlab.CapturedPacket) bool { return cSYN(p) && hasOpt(p.TCP, 30) }) == 0 {
			want["SynOpt"], want["SynOpt2"] = 3, 3
		}
		// Data left with MP_DATA (31) and arrived without it: MP_DATA removed (2).
		if count(f.c, func(p netlab.CapturedPacket) bool { return cData(p) && hasOpt(p.TCP, 31) }) > 0 &&
			count(f.s, func(p netlab.CapturedPacket) bool { return cData(p) && hasOpt(p.TCP, 31) }) == 0 {
			want["DataOpt"] = 2
		}
		if len(want) != 3 {
			t.Fatalf("captures do not show the stripping: %v", want)
		}
		expectAll(t, got, withDerived(t, f, lines, port, want))
	})

	t.Run("strip-sack-ts-ws", func(t *testing.T) {
		if err := m.SetMode(netlab.ModeTransparent); err != nil {
			t.Fatal(err)
		}
		if err := m.StripOptionKinds(4, 8, 3); err != nil {
			t.Fatal(err)
		}
		var got map[string]int
		var lines []testLine
		f := capture(t, m, "strip-std", port, func() { got, lines = runTest(t, m, bin, port, "") })
		if n := checkReflections(t, f, lines, port); n == 0 {
			t.Error("no header reflection to ground in the capture")
		}
		want := map[string]int{}
		if count(f.c, func(p netlab.CapturedPacket) bool { return cData(p) && hasOpt(p.TCP, layers.TCPOptionKindTimestamps) }) > 0 &&
			count(f.s, func(p netlab.CapturedPacket) bool { return cData(p) && hasOpt(p.TCP, layers.TCPOptionKindTimestamps) }) == 0 {
			want["DataKnownOpt"] = 2 // outgoing timestamp removed
		}
		if count(f.c, func(p netlab.CapturedPacket) bool { return cSYN(p) && hasOpt(p.TCP, layers.TCPOptionKindWindowScale) }) > 0 &&
			count(f.s, func(p netlab.CapturedPacket) bool { return cSYN(p) && hasOpt(p.TCP, layers.TCPOptionKindWindowScale) }) == 0 {
			want["WsConsistent"] = 3 // outgoing window scale removed
		}
		if len(want) != 2 {
			t.Fatalf("captures do not show the stripping: %v", want)
		}
		expectAll(t, got, withDerived(t, f, lines, port, want))
	})

	t.Run("clamp-mss", func(t *testing.T) {
		if err := m.SetMode(netlab.ModeClampMSS); err != nil {
			t.Fatal(err)
		}
		var got map[string]int
		var lines []testLine
		f := capture(t, m, "clamp", port, func() { got, lines = runTest(t, m, bin, port, "") })
		if n := checkReflections(t, f, lines, port); n == 0 {
			t.Error("no header reflection to ground in the capture")
		}
		want := map[string]int{}
		// The 1460 SYN (syn_reflect) reaches the server with a lower MSS: lowered (3). The
		// 512 SYNs are below the clamp and pass unchanged.
		lowered := count(f.s, func(p netlab.CapturedPacket) bool { return cSYN(p) && len(p.Payload) > 0 && optMSS(p.TCP) == 536 })
		if count(f.c, func(p netlab.CapturedPacket) bool { return cSYN(p) && optMSS(p.TCP) == 1460 }) > 0 && lowered > 0 {
			want["ChangeMss"] = 3
		}
		if count(f.s, func(p netlab.CapturedPacket) bool { return cSYN(p) && optMSS(p.TCP) == 512 }) == 0 {
			t.Error("capture: no MSS 512 SYN reached the server unchanged")
		}
		if len(want) != 1 {
			t.Fatalf("captures do not show the clamping")
		}
		expectAll(t, got, withDerived(t, f, lines, port, want))
	})

	t.Run("nat", func(t *testing.T) {
		if err := m.SetMode(netlab.ModeNAT); err != nil {
			t.Fatal(err)
		}
		var got map[string]int
		var lines []testLine
		f := capture(t, m, "nat", port, func() { got, lines = runTest(t, m, bin, port, "") })
		if n := checkReflections(t, f, lines, port); n == 0 {
			t.Error("no header reflection to ground in the capture")
		}
		want := map[string]int{}
		natted := count(f.s, func(p netlab.CapturedPacket) bool {
			return toServer(p, port) && p.Src.Addr() == netlab.MiddleboxRouterS
		})
		leaked := count(f.s, func(p netlab.CapturedPacket) bool { return toServer(p, port) && p.Src.Addr() == netlab.MiddleboxClient })
		if natted == 0 {
			t.Fatal("capture: nothing NATed")
		}
		// Out-of-window ACKs (AckHole, UnseenAck) are conntrack-INVALID and leave un-NATed
		// (lab.md §2). The responder answers the client's real address; whether that answer
		// reaches the client decides the codes: Linux drops it (its conntrack entry would
		// clash with the NATed flow's), so the client sees no answer at all.
		answered := count(f.s, func(p netlab.CapturedPacket) bool {
			return fromServer(p, port) && p.Dst.Addr() == netlab.MiddleboxClient
		})
		delivered := count(f.c, func(p netlab.CapturedPacket) bool {
			return fromServer(p, port) && p.TCP.Seq >= 11259375+100000 // answers to the unseen ACK carry its ack as seq
		})
		switch {
		case leaked == 0:
			t.Error("capture: no un-NATed segment on the server side")
		case answered > 0 && delivered == 0:
			want["UnseenAck"], want["AckHole"] = 1, 1
		case delivered > 0:
			want["UnseenAck"] = 3
		}
		t.Logf("capture: %d NATed, %d un-NATed to the server; %d answers to the real client address, %d of them delivered", natted, leaked, answered, delivered)
		expectAll(t, got, withDerived(t, f, lines, port, want))
	})

	t.Run("drop-unknown-syn", func(t *testing.T) {
		if err := m.SetMode(netlab.ModeTransparent); err != nil {
			t.Fatal(err)
		}
		if err := m.DropSYNsWithOptions(30); err != nil {
			t.Fatal(err)
		}
		var got map[string]int
		var lines []testLine
		f := capture(t, m, "drop", port, func() {
			got, lines = runTest(t, m, bin, port, "syn,syn_opt,syn_opt2,data,incoming_seq_sopt")
		})
		if n := checkReflections(t, f, lines, port); n == 0 {
			t.Error("no header reflection to ground in the capture")
		}
		want := map[string]int{}
		for _, k := range probe.AllKeys() {
			want[k] = -1
		}
		for _, k := range []string{"Syn", "UnexpAwnd", "UnexpAwnd4Opt", "Data", "IndAck", "ChangeSeq", "ChangeAwnd", "ChangeIncomingSeq", "Split"} {
			want[k] = 0
		}
		if count(f.c, func(p netlab.CapturedPacket) bool { return cSYN(p) && hasOpt(p.TCP, 30) }) > 0 &&
			count(f.s, func(p netlab.CapturedPacket) bool { return cSYN(p) && hasOpt(p.TCP, 30) }) == 0 {
			want["SynOpt"], want["SynOpt2"] = 1, 1 // no reply
		} else {
			t.Fatal("capture: SYNs with kind 30 were not dropped")
		}
		// UnexpAwnd4Opt needs a SYN/ACK: not run; ChangeIncomingSeq4Opt's SYN never connects.
		want["UnexpAwnd4Opt"] = -1
		expectAll(t, got, want)
	})

	t.Run("seq-shift", func(t *testing.T) {
		if err := m.SetMode(netlab.ModeTransparent); err != nil {
			t.Fatal(err)
		}
		const delta = 0x01000000
		sh, err := m.StartSeqShifter(7, delta)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]int
		var lines []testLine
		f := capture(t, m, "shift", port, func() { got, lines = runTest(t, m, bin, port, "") })
		if n := checkReflections(t, f, lines, port); n == 0 {
			t.Error("no header reflection to ground in the capture")
		}
		sh.Stop()
		want := map[string]int{}
		// Data that left the client at seq 252002 reached the server at 252002 + delta.
		if count(f.c, func(p netlab.CapturedPacket) bool { return cData(p) && p.TCP.Seq == 252002 }) > 0 &&
			count(f.s, func(p netlab.CapturedPacket) bool { return cData(p) && p.TCP.Seq == 252002+delta }) > 0 &&
			count(f.s, func(p netlab.CapturedPacket) bool { return cData(p) && p.TCP.Seq == 252002 }) == 0 {
			want["ChangeSeq"], want["ChangeSeq4KnownOpt"], want["ChangeSeq4Opt"] = 1, 1, 1
		} else {
			t.Fatal("capture: sequence numbers not shifted")
		}
		expectAll(t, got, withDerived(t, f, lines, port, want))
	})

	t.Run("synproxy", func(t *testing.T) {
		if err := m.SetMode(netlab.ModeSYNProxy); err != nil {
			t.Fatal(err)
		}
		var got map[string]int
		var lines []testLine
		f := capture(t, m, "synproxy", port, func() { got, lines = runTest(t, m, bin, port, "") })
		// The SYN/ACK's window is 0: the tests wait for SYNPROXY's window update before sending
		// data, so no data is lost to the race of tcpexpose.md §4 and the data tests reflect.
		if n := checkReflections(t, f, lines, port); n == 0 {
			t.Error("no header reflection to ground in the capture")
		}
		want := map[string]int{}
		synAcksC := func(pred func(*layers.TCP) bool) int {
			return count(f.c, func(p netlab.CapturedPacket) bool {
				return fromServer(p, port) && p.TCP.SYN && p.TCP.ACK && pred(p.TCP)
			})
		}
		all := synAcksC(func(*layers.TCP) bool { return true })
		// The client's SYN/ACKs come from the router: window 0, cookie ISN, no kind-30 echo.
		if all > 0 && synAcksC(func(x *layers.TCP) bool { return x.Window == 0 }) > 0 {
			want["UnexpAwnd"], want["UnexpAwnd4Opt"] = 1, 1
		}
		if synAcksC(func(x *layers.TCP) bool { return hasOpt(x, 30) }) == 0 &&
			count(f.s, func(p netlab.CapturedPacket) bool { return cSYN(p) && hasOpt(p.TCP, 30) }) == 0 {
			want["SynOpt"], want["SynOpt2"] = 3, 3
		}
		// The server's SYN/ACKs carry its ISN, the client's do not: incoming seq translated.
		if count(f.s, func(p netlab.CapturedPacket) bool { return fromServer(p, port) && p.TCP.SYN && p.TCP.Seq == 0xabcdef }) > 0 &&
			synAcksC(func(x *layers.TCP) bool { return x.Seq == 0xabcdef }) == 0 {
			want["ChangeIncomingSeq"], want["ChangeIncomingSeq4Opt"] = 1, 1
		}
		// SYN data never reaches the server (the SYN is re-originated without it), and the
		// client's SYN/ACKs carry the router's window scale 7.
		if count(f.s, func(p netlab.CapturedPacket) bool { return cSYN(p) && len(p.Payload) > 0 }) == 0 {
			want["ChangeMss"], want["TtlReset"] = 7, 1
			if synAcksC(func(x *layers.TCP) bool { return hasOpt(x, layers.TCPOptionKindWindowScale) }) > 0 {
				want["WsConsistent"] = 6
			}
		}
		if synAcksC(func(x *layers.TCP) bool { return x.ECE }) == 0 {
			want["Ecn"] = 3
		}
		if len(want) < 10 {
			t.Errorf("captures do not show the SYN proxy: %v", want)
		}
		// Timestamps and holes through SYNPROXY's translation, from the captures.
		want = withDerived(t, f, lines, port, want)
		for k, w := range want {
			if got[k] != w {
				t.Errorf("%s = %d, want %d (from the captures)", k, got[k], w)
			}
		}
		// Other keys: no change; no answer where strict conntrack drops a segment as INVALID
		// (ACKs of unsent data, the D-SACK block), checked on the client side; not run (-1)
		// only where the client side shows the test's data unanswered.
		for _, k := range probe.AllKeys() {
			if _, ok := want[k]; ok {
				continue
			}
			v := got[k]
			switch {
			case strings.HasPrefix(k, "IndAck") && v != -1:
				// SYNPROXY's own window-update ACKs can reach the client after the data: a
				// pure ACK on the client side after the test's last data segment.
				if want := pureAckCodes(f, lineWithKey(lines, k), port); !slices.Contains(want, v) {
					t.Errorf("%s = %d, the client-side capture allows %v", k, v, want)
				}
			case v == 0:
			case v == -1:
				// Not run: the test's data got no answer through the router.
				l := lineWithKey(lines, k)
				if none, why := noAnswerInCapture(f, l, port); !none {
					t.Errorf("%s = -1 (not run), but the client side shows the data answered: %s", k, why)
				} else {
					t.Logf("%s = -1: %s", k, why)
				}
			case (k == "SackTranslated" || k == "UnseenAck" || k == "AckHole") && v == 1:
				// "No answer", checked on the client side of the router for that very test
				// (its flows keep their ports through SYNPROXY): after the probe — the last
				// segment with a SACK block (SackTranslated; none sent: the first data
				// segment got no reflection), else the segment acknowledging the most beyond
				// the SYN/ACK — no answer (segment other than FIN/RST; for SackTranslated, a
				// reflection) came back.
				l := lineWithKey(lines, k)
				if l == nil {
					t.Errorf("%s = 1 but no test line reports it", k)
					break
				}
				ports := sentPorts(l)
				out := func(p netlab.CapturedPacket) bool { return toServer(p, port) && ports[int(p.Src.Port())] }
				back := func(p netlab.CapturedPacket) bool { return fromServer(p, port) && ports[int(p.Dst.Port())] }
				var isn uint32
				for _, p := range f.c {
					if back(p) && p.TCP.SYN {
						isn = p.TCP.Seq
					}
				}
				var probeAt time.Time
				var best uint32
				for _, p := range f.c {
					if !out(p) || p.TCP.SYN {
						continue
					}
					switch {
					case k == "SackTranslated":
						if hasOpt(p.TCP, layers.TCPOptionKindSACK) || probeAt.IsZero() && len(p.Payload) > 0 {
							probeAt = p.Time
						}
					case p.TCP.ACK && p.TCP.Ack-isn >= best:
						best, probeAt = p.TCP.Ack-isn, p.Time
					}
				}
				answers := count(f.c, func(p netlab.CapturedPacket) bool {
					if !back(p) || !p.Time.After(probeAt) || p.TCP.FIN || p.TCP.RST {
						return false
					}
					return k != "SackTranslated" || len(p.Payload) > 0
				})
				if probeAt.IsZero() || answers > 0 {
					t.Errorf("%s = 1 (no answer), but the client side shows %d answers after the probe (at %v)", k, answers, probeAt)
				}
			case k == "SackTranslated" && v >= 3:
				// The D-SACK segment as the client sent it and as the server got it (same port
				// and sequence number: SYNPROXY translates the ACK side only).
				if want := sackFromCapture(t, f, lineWithKey(lines, k), port); v != want {
					t.Errorf("SackTranslated = %d, the captures show %d", v, want)
				}
			default:
				t.Errorf("%s = %d: a change the captures do not explain", k, v)
			}
		}
	})

	t.Run("proxy", func(t *testing.T) {
		if err := m.SetMode(netlab.ModeProxy); err != nil {
			t.Fatal(err)
		}
		r80, err := m.Server.Start(bin, "responder", "--listen", fmt.Sprintf("%s:80", netlab.MiddleboxServer), "--manage-firewall", "--log-level", "info")
		if err != nil {
			t.Fatal(err)
		}
		defer r80.Stop()
		waitResponder(t, r80)
		const web = 80
		var got map[string]int
		var lines []testLine
		f := capture(t, m, "proxy", web, func() { got, lines = runTest(t, m, bin, web, "") })
		if n := checkReflections(t, f, lines, web); n == 0 {
			t.Error("no header reflection to ground in the capture")
		}
		want := map[string]int{}
		// Every connection reaching the server comes from the router itself: re-originated.
		srvSYN := func(p netlab.CapturedPacket) bool { return toServer(p, web) && p.TCP.SYN }
		fromRouter := count(f.s, func(p netlab.CapturedPacket) bool { return srvSYN(p) && p.Src.Addr() == netlab.MiddleboxRouterS })
		if fromRouter == 0 || fromRouter != count(f.s, srvSYN) {
			t.Fatalf("capture: server-side SYNs not all from the router (%d of %d)", fromRouter, count(f.s, srvSYN))
		}
		if count(f.s, func(p netlab.CapturedPacket) bool { return srvSYN(p) && hasOpt(p.TCP, 30) }) == 0 {
			want["SynOpt"], want["SynOpt2"] = 3, 3
		}
		if count(f.c, func(p netlab.CapturedPacket) bool { return fromServer(p, web) && p.TCP.SYN && p.TCP.Window == 32768 }) == 0 {
			want["UnexpAwnd"], want["UnexpAwnd4Opt"] = 1, 1
		}
		// The client's data (ISN 252001) never reaches the server with its sequence numbers,
		// and the server's ISN never reaches the client.
		if count(f.s, func(p netlab.CapturedPacket) bool {
			return toServer(p, web) && len(p.Payload) > 0 && p.TCP.Seq == 252002
		}) == 0 {
			want["ChangeSeq"], want["ChangeSeq4KnownOpt"], want["ChangeSeq4Opt"] = 1, 1, 1
		}
		if count(f.c, func(p netlab.CapturedPacket) bool { return fromServer(p, web) && p.TCP.SYN && p.TCP.Seq == 0xabcdef }) == 0 {
			want["ChangeIncomingSeq"], want["ChangeIncomingSeq4Opt"] = 1, 1
		}
		// The router ACKs the client's data with pure ACKs before the reflection comes back.
		if count(f.c, func(p netlab.CapturedPacket) bool {
			return fromServer(p, web) && !p.TCP.SYN && p.TCP.ACK && len(p.Payload) == 0
		}) > 0 {
			want["IndAck"], want["IndAck4KnownOpt"], want["IndAck4Opt"] = 1, 1, 1
		}
		if count(f.s, func(p netlab.CapturedPacket) bool { return srvSYN(p) && len(p.Payload) > 0 }) == 0 {
			want["ChangeMss"], want["TtlReset"] = 7, 1
		}
		if len(want) < 14 {
			t.Errorf("captures do not show the proxy: %v", want)
		}
		// The relay's connections carry no MP_DATA (31) to the server and no MP_ACK (32)
		// back: MP_DATA removed (DataOpt 2), and where a segment was split or coalesced
		// (grounded by checkReflections) no ACK or reflected header has the option (3).
		if count(f.s, func(p netlab.CapturedPacket) bool { return toServer(p, web) && hasOpt(p.TCP, 31) }) == 0 &&
			count(f.c, func(p netlab.CapturedPacket) bool { return fromServer(p, web) && hasOpt(p.TCP, 32) }) == 0 {
			want["DataOpt"] = 2
			for _, k := range []string{"SplitOpt", "CoalesceOpt", "CoalesceFqOpt"} {
				if got[k] > 0 {
					want[k] = 3
				}
			}
		} else {
			t.Error("capture: MP_DATA or MP_ACK crossed the relay")
		}
		// The SYN/ACKs the client got carry the router stack's window scale (no SYN was
		// reflected, see ChangeMss): negotiated by a middlebox (6).
		if want["ChangeMss"] == 7 && count(f.c, func(p netlab.CapturedPacket) bool {
			return fromServer(p, web) && p.TCP.SYN && hasOpt(p.TCP, layers.TCPOptionKindWindowScale)
		}) > 0 {
			want["WsConsistent"] = 6
		}
		// D-SACK: the segment the responder reflected (the relay's, found in the server-side
		// capture) has no SACK block: removed (3).
		if g := groundOf(t, f, lineWithKey(lines, "SackTranslated"), web); g != nil && !hasOpt(g.TCP, layers.TCPOptionKindSACK) {
			want["SackTranslated"] = 3
		}
		// ACK of unseen data: its reflected segment came from the relay like the flow's first
		// one (0), or from the client's own address past the REDIRECT (3).
		if g := groundOf(t, f, lineWithKey(lines, "UnseenAck"), web); g != nil {
			want["UnseenAck"] = 0
			if g.Src.Addr() != netlab.MiddleboxRouterS {
				want["UnseenAck"] = 3
			}
		}
		// ECN: the relay's SYN/ACK to the client confirms ECN (ECE) or not (3); its own
		// connection to the server did not ask for ECN, so the data reaches the server without
		// ECT(0) (4).
		if l := lineWithKey(lines, "Ecn"); l != nil {
			ports := sentPorts(l)
			ece := count(f.c, func(p netlab.CapturedPacket) bool {
				return fromServer(p, web) && ports[int(p.Dst.Port())] && p.TCP.SYN && p.TCP.ECE
			})
			ect := count(f.s, func(p netlab.CapturedPacket) bool {
				return toServer(p, web) && len(p.Payload) > 0 && p.IPv4 != nil && p.IPv4.TOS&3 == 2
			})
			switch {
			case ece == 0:
				want["Ecn"] = 3
			case ect == 0:
				want["Ecn"] = 4
			}
		}
		// The handshake works (a SYN/ACK reached the client) and the data test's reflection is
		// in the server-side capture: Syn and Data 0.
		if count(f.c, func(p netlab.CapturedPacket) bool { return fromServer(p, web) && p.TCP.SYN && p.TCP.ACK }) > 0 {
			want["Syn"] = 0
		}
		if groundOf(t, f, lineWithKey(lines, "Data"), web) != nil {
			want["Data"] = 0
		}
		// Retransmission with different payload: no reflection came back to the test's flow
		// after its last data segment, but an ACK beyond it did (the relay ACKed the original
		// and never forwarded the new bytes): 2.
		for _, k := range []string{"PseudoRtx", "PseudoRtxL", "PseudoRtxS"} {
			l := lineWithKey(lines, k)
			if l == nil || l.Reflected != nil {
				continue // a reflection is grounded by checkReflections
			}
			ports := sentPorts(l)
			var last netlab.CapturedPacket
			for _, p := range f.c {
				if toServer(p, web) && ports[int(p.Src.Port())] && len(p.Payload) > 0 {
					last = p
				}
			}
			if last.TCP == nil {
				continue
			}
			end := last.TCP.Seq + uint32(len(last.Payload))
			after := func(p netlab.CapturedPacket) bool {
				return fromServer(p, web) && ports[int(p.Dst.Port())] && p.Time.After(last.Time) && !p.TCP.RST
			}
			refl := count(f.c, func(p netlab.CapturedPacket) bool { return after(p) && len(p.Payload) > 0 })
			acked := count(f.c, func(p netlab.CapturedPacket) bool { return after(p) && p.TCP.ACK && int32(p.TCP.Ack-end) >= 0 })
			if refl == 0 && acked > 0 {
				want[k] = 2
			}
		}
		// Timestamps, sequence hole, ACK hole: what the relay did to those segments, from the
		// captures (the relay's own TS on the server side, the answers it sent the client).
		want = withDerived(t, f, lines, web, want)
		for k, w := range want {
			if got[k] != w {
				t.Errorf("%s = %d, want %d (from the captures)", k, got[k], w)
			}
		}
		// Split, Coalesce*, ChangeAwnd* and reflected PseudoRtx* are grounded by
		// checkReflections above; every other key is in want.
		grounded := map[string]bool{"Split": true, "SplitKnownOpt": true, "Coalesce": true, "CoalesceKnownOpt": true, "CoalesceFq": true,
			"CoalesceFqKnownOpt": true, "ChangeAwnd": true, "ChangeAwnd4KnownOpt": true, "ChangeAwnd4Opt": true,
			"PseudoRtx": lineWithKey(lines, "PseudoRtx").Reflected != nil, "PseudoRtxL": lineWithKey(lines, "PseudoRtxL").Reflected != nil,
			"PseudoRtxS": lineWithKey(lines, "PseudoRtxS").Reflected != nil}
		for _, k := range probe.AllKeys() {
			if _, ok := want[k]; !ok && !grounded[k] {
				t.Errorf("%s = %d: derived from no capture", k, got[k])
			}
		}
		// The relay forks a child per connection; children of half-open crafted connections
		// never exit and would keep the relay's output open: end them, then the relay.
		killRelayChildren(t, m)
		if err := m.SetMode(netlab.ModeTransparent); err != nil {
			t.Error(err)
		}
	})
}
