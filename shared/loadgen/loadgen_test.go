package loadgen

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/stats"
	"github.com/probekit/probekit/shared/timestamp"
	"github.com/probekit/probekit/shared/udpsock"
)

func listen(t testing.TB, opts udpsock.Options) *udpsock.Conn {
	t.Helper()
	c, err := udpsock.Listen(context.Background(), "udp4", "127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func genConn(t testing.TB) *udpsock.Conn {
	return listen(t, udpsock.Options{RxTimestamps: true, ReadBuffer: 4 << 20, WriteBuffer: 1 << 20})
}

// serve runs a test reflector: reply appends what to send back for one datagram (usually
// the datagram itself, possibly rewritten; nothing to withhold it; extras to duplicate), and
// everything goes out in one sendmmsg per batch.
func serve(t testing.TB, reply func(m *udpsock.Message, out []udpsock.Message) []udpsock.Message) *udpsock.Conn {
	t.Helper()
	c := listen(t, udpsock.Options{RxTimestamps: true, ReadBuffer: 4 << 20})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		in := make([]udpsock.Message, 64)
		out := make([]udpsock.Message, 0, 256)
		for i := range in {
			in[i].Buf = make([]byte, 2048)
		}
		for {
			n, err := c.ReadBatch(in)
			if err != nil {
				return
			}
			out = out[:0]
			for i := 0; i < n; i++ {
				out = reply(&in[i], out)
			}
			if _, err := c.WriteBatch(out); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { c.Close(); wg.Wait() })
	return c
}

func TestPacingAccuracy(t *testing.T) {
	var count atomic.Uint64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	echo := listen(t, udpsock.Options{ReadBuffer: 4 << 20})
	go Echo(ctx, echo, 64, &count)
	const rate = 10000
	res, err := Run(ctx, genConn(t), Config{Target: echo.LocalAddr(), Rate: rate, Duration: time.Second, Wait: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sent %d in %v: %.0f pps, late p50 %v p99 %v", res.Sent, res.SendElapsed, res.SentRate, res.SendLate.P50, res.SendLate.P99)
	if res.Sent != rate {
		t.Errorf("sent %d, want %d", res.Sent, rate)
	}
	// The achieved rate is only the generator's to keep while the OS runs it: the span from
	// the first to the last sendmmsg differs from the schedule's by the difference of those
	// two calls' lateness, at most the largest lateness measured. So the 3 % tolerance widens
	// by what a stall in this run can explain (max lateness over the 1 s run), and no more:
	// a stall of a few batches near the end does not show in p99 (one sample per batch).
	stalled := res.SendLate.P99 > 2*time.Millisecond
	if tol := 0.03 + res.SendLate.Max.Seconds()/time.Second.Seconds(); math.Abs(res.SentRate-rate)/rate > tol {
		t.Errorf("achieved %.0f pps, want %d ± %.1f %% (3 %% and the max send lateness %v)", res.SentRate, rate, 100*tol, res.SendLate.Max)
	}
	if res.Received != res.Sent || res.Lost != 0 || res.Loss != 0 {
		t.Errorf("received %d of %d (lost %d, loss %v)", res.Received, res.Sent, res.Lost, res.Loss)
	}
	if count.Load() != res.Sent {
		t.Errorf("echo saw %d, generator sent %d", count.Load(), res.Sent)
	}
	// Paced, not bursty: on an idle machine nearly every sendmmsg carries one packet (100 µs
	// apart). A sender the OS stalled catches up in batches by design (a CI run stalled at
	// p50 161 ms made 163 calls), so like the rate this is judged only without a stall.
	if !stalled && res.SendLate.Count < rate/10 {
		t.Errorf("only %d sendmmsg calls for %d packets: bursts instead of pacing", res.SendLate.Count, rate)
	}
	// Judged only when the OS did not stall the sender (as the rate above): a loaded machine
	// makes any lateness bound a measurement of the machine, not of the pacer.
	if !stalled && res.SendLate.P50 > 500*time.Microsecond {
		t.Errorf("median send lateness %v", res.SendLate.P50)
	}
	if !stalled && res.GeneratorBound() {
		t.Error("GeneratorBound at 10 kpps")
	}
	if stalled {
		t.Logf("sender stalled (p99 lateness %v): busy machine, rate not judged", res.SendLate.P99)
	}
}

func TestLossCountedExactly(t *testing.T) {
	// Withhold every 10th packet: loss must be exactly 10 %.
	refl := serve(t, func(m *udpsock.Message, out []udpsock.Message) []udpsock.Message {
		if binary.BigEndian.Uint32(m.Buf)%10 == 9 {
			return out
		}
		return append(out, *m)
	})
	res, err := Run(context.Background(), genConn(t), Config{Target: refl.LocalAddr(), Rate: 5000, Duration: 500 * time.Millisecond, Wait: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 2500 || res.Lost != 250 || res.Received != 2250 || res.Loss != 0.1 {
		t.Errorf("sent %d received %d lost %d loss %v, want 2500 2250 250 0.1", res.Sent, res.Received, res.Lost, res.Loss)
	}
	if res.Duplicates != 0 || res.Unexpected != 0 {
		t.Errorf("duplicates %d unexpected %d", res.Duplicates, res.Unexpected)
	}
}

func TestDuplicatesAndUnexpected(t *testing.T) {
	// Answer every packet twice, and every 100th also with a runt and a reply naming a
	// sequence number that was never sent.
	// The extras go first in the same sendmmsg, so they precede the reply they belong to.
	refl := serve(t, func(m *udpsock.Message, out []udpsock.Message) []udpsock.Message {
		if binary.BigEndian.Uint32(m.Buf)%100 == 0 {
			out = append(out,
				udpsock.Message{Buf: []byte{1, 2}, Addr: m.Addr},
				udpsock.Message{Buf: []byte{0xff, 0xff, 0xff, 0xff}, Addr: m.Addr})
		}
		return append(out, *m, *m)
	})
	res, err := Run(context.Background(), genConn(t), Config{Target: refl.LocalAddr(), Rate: 2000, Duration: 500 * time.Millisecond, Wait: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 1000 || res.Received != 1000 || res.Duplicates != 1000 || res.Unexpected != 20 || res.Lost != 0 {
		t.Errorf("sent %d received %d dup %d unexpected %d lost %d, want 1000 1000 1000 20 0",
			res.Sent, res.Received, res.Duplicates, res.Unexpected, res.Lost)
	}
}

func TestRTTAgainstInjectedDelay(t *testing.T) {
	// The reflector holds each packet ≥ 3 ms, and brackets its reply's sendmmsg with two clock
	// reads. Loopback stamps the reply on the generator's socket inside that sendmmsg, and
	// the generator's RTT runs from the time it wrote into the packet (read just before its
	// own sendmmsg), so each RTT lies between (read before − packet time) and (read after −
	// packet time), and so does the median between the medians of those bounds, however
	// late either thread ran: no latency is assumed. Packets are 10 ms apart, so an RTT
	// matched to the wrong packet, or stamped when the generator got round to reading the
	// reply, falls outside.
	const delay = 3 * time.Millisecond
	var mu sync.Mutex
	var lower, upper stats.Series
	refl := listen(t, udpsock.Options{RxTimestamps: true, ReadBuffer: 4 << 20})
	done := make(chan struct{})
	go func() {
		defer close(done)
		in := make([]udpsock.Message, 1)
		in[0].Buf = make([]byte, 2048)
		for {
			if _, err := refl.ReadBatch(in); err != nil {
				return
			}
			m := &in[0]
			for time.Since(m.RxTime) < delay {
				time.Sleep(delay - time.Since(m.RxTime))
			}
			if m.N < 12 {
				continue
			}
			sent := timestamp.NTP(binary.BigEndian.Uint64(m.Buf[4:12])).Time()
			before := time.Now()
			if _, err := refl.WriteBatch([]udpsock.Message{{Buf: m.Buf[:m.N], Addr: m.Addr}}); err != nil {
				return
			}
			after := time.Now()
			mu.Lock()
			lower.Add(before.Sub(sent))
			upper.Add(after.Sub(sent))
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { refl.Close(); <-done })
	res, err := Run(context.Background(), genConn(t), Config{Target: refl.LocalAddr(), Rate: 100, Duration: time.Second, Wait: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.RTT.Count != 100 {
		t.Fatalf("%d RTT samples, want 100", res.RTT.Count)
	}
	mu.Lock()
	lo, hi := summarise(&lower), summarise(&upper)
	mu.Unlock()
	if res.RTT.Min < delay {
		t.Errorf("RTT min %v below the injected %v", res.RTT.Min, delay)
	}
	// 1 µs for the NTP encoding of the packet time and the two clocks' rounding.
	if res.RTT.P50 < lo.P50-time.Microsecond || res.RTT.P50 > hi.P50+time.Microsecond {
		t.Errorf("RTT median %v outside [%v, %v], the reflector's clock reads around its sendmmsg", res.RTT.P50, lo.P50, hi.P50)
	}
	t.Logf("RTT median %v in [%v, %v]", res.RTT.P50, lo.P50, hi.P50)
}

func TestResidenceFromReplies(t *testing.T) {
	// A reflector stamping T2 = its kernel receive time and T3 = T2 + 7 µs exactly.
	const resid = 7 * time.Microsecond
	refl := serve(t, func(m *udpsock.Message, out []udpsock.Message) []udpsock.Message {
		b := m.Buf[:m.N]
		timestamp.NTPFromTime(m.RxTime).Put(b[16:24])
		timestamp.NTPFromTime(m.RxTime.Add(resid)).Put(b[4:12])
		return append(out, *m)
	})
	res, err := Run(context.Background(), genConn(t), Config{Target: refl.LocalAddr(), Rate: 1000, Duration: 300 * time.Millisecond, Wait: 3 * time.Second, Residence: STAMPResidence})
	if err != nil {
		t.Fatal(err)
	}
	if res.Residence.Count != 300 {
		t.Fatalf("%d residence samples, want 300", res.Residence.Count)
	}
	// NTP fractions round to the nearest 233 ps, so each stamp is within 1 ns.
	for _, d := range []time.Duration{res.Residence.Min, res.Residence.P50, res.Residence.P99, res.Residence.Max} {
		if d < resid-2 || d > resid+2 {
			t.Errorf("residence %v, want %v", d, resid)
		}
	}
}

func TestStampingEcho(t *testing.T) {
	// T2 is the echo's kernel receive stamp and T3 its clock just before sendmmsg: the
	// residence is positive, below the RTT it is part of, and present in every reply.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := listen(t, udpsock.Options{RxTimestamps: true, ReadBuffer: 4 << 20})
	go StampingEcho(ctx, e, 64, nil)
	res, err := Run(ctx, genConn(t), Config{Target: e.LocalAddr(), Rate: 1000, Duration: 300 * time.Millisecond,
		Wait: 3 * time.Second, Residence: STAMPResidence})
	if err != nil {
		t.Fatal(err)
	}
	if res.Received != 300 || res.Residence.Count != 300 {
		t.Fatalf("received %d, residence samples %d", res.Received, res.Residence.Count)
	}
	if res.Residence.Min <= 0 || res.Residence.P50 >= res.RTT.P50 {
		t.Errorf("residence min %v p50 %v, RTT p50 %v", res.Residence.Min, res.Residence.P50, res.RTT.P50)
	}
	// Short datagrams are echoed untouched.
	c := genConn(t)
	m := udpsock.Message{Buf: []byte("0123456789"), Addr: e.LocalAddr()}
	if err := c.WriteTo(&m); err != nil {
		t.Fatal(err)
	}
	in := udpsock.Message{Buf: make([]byte, 64)}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if err := c.ReadFrom(&in); err != nil || string(in.Buf[:in.N]) != "0123456789" {
		t.Errorf("short datagram came back as %q, %v", in.Buf[:in.N], err)
	}
}

func TestSTAMPResidence(t *testing.T) {
	t2 := time.Date(2026, 11, 23, 8, 0, 0, 123_456_000, time.UTC)
	reply := func(t3, t2 time.Time, z bool) []byte {
		b := make([]byte, 44)
		ee := timestamp.MakeErrorEstimate(true, z, 0, 1)
		ee.Put(b[12:14])
		if z {
			timestamp.PTPFromTime(t3).Put(b[4:12])
			timestamp.PTPFromTime(t2).Put(b[16:24])
		} else {
			timestamp.NTPFromTime(t3).Put(b[4:12])
			timestamp.NTPFromTime(t2).Put(b[16:24])
		}
		return b
	}
	echoed := make([]byte, 44)
	FillPacket(echoed, 7, t2)
	for _, tc := range []struct {
		name string
		b    []byte
		want time.Duration
		ok   bool
	}{
		{"ntp", reply(t2.Add(4200*time.Nanosecond), t2, false), 4200 * time.Nanosecond, true},
		{"ptp", reply(t2.Add(15*time.Microsecond), t2, true), 15 * time.Microsecond, true},
		{"zero residence", reply(t2, t2, false), 0, true},
		{"echoed request", echoed, 0, false},
		{"negative", reply(t2, t2.Add(time.Microsecond), false), 0, false},
		{"over a second", reply(t2.Add(2*time.Second), t2, false), 0, false},
		{"short", make([]byte, 23), 0, false},
		{"ptp bad nanoseconds", func() []byte {
			b := reply(t2.Add(time.Microsecond), t2, true)
			binary.BigEndian.PutUint32(b[20:24], 2e9)
			return b
		}(), 0, false},
	} {
		d, ok := STAMPResidence(tc.b)
		if ok != tc.ok || (ok && (d < tc.want-1 || d > tc.want+1)) {
			t.Errorf("%s: %v %v, want %v %v", tc.name, d, ok, tc.want, tc.ok)
		}
	}
}

func TestFillPacket(t *testing.T) {
	now := time.Date(2026, 11, 23, 8, 0, 0, 500_000_000, time.UTC)
	b := make([]byte, 44)
	FillPacket(b, 0x01020304, now)
	if binary.BigEndian.Uint32(b) != 0x01020304 {
		t.Errorf("seq % x", b[:4])
	}
	if got := timestamp.ReadNTP(b[4:12]).Time(); got.Sub(now).Abs() > time.Nanosecond {
		t.Errorf("T1 %v, want %v", got, now)
	}
	if ee := timestamp.ReadErrorEstimate(b[12:14]); ee.Multiplier() != 1 || ee.S() || ee.Z() {
		t.Errorf("error estimate %v", ee)
	}
	for i, v := range b[14:] {
		if v != 0 {
			t.Fatalf("byte %d = %d, want zero MBZ", 14+i, v)
		}
	}
	short := make([]byte, 4)
	FillPacket(short, 9, now) // only the sequence number fits
	if binary.BigEndian.Uint32(short) != 9 {
		t.Errorf("short seq % x", short)
	}
}

func TestConfigErrors(t *testing.T) {
	c := genConn(t)
	to := c.LocalAddr()
	for _, cfg := range []Config{
		{Rate: 1, Duration: time.Second},
		{Target: to, Rate: 0, Duration: time.Second},
		{Target: to, Rate: math.NaN(), Duration: time.Second},
		{Target: to, Rate: 1, Duration: 0},
		{Target: to, Rate: 1, Duration: time.Second, Size: 3},
		{Target: to, Rate: 1e9, Duration: time.Minute},
	} {
		if _, err := Run(context.Background(), c, cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}

func TestRunCancelled(t *testing.T) {
	// Cancelled by an event (the reflector's 50th packet), not a timer: a loaded machine
	// may stall the generator's start past any fixed deadline (a run at -cpu 1 under load
	// had sent nothing when a 200 ms one expired).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var seen atomic.Int32
	refl := serve(t, func(m *udpsock.Message, out []udpsock.Message) []udpsock.Message {
		if seen.Add(1) == 50 {
			cancel()
		}
		return append(out, *m)
	})
	start := time.Now()
	res, err := Run(ctx, genConn(t), Config{Target: refl.LocalAddr(), Rate: 1000, Duration: time.Minute})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want canceled", err)
	}
	// A hang guard (the run would last a minute without the cancel), not a latency bound.
	el := time.Since(start)
	if el > 30*time.Second {
		t.Errorf("cancelled run took %v", el)
	}
	// At least the 50 the reflector saw; and the pacer never sends ahead of its schedule:
	// at most one packet per ms the run lasted by the test's clock, plus packet 0.
	if limit := 1 + uint64(el/time.Millisecond); res.Sent < 50 || res.Sent > limit {
		t.Errorf("sent %d in %v at 1 kpps (want 50 to %d)", res.Sent, el, limit)
	}
}

func TestSummarise(t *testing.T) {
	var s stats.Series
	for i := 100; i >= 1; i-- {
		s.Add(time.Duration(i))
	}
	want := Percentiles{Count: 100, Min: 1, P50: 50, P90: 90, P99: 99, Max: 100}
	if p := summarise(&s); p != want {
		t.Errorf("summarise = %+v, want %+v", p, want)
	}
	if (summarise(&stats.Series{}) != Percentiles{}) {
		t.Error("empty summary not zero")
	}
}
