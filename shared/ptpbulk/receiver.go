package ptpbulk

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/probekit/probekit/shared/ptp"
)

// RecvConfig configures Receive.
type RecvConfig struct {
	// Dir is where the file goes (the --accept-dir).
	Dir string
	// Idle ends the transfer when the sender is silent this long (default 15 s).
	Idle time.Duration
	// MaxWindow caps the blocks requested and not yet received (default 4096).
	MaxWindow int
	// Progress, if set, is called about every ProgressEvery (default 1 s) and at the end.
	Progress      func(Progress)
	ProgressEvery time.Duration
	// Checkpoint is how often the record of received blocks is saved for a resume (default
	// 200 ms): after a crash at most that much is asked again.
	Checkpoint time.Duration
	// Overwrite allows replacing an existing file of the offered name.
	Overwrite bool
}

// rtt estimator and window constants (RFC 6298 with a 10 ms floor; the initial window is 10
// blocks, as TCP's IW10).
const (
	minRTO     = 2 * queueSlack // above the queue the window cap allows plus scheduling stalls of a loaded host (30 ms fired hundreds of times per 20 MB on a loss-free path at load 10); RACK finds most losses first
	maxRTO     = 5 * time.Second
	initRTO    = 500 * time.Millisecond
	initWindow = 10
	minWindow  = 2
	// The window is capped at the fastest delivery rate seen lately times (minimum RTT +
	// queueSlack): enough in flight to ride over the scheduling stalls of a loaded host, but
	// no deeper queue than that in front of a sender that is slower than the path (a CPU-starved
	// process, or --rate), where a slow start that never sees a loss grew the window to
	// thousands of blocks, the RTT to seconds and the timeouts to thousands.
	queueSlack = 50 * time.Millisecond
	rateBin    = 100 * time.Millisecond // delivery rate per bin of this length (shorter bins see the bursts after a stall)
	rateBins   = 10                     // max filter over this many bins (a second)
	capFloor   = 64                     // blocks: the cap never goes below
	// beta is the multiplicative decrease on a loss event: CUBIC's 0.7 (RFC 9438 §4.6) rather
	// than Reno's 0.5, since the paths this runs over (home NATs, relays) lose packets at
	// random as well as from congestion.
	beta = 0.7
)

type inflight struct {
	block uint32
	at    time.Time
	tries int
}

type receiver struct {
	cfg      RecvConfig
	p        Path
	offer    ptp.BulkOffer
	size     int64
	nblocks  int
	have     []bool
	asks     []uint8 // requests per block in this run
	nhave    int
	firstGap uint32
	req      map[uint32]*inflight // requested, not arrived
	fifo     []*inflight          // requests in time order (stale entries skipped)
	retx     []uint32             // blocks to ask again first
	next     uint32               // lowest block never asked in this run
	cwnd     float64
	ssthresh float64
	srtt     time.Duration
	rttvar   time.Duration
	rto      time.Duration
	rttMin   time.Duration
	rackTime time.Time     // request time of the newest request whose block arrived
	reoMult  time.Duration // reordering window in quarters of SRTT, raised by spurious re-requests
	recovery time.Time     // losses of requests made before this are one event
	undo     float64       // the window before the last reduction, restored if it proves spurious
	binStart time.Time     // delivery-rate bin: start and blocks arrived in it
	binCount int
	rates    [rateBins]float64 // blocks/s of the last bins
	rateIdx  int
	f        *os.File
	tmp      string
	state    string
	rep      Report
	release  func([]byte) // gives a frame back to the path
}

// Receive waits for an offer on p, takes the file into cfg.Dir, and returns the report. The
// file appears under its offered name only complete and verified.
func Receive(ctx context.Context, p Path, cfg RecvConfig) (Report, error) {
	if cfg.Idle <= 0 {
		cfg.Idle = 15 * time.Second
	}
	if cfg.MaxWindow <= 0 {
		cfg.MaxWindow = 4096
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = time.Second
	}
	if cfg.Checkpoint <= 0 {
		cfg.Checkpoint = 200 * time.Millisecond
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	frames, release := inbox(rctx, p, 4096)
	r := &receiver{cfg: cfg, p: p, release: release, req: map[uint32]*inflight{}, cwnd: initWindow, ssthresh: 1e9, rto: initRTO, reoMult: 1}
	r.rep.Role = "receive"
	var fr frame
	// Wait for the offer.
	idle := time.NewTimer(cfg.Idle)
	defer idle.Stop()
	for r.f == nil {
		select {
		case <-ctx.Done():
			return r.rep, ctx.Err()
		case <-idle.C:
			return r.rep, fmt.Errorf("%w: no offer in %s", ErrTimeout, cfg.Idle)
		case b, ok := <-frames:
			if !ok {
				if ctx.Err() != nil {
					return r.rep, ctx.Err()
				}
				return r.rep, errors.New("ptpbulk: path closed")
			}
			if parseFrame(b, &fr) != nil || fr.offer == nil {
				release(b)
				continue
			}
			release(b) // the offer was copied
			if err := r.open(*fr.offer); err != nil {
				sendDone(p, fr.offer.ID, ptp.BulkRefused, err.Error())
				return r.rep, fmt.Errorf("%w: %v", ErrRefused, err)
			}
		}
	}
	defer func() {
		if r.f != nil {
			r.f.Close()
		}
	}()
	return r.run(ctx, frames)
}

// open validates the offer and opens (or resumes) the temporary file.
func (r *receiver) open(o ptp.BulkOffer) error {
	name := o.Name
	if name == "" || name != filepath.Base(name) || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") ||
		strings.HasPrefix(name, ".") {
		return fmt.Errorf("unacceptable file name %q", o.Name)
	}
	if o.Block != BlockSize {
		return fmt.Errorf("block size %d, want %d", o.Block, BlockSize)
	}
	if o.Size > 1<<40 {
		return fmt.Errorf("file of %d bytes is too large", o.Size)
	}
	r.offer, r.size, r.nblocks = o, int64(o.Size), blocks(int64(o.Size))
	r.rep.Name, r.rep.Size, r.rep.SHA256 = name, r.size, hex.EncodeToString(o.SHA256[:])
	r.rep.File = filepath.Join(r.cfg.Dir, name)
	if _, err := os.Lstat(r.rep.File); err == nil && !r.cfg.Overwrite {
		return fmt.Errorf("%s exists", r.rep.File)
	}
	// The partial file is named after the content, so a resume finds it and a different
	// file of the same name never mixes with it.
	r.tmp = filepath.Join(r.cfg.Dir, "."+name+"."+r.rep.SHA256[:16]+".part")
	r.state = r.tmp + ".have"
	r.have = make([]bool, r.nblocks)
	r.asks = make([]uint8, r.nblocks)
	if st, err := os.ReadFile(r.state); err == nil && r.loadState(st) {
		f, err := os.OpenFile(r.tmp, os.O_RDWR, 0o600)
		if err == nil {
			if fi, err := f.Stat(); err == nil && fi.Size() == r.size {
				r.f = f
				r.rep.Resumed = min(int64(r.nhave)*BlockSize, r.size)
				if r.nhave > 0 && r.have[r.nblocks-1] {
					r.rep.Resumed -= BlockSize - int64(blockLen(r.size, uint32(r.nblocks-1)))
				}
				return nil
			}
			f.Close()
		}
		r.have, r.nhave = make([]bool, r.nblocks), 0
	}
	f, err := os.OpenFile(r.tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := f.Truncate(r.size); err != nil {
		f.Close()
		return err
	}
	r.f = f
	return r.saveState()
}

// The resume record: "PKBULK1\n", size u64, sha256, then one bit per block.
const stateMagic = "PKBULK1\n"

func (r *receiver) saveState() error {
	b := make([]byte, 0, len(stateMagic)+40+r.nblocks/8+1)
	b = append(b, stateMagic...)
	b = binary.BigEndian.AppendUint64(b, uint64(r.size))
	b = append(b, r.offer.SHA256[:]...)
	bits := make([]byte, (r.nblocks+7)/8)
	for k, h := range r.have {
		if h {
			bits[k/8] |= 1 << (k % 8)
		}
	}
	b = append(b, bits...)
	tmp := r.state + ".new"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, r.state)
}

func (r *receiver) loadState(b []byte) bool {
	if len(b) != len(stateMagic)+40+(r.nblocks+7)/8 || string(b[:len(stateMagic)]) != stateMagic {
		return false
	}
	b = b[len(stateMagic):]
	if binary.BigEndian.Uint64(b) != uint64(r.size) || [32]byte(b[8:40]) != r.offer.SHA256 {
		return false
	}
	for k := range r.have {
		if b[40+k/8]&(1<<(k%8)) != 0 {
			r.have[k] = true
			r.nhave++
		}
	}
	for r.firstGap < uint32(r.nblocks) && r.have[r.firstGap] {
		r.firstGap++
	}
	return true
}

func (r *receiver) run(ctx context.Context, frames <-chan []byte) (Report, error) {
	start := time.Now()
	lastHeard := start
	nextProgress := start.Add(r.cfg.ProgressEvery)
	nextCheckpoint := start.Add(r.cfg.Checkpoint)
	var fr frame
	reqBuf := make([]byte, 0, 1400)
	progress := func() {
		if r.cfg.Progress != nil {
			el := time.Since(start)
			r.cfg.Progress(Progress{Role: "receive", Name: r.rep.Name, Size: r.size, Done: r.doneBytes(), Elapsed: el,
				GoodputBps: float64(r.rep.Moved) / el.Seconds(), Retransmits: r.rep.Retransmits, RTT: r.srtt, Window: int(r.cwnd)})
		}
	}
	finish := func(err error) (Report, error) {
		r.rep.Duration = time.Since(start)
		if r.rep.Duration > 0 {
			r.rep.GoodputBps = float64(r.rep.Moved) / r.rep.Duration.Seconds()
		}
		r.rep.RTTMin, r.rep.RTTAvg = r.rttMin, r.srtt
		progress()
		return r.rep, err
	}
	for r.nhave < r.nblocks {
		now := time.Now()
		r.detectLosses(now)
		if reqBuf = r.fill(now, reqBuf[:0]); len(reqBuf) > 0 {
			if err := r.p.Send(reqBuf); err != nil {
				return finish(fmt.Errorf("ptpbulk: send: %w", err))
			}
		}
		if now.Sub(lastHeard) > r.cfg.Idle {
			r.saveState()
			return finish(fmt.Errorf("%w (%s)", ErrTimeout, r.cfg.Idle))
		}
		if !now.Before(nextCheckpoint) {
			if err := r.saveState(); err != nil {
				return finish(fmt.Errorf("ptpbulk: %w", err))
			}
			nextCheckpoint = now.Add(r.cfg.Checkpoint)
		}
		if !now.Before(nextProgress) {
			progress()
			nextProgress = now.Add(r.cfg.ProgressEvery)
		}
		wait := r.nextDeadline(now)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			r.saveState()
			sendDone(r.p, r.offer.ID, ptp.BulkCancelled, "receiver stopped")
			return finish(ctx.Err())
		case b, ok := <-frames:
			t.Stop()
			if !ok { // the pump stops when ctx ends, so this may be a cancellation
				r.saveState()
				if ctx.Err() != nil {
					sendDone(r.p, r.offer.ID, ptp.BulkCancelled, "receiver stopped")
					return finish(ctx.Err())
				}
				return finish(errors.New("ptpbulk: path closed"))
			}
			// Take everything queued before deciding what to ask next.
			for {
				if err := parseFrame(b, &fr); err == nil {
					if fr.done != nil && fr.done.ID == r.offer.ID && fr.done.Status != ptp.BulkOK {
						r.saveState()
						return finish(fmt.Errorf("%w: %s", ErrCanceled, fr.done.Text))
					}
					if fr.offer != nil && fr.offer.ID == r.offer.ID {
						r.offerAgain()
					}
					for _, d := range fr.data {
						if d.hdr.ID == r.offer.ID {
							lastHeard = time.Now()
							if err := r.arrive(d, lastHeard); err != nil {
								return finish(err)
							}
						}
					}
				}
				r.release(b)
				select {
				case b, ok = <-frames:
					if ok {
						continue
					}
				default:
				}
				break
			}
		case <-t.C:
		}
	}
	// Everything arrived: verify, then put the file in place atomically.
	if _, err := r.f.Seek(0, io.SeekStart); err != nil {
		return finish(fmt.Errorf("ptpbulk: %w", err))
	}
	h := sha256.New()
	if _, err := io.Copy(h, r.f); err != nil {
		return finish(fmt.Errorf("ptpbulk: verify: %w", err))
	}
	if [32]byte(h.Sum(nil)) != r.offer.SHA256 {
		r.f.Close()
		r.f = nil
		os.Remove(r.tmp)
		os.Remove(r.state)
		r.linger(ctx, frames, ptp.BulkMismatch, "SHA-256 mismatch")
		return finish(fmt.Errorf("%w: got %x", ErrMismatch, h.Sum(nil)))
	}
	if err := r.f.Sync(); err != nil {
		return finish(fmt.Errorf("ptpbulk: sync: %w", err))
	}
	r.f.Close()
	r.f = nil
	if err := os.Rename(r.tmp, r.rep.File); err != nil {
		return finish(fmt.Errorf("ptpbulk: %w", err))
	}
	if d, err := os.Open(r.cfg.Dir); err == nil { // make the rename durable
		d.Sync()
		d.Close()
	}
	os.Remove(r.state)
	r.rep.OK = true
	rep, err := finish(nil)
	r.linger(ctx, frames, ptp.BulkOK, "")
	return rep, err
}

// linger tells the sender the outcome three times (0, 100 and 300 ms: the sender, having
// served every block, sends nothing more that would prompt us), and again whenever it still
// sends, until it has been silent for a second.
func (r *receiver) linger(ctx context.Context, frames <-chan []byte, status uint8, text string) {
	sendDone(r.p, r.offer.ID, status, text)
	quiet := time.NewTimer(time.Second)
	defer quiet.Stop()
	repeat := time.NewTicker(100 * time.Millisecond)
	defer repeat.Stop()
	repeats, last := 0, time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-quiet.C:
			return
		case <-repeat.C:
			if repeats++; repeats == 1 || repeats == 3 {
				sendDone(r.p, r.offer.ID, status, text)
			}
		case b, ok := <-frames:
			if !ok {
				return
			}
			r.release(b)
			if time.Since(last) > 20*time.Millisecond {
				sendDone(r.p, r.offer.ID, status, text)
				last = time.Now()
			}
			quiet.Reset(time.Second)
		}
	}
}

func (r *receiver) doneBytes() int64 {
	n := int64(r.nhave) * BlockSize
	if r.nblocks > 0 && r.have[r.nblocks-1] {
		n -= BlockSize - int64(blockLen(r.size, uint32(r.nblocks-1)))
	}
	return n
}

// arrive stores a block and updates the RTT estimate and the window.
func (r *receiver) arrive(d block, now time.Time) error {
	k := d.hdr.Block
	if int(k) >= r.nblocks || len(d.b) != blockLen(r.size, k) {
		return nil // not a block of this file: ignore
	}
	in := r.req[k]
	if r.have[k] {
		r.rep.Duplicates++
		// A block asked again arrived twice: the first copy was late, not lost. Widen the
		// reordering window (RFC 8985 §6.2 does the same on DSACK), up to one SRTT.
		if r.asks[k] > 1 {
			r.spurious()
		}
		return nil
	}
	if _, err := r.f.WriteAt(d.b, int64(k)*BlockSize); err != nil {
		return fmt.Errorf("ptpbulk: write: %w", err)
	}
	r.have[k] = true
	r.nhave++
	r.rep.Moved += int64(len(d.b))
	for r.firstGap < uint32(r.nblocks) && r.have[r.firstGap] {
		r.firstGap++
	}
	if in == nil {
		if r.asks[k] > 0 {
			// Declared lost (and not asked again yet), then it came: the loss was spurious.
			r.spurious()
		}
		return nil // else an answer to a request of an earlier run
	}
	delete(r.req, k)
	if in.at.After(r.rackTime) {
		r.rackTime = in.at
	}
	if in.tries == 1 { // Karn: only unambiguous samples
		r.sample(now.Sub(in.at))
	}
	if r.cwnd < r.ssthresh {
		r.cwnd++
	} else {
		r.cwnd += 1 / r.cwnd
	}
	r.delivered(now)
	r.cwnd = min(r.cwnd, float64(r.cfg.MaxWindow), r.rateCap())
	r.rep.MaxWindow = max(r.rep.MaxWindow, int(r.cwnd))
	return nil
}

// delivered counts a new block into the delivery-rate bins.
func (r *receiver) delivered(now time.Time) {
	if r.binStart.IsZero() {
		r.binStart = now
	}
	r.binCount++
	if d := now.Sub(r.binStart); d >= rateBin {
		r.rates[r.rateIdx%rateBins] = float64(r.binCount) / d.Seconds()
		r.rateIdx++
		r.binStart, r.binCount = now, 0
	}
}

// rateCap is the window the recent delivery rate needs: max rate × (min RTT + queueSlack),
// at least capFloor; no cap before the first bin.
func (r *receiver) rateCap() float64 {
	m := 0.0
	for _, x := range r.rates {
		m = max(m, x)
	}
	if m == 0 {
		return float64(r.cfg.MaxWindow)
	}
	return max(capFloor, m*(r.rttMin+queueSlack).Seconds())
}

// spurious handles a block declared lost that arrived after all: the reordering window widens
// (RFC 8985 §6.2 does so on DSACK, up to one SRTT) and the window reduction it caused is undone
// (as TCP does after a spurious retransmission, RFC 3522).
func (r *receiver) spurious() {
	if r.reoMult < 4 {
		r.reoMult++
	}
	if r.undo > r.cwnd {
		r.cwnd, r.ssthresh = r.undo, max(r.ssthresh, r.undo)
	}
	r.undo = 0
}

// sample updates SRTT, RTTVAR and RTO (RFC 6298 §2).
func (r *receiver) sample(rtt time.Duration) {
	if r.rttMin == 0 || rtt < r.rttMin {
		r.rttMin = rtt
	}
	if r.srtt == 0 {
		r.srtt, r.rttvar = rtt, rtt/2
	} else {
		d := r.srtt - rtt
		if d < 0 {
			d = -d
		}
		r.rttvar = (3*r.rttvar + d) / 4
		r.srtt = (7*r.srtt + rtt) / 8
	}
	r.rto = min(max(r.srtt+4*r.rttvar, minRTO), maxRTO)
}

// detectLosses marks requests lost: those older than a later request that was answered, by
// more than a quarter of the RTT (RACK, RFC 8985, which tolerates reordering), and those older
// than the RTO. One window reduction (×beta) per round trip.
func (r *receiver) detectLosses(now time.Time) {
	reo := r.srtt / 4 * r.reoMult
	for len(r.fifo) > 0 {
		in := r.fifo[0]
		if cur, ok := r.req[in.block]; !ok || cur != in {
			r.fifo = r.fifo[1:] // arrived or asked again
			continue
		}
		timeout := now.Sub(in.at) >= r.rto
		rack := in.at.Before(r.rackTime) && now.Sub(in.at) >= r.srtt+reo
		if !timeout && !rack {
			break
		}
		r.fifo = r.fifo[1:]
		delete(r.req, in.block)
		r.retx = append(r.retx, in.block)
		if timeout {
			r.rep.Timeouts++
		}
		if !in.at.Before(r.recovery) {
			// Before anything has arrived in this run the requests went out before the client
			// had a path to the sender (dropped unsent), not into a congested path: the window
			// stays. Cutting it here left the whole transfer in congestion avoidance from a few
			// blocks (linear growth: a window of about 180 blocks after 20 MB).
			if r.srtt > 0 {
				r.undo = r.cwnd
				r.ssthresh = max(r.cwnd*beta, minWindow)
				r.cwnd = r.ssthresh
			}
			r.recovery = now
			if timeout {
				r.rto = min(2*r.rto, maxRTO)
			}
		}
	}
}

// offerAgain handles a repeated offer: the sender repeats it (every 200 ms) until a request
// reaches it, so before any block has arrived it means our requests were lost (typically sent
// before the client had a path to the sender). They are asked again at once, instead of after
// the initial RTO (500 ms: a fifth of a 20 MB transfer at 100 Mbit/s), and the window stays.
func (r *receiver) offerAgain() {
	if r.srtt != 0 || r.rep.Moved > 0 {
		return
	}
	for _, in := range r.fifo {
		if cur, ok := r.req[in.block]; ok && cur == in {
			delete(r.req, in.block)
			r.retx = append(r.retx, in.block)
		}
	}
	r.fifo = r.fifo[:0]
}

// fill asks for blocks while the window has room: lost ones first, then new ones.
func (r *receiver) fill(now time.Time, out []byte) []byte {
	room := int(r.cwnd) - len(r.req)
	if room <= 0 {
		return out
	}
	var want []uint32
	for room > 0 && len(r.retx) > 0 {
		k := r.retx[0]
		r.retx = r.retx[1:]
		if r.have[k] {
			continue
		}
		if _, ok := r.req[k]; ok {
			continue
		}
		want = append(want, k)
		r.rep.Retransmits++
		room--
	}
	for room > 0 && int(r.next) < r.nblocks {
		k := r.next
		r.next++
		if r.have[k] {
			continue
		}
		want = append(want, k)
		room--
	}
	if len(want) == 0 {
		return out
	}
	for _, k := range want {
		if r.asks[k] < 255 {
			r.asks[k]++
		}
		in := &inflight{block: k, at: now, tries: int(r.asks[k])}
		r.req[k] = in
		r.fifo = append(r.fifo, in)
	}
	// Ranges of consecutive blocks, BulkRangesMax per TLV.
	var ranges []ptp.BulkRange
	for _, k := range want {
		if n := len(ranges); n > 0 && ranges[n-1].Start+uint32(ranges[n-1].Count) == k && ranges[n-1].Count < 0xffff {
			ranges[n-1].Count++
			continue
		}
		ranges = append(ranges, ptp.BulkRange{Start: k, Count: 1})
	}
	for len(ranges) > 0 {
		n := min(len(ranges), ptp.BulkRangesMax)
		req := ptp.BulkReq{ID: r.offer.ID, Have: r.firstGap, Ranges: ranges[:n]}
		out = appendTLV(out, ptp.TypeBulkReq, req.AppendTo)
		ranges = ranges[n:]
		if len(out) > 1100 && len(ranges) > 0 {
			// One datagram is enough per round; the rest goes in the next.
			if err := r.p.Send(out); err != nil {
				return out[:0]
			}
			out = out[:0]
		}
	}
	return out
}

// nextDeadline is how long to wait for frames before looking at losses again.
func (r *receiver) nextDeadline(now time.Time) time.Duration {
	d := 50 * time.Millisecond
	for _, in := range r.fifo {
		if cur, ok := r.req[in.block]; ok && cur == in {
			d = min(d, max(in.at.Add(r.rto).Sub(now), time.Millisecond))
			if in.at.Before(r.rackTime) {
				d = min(d, max(in.at.Add(r.srtt+r.srtt/4*r.reoMult).Sub(now), time.Millisecond))
			}
			break
		}
	}
	if len(r.retx) > 0 && int(r.cwnd) > len(r.req) {
		d = time.Millisecond
	}
	return d
}
