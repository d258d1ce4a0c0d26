package probe

import (
	"net/netip"
	"testing"

	"github.com/probekit/probekit/shared/tcpcraft"
	"github.com/probekit/probekit/tcpexpose/internal/wire"
)

var (
	cA = netip.MustParseAddr("10.199.1.2")
	sA = netip.MustParseAddr("10.199.2.2")
)

// refl builds a reflection of a received segment (payload n bytes) and the responder's reply
// header, as the responder lays it out.
func refl(t *testing.T, recv *tcpcraft.Segment, n int, sent *tcpcraft.Segment) *wire.Reflection {
	t.Helper()
	r := *recv
	r.Payload = make([]byte, n)
	a := r.Bytes()
	hdr := func(s *tcpcraft.Segment, b []byte) []byte {
		return b[:20+20+tcpcraft.OptionsLen(s.Options)]
	}
	p := append(append([]byte(nil), hdr(&r, a)...), hdr(sent, sent.Bytes())...)
	x, err := wire.ParseReflection(p)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func ack(a uint32, opts ...tcpcraft.Option) *tcpcraft.Segment {
	return &tcpcraft.Segment{Src: sA, Dst: cA, SrcPort: 34343, DstPort: 40000, Seq: 100, Ack: a, Flags: tcpcraft.FlagACK, Options: opts}
}

func data(seq uint32, n int, opts ...tcpcraft.Option) *tcpcraft.Segment {
	return &tcpcraft.Segment{Src: cA, Dst: sA, TTL: 63, SrcPort: 40000, DstPort: 34343, Seq: seq, Ack: 101, Flags: tcpcraft.FlagACK,
		Window: wire.ClientWindow, Options: opts, Payload: make([]byte, n)}
}

func TestSynDecisions(t *testing.T) {
	mp := wire.MPCapable(mpKey)
	synack := func(opts ...tcpcraft.Option) *tcpcraft.Segment {
		return &tcpcraft.Segment{Flags: tcpcraft.FlagSYN | tcpcraft.FlagACK, Window: 32768, Options: opts}
	}
	zero := tcpcraft.Option{Kind: 30, Data: make([]byte, 10)}
	mod := wire.MPCapable(mpKey + 1)
	rst := &tcpcraft.Segment{Flags: tcpcraft.FlagRST | tcpcraft.FlagACK}
	for _, c := range []struct {
		got  []*tcpcraft.Segment
		want int
	}{
		{[]*tcpcraft.Segment{synack(tcpcraft.MSS(512), mp)}, 0},
		{nil, 1},
		{[]*tcpcraft.Segment{rst}, 2},
		{[]*tcpcraft.Segment{synack(tcpcraft.MSS(512))}, 3},
		{[]*tcpcraft.Segment{synack(zero)}, 4},
		{[]*tcpcraft.Segment{synack(mod)}, 5},
	} {
		if got := synOptResult(c.got, mp); got != c.want {
			t.Errorf("synOptResult = %d, want %d", got, c.want)
		}
	}
	if unexpAwnd([]*tcpcraft.Segment{{Flags: tcpcraft.FlagSYN | tcpcraft.FlagACK, Window: 0}}, 32768) != 1 ||
		unexpAwnd([]*tcpcraft.Segment{synack()}, 32768) != 0 || unexpAwnd(nil, 32768) != -1 {
		t.Error("unexpAwnd")
	}
}

func TestDataKnownOptDecisions(t *testing.T) {
	const tv = wire.ClientTSval
	sent := data(1000, 500, tcpcraft.Timestamps(tv, 0))
	reply := ack(1500)
	for _, c := range []struct {
		name    string
		recvTS  []tcpcraft.Option // the TS the responder received
		replyTS []tcpcraft.Option // the TS on the ACK we got
		want    int
	}{
		{"pass", []tcpcraft.Option{tcpcraft.Timestamps(tv, 0)}, []tcpcraft.Option{tcpcraft.Timestamps(9, tv)}, 0},
		{"out removed", nil, nil, 2},
		{"out changed", []tcpcraft.Option{tcpcraft.Timestamps(777, 0)}, []tcpcraft.Option{tcpcraft.Timestamps(9, 777)}, 3},
		{"out zeroed", []tcpcraft.Option{tcpcraft.Timestamps(0, 0)}, []tcpcraft.Option{tcpcraft.Timestamps(9, 0)}, 4},
		{"in removed", []tcpcraft.Option{tcpcraft.Timestamps(tv, 0)}, nil, 5},
		{"in ecr changed", []tcpcraft.Option{tcpcraft.Timestamps(tv, 0)}, []tcpcraft.Option{tcpcraft.Timestamps(9, 5)}, 6},
		{"in ecr zeroed", []tcpcraft.Option{tcpcraft.Timestamps(tv, 0)}, []tcpcraft.Option{tcpcraft.Timestamps(9, 0)}, 7},
		{"re-synced", []tcpcraft.Option{tcpcraft.Timestamps(777, 0)}, []tcpcraft.Option{tcpcraft.Timestamps(9, tv)}, 8},
	} {
		recv := data(1000, 0, c.recvTS...)
		r := refl(t, recv, 500, reply)
		got := []*tcpcraft.Segment{ack(1500, c.replyTS...)}
		if v := dataKnownOptResult(got, r, tv, sent.Seq, 500); v != c.want {
			t.Errorf("%s: %d, want %d", c.name, v, c.want)
		}
	}
	if v := dataKnownOptResult(nil, nil, tv, 1000, 500); v != 1 {
		t.Errorf("no ACK: %d", v)
	}
}

func TestDataOptDecisions(t *testing.T) {
	const dsn = mpDSN
	mpd := wire.MPData(dsn, 1, 500)
	mpAck := func(v uint64) tcpcraft.Option {
		d := make([]byte, 8)
		for i := range 8 {
			d[i] = byte(v >> (56 - 8*i))
		}
		return tcpcraft.Option{Kind: wire.OptMPAck, Data: d}
	}
	reply := ack(1500)
	for _, c := range []struct {
		name string
		recv []tcpcraft.Option
		got  []tcpcraft.Option
		want int
	}{
		{"pass", []tcpcraft.Option{mpd}, []tcpcraft.Option{mpAck(dsn + 500)}, 0},
		{"data removed", nil, nil, 2},
		{"data modified", []tcpcraft.Option{wire.MPData(dsn+1, 1, 500)}, []tcpcraft.Option{mpAck(dsn + 501)}, 3},
		{"data zeroed", []tcpcraft.Option{wire.MPData(0, 1, 500)}, []tcpcraft.Option{mpAck(0)}, 4},
		{"ack removed", []tcpcraft.Option{mpd}, nil, 5},
		{"ack modified", []tcpcraft.Option{mpd}, []tcpcraft.Option{mpAck(5)}, 6},
		{"ack zeroed", []tcpcraft.Option{mpd}, []tcpcraft.Option{mpAck(0)}, 7},
	} {
		r := refl(t, data(1000, 0, c.recv...), 500, reply)
		if v := dataOptResult([]*tcpcraft.Segment{ack(1500, c.got...)}, r, dsn, 1000, 500); v != c.want {
			t.Errorf("%s: %d, want %d", c.name, v, c.want)
		}
	}
}

func TestDataDecisions(t *testing.T) {
	reply := ack(1500)
	r := refl(t, data(1000, 0), 500, reply)
	if dataResult([]*tcpcraft.Segment{ack(1500)}, 1000, 500) != 0 || dataResult([]*tcpcraft.Segment{ack(1200)}, 1000, 500) != 1 {
		t.Error("dataResult")
	}
	withPayload := ack(1500)
	withPayload.Payload = make([]byte, 100)
	if indirectAck([]*tcpcraft.Segment{withPayload}) != 0 || indirectAck([]*tcpcraft.Segment{ack(1500), withPayload}) != 1 {
		t.Error("indirectAck")
	}
	if seqRewritten(r, 1000) != 0 || seqRewritten(r, 999) != 1 || seqRewritten(nil, 1) != -1 {
		t.Error("seqRewritten")
	}
	if awndRewritten(r, wire.ClientWindow) != 0 || awndRewritten(r, 1) != 1 {
		t.Error("awndRewritten")
	}
	if incomingSeqRewritten(ack(0), r) != 0 { // reply.Seq = 100 = the reflected sent seq
		t.Error("incomingSeqRewritten unchanged")
	}
	moved := ack(0)
	moved.Seq = 5000
	if incomingSeqRewritten(moved, r) != 1 {
		t.Error("incomingSeqRewritten moved")
	}
	if segmentSplit(r, 500) != 0 || segmentSplit(refl(t, data(1000, 0), 300, reply), 500) != 1 || segmentSplit(r, 400) != -1 {
		t.Error("segmentSplit")
	}
	if coalesced(refl(t, data(1000, 0), 244, reply), 244) != 0 || coalesced(refl(t, data(1000, 0), 488, reply), 244) != 1 {
		t.Error("coalesced")
	}
	// Coalesced with options: the coalesced header holds the option once: some (2); none (3).
	ts := tcpcraft.Timestamps(1, 0)
	if v := coalescedOptHow([]*tcpcraft.Segment{ack(1, ts)}, refl(t, data(1000, 0, ts), 488, reply), 2, tcpcraft.OptTimestamps); v != 2 {
		t.Errorf("coalescedOptHow some: %d", v)
	}
	if v := coalescedOptHow(nil, refl(t, data(1000, 0), 488, reply), 2, tcpcraft.OptTimestamps); v != 3 {
		t.Errorf("coalescedOptHow none: %d", v)
	}
	if splitOptHow([]*tcpcraft.Segment{ack(1, ts), ack(2, ts)}, tcpcraft.OptTimestamps) != 1 ||
		splitOptHow([]*tcpcraft.Segment{ack(1, ts), ack(2)}, tcpcraft.OptTimestamps) != 2 ||
		splitOptHow([]*tcpcraft.Segment{ack(1), ack(2)}, tcpcraft.OptTimestamps) != 3 {
		t.Error("splitOptHow")
	}
}

func TestRtxAndHoleDecisions(t *testing.T) {
	reply := ack(1500)
	full := refl(t, data(1000, 0), 500, reply)
	small := refl(t, data(1000, 0), 484, reply)
	rst := &tcpcraft.Segment{Flags: tcpcraft.FlagRST}
	for _, c := range []struct {
		got  []*tcpcraft.Segment
		r    *wire.Reflection
		want int
	}{
		{[]*tcpcraft.Segment{ack(1500)}, full, 0},
		{nil, nil, 1},
		{[]*tcpcraft.Segment{ack(1500)}, nil, 2},
		{[]*tcpcraft.Segment{ack(1000)}, nil, 3},
		{[]*tcpcraft.Segment{ack(1500)}, small, 4},
		{[]*tcpcraft.Segment{rst}, nil, 5},
		{[]*tcpcraft.Segment{ack(900)}, nil, 6},
	} {
		if v := pseudoRtxResult(c.got, c.r, 500, 1000); v != c.want {
			t.Errorf("pseudoRtxResult = %d, want %d", v, c.want)
		}
	}
	if seqHoleResult([]*tcpcraft.Segment{ack(2000)}, 1500, 500, 500) != 0 || seqHoleResult(nil, 1500, 500, 500) != 1 ||
		seqHoleResult([]*tcpcraft.Segment{ack(1000)}, 1500, 500, 500) != 2 || seqHoleResult([]*tcpcraft.Segment{ack(1700)}, 1500, 500, 500) != 3 {
		t.Error("seqHoleResult")
	}
	resp := func(seq uint32) *tcpcraft.Segment { s := ack(0); s.Seq = seq; return s }
	if ackHoleResult([]*tcpcraft.Segment{resp(700)}, 700, 500) != 0 || ackHoleResult(nil, 700, 500) != 1 ||
		ackHoleResult([]*tcpcraft.Segment{resp(200)}, 700, 500) != 2 || ackHoleResult([]*tcpcraft.Segment{resp(300)}, 700, 500) != 3 {
		t.Error("ackHoleResult")
	}
}

func TestWords(t *testing.T) {
	for _, k := range AllKeys() {
		if w := words(k, 0); w == "" || w == "code 0" {
			t.Errorf("%s: no words for 0", k)
		}
	}
	if words("CoalesceFqKnownOpt", 3) != "segments coalesced, timestamps dropped" {
		t.Errorf("alias: %q", words("CoalesceFqKnownOpt", 3))
	}
}
