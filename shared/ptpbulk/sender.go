package ptpbulk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/probekit/probekit/shared/ptp"
)

// SendConfig configures Send.
type SendConfig struct {
	File string
	ID   uint32 // transfer id, chosen by the caller (random)
	// Rate caps the block bytes sent per second (0: no cap).
	Rate float64
	// Idle ends the transfer when the receiver is silent this long (default 15 s).
	Idle time.Duration
	// Progress, if set, is called about every ProgressEvery (default 1 s) and at the end.
	Progress      func(Progress)
	ProgressEvery time.Duration
	// QueueMax bounds blocks waiting to be sent (default 8192); requests beyond are dropped
	// and asked again by the receiver, which reads that as congestion.
	QueueMax int
}

// Send offers cfg.File to the peer at the other end of p and serves its requests until it
// reports the outcome.
func Send(ctx context.Context, p Path, cfg SendConfig) (Report, error) {
	if cfg.Idle <= 0 {
		cfg.Idle = 15 * time.Second
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = time.Second
	}
	if cfg.QueueMax <= 0 {
		cfg.QueueMax = 8192
	}
	f, err := os.Open(cfg.File)
	if err != nil {
		return Report{}, fmt.Errorf("ptpbulk: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	size, err := io.Copy(h, f)
	if err != nil {
		return Report{}, fmt.Errorf("ptpbulk: read %s: %w", cfg.File, err)
	}
	offer := ptp.BulkOffer{ID: cfg.ID, Size: uint64(size), Block: BlockSize, Name: filepath.Base(cfg.File)}
	copy(offer.SHA256[:], h.Sum(nil))
	rep := Report{Role: "send", Name: offer.Name, Size: size, SHA256: hex.EncodeToString(offer.SHA256[:])}
	nblocks := blocks(size)

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	frames, release := inbox(rctx, p, 1024)

	queued := make([]bool, nblocks) // in queue
	sentOnce := make([]bool, nblocks)
	queue := make([]uint32, 0, cfg.QueueMax)
	start := time.Now()
	lastHeard := start
	gotReq := false
	offerFrame := appendTLV(nil, ptp.TypeBulkOffer, offer.AppendTo)
	nextOffer := start
	nextProgress := start.Add(cfg.ProgressEvery)
	pace := newPacer(cfg.Rate, start)
	buf := make([]byte, BlockSize)
	out := make([]byte, 0, 2048)
	var fr frame
	var have uint32
	progress := func() {
		if cfg.Progress != nil {
			el := time.Since(start)
			cfg.Progress(Progress{Role: "send", Name: offer.Name, Size: size, Done: min(int64(have)*BlockSize, size),
				Elapsed: el, GoodputBps: float64(min(int64(have)*BlockSize, size)) / el.Seconds(), Retransmits: rep.Retransmits})
		}
	}
	finish := func(err error) (Report, error) {
		rep.Duration = time.Since(start)
		if rep.Duration > 0 {
			rep.GoodputBps = float64(rep.Moved) / rep.Duration.Seconds()
		}
		progress()
		return rep, err
	}
	handle := func(b []byte) error {
		if err := parseFrame(b, &fr); err != nil {
			return nil // counted nowhere: garbage from the path is not the peer's fault
		}
		if fr.done != nil && fr.done.ID == cfg.ID {
			switch fr.done.Status {
			case ptp.BulkOK:
				rep.OK = true
				return errDone
			case ptp.BulkMismatch:
				return fmt.Errorf("%w: %s", ErrMismatch, fr.done.Text)
			case ptp.BulkRefused:
				return fmt.Errorf("%w: %s", ErrRefused, fr.done.Text)
			default:
				return fmt.Errorf("%w: %s", ErrCanceled, fr.done.Text)
			}
		}
		for _, r := range fr.reqs {
			if r.ID != cfg.ID {
				continue
			}
			gotReq = true
			lastHeard = time.Now()
			have = max(have, min(r.Have, uint32(nblocks)))
			for _, g := range r.Ranges {
				for k := uint64(g.Start); k < uint64(g.Start)+uint64(g.Count) && k < uint64(nblocks); k++ {
					if queued[k] {
						continue
					}
					if len(queue) >= cfg.QueueMax {
						rep.QueueDrops++
						continue
					}
					queued[k] = true
					queue = append(queue, uint32(k))
				}
			}
		}
		return nil
	}
	for {
		now := time.Now()
		if !gotReq && !now.Before(nextOffer) {
			if err := p.Send(offerFrame); err != nil {
				return finish(fmt.Errorf("ptpbulk: send: %w", err))
			}
			nextOffer = now.Add(200 * time.Millisecond)
		}
		if now.Sub(lastHeard) > cfg.Idle {
			return finish(fmt.Errorf("%w (%s)", ErrTimeout, cfg.Idle))
		}
		if !now.Before(nextProgress) {
			progress()
			nextProgress = now.Add(cfg.ProgressEvery)
		}
		// Serve the queue as fast as the pacer allows, reading new requests in between.
		for len(queue) > 0 {
			wait := pace.wait(time.Now())
			if wait > 0 {
				break
			}
			k := queue[0]
			queue = queue[1:]
			queued[k] = false
			n := blockLen(size, k)
			if _, err := f.ReadAt(buf[:n], int64(k)*BlockSize); err != nil {
				return finish(fmt.Errorf("ptpbulk: read %s: %w", cfg.File, err))
			}
			out = appendData(out[:0], cfg.ID, k, buf[:n])
			if err := p.Send(out); err != nil {
				return finish(fmt.Errorf("ptpbulk: send: %w", err))
			}
			pace.sent(n, time.Now())
			rep.SentBytes += int64(n)
			if sentOnce[k] {
				rep.Retransmits++
			} else {
				sentOnce[k] = true
				rep.Moved += int64(n)
			}
			// Take waiting requests without blocking, so re-requests jump no queue.
			select {
			case b := <-frames:
				if err := handle(b); err != nil {
					return finishWith(err, finish)
				}
				release(b)
			default:
			}
		}
		var timer <-chan time.Time
		switch {
		case len(queue) > 0:
			timer = time.After(max(pace.wait(time.Now()), 50*time.Microsecond))
		case !gotReq:
			timer = time.After(time.Until(nextOffer))
		default:
			timer = time.After(min(cfg.ProgressEvery, cfg.Idle/4))
		}
		select {
		case <-ctx.Done():
			sendDone(p, cfg.ID, ptp.BulkCancelled, "sender stopped")
			return finish(ctx.Err())
		case b, ok := <-frames:
			if !ok {
				if ctx.Err() != nil {
					sendDone(p, cfg.ID, ptp.BulkCancelled, "sender stopped")
					return finish(ctx.Err())
				}
				return finish(fmt.Errorf("ptpbulk: path closed"))
			}
			if err := handle(b); err != nil {
				return finishWith(err, finish)
			}
			release(b)
		case <-timer:
		}
	}
}

var errDone = fmt.Errorf("done")

func finishWith(err error, finish func(error) (Report, error)) (Report, error) {
	if err == errDone {
		return finish(nil)
	}
	return finish(err)
}

func sendDone(p Path, id uint32, status uint8, text string) {
	d := ptp.BulkDone{ID: id, Status: status, Text: text}
	_ = p.Send(appendTLV(nil, ptp.TypeBulkDone, d.AppendTo))
}

// pump moves frames from the path to ch until ctx ends.
func pump(ctx context.Context, p Path, ch chan<- []byte) {
	defer close(ch)
	for {
		b, err := p.Recv(ctx)
		if err != nil {
			return
		}
		select {
		case ch <- b:
		case <-ctx.Done():
			return
		}
	}
}

func blocks(size int64) int { return int((size + BlockSize - 1) / BlockSize) }

func blockLen(size int64, k uint32) int {
	return int(min(int64(BlockSize), size-int64(k)*BlockSize))
}

// pacer keeps the bytes sent in any interval at or below rate × its length plus two blocks:
// each send moves the next allowed time on by its size/rate, so a short oversleep is caught
// up, but idle time earns no credit beyond two blocks.
type pacer struct {
	rate float64
	next time.Time
}

func newPacer(rate float64, start time.Time) *pacer { return &pacer{rate: rate, next: start} }

func (p *pacer) wait(now time.Time) time.Duration {
	if p.rate <= 0 {
		return 0
	}
	return p.next.Sub(now)
}

func (p *pacer) sent(n int, now time.Time) {
	if p.rate <= 0 {
		return
	}
	d := time.Duration(float64(n) / p.rate * float64(time.Second))
	if floor := now.Add(-2 * d); p.next.Before(floor) {
		p.next = floor
	}
	p.next = p.next.Add(d)
}
