package ptpbulk

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/ptp"
)

// link is one direction of an in-memory path: random loss, a random delay per datagram in
// [delay, delay+jitter) (so datagrams overtake each other), and a bounded queue (datagrams
// beyond it are dropped, like a full router queue).
type link struct {
	mu      sync.Mutex
	rng     *mrand.Rand
	loss    float64
	delay   time.Duration
	jitter  time.Duration
	ch      chan []byte
	sent    atomic.Int64
	dropped atomic.Int64
	bytes   atomic.Int64
	filter  func([]byte) bool // drop when it returns true (tests)
}

func newLink(seed uint64, loss float64, delay, jitter time.Duration) *link {
	return &link{rng: mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), loss: loss, delay: delay, jitter: jitter,
		ch: make(chan []byte, 2048)}
}

func (l *link) send(b []byte) {
	l.sent.Add(1)
	l.bytes.Add(int64(len(b)))
	l.mu.Lock()
	lost := l.rng.Float64() < l.loss
	d := l.delay
	if l.jitter > 0 {
		d += time.Duration(l.rng.Int64N(int64(l.jitter)))
	}
	l.mu.Unlock()
	if lost || (l.filter != nil && l.filter(b)) {
		l.dropped.Add(1)
		return
	}
	c := append([]byte(nil), b...)
	deliver := func() {
		select {
		case l.ch <- c:
		default:
			l.dropped.Add(1)
		}
	}
	if d <= 0 {
		deliver()
		return
	}
	time.AfterFunc(d, deliver)
}

// end is one peer's side: it sends on out and receives from in.
type end struct{ in, out *link }

func (e end) Send(b []byte) error { e.out.send(b); return nil }

func (e end) Recv(ctx context.Context) ([]byte, error) {
	select {
	case b := <-e.in.ch:
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func pair(seed uint64, loss float64, delay, jitter time.Duration) (sender, receiver end, fwd, back *link) {
	fwd = newLink(seed, loss, delay, jitter)    // sender → receiver
	back = newLink(seed+1, loss, delay, jitter) // receiver → sender
	return end{back, fwd}, end{fwd, back}, fwd, back
}

func randomFile(t testing.TB, dir string, size int) (string, []byte) {
	b := make([]byte, size)
	rand.Read(b)
	p := filepath.Join(dir, "payload.bin")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, b
}

var nextID atomic.Uint32

type result struct {
	rep Report
	err error
}

func transfer(t *testing.T, ctx context.Context, s, r end, file, dir string, scfg SendConfig, rcfg RecvConfig) (Report, Report, error, error) {
	t.Helper()
	scfg.File, scfg.ID = file, nextID.Add(1) // a new id per transfer, as a real sender picks
	rcfg.Dir = dir
	rc := make(chan result, 1)
	go func() { rep, err := Receive(ctx, r, rcfg); rc <- result{rep, err} }()
	srep, serr := Send(ctx, s, scfg)
	rr := <-rc
	return srep, rr.rep, serr, rr.err
}

func checkFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from what was sent (%d vs %d bytes)", path, len(got), len(want))
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

// TestLossyReordering moves 20 MB through 5 % random loss each way and reordering (per
// datagram delays of 0.5–2.5 ms): the file arrives intact and the loss shows as retransmissions.
func TestLossyReordering(t *testing.T) {
	size := 20 << 20
	if testing.Short() {
		size = 2 << 20
	}
	src, dst := t.TempDir(), t.TempDir()
	file, data := randomFile(t, src, size+123)
	s, r, fwd, back := pair(1, 0.05, 500*time.Microsecond, 2*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	srep, rrep, serr, rerr := transfer(t, ctx, s, r, file, dst, SendConfig{}, RecvConfig{})
	if serr != nil || rerr != nil {
		t.Fatalf("send: %v, receive: %v", serr, rerr)
	}
	checkFile(t, filepath.Join(dst, "payload.bin"), data)
	t.Logf("sender: %s; receiver: %s", Summary(srep), Summary(rrep))
	t.Logf("datagrams: forward %d sent, %d dropped; back %d sent, %d dropped; receiver window max %d, duplicates %d, timeouts %d",
		fwd.sent.Load(), fwd.dropped.Load(), back.sent.Load(), back.dropped.Load(), rrep.MaxWindow, rrep.Duplicates, rrep.Timeouts)
	if !srep.OK || !rrep.OK || rrep.Moved != int64(len(data)) || srep.Moved != int64(len(data)) {
		t.Fatalf("reports: sender %+v receiver %+v", srep, rrep)
	}
	// Every block sent again was asked again, and with 5 % loss each way (about 10 % of the
	// block round trips lost) some were.
	if srep.Retransmits == 0 || rrep.Retransmits < srep.Retransmits || srep.SentBytes <= int64(len(data)) {
		t.Fatalf("retransmissions: sender %d, receiver %d, sent bytes %d", srep.Retransmits, rrep.Retransmits, srep.SentBytes)
	}
	// RTT on this path is 1–5 ms (0.5–2.5 ms each way) plus queueing; never below 1 ms.
	if rrep.RTTMin < time.Millisecond || rrep.RTTAvg <= 0 {
		t.Fatalf("RTT min %v avg %v", rrep.RTTMin, rrep.RTTAvg)
	}
}

// TestRateCap: the sender never exceeds --rate (beyond two blocks of slack), measured on the
// datagrams it sends.
func TestRateCap(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	file, data := randomFile(t, src, 600<<10)
	s, r, fwd, _ := pair(2, 0, 0, 0)
	const rate = 1 << 20 // 1 MiB/s: 0.6 s for the file
	var mu sync.Mutex
	var times []time.Time
	var sizes []int
	fwd.filter = func(b []byte) bool {
		var f frame
		if parseFrame(b, &f) == nil && len(f.data) > 0 {
			mu.Lock()
			times = append(times, time.Now())
			sizes = append(sizes, len(f.data[0].b))
			mu.Unlock()
		}
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srep, _, serr, rerr := transfer(t, ctx, s, r, file, dst, SendConfig{Rate: rate}, RecvConfig{})
	if serr != nil || rerr != nil {
		t.Fatalf("send: %v, receive: %v", serr, rerr)
	}
	checkFile(t, filepath.Join(dst, "payload.bin"), data)
	mu.Lock()
	defer mu.Unlock()
	// Over every window from one datagram to a later one, bytes ≤ rate × elapsed + 2 blocks.
	var worst float64
	for i := range times {
		var n int
		for j := i; j < len(times); j++ {
			n += sizes[j]
			allowed := rate*times[j].Sub(times[i]).Seconds() + 2*BlockSize + BlockSize // the first datagram itself
			worst = max(worst, float64(n)-allowed)
			if float64(n) > allowed {
				t.Fatalf("%d bytes in %v from datagram %d: above %d B/s", n, times[j].Sub(times[i]), i, rate)
			}
		}
	}
	_ = srep
}

// TestPacer: on a synthetic clock, a sender that sends whenever allowed moves rate bytes per
// second (so the cap is not met by sending too little), and idle time earns at most two
// blocks of credit.
func TestPacer(t *testing.T) {
	const rate = 1e6
	start := time.Unix(1000, 0)
	p := newPacer(rate, start)
	now, sent := start, 0
	for now.Before(start.Add(time.Second)) {
		if w := p.wait(now); w > 0 {
			now = now.Add(w)
			continue
		}
		p.sent(BlockSize, now)
		sent += BlockSize
	}
	if sent < rate-2*BlockSize || sent > rate+2*BlockSize {
		t.Fatalf("%d bytes in one synthetic second at %v B/s", sent, rate)
	}
	now = now.Add(10 * time.Second) // idle
	burst := 0
	for p.wait(now) <= 0 {
		p.sent(BlockSize, now)
		burst++
	}
	if burst > 3 {
		t.Fatalf("%d blocks at once after idling", burst)
	}
}

// TestResume kills the receiver mid-transfer (context cancelled, nothing cleaned up), starts
// a new one on the same directory, and checks that it asks only for what it lacks.
func TestResume(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	file, data := randomFile(t, src, 3<<20)
	s, r, fwd, _ := pair(3, 0, 0, 0)
	var blocksSeen atomic.Int64
	ctx1, stop := context.WithCancel(context.Background())
	fwd.filter = func(b []byte) bool {
		var f frame
		if parseFrame(b, &f) == nil && len(f.data) > 0 {
			if blocksSeen.Add(1) == 1200 {
				stop() // the receiver dies after about 1.2 MB
			}
		}
		return false
	}
	rc := make(chan result, 1)
	go func() {
		rep, err := Receive(ctx1, r, RecvConfig{Dir: dst, Checkpoint: 20 * time.Millisecond})
		rc <- result{rep, err}
	}()
	sctx, scancel := context.WithTimeout(context.Background(), time.Minute)
	defer scancel()
	sc := make(chan result, 1)
	go func() {
		rep, err := Send(sctx, s, SendConfig{File: file, ID: 7, Idle: 30 * time.Second})
		sc <- result{rep, err}
	}()
	first := <-rc
	if !errors.Is(first.err, context.Canceled) {
		t.Fatalf("first receiver: %v", first.err)
	}
	if _, err := os.Stat(filepath.Join(dst, "payload.bin")); err == nil {
		t.Fatal("the file is in place before it is complete")
	}
	// The sender got our BULK_DONE "cancelled" and stopped; a new sender and receiver resume.
	if res := <-sc; !errors.Is(res.err, ErrCanceled) {
		t.Fatalf("sender after the receiver stopped: %v", res.err)
	}
	fwd.filter = nil
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srep, rrep, serr, rerr := transfer(t, ctx, s, r, file, dst, SendConfig{}, RecvConfig{})
	if serr != nil || rerr != nil {
		t.Fatalf("resume: send %v, receive %v", serr, rerr)
	}
	checkFile(t, filepath.Join(dst, "payload.bin"), data)
	t.Logf("first run received %d bytes; resumed %d; second run moved %d", first.rep.Moved, rrep.Resumed, rrep.Moved)
	// The checkpoint lags by at most 20 ms of blocks; what it recorded is not sent again.
	if rrep.Resumed == 0 || rrep.Resumed > first.rep.Moved || rrep.Resumed+rrep.Moved != int64(len(data)) {
		t.Fatalf("resumed %d + moved %d != %d (first run held %d)", rrep.Resumed, rrep.Moved, len(data), first.rep.Moved)
	}
	if srep.SentBytes != rrep.Moved+rrep.Duplicates*BlockSize && srep.SentBytes < rrep.Moved {
		t.Fatalf("sender sent %d bytes for %d new", srep.SentBytes, rrep.Moved)
	}
	if srep.SentBytes > int64(len(data))-rrep.Resumed+int64(srep.Retransmits)*BlockSize {
		t.Fatalf("sender resent what the receiver had: sent %d, needed %d", srep.SentBytes, int64(len(data))-rrep.Resumed)
	}
}

// TestMismatchAndRefusal: a corrupted block fails the SHA-256 check (no file appears), and a
// receiver refuses an existing name or a path in the name.
func TestMismatchAndRefusal(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	file, _ := randomFile(t, src, 50<<10)
	s, r, fwd, _ := pair(4, 0, 0, 0)
	fwd.filter = func(b []byte) bool {
		var f frame
		if parseFrame(b, &f) == nil && len(f.data) > 0 && f.data[0].hdr.Block == 7 {
			i := bytes.Index(b, f.data[0].b[:16])
			b[i] ^= 0xff // corrupt in flight (the link copies after the filter)
		}
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _, serr, rerr := transfer(t, ctx, s, r, file, dst, SendConfig{}, RecvConfig{})
	if !errors.Is(serr, ErrMismatch) || !errors.Is(rerr, ErrMismatch) {
		t.Fatalf("corrupted: send %v, receive %v", serr, rerr)
	}
	if left, _ := os.ReadDir(dst); len(left) != 0 {
		t.Fatalf("left after a mismatch: %v", left)
	}
	fwd.filter = nil
	os.WriteFile(filepath.Join(dst, "payload.bin"), []byte("mine"), 0o644)
	_, _, serr, rerr = transfer(t, ctx, s, r, file, dst, SendConfig{}, RecvConfig{})
	if !errors.Is(serr, ErrRefused) || !errors.Is(rerr, ErrRefused) || !strings.Contains(serr.Error(), "exists") {
		t.Fatalf("existing file: send %v, receive %v", serr, rerr)
	}
	// A hostile name never escapes the directory.
	for _, name := range []string{"../x", "/etc/passwd", ".hidden", "a/b", ""} {
		o := ptp.BulkOffer{ID: 9, Size: 10, Block: BlockSize, Name: name}
		rc := make(chan error, 1)
		go func() { _, err := Receive(ctx, r, RecvConfig{Dir: dst}); rc <- err }()
		s.Send(appendTLV(nil, ptp.TypeBulkOffer, o.AppendTo))
		if err := <-rc; !errors.Is(err, ErrRefused) {
			t.Errorf("name %q: %v", name, err)
		}
		select { // drain the refusal
		case <-s.in.ch:
		case <-time.After(time.Second):
		}
	}
}

func TestPrinter(t *testing.T) {
	var b bytes.Buffer
	p := NewPrinter(&b, false)
	p.Update(Progress{Role: "receive", Name: "f", Size: 2000, Done: 500, Elapsed: time.Second, GoodputBps: 500, Retransmits: 3, RTT: 2500 * time.Microsecond, Window: 12})
	var j ProgressJSON
	if err := json.Unmarshal(b.Bytes(), &j); err != nil || j.Percent != 25 || j.RTTms != 2.5 || j.Type != "progress" {
		t.Fatalf("%s %+v %v", b.String(), j, err)
	}
	b.Reset()
	p = NewPrinter(&b, true)
	p.Update(Progress{Role: "send", Name: "f", Size: 2000, Done: 1000})
	p.Finish()
	if got := b.String(); !strings.HasPrefix(got, "\rf [###############...............]  50.0% 1000 B/2.0 KiB") || !strings.HasSuffix(got, "\n") {
		t.Fatalf("%q", got)
	}
}

func FuzzParseFrame(f *testing.F) {
	o := ptp.BulkOffer{ID: 1, Size: 5000, Block: BlockSize, Name: "x.bin"}
	f.Add(appendTLV(nil, ptp.TypeBulkOffer, o.AppendTo))
	rq := ptp.BulkReq{ID: 1, Have: 2, Ranges: []ptp.BulkRange{{Start: 3, Count: 4}, {Start: 10, Count: 1}}}
	f.Add(appendTLV(nil, ptp.TypeBulkReq, rq.AppendTo))
	f.Add(appendData(nil, 1, 3, bytes.Repeat([]byte{7}, 600)))
	d := ptp.BulkDone{ID: 1, Status: ptp.BulkMismatch, Text: "bad"}
	f.Add(appendTLV(nil, ptp.TypeBulkDone, d.AppendTo))
	f.Add([]byte{22, 12, 0, 0, 0, 1, 0, 0, 0, 1, 0, 5, 23, 4, 1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		var fr frame
		if err := parseFrame(b, &fr); err != nil {
			return
		}
		for _, d := range fr.data {
			if len(d.b) != int(d.hdr.Length) {
				t.Fatalf("block %d: %d bytes, header says %d", d.hdr.Block, len(d.b), d.hdr.Length)
			}
			// Re-encoding a block gives a frame that decodes to the same bytes.
			var g frame
			if err := parseFrame(appendData(nil, d.hdr.ID, d.hdr.Block, d.b), &g); err != nil || !bytes.Equal(g.data[0].b, d.b) {
				t.Fatalf("round trip: %v", err)
			}
		}
	})
}

// TestSmallFiles: empty, one-byte and exactly-one-block files.
func TestSmallFiles(t *testing.T) {
	for _, size := range []int{0, 1, BlockSize, BlockSize + 1} {
		src, dst := t.TempDir(), t.TempDir()
		file, data := randomFile(t, src, size)
		s, r, _, _ := pair(uint64(size)+10, 0, 0, 0)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		srep, rrep, serr, rerr := transfer(t, ctx, s, r, file, dst, SendConfig{}, RecvConfig{})
		cancel()
		if serr != nil || rerr != nil || !srep.OK || !rrep.OK {
			t.Fatalf("%d bytes: send %v, receive %v", size, serr, rerr)
		}
		checkFile(t, filepath.Join(dst, "payload.bin"), data)
	}
}

// TestParseFrameNoAlloc: a data frame's chunks are joined in the frame's reused buffer, not in
// a new slice per block, and the block's bytes are the ones sent.
func TestParseFrameNoAlloc(t *testing.T) {
	p := make([]byte, BlockSize)
	for i := range p {
		p[i] = byte(i * 7)
	}
	b := appendData(nil, 5, 9, p)
	var fr frame
	if err := parseFrame(b, &fr); err != nil || len(fr.data) != 1 || !bytes.Equal(fr.data[0].b, p) || fr.data[0].hdr.Block != 9 {
		t.Fatalf("parse: %v %+v", err, fr.data)
	}
	if a := testing.AllocsPerRun(1000, func() { parseFrame(b, &fr) }); a != 0 {
		t.Errorf("%.1f allocations per data frame", a)
	}
}

// TestFirstLossKeepsWindow: requests that time out before any block has arrived (sent before
// the client had a path to the sender) back the timer off but leave the window and slow start
// alone; once blocks flow, a loss cuts the window by beta.
func TestFirstLossKeepsWindow(t *testing.T) {
	t0 := time.Unix(1000, 0)
	r := &receiver{cfg: RecvConfig{MaxWindow: 4096}, req: map[uint32]*inflight{}, cwnd: initWindow, ssthresh: 1e9, rto: initRTO, reoMult: 1}
	ask := func(k uint32, at time.Time) {
		in := &inflight{block: k, at: at, tries: 1}
		r.req[k] = in
		r.fifo = append(r.fifo, in)
	}
	for k := uint32(0); k < initWindow; k++ {
		ask(k, t0)
	}
	r.detectLosses(t0.Add(initRTO))     // the first times out, the timer backs off
	r.detectLosses(t0.Add(2 * initRTO)) // the others, the same loss event
	if r.cwnd != initWindow || r.ssthresh != 1e9 || len(r.retx) != initWindow || r.rto != 2*initRTO {
		t.Fatalf("before any arrival: cwnd %v ssthresh %v, %d to ask again, rto %v", r.cwnd, r.ssthresh, len(r.retx), r.rto)
	}
	r.srtt, r.rto, r.cwnd = 10*time.Millisecond, minRTO, 100
	ask(99, t0.Add(time.Second))
	r.detectLosses(t0.Add(time.Second + minRTO))
	if r.cwnd != 100*beta || r.ssthresh != 100*beta {
		t.Fatalf("after arrivals: cwnd %v ssthresh %v, want %v", r.cwnd, r.ssthresh, 100*beta)
	}
}

// TestWindowCap: the window cap is the fastest recent delivery rate times (minimum RTT +
// queueSlack), never below capFloor, and absent before the first rate bin.
func TestWindowCap(t *testing.T) {
	r := &receiver{cfg: RecvConfig{MaxWindow: 4096}, rttMin: time.Millisecond}
	if c := r.rateCap(); c != 4096 {
		t.Fatalf("before a bin: cap %v", c)
	}
	t0 := time.Unix(1000, 0)
	// 10,000 blocks/s for one bin, then 2,000/s for one.
	for i := 0; i <= 1000; i++ {
		r.delivered(t0.Add(time.Duration(i) * 100 * time.Microsecond))
	}
	t1 := t0.Add(100 * time.Millisecond)
	for i := 1; i <= 201; i++ {
		r.delivered(t1.Add(time.Duration(i) * 500 * time.Microsecond))
	}
	want := 10000 * (time.Millisecond + queueSlack).Seconds()
	if c := r.rateCap(); c < want*0.99 || c > want*1.01 {
		t.Fatalf("cap %v, want %v (max of the bins)", c, want)
	}
	slow := &receiver{cfg: RecvConfig{MaxWindow: 4096}, rttMin: time.Millisecond}
	for i := 0; i <= 10; i++ {
		slow.delivered(t0.Add(time.Duration(i) * 10 * time.Millisecond))
	}
	if c := slow.rateCap(); c != capFloor {
		t.Fatalf("100 blocks/s: cap %v, want the floor %d", c, capFloor)
	}
}

// TestOfferAgain: a repeated offer before any block has arrived means the requests were lost:
// they are asked again at once, with the window kept; once blocks flow it changes nothing.
func TestOfferAgain(t *testing.T) {
	r := &receiver{req: map[uint32]*inflight{}, cwnd: initWindow, ssthresh: 1e9, rto: initRTO}
	for k := uint32(0); k < initWindow; k++ {
		in := &inflight{block: k, at: time.Unix(1000, 0), tries: 1}
		r.req[k] = in
		r.fifo = append(r.fifo, in)
	}
	r.offerAgain()
	if len(r.req) != 0 || len(r.retx) != initWindow || r.cwnd != initWindow || r.rep.Timeouts != 0 {
		t.Fatalf("%d outstanding, %d to ask again, cwnd %v, %d timeouts", len(r.req), len(r.retx), r.cwnd, r.rep.Timeouts)
	}
	r.retx = r.retx[:0]
	r.srtt = time.Millisecond
	r.req[3] = &inflight{block: 3, tries: 1}
	r.fifo = append(r.fifo, r.req[3])
	r.offerAgain()
	if len(r.req) != 1 || len(r.retx) != 0 {
		t.Fatalf("after an arrival: %d outstanding, %d to ask again", len(r.req), len(r.retx))
	}
}
