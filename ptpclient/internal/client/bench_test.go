package client

import (
	"net/netip"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/ptp"
	"github.com/probekit/probekit/shared/timestamp"
	"github.com/probekit/probekit/shared/udpsock"
)

// hotPath sets up a client with one v3 peer on an established direct path and returns a
// function doing one probe/reply cycle as both directions see it: our probe out, the peer's
// reply in (ack, RTT), the peer's probe in and our reply out.
func hotPath(t testing.TB) (func(), *peer) {
	c, tr := newTestClient(t, false)
	tr.keep = false
	peerAddr := netip.MustParseAddrPort("203.0.113.9:50001")
	puuid, _ := ptp.ParseUUID("11111111222222223333333344444444")
	c.mu.Lock()
	p := &peer{uuid: puuid, hasUUID: true, ext: peerAddr, version: 3, path: ptp.PathDirect, active: peerAddr, lastDirect: time.Now(), probes: make([]probe, 64)}
	p.addCandidate(peerAddr, candPublic)
	c.peers = append(c.peers, p)
	c.byUUID[puuid] = p
	c.byAddr[peerAddr] = p
	c.serverVer = 3
	c.mu.Unlock()
	var in ptp.Message
	reply := &ptp.Message{Role: ptp.RoleClient, Version: 3, Has: ptp.FieldSequence | ptp.FieldUUID | ptp.FieldYourTS | ptp.FieldEchoSeq, UUID: puuid}
	probe := &ptp.Message{Role: ptp.RoleClient, Version: 3, Has: ptp.FieldSequence | ptp.FieldUUID | ptp.FieldMyTS, UUID: puuid}
	rbuf := make([]byte, 0, ptp.MaxPacket)
	pbuf := make([]byte, 0, ptp.MaxPacket)
	d := udpsock.Message{Addr: peerAddr}
	var seq uint32
	return func() {
		now := time.Now()
		c.mu.Lock()
		s := p.seqOut
		c.probe(p, peerAddr, viaDirect, true, now)
		c.flush()
		myts := p.slot(s).myts
		c.mu.Unlock()
		reply.Sequence, reply.YourTS, reply.EchoSeq = seq, myts, s
		rb, _ := reply.AppendTo(rbuf[:0])
		d.Buf, d.N, d.RxTime = rb, len(rb), now.Add(100*time.Microsecond)
		c.handle(&in, &d)
		probe.Sequence, probe.MyTS = seq+1, timestamp.Fixed32FromTime(now)
		pb, _ := probe.AppendTo(pbuf[:0])
		d.Buf, d.N = pb, len(pb)
		c.handle(&in, &d)
		c.mu.Lock()
		c.flush()
		c.mu.Unlock()
		seq += 2
	}, p
}

// TestZeroAllocs: the probe/reply path allocates nothing per packet.
func TestZeroAllocs(t *testing.T) {
	cycle, p := hotPath(t)
	for i := 0; i < 20000; i++ { // past the stats series' exact-sample buffer growth
		cycle()
	}
	if a := testing.AllocsPerRun(2000, cycle); a != 0 {
		t.Fatalf("%.2f allocations per probe/reply cycle (4 packets), want 0", a)
	}
	// The cycles really took the reply path: every probe answered, 100 µs each.
	if p.direct.sent != 22001 || p.direct.received != p.direct.sent || p.direct.rtt.Count() != 22001 || p.direct.rtt.Max() > 100*time.Microsecond || p.direct.rtt.Percentile(50) < 90*time.Microsecond {
		t.Errorf("sent %d received %d samples %d max %v", p.direct.sent, p.direct.received, p.direct.rtt.Count(), p.direct.rtt.Max())
	}
}

// BenchmarkProbeReplyPath: one cycle = 4 packets (probe out, reply in, probe in, reply out).
func BenchmarkProbeReplyPath(b *testing.B) {
	cycle, _ := hotPath(b)
	for i := 0; i < 20000; i++ {
		cycle()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cycle()
	}
}
