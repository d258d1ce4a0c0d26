package spp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/probekit/probekit/spp/internal/engine"
)

// batchSize bounds the events handed from a source goroutine to the engine at once;
// batchDelay bounds how long an event waits in a partial batch, so pairs of live traffic
// are printed promptly.
const (
	batchSize  = 256
	batchDelay = 20 * time.Millisecond
)

// batch carries events of one point from its source goroutine to the engine.
type batch struct {
	p    engine.Point
	evs  []event
	done bool  // the source has ended
	err  error // why, when it failed
}

// feeder collects one source's events into batches, recycling them through free so that
// steady-state operation allocates nothing.
type feeder struct {
	p     engine.Point
	out   chan<- *batch
	free  chan *batch
	cur   *batch
	start time.Time
}

func (f *feeder) get() *batch {
	select {
	case b := <-f.free:
		b.evs, b.done, b.err = b.evs[:0], false, nil
		b.p = f.p
		return b
	default:
		return &batch{p: f.p, evs: make([]event, 0, batchSize)}
	}
}

func (f *feeder) add(ev event) {
	if f.cur == nil {
		f.cur = f.get()
		f.start = time.Now()
	}
	f.cur.evs = append(f.cur.evs, ev)
	if len(f.cur.evs) >= batchSize {
		f.flush()
	}
}

// flushIfOld hands over a partial batch that has waited batchDelay.
func (f *feeder) flushIfOld(now time.Time) {
	if f.cur != nil && now.Sub(f.start) >= batchDelay {
		f.flush()
	}
}

func (f *feeder) flush() {
	if f.cur != nil {
		f.out <- f.cur
		f.cur = nil
	}
}

// finish flushes and reports the end of the source (err nil or io.EOF for a normal end).
func (f *feeder) finish(err error) {
	f.flush()
	b := f.get()
	b.done = true
	if err != io.EOF {
		b.err = err
	}
	f.out <- b
}

// producer is a source run in its own goroutine (live interface, remote slave, or a file
// next to one of those); it returns when its input ends or ctx is cancelled.
type producer interface {
	produce(ctx context.Context, f *feeder) error
	stats() *pointStats
	name() string
	close() // releases the input when produce never ran
}

// runLive runs the master with at least one live or remote point: each point is read by its
// own goroutine and the engine consumes their batches in arrival order. The run ends when
// both inputs end or ctx is cancelled (SIGINT), after printing every pair formed.
func runLive(ctx context.Context, cfg *Config) error {
	var prods [2]producer
	for p := range prods {
		pt := engine.Point(p)
		pr, err := openProducer(cfg, pt)
		if err != nil {
			if p == 1 {
				prods[0].close()
			}
			return err
		}
		prods[p] = pr
	}
	m := newMaster(cfg)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan *batch, 64)
	free := make(chan *batch, 80)
	var wg sync.WaitGroup
	for p, pr := range prods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := &feeder{p: engine.Point(p), out: ch, free: free}
			if cfg.Verbose&VerbThreads != 0 {
				cfg.Log.WithField("point", f.p).WithField("input", pr.name()).Info("reader started")
			}
			err := pr.produce(sctx, f)
			if sctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
				err = io.EOF
			}
			if err == nil {
				err = io.EOF
			}
			f.finish(err)
			if cfg.Verbose&VerbThreads != 0 {
				cfg.Log.WithField("point", f.p).WithError(err).Info("reader stopped")
			}
		}()
	}
	defer func() {
		cancel()
		// Drain so no reader blocks on a full channel while stopping.
		go func() {
			for range ch {
			}
		}()
		wg.Wait()
		close(ch)
	}()
	var tick <-chan time.Time
	if cfg.Verbose&VerbQueues != 0 {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		tick = t.C
	}
	stats := [2]*pointStats{prods[0].stats(), prods[1].stats()}
	names := [2]string{prods[0].name(), prods[1].name()}
	open := 2
	var failure error
	for open > 0 {
		select {
		case b := <-ch:
			for _, ev := range b.evs {
				m.add(b.p, ev)
			}
			if b.done {
				open--
				if b.err != nil && failure == nil {
					failure = fmt.Errorf("%s: %w", b.p, b.err)
					cancel()
				}
				m.eng.Close(b.p)
			}
			select {
			case free <- b:
			default:
			}
			m.w.Flush()
		case <-tick:
			m.logQueues()
		}
	}
	err := m.finish(stats, names)
	if failure != nil {
		return failure
	}
	if ctx.Err() != nil {
		// Interrupting a live run is its normal end; everything formed has been printed.
		if errors.Is(err, ErrNoTraffic) {
			return err
		}
		return nil
	}
	return err
}

func openProducer(cfg *Config, p engine.Point) (producer, error) {
	file, iface, remote := cfg.RefFile, cfg.RefIface, cfg.RefRemote
	if p == engine.Mon {
		file, iface, remote = cfg.MonFile, cfg.MonIface, cfg.MonRemote
	}
	c, err := newClassifier(cfg, p)
	if err != nil {
		return nil, err
	}
	switch {
	case file != "":
		s, err := openFile(file, c)
		if err != nil {
			return nil, err
		}
		return &fileProducer{s}, nil
	case iface != "":
		return openLive(cfg, iface, c)
	default:
		return openRemote(cfg, remote, c)
	}
}

// fileProducer reads a capture file in its own goroutine.
type fileProducer struct{ s *fileSource }

func (fp *fileProducer) stats() *pointStats { return &fp.s.stats }
func (fp *fileProducer) close()             { fp.s.close() }
func (fp *fileProducer) name() string       { return fp.s.name }

func (fp *fileProducer) produce(ctx context.Context, f *feeder) error {
	defer fp.s.close()
	for i := 0; ; i++ {
		ev, err := fp.s.next()
		if err != nil {
			return err
		}
		f.add(ev)
		if i&0xfff == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// prefetch runs a producer in its own goroutine and hands its events out one by one, in
// order; the channel's capacity bounds how far the producer reads ahead.
type prefetch struct {
	ch   chan *batch
	free chan *batch
	cur  *batch
	i    int
	wg   sync.WaitGroup
	once sync.Once
}

func startPrefetch(ctx context.Context, p engine.Point, pr producer) *prefetch {
	f := &prefetch{ch: make(chan *batch, 4), free: make(chan *batch, 8)}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		fd := &feeder{p: p, out: f.ch, free: f.free}
		err := pr.produce(ctx, fd)
		if err == nil {
			err = io.EOF
		}
		fd.finish(err)
	}()
	return f
}

// next returns the next event, io.EOF at the end, or the producer's error (a cancelled
// context ends the stream with context.Canceled).
func (f *prefetch) next() (event, error) {
	for f.cur == nil || f.i >= len(f.cur.evs) {
		if f.cur != nil {
			if f.cur.done {
				if f.cur.err != nil {
					return event{}, f.cur.err
				}
				return event{}, io.EOF
			}
			select {
			case f.free <- f.cur:
			default:
			}
		}
		f.cur = <-f.ch
		f.i = 0
	}
	ev := f.cur.evs[f.i]
	f.i++
	return ev, nil
}

// stop waits for the producer goroutine after its context was cancelled (idempotent).
func (f *prefetch) stop() {
	f.once.Do(func() {
		go func() {
			for range f.ch {
			}
		}()
		f.wg.Wait()
		close(f.ch)
	})
}
