package client

import (
	"encoding/json"
	"math"
	"net/netip"
	"sort"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/ptp"
	"github.com/probekit/probekit/shared/udpsock"
)

// stampTransport is a memTransport whose "kernel" transmit stamps the test sets: the send time
// of every probe is ground truth the test chose, like the receive time of every reply.
type stampTransport struct {
	*memTransport
	nextID uint32
	ready  map[uint32]time.Time
	ids    []uint32 // TxID of every packet sent, in order
}

func (t *stampTransport) TxStamps() bool { return true }
func (t *stampTransport) WriteBatch(msgs []udpsock.Message) (int, error) {
	for i := range msgs {
		t.nextID++
		msgs[i].TxID = t.nextID
		t.ids = append(t.ids, t.nextID)
	}
	return t.memTransport.WriteBatch(msgs)
}
func (t *stampTransport) TxTimestamps(fn func(uint32, time.Time)) error {
	for id, ts := range t.ready {
		fn(id, ts)
		delete(t.ready, id)
	}
	return nil
}

// TestReportAgainstInjected: probes to one peer get replies with chosen RTTs (send time = the
// transmit stamp the test hands out, receive time = that plus the RTT), three of twenty get no
// reply at all. Every figure of the peer's report row (sent, received, lost, loss_pct, RTT
// min/avg/p50/p99/max, RFC 3550 jitter) must equal what the injected values give, computed
// here from those values alone; the JSON summary has the shape issue 12 spells out.
func TestReportAgainstInjected(t *testing.T) {
	for _, relayed := range []bool{false, true} {
		name := "direct"
		if relayed {
			name = "relay" // the same figures through the server's relay (RELAYTO/RELAYFROM)
		}
		t.Run(name, func(t *testing.T) { reportAgainstInjected(t, relayed) })
	}
}

func reportAgainstInjected(t *testing.T, relayed bool) {
	mem := newMem("10.0.1.2:40000")
	tr := &stampTransport{memTransport: mem, ready: map[uint32]time.Time{}}
	c, err := New(Config{Server: netip.MustParseAddrPort("192.0.2.1:23456"), Transport: tr, UUID: vecUUID, NoSTUN: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	peerAddr := netip.MustParseAddrPort("203.0.113.9:50001")
	puuid, _ := ptp.ParseUUID("11111111222222223333333344444444")
	c.mu.Lock()
	p := &peer{uuid: puuid, hasUUID: true, ext: peerAddr, version: 3, path: ptp.PathDirect, active: peerAddr, lastDirect: time.Now(),
		probes: make([]probe, ringFor(c.cfg.LossTimeout, c.cfg.ProbeInterval))}
	p.addCandidate(peerAddr, candPublic)
	v, to, from, wantPath := viaDirect, peerAddr, peerAddr, "direct"
	if relayed {
		p.path, p.active, p.relaying, p.lastRelay = ptp.PathRelay, netip.AddrPort{}, true, time.Now()
		v, to, from, wantPath = viaRelay, c.server, c.server, "relay"
	}
	c.peers = append(c.peers, p)
	c.byUUID[puuid] = p
	c.byAddr[peerAddr] = p
	c.serverVer = 3
	c.mu.Unlock()

	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	lostAt := map[int]bool{3: true, 7: true, 16: true}
	const n = 20
	var rtts []time.Duration // answered, in arrival order
	var in ptp.Message
	var seq uint32
	for k := 0; k < n; k++ {
		c.mu.Lock()
		c.probe(p, peerAddr, v, true, time.Now())
		c.flush()
		c.mu.Unlock()
		sent := tr.take()
		if len(sent) != 1 || sent[0].to != to {
			t.Fatalf("probe %d: sent %v", k, sent)
		}
		var m ptp.Message
		if err := m.UnmarshalBinary(sent[0].b); err != nil || m.Has&ptp.FieldMyTS == 0 {
			t.Fatalf("probe %d: %x %v", k, sent[0].b, err)
		}
		tx := base.Add(time.Duration(k) * 500 * time.Millisecond)
		tr.ready[tr.ids[len(tr.ids)-1]] = tx
		if lostAt[k] {
			continue
		}
		// 10 ms plus an irregular part: 0..6 × 137 µs.
		rtt := 10*time.Millisecond + time.Duration((k*5)%7)*137*time.Microsecond
		rtts = append(rtts, rtt)
		reply := ptp.Message{Role: ptp.RoleClient, Version: 3, Has: ptp.FieldSequence | ptp.FieldUUID | ptp.FieldYourTS | ptp.FieldEchoSeq,
			UUID: puuid, Sequence: seq, YourTS: m.MyTS, EchoSeq: m.Sequence}
		if relayed {
			if m.Has&ptp.FieldRelayTo == 0 || m.RelayTo != puuid {
				t.Fatalf("relayed probe without RELAYTO %v: %+v", puuid, m)
			}
			reply.Has |= ptp.FieldRelayFrom // as the server forwards it
			reply.RelayFrom = puuid
		}
		seq++
		b, err := reply.AppendTo(nil)
		if err != nil {
			t.Fatal(err)
		}
		d := udpsock.Message{Buf: b, N: len(b), Addr: from, RxTime: tx.Add(rtt)}
		c.handle(&in, &d)
	}
	// Past the loss timeout (the probes' user-space send times are real time).
	c.mu.Lock()
	c.expire(p, time.Now().Add(c.cfg.LossTimeout+time.Second))
	c.mu.Unlock()

	// Expected figures from the injected values.
	sorted := append([]time.Duration(nil), rtts...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	nearest := func(pct float64) time.Duration { // nearest-rank percentile
		r := int(math.Ceil(pct * float64(len(sorted)) / 100))
		return sorted[max(r, 1)-1]
	}
	var sum time.Duration
	for _, r := range rtts {
		sum += r
	}
	var jit float64 // RFC 3550 §6.4.1: J += (|D| − J)/16
	for i := 1; i < len(rtts); i++ {
		jit += (math.Abs(float64(rtts[i]-rtts[i-1])) - jit) / 16
	}
	msOf := func(ns float64) float64 { return math.Round(ns/1e3) / 1e3 }
	want := PeerReport{Sent: n, Received: uint64(len(rtts)), Lost: uint64(len(lostAt)), LossPct: 15,
		RTT: RTT{Min: msOf(float64(sorted[0])), Avg: msOf(float64(sum) / float64(len(rtts))), P50: msOf(float64(nearest(50))),
			P99: msOf(float64(nearest(99))), Max: msOf(float64(sorted[len(sorted)-1]))},
		JitterMs: msOf(jit)}

	s := c.Summary()
	if len(s.Peers) != 1 {
		t.Fatalf("%d peers", len(s.Peers))
	}
	r := s.Peers[0]
	if r.Sent != want.Sent || r.Received != want.Received || r.Lost != want.Lost || r.LossPct != want.LossPct ||
		r.RTT != want.RTT || r.JitterMs != want.JitterMs || r.Path != wantPath || r.Address != peerAddr.String() || r.UUID != puuid.String() ||
		(r.Reason == "") != !relayed {
		t.Errorf("report  %+v\nwant    sent %d received %d lost %d loss_pct %v rtt %+v jitter %v", r, want.Sent, want.Received, want.Lost, want.LossPct, want.RTT, want.JitterMs)
	}
	if got := c.Counters(); got.KernelTx != uint64(len(rtts)) || got.UserTx != 0 {
		t.Errorf("RTTs not from the transmit stamps: %+v", got)
	}

	// The JSON summary's shape as issue 12 spells it (more members are allowed).
	js, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]any
	if err := json.Unmarshal(js, &top); err != nil {
		t.Fatal(err)
	}
	has := func(where string, o any, keys ...string) map[string]any {
		m, ok := o.(map[string]any)
		if !ok {
			t.Fatalf("%s is %T, want an object", where, o)
		}
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				t.Errorf("%s has no %q: %s", where, k, js)
			}
		}
		return m
	}
	has("summary", top, "type", "uuid", "server", "self", "peers")
	self := has("self", top["self"], "local", "public", "nat")
	has("self.nat", self["nat"], "mapping", "filtering", "hairpin")
	peers, ok := top["peers"].([]any)
	if !ok || len(peers) != 1 {
		t.Fatalf("peers %v", top["peers"])
	}
	row := has("peers[0]", peers[0], "uuid", "address", "path", "reason", "sent", "received", "lost", "loss_pct", "rtt_ms", "jitter_ms")
	has("peers[0].rtt_ms", row["rtt_ms"], "min", "avg", "p50", "p99", "max")
	if top["type"] != "summary" {
		t.Errorf("type %v", top["type"])
	}
}
