package abuse

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/testsupport/daemontest"
	"github.com/probekit/probekit/shared/testsupport/gobuild"
	"github.com/probekit/probekit/shared/timestamp"
	"github.com/probekit/probekit/shared/udpsock"
)

// lightMetrics returns twampd's metrics as name{labels} → value.
func lightMetrics(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	return daemontest.Scrape(t, "http://"+addr+"/metrics")
}

// lightSender is a legitimate TWAMP-Light sender on 127.1.0.1, one request at a time; a lost
// reply or a reset session (reflector sequence not continuing) fails the test.
type lightSender struct {
	t   *testing.T
	c   *udpsock.Conn
	to  netip.AddrPort
	seq uint32
	in  udpsock.Message
}

func (s *lightSender) send(n int) {
	s.t.Helper()
	for range n {
		sp := testpkt.SenderPacket{Mode: testpkt.ModeUnauthenticated, Seq: s.seq, Timestamp: testpkt.Stamp(time.Now(), false),
			ErrorEstimate: timestamp.NewErrorEstimate(false, false, time.Millisecond)}
		if err := s.c.WriteTo(&udpsock.Message{Buf: sp.AppendTo(nil), Addr: s.to}); err != nil {
			s.t.Fatal(err)
		}
		_ = s.c.SetReadDeadline(time.Now().Add(20 * time.Second))
		if err := s.c.ReadFrom(&s.in); err != nil {
			s.t.Fatalf("legitimate sender: request %d lost: %v", s.seq, err)
		}
		rp := testpkt.ReflectedPacket{Mode: testpkt.ModeUnauthenticated}
		if err := rp.UnmarshalBinary(s.in.Buf[:s.in.N]); err != nil || rp.SenderSeq != s.seq || rp.Seq != s.seq {
			s.t.Fatalf("legitimate sender: request %d: reply %+v (%v): session lost or reset", s.seq, rp, err)
		}
		s.seq++
	}
}

// H5 (spoofed sources to twampd --light) and H8 (short requests) on the real binary: new
// sessions from 20,000 source addresses in 80 prefixes (IP_PKTINFO sources; 1 M with
// PROBEKIT_ABUSE_LONG=1) fill a 2,000-session table, the least recently used give way; then
// 3,000 14-octet requests from one address get at most the per-source allowance of 41-octet
// replies. twampd stays up under the RSS bound, a legitimate sender on another prefix loses
// nothing and keeps its session, twampd_sessions shows the bounded table and the counters and
// rate-limited warnings show the attack.
func TestLightFlood(t *testing.T) {
	sources := 20000
	if long() {
		sources = 1000000
	}
	bin := gobuild.Binary(t, "../..")
	d := daemontest.Start(t, bin, "--log-format", "json", "--light", "-S", "127.0.0.1:0", "--metrics", "127.0.0.1:0",
		"--max-sessions", "2000")
	udp := netip.MustParseAddrPort(d.WaitMsg(30*time.Second, "TWAMP Light reflector listening").Str("addr"))
	met := d.WaitMsg(30*time.Second, "metrics and status listening").Str("addr")
	lc, err := udpsock.Listen(context.Background(), "udp4", "127.1.0.1:0", udpsock.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	leg := &lightSender{t: t, c: lc, to: udp, in: udpsock.Message{Buf: make([]byte, 2048)}}
	leg.send(10)

	att, err := udpsock.Listen(context.Background(), "udp4", "0.0.0.0:0", udpsock.Options{Batch: 100, WriteBuffer: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer att.Close()
	req := (&testpkt.SenderPacket{Mode: testpkt.ModeUnauthenticated}).AppendTo(nil)
	batch := make([]udpsock.Message, 100)
	for i := 0; i < sources; i += len(batch) {
		for j := range batch {
			k := i + j
			src := netip.AddrFrom4([4]byte{127, byte(2 + k/250%250), byte(k % 250), byte(1 + k/62500)})
			batch[j] = udpsock.Message{Buf: req, Addr: udp, Dst: src}
		}
		if _, err := att.WriteBatch(batch); err != nil {
			t.Fatal(err)
		}
		if (i/len(batch))%10 == 9 {
			leg.send(1)
		}
	}
	leg.send(20)
	if !d.Alive() {
		t.Fatalf("twampd died: %s", d.Stderr())
	}
	if rss := d.RSS(); rss <= 0 || rss > rssBound {
		t.Errorf("RSS %d bytes after the source flood, bound %d", rss, rssBound)
	} else {
		t.Logf("RSS %.1f MB after %d spoofed sources", float64(rss)/(1<<20), sources)
	}
	m := lightMetrics(t, met)
	if v := m["twampd_sessions"]; v < 1 || v > 2000 {
		t.Errorf("twampd_sessions %v, want 1…2000", v)
	}
	if v := m["twampd_evicted_sessions_total"]; v < float64(sources-2000) {
		t.Errorf("%v evictions after %d new sessions into a 2000-session table", v, sources)
	}
	if v := m[`twampd_dropped_packets_total{reason="table_full"}`]; v != 0 {
		t.Errorf("%v newcomers refused by the full table", v)
	}
	d.WaitMsg(30*time.Second, "session table full, least recently used sessions evicted")

	short := req[:testpkt.TWAMPSenderLen]
	victim := netip.MustParseAddr("127.0.0.9")
	const n = 3000
	before := m["twampd_reflected_packets_total"]
	start := time.Now()
	for range n {
		if err := att.WriteTo(&udpsock.Message{Buf: short, Addr: udp, Dst: victim}); err != nil {
			t.Fatal(err)
		}
	}
	leg.send(20)
	elapsed := time.Since(start)
	m = lightMetrics(t, met)
	answered := m["twampd_reflected_packets_total"] - before - 20
	limited := m[`twampd_dropped_packets_total{reason="amplification"}`]
	// The allowance (burst + rate × the time the sends took by the test's clock) bounds what
	// may be answered; whatever it leaves of the n must be dropped. (A test stalled ≥ 2 s
	// while sending makes the allowance cover all n: then nothing need be dropped.)
	if allowance := 1000 + 1000*elapsed.Seconds(); answered > allowance || answered+limited != n || limited == 0 && allowance < n {
		t.Errorf("%v short requests answered (allowance %.0f), %v dropped of %d", answered, allowance, limited, n)
	}
	if limited > 0 {
		d.WaitMsg(30*time.Second, "replies to short requests rate-limited")
	}
	if !d.Alive() {
		t.Fatalf("twampd died: %s", d.Stderr())
	}
}
