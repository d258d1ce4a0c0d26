package probe

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/probekit/probekit/shared/tcpcraft"
	"github.com/probekit/probekit/tcpexpose/internal/wire"
)

// OriginalKeys are the original's result keys in the order of its "Result:" line
// (tcpexposure.py make_result_string, without the 2016 HTTP-wrapped keys).
var OriginalKeys = []string{
	"Syn", "SynOpt", "SynOpt2",
	"Data", "DataKnownOpt", "DataOpt",
	"Split", "SplitKnownOpt", "SplitOpt",
	"Coalesce", "CoalesceKnownOpt", "CoalesceOpt",
	"CoalesceFq", "CoalesceFqKnownOpt", "CoalesceFqOpt",
	"PseudoRtx", "PseudoRtxL", "PseudoRtxS",
	"SeqHole", "AckHole",
	"UnexpAwnd", "UnexpAwnd4Opt",
	"ChangeIncomingSeq", "ChangeIncomingSeq4Opt",
	"ChangeAwnd", "ChangeAwnd4KnownOpt", "ChangeAwnd4Opt",
	"ChangeSeq", "ChangeSeq4KnownOpt", "ChangeSeq4Opt",
	"IndAck", "IndAck4KnownOpt", "IndAck4Opt",
}

// ExtraKeys are the keys of the tests the original did not have (TX-7), after the original's.
var ExtraKeys = []string{"ChangeMss", "WsConsistent", "TtlReset", "SackTranslated", "UnseenAck", "Ecn"}

// AllKeys is OriginalKeys followed by ExtraKeys.
func AllKeys() []string { return append(slices.Clone(OriginalKeys), ExtraKeys...) }

// Config configures a catalogue run.
type Config struct {
	// Timeout bounds each wait for a reply ("no reply" is decided after it).
	Timeout time.Duration
	// Grace is how long to keep collecting after the expected replies arrived (to see extra
	// segments such as a proxy's ACK).
	Grace time.Duration
	// Tests selects tests by name (nil: all).
	Tests []string
	// Trace receives every test's segments as they are judged (for -v).
	Trace func(test string, recs []tcpcraft.Record)
	// Report receives each test's result as soon as it is final.
	Report func(*Result)
}

// Test is one test of the catalogue.
type Test struct {
	Name string
	Keys []string
	// Coalescing tests are tried up to 10 times instead of in pairs.
	Coalesce bool
	// Extra marks the tests the original did not have.
	Extra bool
	run   func(ctx context.Context, r *runner) (*outcome, error)
}

// outcome is one run of a test.
type outcome struct {
	keys          map[string]int
	conds         []string
	conns         []*Conn
	reflection    *wire.Reflection
	reflectedFrom *tcpcraft.Segment // the sent segment the reflection answers
	mods          []Modification
	notes         []string
}

func newOutcome(keys ...string) *outcome {
	o := &outcome{keys: map[string]int{}}
	for _, k := range keys {
		o.keys[k] = -1
	}
	return o
}

func (o *outcome) cond(c ...string) { o.conds = append(o.conds, c...) }

// Catalogue returns every test in run order.
func Catalogue() []Test {
	return []Test{
		{Name: "syn", Keys: []string{"Syn", "UnexpAwnd"}, run: func(ctx context.Context, r *runner) (*outcome, error) { return r.synTest(ctx, 0) }},
		{Name: "syn_opt", Keys: []string{"SynOpt", "UnexpAwnd4Opt"}, run: func(ctx context.Context, r *runner) (*outcome, error) { return r.synTest(ctx, 1) }},
		{Name: "syn_opt2", Keys: []string{"SynOpt2"}, run: func(ctx context.Context, r *runner) (*outcome, error) { return r.synTest(ctx, 2) }},
		{Name: "data", Keys: []string{"Data", "IndAck", "ChangeSeq", "ChangeAwnd", "ChangeIncomingSeq", "Split"},
			run: func(ctx context.Context, r *runner) (*outcome, error) { return r.dataTest(ctx, 0) }},
		{Name: "data_known_opt", Keys: []string{"DataKnownOpt", "IndAck4KnownOpt", "ChangeSeq4KnownOpt", "ChangeAwnd4KnownOpt", "SplitKnownOpt"},
			run: func(ctx context.Context, r *runner) (*outcome, error) { return r.dataTest(ctx, 1) }},
		{Name: "data_opt", Keys: []string{"DataOpt", "IndAck4Opt", "ChangeSeq4Opt", "ChangeAwnd4Opt", "SplitOpt"},
			run: func(ctx context.Context, r *runner) (*outcome, error) { return r.dataTest(ctx, 2) }},
		{Name: "seg_coalesce", Keys: []string{"Coalesce"}, Coalesce: true, run: func(ctx context.Context, r *runner) (*outcome, error) { return r.coalesceTest(ctx, 0, false) }},
		{Name: "seg_coalesce_known_opt", Keys: []string{"CoalesceKnownOpt"}, Coalesce: true, run: func(ctx context.Context, r *runner) (*outcome, error) { return r.coalesceTest(ctx, 1, false) }},
		{Name: "seg_coalesce_opt", Keys: []string{"CoalesceOpt"}, Coalesce: true, run: func(ctx context.Context, r *runner) (*outcome, error) { return r.coalesceTest(ctx, 2, false) }},
		{Name: "seg_coalesce_fq", Keys: []string{"CoalesceFq"}, Coalesce: true, run: func(ctx context.Context, r *runner) (*outcome, error) { return r.coalesceTest(ctx, 0, true) }},
		{Name: "seg_coalesce_fq_known_opt", Keys: []string{"CoalesceFqKnownOpt"}, Coalesce: true, run: func(ctx context.Context, r *runner) (*outcome, error) { return r.coalesceTest(ctx, 1, true) }},
		{Name: "seg_coalesce_fq_opt", Keys: []string{"CoalesceFqOpt"}, Coalesce: true, run: func(ctx context.Context, r *runner) (*outcome, error) { return r.coalesceTest(ctx, 2, true) }},
		{Name: "pseudo_rtx", Keys: []string{"PseudoRtx"}, run: func(ctx context.Context, r *runner) (*outcome, error) { return r.pseudoRtxTest(ctx, 0) }},
		{Name: "pseudo_larger_rtx", Keys: []string{"PseudoRtxL"}, run: func(ctx context.Context, r *runner) (*outcome, error) { return r.pseudoRtxTest(ctx, 1) }},
		{Name: "pseudo_smaller_rtx", Keys: []string{"PseudoRtxS"}, run: func(ctx context.Context, r *runner) (*outcome, error) { return r.pseudoRtxTest(ctx, 2) }},
		{Name: "seq_hole", Keys: []string{"SeqHole"}, run: func(ctx context.Context, r *runner) (*outcome, error) { return r.holeTest(ctx, false) }},
		{Name: "ack_hole", Keys: []string{"AckHole"}, run: func(ctx context.Context, r *runner) (*outcome, error) { return r.holeTest(ctx, true) }},
		{Name: "incoming_seq_sopt", Keys: []string{"ChangeIncomingSeq4Opt"}, run: func(ctx context.Context, r *runner) (*outcome, error) { return r.dataTest(ctx, 3) }},
		{Name: "syn_reflect", Keys: []string{"ChangeMss", "WsConsistent", "TtlReset"}, Extra: true, run: func(ctx context.Context, r *runner) (*outcome, error) { return r.synReflectTest(ctx) }},
		{Name: "sack", Keys: []string{"SackTranslated"}, Extra: true, run: func(ctx context.Context, r *runner) (*outcome, error) { return r.sackTest(ctx) }},
		{Name: "unseen_ack", Keys: []string{"UnseenAck"}, Extra: true, run: func(ctx context.Context, r *runner) (*outcome, error) { return r.unseenAckTest(ctx) }},
		{Name: "ecn", Keys: []string{"Ecn"}, Extra: true, run: func(ctx context.Context, r *runner) (*outcome, error) { return r.ecnTest(ctx) }},
	}
}

// TestNames lists the catalogue's test names.
func TestNames() []string {
	var n []string
	for _, t := range Catalogue() {
		n = append(n, t.Name)
	}
	return n
}

// Result is the final result of one test.
type Result struct {
	Test          string
	Keys          []string
	Codes         map[string]int
	Verdict       string
	Conditions    []string
	Modifications []Modification
	// Runs is how many times the test ran; Stable is false when no pair agreed (the first
	// result of the last pair is kept, as the original does).
	Runs    int
	Stable  bool
	Records []tcpcraft.Record // the segments of the kept run
	Notes   []string
	// Reflection is the header reflection of the kept run (nil when none), answering ReflectedFrom.
	Reflection    *wire.Reflection
	ReflectedFrom *tcpcraft.Segment
}

// Summary is the outcome of a catalogue run.
type Summary struct {
	Results []*Result
	Codes   map[string]int // every key (−1: not run)
	// Abandoned names the key whose failure ended the run ("" when the catalogue completed).
	Abandoned string
}

type runner struct {
	e   *Engine
	cfg Config
}

// Run runs the selected tests on e with the original's policy: each test twice, and one more
// pair when the two disagree (the first result of the last pair kept); coalescing tests up to
// 10 tries, stopping at the first coalesced result; the path is abandoned when Syn or Data
// is not 0.
func Run(ctx context.Context, e *Engine, cfg Config) (*Summary, error) {
	return runTests(ctx, e, cfg, Catalogue())
}

func runTests(ctx context.Context, e *Engine, cfg Config, catalogue []Test) (*Summary, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 20 * time.Millisecond
	}
	r := &runner{e: e, cfg: cfg}
	sum := &Summary{Codes: map[string]int{}}
	for _, k := range AllKeys() {
		sum.Codes[k] = -1
	}
	for _, t := range catalogue {
		if len(cfg.Tests) > 0 && !slices.Contains(cfg.Tests, t.Name) {
			continue
		}
		res, err := r.runTest(ctx, t)
		if err != nil {
			return sum, fmt.Errorf("%s: %w", t.Name, err)
		}
		for k, v := range res.Codes {
			if v != -1 {
				sum.Codes[k] = v
			}
		}
		sum.Results = append(sum.Results, res)
		if cfg.Report != nil {
			cfg.Report(res)
		}
		if t.Name == "syn" && res.Codes["Syn"] != 0 {
			sum.Abandoned = "Syn"
			break
		}
		if t.Name == "data" && res.Codes["Data"] != 0 {
			sum.Abandoned = "Data"
			break
		}
	}
	return sum, nil
}

func sameCodes(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func (r *runner) runTest(ctx context.Context, t Test) (*Result, error) {
	res := &Result{Test: t.Name, Keys: t.Keys, Stable: true}
	var kept *outcome
	once := func() (*outcome, error) {
		res.Runs++
		o, err := t.run(ctx, r)
		if err != nil {
			return nil, err
		}
		for _, c := range o.conns {
			if c.LocalReset() {
				o.notes = append(o.notes, "the local kernel reset the flow: install the RST-drop rule (see the warning) or use --manage-firewall")
				o.cond("local.rst")
				break
			}
		}
		return o, nil
	}
	if t.Coalesce {
		// Up to 10 tries; the first coalesced result ends them, else 0 if any try said 0.
		var zero *outcome
		for range 10 {
			o, err := once()
			if err != nil {
				return nil, err
			}
			v := o.keys[t.Keys[0]]
			if v > 0 {
				kept = o
				break
			}
			if v == 0 && zero == nil {
				zero = o
			}
			kept = o
		}
		if kept.keys[t.Keys[0]] <= 0 && zero != nil {
			kept = zero
		}
	} else {
		for range 2 {
			o0, err := once()
			if err != nil {
				return nil, err
			}
			o1, err := once()
			if err != nil {
				return nil, err
			}
			kept = o0
			res.Stable = sameCodes(o0.keys, o1.keys)
			if res.Stable {
				break
			}
		}
	}
	res.Codes = kept.keys
	res.Conditions = kept.conds
	if !res.Stable {
		res.Conditions = append(res.Conditions, "result.unstable")
	}
	res.Modifications = kept.mods
	res.Notes = kept.notes
	res.Reflection, res.ReflectedFrom = kept.reflection, kept.reflectedFrom
	res.Records = r.records(kept)
	res.Verdict = verdict(t, kept)
	if r.cfg.Trace != nil {
		r.cfg.Trace(t.Name, res.Records)
	}
	return res, nil
}

// records returns the recorded segments of an outcome's flows.
func (r *runner) records(o *outcome) []tcpcraft.Record {
	var out []tcpcraft.Record
	for _, rec := range r.e.Records() {
		var s tcpcraft.Segment
		if tcpcraft.Decode(rec.Data, &s) != nil {
			continue
		}
		for _, c := range o.conns {
			if c.Flow.ToPeer(&s) || c.Flow.FromPeer(&s) {
				out = append(out, rec)
				break
			}
		}
	}
	return out
}

// --- building blocks ---

func segs(rs []tcpcraft.Received) []*tcpcraft.Segment {
	out := make([]*tcpcraft.Segment, len(rs))
	for i, x := range rs {
		out[i] = x.Seg
	}
	return out
}

// collect gathers the peer's segments until done says enough (then Grace more) or Timeout.
func (r *runner) collect(ctx context.Context, c *Conn, done func([]*tcpcraft.Segment) bool) ([]*tcpcraft.Segment, error) {
	return r.collectGrace(ctx, c, done, r.cfg.Grace)
}

// collectGrace is collect with its own grace (0 for replies that come alone: SYN/ACK, FIN/ACK).
func (r *runner) collectGrace(ctx context.Context, c *Conn, done func([]*tcpcraft.Segment) bool, grace time.Duration) ([]*tcpcraft.Segment, error) {
	var got []*tcpcraft.Segment
	deadline := time.Now().Add(r.cfg.Timeout)
	graced := false
	for {
		wait := time.Until(deadline)
		if wait <= 0 {
			return got, nil
		}
		x, ok, err := c.Expect(ctx, wait, nil)
		if err != nil {
			return got, err
		}
		if !ok {
			return got, nil
		}
		got = append(got, x.Seg)
		if !graced && (done(got) || x.Seg.Flags&tcpcraft.FlagRST != 0) {
			graced = true
			deadline = time.Now().Add(grace)
			if grace == 0 {
				return got, nil
			}
		}
	}
}

func fill(n int, first, rest byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = rest
	}
	if n > 0 {
		p[0] = first
	}
	return p
}

const contentDefault = 0x99 // the original's filler byte

// connect opens a flow: SYN with opts (up to 3 tries), the SYN/ACK, our ACK. It returns
// the SYN/ACK, or nil with what came back instead.
func (r *runner) connect(ctx context.Context, o *outcome, opts []tcpcraft.Option) (*Conn, *tcpcraft.Segment, []*tcpcraft.Segment, error) {
	c := r.e.NewConn(wire.ClientISN, wire.ClientWindow, wire.ClientTSval)
	o.conns = append(o.conns, c)
	_, got, err := r.synTries(ctx, c, tcpcraft.FlagSYN, opts, nil)
	if err != nil {
		return c, nil, got, err
	}
	sa := synAckOf(got)
	if sa == nil {
		return c, nil, got, nil
	}
	if err := c.Send(c.Segment(tcpcraft.FlagACK, nil, nil)); err != nil {
		return c, nil, got, err
	}
	w, err := r.awaitWindow(ctx, c, sa)
	return c, sa, append(got, w...), err
}

// awaitWindow waits (up to Timeout) for a window update when the SYN/ACK advertised a zero
// window, as any TCP sender must before sending data. A SYN proxy answers with window 0 and
// opens it once its own connection to the server is up (tcpexpose.md §4); data sent before
// that is dropped, so without the wait the data tests' results would depend on that race.
// It returns the segments received meanwhile.
func (r *runner) awaitWindow(ctx context.Context, c *Conn, sa *tcpcraft.Segment) ([]*tcpcraft.Segment, error) {
	if sa.Window != 0 {
		return nil, nil
	}
	return r.collectGrace(ctx, c, func(s []*tcpcraft.Segment) bool {
		x := s[len(s)-1]
		return x.Flags&tcpcraft.FlagACK != 0 && x.Flags&tcpcraft.FlagSYN == 0 && x.Window > 0
	}, 0)
}

// synTries sends a SYN (flags, opts, payload; the flow's ISN) up to 3 times, until a SYN/ACK
// or an RST comes back; it returns the last SYN sent and every segment received.
func (r *runner) synTries(ctx context.Context, c *Conn, flags uint16, opts []tcpcraft.Option, payload []byte) (*tcpcraft.Segment, []*tcpcraft.Segment, error) {
	var syn *tcpcraft.Segment
	var got []*tcpcraft.Segment
	for range 3 {
		syn = c.Segment(flags, opts, payload)
		syn.Seq = c.ISN
		if err := c.Send(syn); err != nil {
			return syn, got, err
		}
		g, err := r.collectGrace(ctx, c, func(s []*tcpcraft.Segment) bool { return synAckOf(s) != nil }, 0)
		if err != nil {
			return syn, got, err
		}
		got = append(got, g...)
		if synAckOf(g) != nil || hasRST(g) {
			break
		}
	}
	return syn, got, nil
}

// closeConn ends a flow with FIN (waiting briefly for the FIN/ACK, then ACKing it) or RST.
func (r *runner) closeConn(ctx context.Context, c *Conn, got []*tcpcraft.Segment) {
	if hasRST(got) {
		return
	}
	fin := c.Segment(tcpcraft.FlagFIN|tcpcraft.FlagACK, nil, nil)
	if c.Send(fin) != nil {
		return
	}
	g, _ := r.collectGrace(ctx, c, func(s []*tcpcraft.Segment) bool {
		for _, x := range s {
			if x.Flags&tcpcraft.FlagFIN != 0 {
				return true
			}
		}
		return false
	}, 0)
	for _, x := range g {
		if x.Flags&tcpcraft.FlagFIN != 0 {
			_ = c.Send(c.Segment(tcpcraft.FlagACK, nil, nil))
			return
		}
	}
	c.Reset()
}

// sendData sends data segments (sizes, contents, options per segment) from the flow's next
// sequence number, in order or with the first one last (fq), and collects until every byte
// is ACKed or a reflection arrived (want), or Timeout.
func (r *runner) sendData(ctx context.Context, c *Conn, sizes []int, contents []byte, opts func(i int, seq uint32, n int) []tcpcraft.Option, fq bool, want func([]*tcpcraft.Segment) bool) ([]*tcpcraft.Segment, []*tcpcraft.Segment, error) {
	var built []*tcpcraft.Segment
	seq := c.SndNxt
	for i, n := range sizes {
		first := byte(contentDefault)
		if i < len(contents) && contents[i] != 0 {
			first = contents[i]
		}
		var o []tcpcraft.Option
		if opts != nil {
			o = opts(i, seq, n)
		}
		s := c.Segment(tcpcraft.FlagACK, o, fill(n, first, first))
		s.Seq = seq
		seq += uint32(n)
		built = append(built, s)
	}
	order := built
	if fq && len(built) > 1 {
		order = append(slices.Clone(built[1:]), built[0])
	}
	for _, s := range order {
		if err := c.Send(s); err != nil {
			return built, nil, err
		}
	}
	end := seq
	if want == nil {
		want = func(g []*tcpcraft.Segment) bool {
			hi, ok := highestAck(g, 0)
			return ok && hi == end
		}
	}
	got, err := r.collect(ctx, c, want)
	return built, got, err
}

func hasReflection(g []*tcpcraft.Segment) bool { s, _ := reflectionOf(g); return s != nil }

// advance sets the flow's next sequence number to the highest ACK seen (get_snd_nxt).
func advance(c *Conn, got []*tcpcraft.Segment) {
	if hi, ok := highestAck(got, 0); ok && hi != 0 && int32(hi-c.SndNxt) > 0 {
		c.SndNxt = hi
	}
}

func peerMSS(sa *tcpcraft.Segment) int {
	if o, ok := sa.Option(tcpcraft.OptMSS); ok {
		if v, ok := o.MSSValue(); ok && v > 0 {
			return int(v)
		}
	}
	return 512
}

func origSynOpts() []tcpcraft.Option {
	return []tcpcraft.Option{tcpcraft.MSS(wire.ClientMSS), tcpcraft.Timestamps(wire.ClientTSval, 0), tcpcraft.SACKPermitted(),
		tcpcraft.WindowScale(wire.ClientWScale), tcpcraft.NOP()}
}

// mpKey is the MP_CAPABLE key (the original's token 0x0D0C0B09 and IDSN bits).
const mpKey = 0x0d0c0b0912345678

// mpDSN is the original's initial data sequence number (Mptcp_idsn).
const mpDSN = 0x12345678abcdef00

// --- the original tests ---

// synTest: variant 0 plain SYN, 1 + MP_CAPABLE, 2 the same with every option NOP-aligned.
func (r *runner) synTest(ctx context.Context, variant int) (*outcome, error) {
	keys := [][]string{{"Syn", "UnexpAwnd"}, {"SynOpt", "UnexpAwnd4Opt"}, {"SynOpt2"}}[variant]
	o := newOutcome(keys...)
	mp := wire.MPCapable(mpKey)
	opts := origSynOpts()
	switch variant {
	case 1:
		opts = append(opts, mp)
	case 2:
		opts = []tcpcraft.Option{tcpcraft.MSS(wire.ClientMSS), tcpcraft.Timestamps(wire.ClientTSval, 0), tcpcraft.NOP(), tcpcraft.NOP(),
			tcpcraft.SACKPermitted(), tcpcraft.NOP(), tcpcraft.NOP(), tcpcraft.WindowScale(wire.ClientWScale), tcpcraft.NOP(), mp}
	}
	c, sa, got, err := r.connect(ctx, o, opts)
	if err != nil {
		return nil, err
	}
	if variant == 0 {
		o.keys[keys[0]] = synResult(got)
	} else {
		o.keys[keys[0]] = synOptResult(got, mp)
	}
	if variant < 2 && sa != nil {
		o.keys[keys[1]] = unexpAwnd(got, wire.ServerWindow)
	}
	if sa != nil {
		o.mods = diffOptions("tcp.opt", opts, sa.Options, true)
		r.closeConn(ctx, c, got)
	}
	switch o.keys[keys[0]] {
	case 1:
		o.cond("syn.noreply")
	case 2:
		o.cond("syn.rst")
	case 3:
		o.cond("opt.syn.unknown.removed")
	case 4:
		o.cond("opt.syn.unknown.zeroed")
	case 5:
		o.cond("opt.syn.unknown.modified")
	case 0:
		if variant > 0 {
			o.cond("opt.syn.unknown.passed")
		}
	}
	if len(keys) > 1 && o.keys[keys[1]] == 1 {
		o.cond("synack.window.unexpected")
	}
	return o, nil
}

// dataTest: opt 0 plain data, 1 with Timestamps, 2 with MP_DATA, 3 plain data after a SYN
// with MP_CAPABLE (incoming sequence rewriting only).
func (r *runner) dataTest(ctx context.Context, opt int) (*outcome, error) {
	keys := [][]string{
		{"Data", "IndAck", "ChangeSeq", "ChangeAwnd", "ChangeIncomingSeq", "Split"},
		{"DataKnownOpt", "IndAck4KnownOpt", "ChangeSeq4KnownOpt", "ChangeAwnd4KnownOpt", "SplitKnownOpt"},
		{"DataOpt", "IndAck4Opt", "ChangeSeq4Opt", "ChangeAwnd4Opt", "SplitOpt"},
		{"ChangeIncomingSeq4Opt"},
	}[opt]
	o := newOutcome(keys...)
	synOpts := []tcpcraft.Option{tcpcraft.MSS(wire.ClientMSS)}
	if opt == 3 {
		synOpts = append(origSynOpts(), wire.MPCapable(mpKey))
	}
	c, sa, got, err := r.connect(ctx, o, synOpts)
	if err != nil {
		return nil, err
	}
	if sa == nil {
		o.cond("syn.failed")
		return o, nil
	}
	mss := peerMSS(sa)
	size := mss
	var optFn func(i int, seq uint32, n int) []tcpcraft.Option
	switch opt {
	case 1:
		size -= 12
		optFn = func(int, uint32, int) []tcpcraft.Option {
			return []tcpcraft.Option{tcpcraft.Timestamps(wire.ClientTSval, 0), tcpcraft.NOP(), tcpcraft.NOP()}
		}
	case 2:
		size -= 16
		optFn = func(_ int, _ uint32, n int) []tcpcraft.Option {
			return []tcpcraft.Option{wire.MPData(mpDSN, 1, uint16(n))}
		}
	}
	var built, dgot []*tcpcraft.Segment
	res := -1
	for range 3 {
		built, dgot, err = r.sendData(ctx, c, []int{size}, []byte{wire.MarkerReflect}, optFn, false, hasReflection)
		if err != nil {
			return nil, err
		}
		got = append(got, dgot...)
		if !hasReflection(dgot) {
			advance(c, dgot)
			continue
		}
		seq := built[0].Seq
		switch opt {
		case 0, 3:
			res = dataResult(dgot, seq, size)
		case 1:
			_, refl := reflectionOf(dgot)
			res = dataKnownOptResult(dgot, refl, wire.ClientTSval, seq, size)
		case 2:
			_, refl := reflectionOf(dgot)
			res = dataOptResult(dgot, refl, mpDSN, seq, size)
		}
		if hasRST(dgot) || res != 1 {
			break
		}
	}
	if opt != 3 {
		o.keys[keys[0]] = res
	}
	if res == 1 || res == -1 {
		if opt != 3 {
			o.cond("data.failed")
		}
		r.closeConn(ctx, c, got)
		return o, nil
	}
	reply, refl := reflectionOf(dgot)
	o.reflection, o.reflectedFrom = refl, built[0]
	o.mods = diffHeader(built[0], &refl.Received, refl.ReceivedLen)
	seq := built[0].Seq
	switch opt {
	case 0:
		o.keys["IndAck"] = indirectAck(dgot)
		o.keys["ChangeSeq"] = seqRewritten(refl, seq)
		o.keys["ChangeAwnd"] = awndRewritten(refl, wire.ClientWindow)
		o.keys["ChangeIncomingSeq"] = incomingSeqRewritten(reply, refl)
		o.keys["Split"] = segmentSplit(refl, size)
	case 1:
		o.keys["IndAck4KnownOpt"] = indirectAck(dgot)
		o.keys["ChangeSeq4KnownOpt"] = seqRewritten(refl, seq)
		o.keys["ChangeAwnd4KnownOpt"] = awndRewritten(refl, wire.ClientWindow)
		o.keys["SplitKnownOpt"] = segmentSplit(refl, size)
		if o.keys["SplitKnownOpt"] > 0 {
			o.keys["SplitKnownOpt"] = splitOptHow(dgot, tcpcraft.OptTimestamps)
		}
	case 2:
		o.keys["IndAck4Opt"] = indirectAck(dgot)
		o.keys["ChangeSeq4Opt"] = seqRewritten(refl, seq)
		o.keys["ChangeAwnd4Opt"] = awndRewritten(refl, wire.ClientWindow)
		o.keys["SplitOpt"] = segmentSplit(refl, size)
		if o.keys["SplitOpt"] > 0 {
			o.keys["SplitOpt"] = splitOptHow(dgot, wire.OptMPAck)
		}
	case 3:
		o.keys["ChangeIncomingSeq4Opt"] = incomingSeqRewritten(reply, refl)
	}
	dataConds(o, opt)
	advance(c, dgot)
	r.closeConn(ctx, c, got)
	return o, nil
}

func dataConds(o *outcome, opt int) {
	suffix := []string{"", "4KnownOpt", "4Opt", ""}[opt]
	if o.keys["IndAck"+suffix] == 1 {
		o.cond("data.ack.proactive")
	}
	if o.keys["ChangeSeq"+suffix] == 1 {
		o.cond("seq.outgoing.rewritten")
	}
	if o.keys["ChangeAwnd"+suffix] == 1 {
		o.cond("window.outgoing.rewritten")
	}
	if v, ok := o.keys["ChangeIncomingSeq"]; ok && v == 1 {
		o.cond("seq.incoming.rewritten")
	}
	if v, ok := o.keys["ChangeIncomingSeq4Opt"]; ok && v == 1 {
		o.cond("seq.incoming.rewritten")
	}
	split := []string{"Split", "SplitKnownOpt", "SplitOpt", ""}[opt]
	if split != "" && o.keys[split] > 0 {
		o.cond("data.split")
	}
	switch opt {
	case 1:
		if c := map[int]string{2: "opt.ts.outgoing.removed", 3: "opt.ts.outgoing.changed", 4: "opt.ts.outgoing.zeroed",
			5: "opt.ts.incoming.removed", 6: "opt.ts.incoming.ecr.changed", 7: "opt.ts.incoming.ecr.zeroed", 8: "opt.ts.translated"}[o.keys["DataKnownOpt"]]; c != "" {
			o.cond(c)
		}
	case 2:
		if c := map[int]string{2: "opt.data.unknown.removed", 3: "opt.data.unknown.modified", 4: "opt.data.unknown.zeroed",
			5: "opt.ack.unknown.removed", 6: "opt.ack.unknown.modified", 7: "opt.ack.unknown.zeroed"}[o.keys["DataOpt"]]; c != "" {
			o.cond(c)
		}
	}
}

// coalesceTest: three back-to-back segments (½, ½, full, keeping 12 or 28 bytes of room for
// options); fq sends the first segment last.
func (r *runner) coalesceTest(ctx context.Context, opt int, fq bool) (*outcome, error) {
	key := []string{"Coalesce", "CoalesceKnownOpt", "CoalesceOpt"}[opt]
	if fq {
		key = []string{"CoalesceFq", "CoalesceFqKnownOpt", "CoalesceFqOpt"}[opt]
	}
	o := newOutcome(key)
	synOpts := []tcpcraft.Option{tcpcraft.MSS(wire.ClientMSS)}
	if opt == 1 {
		synOpts = append(synOpts, tcpcraft.Timestamps(wire.ClientTSval, 0), tcpcraft.NOP(), tcpcraft.NOP())
	}
	c, sa, got, err := r.connect(ctx, o, synOpts)
	if err != nil || sa == nil {
		return o, err
	}
	m := min(peerMSS(sa), wire.ServerMSS)
	room := 12
	if opt == 2 {
		room = 28
	}
	sizes := []int{m/2 - room, m/2 - room, m - room}
	contents := []byte{wire.MarkerReflect}
	if fq {
		sizes = []int{m - room, m/2 - room, m/2 - room}
		contents = []byte{0, wire.MarkerReflect}
	}
	var optFn func(i int, seq uint32, n int) []tcpcraft.Option
	switch opt {
	case 1:
		optFn = func(int, uint32, int) []tcpcraft.Option {
			return []tcpcraft.Option{tcpcraft.Timestamps(wire.ClientTSval, 0), tcpcraft.NOP(), tcpcraft.NOP()}
		}
	case 2:
		dsn := uint64(mpDSN)
		optFn = func(_ int, _ uint32, n int) []tcpcraft.Option {
			d := dsn
			dsn += uint64(n)
			return []tcpcraft.Option{wire.MPData(d, 1, uint16(n))}
		}
	}
	built, dgot, err := r.sendData(ctx, c, sizes, contents, optFn, fq, nil)
	if err != nil {
		return nil, err
	}
	got = append(got, dgot...)
	reply, refl := reflectionOf(dgot)
	_ = reply
	v := coalesced(refl, sizes[1])
	if v > 0 && opt > 0 {
		v = coalescedOptHow(dgot, refl, 2, []uint8{0, tcpcraft.OptTimestamps, wire.OptMPData}[opt])
	}
	o.keys[key] = v
	if refl != nil {
		o.reflection = refl
		from := built[0]
		if fq {
			from = built[1]
		}
		o.reflectedFrom = from
		o.mods = diffHeader(from, &refl.Received, refl.ReceivedLen)
	}
	if v > 0 {
		o.cond("data.coalesced")
	}
	advance(c, dgot)
	r.closeConn(ctx, c, got)
	return o, nil
}

// pseudoRtxTest: two segments, the second marked "dup-ACK me as lost"; then retransmit it
// with different payload (resize 1: the first send was 16 bytes smaller; 2: the
// retransmission is 16 bytes smaller).
func (r *runner) pseudoRtxTest(ctx context.Context, resize int) (*outcome, error) {
	key := []string{"PseudoRtx", "PseudoRtxL", "PseudoRtxS"}[resize]
	o := newOutcome(key)
	c, sa, got, err := r.connect(ctx, o, []tcpcraft.Option{tcpcraft.MSS(wire.ClientMSS)})
	if err != nil || sa == nil {
		return o, err
	}
	full := min(peerMSS(sa), wire.ServerMSS) - 12
	sizes := []int{full, full}
	if resize == 1 {
		sizes[1] = full - 16
	}
	ok := false
	for range 3 {
		start := c.SndNxt
		_, dgot, err := r.sendData(ctx, c, sizes, []byte{0, wire.MarkerDupAck}, nil, false, func(g []*tcpcraft.Segment) bool {
			return len(acks(g)) >= 2
		})
		if err != nil {
			return nil, err
		}
		got = append(got, dgot...)
		if hasRST(dgot) {
			o.cond("data.rst")
			return o, nil
		}
		if len(acks(dgot)) == 0 {
			c.SndNxt = start
			continue
		}
		if hi, _ := highestAck(dgot, 0); hi == start+uint32(sizes[0]+sizes[1]) {
			o.notes = append(o.notes, "both segments ACKed: the duplicate ACK was replaced by a middlebox")
			c.SndNxt = start + uint32(sizes[0])
		} else {
			c.SndNxt = start
			advance(c, dgot)
		}
		ok = true
		break
	}
	if !ok {
		r.closeConn(ctx, c, got)
		return o, nil
	}
	rsize := full
	if resize == 2 {
		rsize = full - 16
	}
	for range 3 {
		seq := c.SndNxt
		built, dgot, err := r.sendData(ctx, c, []int{rsize}, []byte{wire.MarkerReflect}, nil, false, hasReflection)
		if err != nil {
			return nil, err
		}
		got = append(got, dgot...)
		_, refl := reflectionOf(dgot)
		v := pseudoRtxResult(dgot, refl, rsize, seq)
		o.keys[key] = v
		if refl != nil {
			o.reflection, o.reflectedFrom = refl, built[0]
			o.mods = diffHeader(built[0], &refl.Received, refl.ReceivedLen)
		}
		c.SndNxt = seq
		advance(c, dgot)
		if v != 1 || hasRST(dgot) {
			break
		}
	}
	switch o.keys[key] {
	case 2:
		o.cond("rtx.cached")
	case 3:
		o.cond("rtx.notacked")
	case 4:
		o.cond("rtx.resized")
	case 5:
		o.cond("rtx.rst")
	}
	r.closeConn(ctx, c, got)
	return o, nil
}

// holeTest: one normal segment, then one skipping a segment's worth of sequence space
// (SeqHole) or acknowledging beyond what the responder sent (AckHole).
func (r *runner) holeTest(ctx context.Context, ackHole bool) (*outcome, error) {
	key := "SeqHole"
	if ackHole {
		key = "AckHole"
	}
	o := newOutcome(key)
	c, sa, got, err := r.connect(ctx, o, []tcpcraft.Option{tcpcraft.MSS(wire.ClientMSS)})
	if err != nil || sa == nil {
		return o, err
	}
	full := min(peerMSS(sa), wire.ServerMSS) - 12
	var content []byte
	want := func(g []*tcpcraft.Segment) bool { return len(acks(g)) > 0 }
	if ackHole {
		content = []byte{wire.MarkerReflect}
		want = hasReflection
	}
	ok := false
	for range 3 {
		_, dgot, err := r.sendData(ctx, c, []int{full}, content, nil, false, want)
		if err != nil {
			return nil, err
		}
		got = append(got, dgot...)
		if hasRST(dgot) {
			return o, nil
		}
		advance(c, dgot)
		if len(acks(dgot)) == 0 || ackHole && !hasReflection(dgot) {
			continue
		}
		ok = true
		break
	}
	if !ok {
		r.closeConn(ctx, c, got)
		return o, nil
	}
	if ackHole {
		c.RcvNxt += uint32(full)
	} else {
		c.SndNxt += uint32(full)
	}
	for range 3 {
		seq, ack := c.SndNxt, c.RcvNxt
		_, dgot, err := r.sendData(ctx, c, []int{full}, nil, nil, false, func(g []*tcpcraft.Segment) bool { return len(g) > 0 })
		if err != nil {
			return nil, err
		}
		got = append(got, dgot...)
		var v int
		if ackHole {
			v = ackHoleResult(dgot, ack, full)
		} else {
			v = seqHoleResult(dgot, seq, full, full)
		}
		o.keys[key] = v
		c.SndNxt = seq
		advance(c, dgot)
		if v != 1 || hasRST(dgot) {
			break
		}
	}
	switch {
	case !ackHole && o.keys[key] == 1:
		o.cond("seq.hole.dropped")
	case !ackHole && o.keys[key] == 2:
		o.cond("seq.hole.stuck")
	case ackHole && o.keys[key] == 1:
		o.cond("ack.hole.dropped")
	case ackHole && o.keys[key] == 2:
		o.cond("ack.hole.corrected")
	}
	r.closeConn(ctx, c, got)
	return o, nil
}
