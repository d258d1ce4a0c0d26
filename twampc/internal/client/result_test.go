package client

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/timestamp"
	"github.com/probekit/probekit/shared/twampctl"
	"github.com/probekit/probekit/shared/udpsock"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// Error Estimates with hand-computed values (RFC 4656 §4.1.2: Multiplier × 2^(Scale−32) s).
var (
	eeA = timestamp.MakeErrorEstimate(true, false, 12, 10)  // 10 × 2^-20 s = 9.5367431640625 µs
	eeB = timestamp.MakeErrorEstimate(true, false, 10, 100) // 100 × 2^-22 s = 23.84185791015625 µs
	eeC = timestamp.MakeErrorEstimate(true, false, 8, 255)  // 255 × 2^-24 s = 15.199184417724609 µs
	eeU = timestamp.MakeErrorEstimate(false, false, 8, 255) // as eeC, S=0
)

// reply is one reflected packet the tests feed to handleReply: the Error Estimates it carries
// (sender's copy, reflector's) and the one of this host's clock at T4.
type reply struct {
	seq                uint32
	sender, refl, rxEE timestamp.ErrorEstimate
	t1, t2, t3, t4     time.Duration // after base
	senderTTL, ttl     uint8
}

var base = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

// replay runs replies through the session's real receive path (handleReply) and finish.
func replay(t *testing.T, sent int, replies []reply) *Result {
	t.Helper()
	return replaySession(t, sent, replies).res
}

func replaySession(t *testing.T, sent int, replies []reply) *session {
	t.Helper()
	s := &session{mode: twampctl.ModeUnauthenticated, count: sent, records: make([]Record, sent), res: &Result{}}
	s.remote = netip.MustParseAddrPort("192.0.2.1:5000")
	offline(t, s)
	t1 := map[uint32]time.Duration{}
	for _, r := range replies {
		t1[r.seq] = r.t1
	}
	for seq := uint32(0); seq < uint32(sent); seq++ {
		s.sendAt(seq, base.Add(t1[seq]))
	}
	var rp testpkt.ReflectedPacket
	rp.Mode = testpkt.ModeUnauthenticated
	for _, r := range replies {
		p := testpkt.ReflectedPacket{Mode: testpkt.ModeUnauthenticated, Seq: r.seq,
			Timestamp: testpkt.Stamp(base.Add(r.t3), false), ErrorEstimate: r.refl,
			ReceiveTimestamp: testpkt.Stamp(base.Add(r.t2), false),
			SenderSeq:        r.seq, SenderTimestamp: testpkt.Stamp(base.Add(r.t1), false),
			SenderErrorEstimate: r.sender, SenderTTL: r.senderTTL}
		b, err := p.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		s.ee = r.rxEE
		s.handleReply(&udpsock.Message{Buf: b, N: len(b), Addr: s.remote, RxTime: base.Add(r.t4), TTL: int(r.ttl)}, &rp)
	}
	s.finishOffline()
	return s
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-12*math.Max(1, math.Abs(b)) }

// twping's err (owamp stats.c IterateSummarizeTWSession + PrintDelayStats): per packet
// err(T1) + err(T2) + err(T3) + err(T4) for the round trip, err(T1) + err(T2) for send,
// err(T3) + err(T4) for reflect, where T2 and T3 share the reflector's Error Estimate (RFC 5357
// §4.2.1); the summary prints the largest over the packets as "(err=%.3g ms)", or "(unsync)"
// when a clock was not synchronised. Expected values are the hand sums of the eeA/eeB/eeC
// values above.
func TestErrFromErrorEstimates(t *testing.T) {
	const (
		a = 9.5367431640625e-6
		b = 23.84185791015625e-6
		c = 15.199184417724609e-6
	)
	ms := time.Millisecond
	one := func(seq uint32, s, r, x timestamp.ErrorEstimate) reply {
		return reply{seq: seq, sender: s, refl: r, rxEE: x, t1: 0, t2: ms, t3: ms + 10*time.Microsecond, t4: 2 * ms, senderTTL: 254, ttl: 254}
	}
	for _, tc := range []struct {
		name               string
		replies            []reply
		rtt, send, reflect float64 // seconds
		unit               Unit
		wantRTT, wantSend  string
		wantReflect, notIn string
		synchronized       bool
	}{
		{"one packet", []reply{one(0, eeA, eeB, eeC)}, a + c + 2*b, a + b, b + c, 'm',
			"round-trip time min/median/max = 1.99/1.99/1.99 ms, (err=0.0724 ms)",
			"send time min/median/max = 1/1/1 ms, (err=0.0334 ms)",
			"reflect time min/median/max = 0.99/0.99/0.99 ms, (err=0.039 ms)", "unsync", true},
		// The largest per-packet sum, per delay type (each from a different packet here).
		// Packet 0: rtt 2a+2b, send a+b, reflect a+b; packet 1: rtt 3c+b, send 2c, reflect c+b.
		{"max over packets", []reply{one(0, eeA, eeB, eeA), one(1, eeC, eeC, eeB)}, 3*c + b, a + b, c + b, 'm',
			"(err=0.0694 ms)", "(err=0.0334 ms)", "(err=0.039 ms)", "unsync", true},
		{"microseconds", []reply{one(0, eeA, eeB, eeC)}, a + c + 2*b, a + b, b + c, 'u',
			"round-trip time min/median/max = 1.99e+03/1.99e+03/1.99e+03 us, (err=72.4 us)",
			"(err=33.4 us)", "(err=39 us)", "unsync", true},
		// One unsynchronised clock: every line says so, as twping does, and the bound is
		// still computed (JSON keeps it).
		{"reflector unsynced", []reply{one(0, eeA, eeU, eeC)}, a + c + 2*c, a + c, c + c, 'm',
			"round-trip time min/median/max = 1.99/1.99/1.99 ms, (unsync)",
			"send time min/median/max = 1/1/1 ms, (unsync)", "reflect time min/median/max = 0.99/0.99/0.99 ms, (unsync)", "err=", false},
		{"own clock unsynced", []reply{one(0, eeA, eeB, unsyncedEE)}, a + 2*b + unsyncedEE.Seconds(), a + b, b + unsyncedEE.Seconds(), 'm',
			"(unsync)", "(unsync)", "(unsync)", "err=", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := replay(t, len(tc.replies), tc.replies)
			if !near(r.RTTErr, tc.rtt) || !near(r.SendErr, tc.send) || !near(r.ReflectErr, tc.reflect) {
				t.Errorf("err rtt/send/reflect = %g/%g/%g s, want %g/%g/%g", r.RTTErr, r.SendErr, r.ReflectErr, tc.rtt, tc.send, tc.reflect)
			}
			if r.Synchronized() != tc.synchronized {
				t.Errorf("synchronized %v, want %v", r.Synchronized(), tc.synchronized)
			}
			var buf bytes.Buffer
			r.WriteTextUnit(&buf, nil, tc.unit)
			out := buf.String()
			for _, want := range []string{tc.wantRTT, tc.wantSend, tc.wantReflect} {
				if !strings.Contains(out, want) {
					t.Errorf("summary lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, tc.notIn) {
				t.Errorf("summary contains %q:\n%s", tc.notIn, out)
			}
			js, err := json.Marshal(r.Summary(nil))
			if err != nil {
				t.Fatal(err)
			}
			var sum struct {
				RTT, Send, Reflect struct {
					Err float64 `json:"err_us"`
				}
			}
			if err := json.Unmarshal(js, &sum); err != nil {
				t.Fatal(err)
			}
			if !near(sum.RTT.Err, tc.rtt*1e6) || !near(sum.Send.Err, tc.send*1e6) || !near(sum.Reflect.Err, tc.reflect*1e6) {
				t.Errorf("JSON err_us %+v, want %g/%g/%g", sum, tc.rtt*1e6, tc.send*1e6, tc.reflect*1e6)
			}
		})
	}
}

// The per-packet output carries each packet's own bound in the last column (err_us).
func TestPerPacketErrColumn(t *testing.T) {
	ms := time.Millisecond
	s := &session{idx: 0, sent: 2, records: make([]Record, 2), res: &Result{}}
	s.records[0] = Record{Seq: 0, Received: true, T1: 1, T2: int64(ms), T3: int64(ms), T4: int64(2 * ms), senderEE: eeA, reflEE: eeB, rxEE: eeC}
	s.records[1] = Record{Seq: 1, T1: 2}
	var buf bytes.Buffer
	if err := write(Output{W: &buf, Format: cliutil.FormatCSV}, &Config{}, []*session{s}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 || !strings.HasSuffix(lines[0], ",err_us") {
		t.Fatalf("CSV:\n%s", buf.String())
	}
	// 9.5367431640625 + 15.199184417724609 + 2 × 23.84185791015625 µs
	if !strings.HasSuffix(lines[1], ",72.41964340209961") || !strings.HasSuffix(lines[2], ",0") {
		t.Errorf("err_us column:\n%s", buf.String())
	}
}

// owamp PrintTtlStats: hops = 255 − TTL; "takes N values" counts the distinct TTLs seen (not
// the width of the range); no TTL at all is "TTL not reported".
func TestHopsLines(t *testing.T) {
	ms := time.Millisecond
	rep := func(seq uint32, sttl, ttl uint8) reply {
		return reply{seq: seq, sender: eeA, refl: eeA, rxEE: eeA, t2: ms, t3: ms, t4: 2 * ms, senderTTL: sttl, ttl: ttl}
	}
	for _, tc := range []struct {
		name    string
		replies []reply
		want    []string
	}{
		{"consistent", []reply{rep(0, 254, 255), rep(1, 254, 255)},
			[]string{"\nsend hops = 1 (consistently)\n", "\nreflect hops = 0 (consistently)\n"}},
		{"two values three apart", []reply{rep(0, 254, 250), rep(1, 251, 253), rep(2, 254, 250)},
			[]string{"\nsend hops takes 2 values; min hops = 1, max hops = 4\n", "\nreflect hops takes 2 values; min hops = 2, max hops = 5\n"}},
		{"not reported", []reply{rep(0, 0, 0)},
			[]string{"\nsend TTL not reported\n", "\nreflect TTL not reported\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := replay(t, len(tc.replies), tc.replies)
			var buf bytes.Buffer
			r.WriteText(&buf, nil)
			for _, w := range tc.want {
				if !strings.Contains(buf.String(), w) {
					t.Errorf("summary lacks %q:\n%s", w, buf.String())
				}
			}
		})
	}
}

// The whole text output with -v against a golden file. Its lines and their order are owamp's
// OWPStatsPrintSummary for a two-way session (perfsonar/owamp owamp/stats.c): header, SID,
// first/last, the sent/lost/duplicates line, round-trip/send/reflect time min/median/max with
// "(err=… ms)", reflector processing time min/max, two-way/send/reflect jitter (P95-P50),
// Percentiles, send/reflect hops; twampc's own lines (mode, RFC 3550 jitter, DSCP/ECN)
// follow. The numbers: RTTs 1.99/2.09/2.19 ms (t4−t1 minus the 10 µs residence), send time
// 1/1.05/1.1 ms, reflect 0.99/1.04/1.09 ms, err as in TestErrFromErrorEstimates.
func TestSummaryGolden(t *testing.T) {
	ms := time.Millisecond
	var reps []reply
	for i := range 3 {
		d := time.Duration(i) * 50 * time.Microsecond
		reps = append(reps, reply{seq: uint32(i), sender: eeA, refl: eeB, rxEE: eeC,
			t1: 0, t2: ms + d, t3: ms + d + 10*time.Microsecond, t4: 2*ms + 2*d, senderTTL: 254, ttl: 253})
	}
	s := replaySession(t, 4, reps)
	r := s.res
	r.SID = [16]byte{0xc0, 0x00, 0x02, 0x01, 0xed, 0x0b, 0x1f, 0x40, 1, 2, 3, 4, 5, 6, 7, 8}
	r.Sender, r.Reflector, r.Mode = "192.0.2.2:20001", "[2001:db8::1]:862", "unauthenticated"
	// Local wall-clock times, so the golden text is the same in every time zone.
	r.First = time.Date(2026, 11, 23, 9, 0, 0, 123456789, time.Local)
	r.Last = time.Date(2026, 11, 23, 9, 0, 1, 987654321, time.Local)
	// Text output with -v: twping's per-packet lines (owamp IterateSummarizeTWSession,
	// "seq_no=%-10u fwd_delay=%.3g %s bck_delay=… delay=… proc_delay=…\t(err=%.3g %s)", a lost
	// packet "seq_no=%-10u *LOST*") under the session header, then the summary.
	var buf bytes.Buffer
	if err := write(Output{W: &buf, Format: cliutil.FormatText, Verbose: true}, &Config{Percentiles: []float64{50, 95}}, []*session{s}); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "summary.golden")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if buf.String() != string(want) {
		t.Errorf("summary:\n%s\nwant:\n%s", buf.String(), want)
	}
}

// owamp _OWPGetTimespec: S unless STA_UNSYNC, error = timex.esterror µs, at least 1 µs.
func TestEEFromTimex(t *testing.T) {
	for _, tc := range []struct {
		status int32
		est    int64
		sync   bool
		err    time.Duration // at least this, and less than 1/256 more (8-bit multiplier)
	}{
		{0x0040, 16000000, false, time.Millisecond}, // STA_UNSYNC: the 1 ms default
		{0x0001 | 0x0040, 5, false, time.Millisecond},
		{0x0001, 19, true, 19 * time.Microsecond}, // STA_PLL, esterror 19 µs
		{0, 0, true, time.Microsecond},            // synced with esterror 0 → 1 µs
		{0x2000, 1500, true, 1500 * time.Microsecond},
	} {
		e := eeFromTimex(tc.status, tc.est)
		if e.S() != tc.sync || e.Duration() < tc.err || e.Duration() > tc.err+tc.err/128 {
			t.Errorf("status %#x esterror %d: %v, want S=%v ≈ %v", tc.status, tc.est, e, tc.sync, tc.err)
		}
	}
	if e := clockEE(); !e.Valid() {
		t.Errorf("clockEE %v has multiplier 0", e)
	}
}
