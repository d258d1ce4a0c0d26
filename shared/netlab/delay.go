package netlab

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/florianl/go-nfqueue/v2"
	"github.com/mdlayher/netlink"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// Dist is the distribution of per-packet jitter.
type Dist int

const (
	// Uniform jitter draws the extra delay from [-Jitter, +Jitter] (netem's default).
	Uniform Dist = iota
	// Normal jitter draws it from a normal distribution with standard deviation Jitter.
	Normal
)

func (d Dist) String() string {
	if d == Normal {
		return "normal"
	}
	return "uniform"
}

// Step is one entry of a delay schedule: from At after the impairment was applied, the base
// delay is Delay (until the next step).
type Step struct {
	At    time.Duration
	Delay time.Duration
}

// Impairment is what the router does to one direction of traffic.
type Impairment struct {
	// Delay is added to every packet (the base delay before the first Schedule step).
	Delay time.Duration
	// Jitter spreads the delay per packet according to JitterDist; the delay never goes below 0.
	Jitter     time.Duration
	JitterDist Dist
	// Schedule changes the base delay over time; steps are relative to when the impairment
	// was applied (see PathLab.Epoch).
	Schedule []Step
	// Reorder lets jittered packets overtake each other (each is released at its own time);
	// when false, packets leave in arrival order (a packet waits for its predecessor).
	Reorder bool
	// Loss is the probability (0..1) that a packet is dropped.
	Loss float64
	// RateBps limits the direction to this many bits per second with a tbf qdisc on the
	// router's egress interface (0 = unlimited). RateBurst (bytes) and RateLatency (the most
	// a packet may wait in the tbf queue) default to max(3000, rate/250) and 100 ms.
	RateBps     int64
	RateBurst   int
	RateLatency time.Duration
}

func (imp Impairment) validate() error {
	if imp.Delay < 0 || imp.Jitter < 0 {
		return fmt.Errorf("netlab: negative delay or jitter")
	}
	if imp.Loss < 0 || imp.Loss > 1 {
		return fmt.Errorf("netlab: loss %v outside 0..1", imp.Loss)
	}
	if imp.RateBps < 0 {
		return fmt.Errorf("netlab: negative rate")
	}
	for _, s := range imp.Schedule {
		if s.At < 0 || s.Delay < 0 {
			return fmt.Errorf("netlab: negative schedule step %v", s)
		}
	}
	return nil
}

// DelayerStats counts what a delayer did.
type DelayerStats struct {
	Received, Released, Dropped uint64 // Dropped: by the Loss setting
	VerdictErrors               uint64
	// Stamped counts packets that carried a kernel receive timestamp; their delay is measured
	// from it, which removes the queue-to-user-space latency (RecvLagMax is its worst case).
	Stamped    uint64
	RecvLagMax time.Duration
	// ReleaseLateMax is the worst lateness of a release against its scheduled time.
	ReleaseLateMax time.Duration
}

// spinWindow is how long before a release time the releaser stops sleeping and spins. At
// real-time priority timers wake within tens of µs; a longer spin (300 µs was tried) only
// takes CPU from the kernel's deferred packet processing and lengthened the tail.
const spinWindow = 100 * time.Microsecond

// Delayer holds packets from one NFQUEUE queue and releases (ACCEPTs) them after the
// impairment's delay, or drops them per its loss probability. It is the netem replacement
// (lab.md §2): the router's mangle FORWARD chain sends one direction to one queue.
type Delayer struct {
	nf      *nfqueue.Nfqueue
	log     logrus.FieldLogger
	cancel  context.CancelFunc // the queue binding
	stopRel context.CancelFunc // the releaser
	wg      sync.WaitGroup
	wake    chan struct{}
	base    time.Time

	mu       sync.Mutex
	imp      Impairment
	steps    []Step
	epoch    time.Duration // since base, when imp was applied
	last     time.Duration // release time of the latest FIFO packet
	fifo     []pending
	fifoHead int
	heap     pendingHeap
	rng      *rand.Rand
	stats    DelayerStats
}

type pending struct {
	id uint32
	at time.Duration // release time, since base
}

type pendingHeap []pending

func (h pendingHeap) Len() int           { return len(h) }
func (h pendingHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h pendingHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *pendingHeap) Push(x any)        { *h = append(*h, x.(pending)) }
func (h *pendingHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	*h = old[:len(old)-1]
	return p
}

// DelayerConfig configures StartDelayer.
type DelayerConfig struct {
	// NetNS is the namespace whose queue to bind (nil: the caller's namespace).
	NetNS *os.File
	// Queue is the NFQUEUE number (per namespace).
	Queue uint16
	// MaxQueueLen bounds packets held in the kernel (default 65536); beyond it the kernel drops.
	MaxQueueLen uint32
	Impairment  Impairment
	Log         logrus.FieldLogger
}

// StartDelayer binds the queue and starts releasing packets; Close stops it.
func StartDelayer(cfg DelayerConfig) (*Delayer, error) {
	if err := cfg.Impairment.validate(); err != nil {
		return nil, err
	}
	if cfg.MaxQueueLen == 0 {
		cfg.MaxQueueLen = 65536
	}
	log := cfg.Log
	if log == nil {
		l := logrus.New()
		l.SetOutput(nopWriter{})
		log = l
	}
	nc := &nfqueue.Config{
		NfQueue:      cfg.Queue,
		MaxPacketLen: 0,
		MaxQueueLen:  cfg.MaxQueueLen,
		Copymode:     nfqueue.NfQnlCopyMeta,
		AfFamily:     unix.AF_INET,
		WriteTimeout: time.Second,
	}
	if cfg.NetNS != nil {
		nc.NetNS = int(cfg.NetNS.Fd())
	}
	nf, err := nfqueue.Open(nc)
	if err != nil {
		return nil, fmt.Errorf("netlab delayer: open queue %d: %w", cfg.Queue, err)
	}
	// A burst of queued packets must not overflow the netlink socket: an undelivered packet
	// is lost without a trace, which would look like path loss.
	_ = nf.Con.SetReadBuffer(16 << 20)
	_ = nf.Con.SetOption(netlink.NoENOBUFS, true)
	d := &Delayer{
		nf:   nf,
		log:  log.WithField("queue", cfg.Queue),
		wake: make(chan struct{}, 1),
		base: time.Now(),
		rng:  rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
	d.setLocked(cfg.Impairment, 0)
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	err = nf.RegisterWithErrorFunc(ctx, d.hook, func(err error) int {
		if ctx.Err() != nil {
			return 1
		}
		var oe *netlink.OpError
		if errors.As(err, &oe) && (oe.Timeout() || oe.Temporary()) {
			return 0
		}
		d.log.WithError(err).Warn("nfqueue receive")
		time.Sleep(time.Millisecond) // do not spin on a persistent error
		return 0
	})
	if err != nil {
		cancel()
		nf.Close()
		return nil, fmt.Errorf("netlab delayer: bind queue %d: %w", cfg.Queue, err)
	}
	relCtx, stopRel := context.WithCancel(context.Background())
	d.stopRel = stopRel
	d.wg.Add(1)
	go d.releaser(relCtx)
	return d, nil
}

func (d *Delayer) now() time.Duration { return time.Since(d.base) }

func (d *Delayer) setLocked(imp Impairment, now time.Duration) {
	d.imp = imp
	d.steps = slices.Clone(imp.Schedule)
	slices.SortStableFunc(d.steps, func(a, b Step) int { return int(a.At - b.At) })
	d.epoch = now
}

// Set replaces the impairment; its schedule restarts now. Packets already held keep their
// release times.
func (d *Delayer) Set(imp Impairment) error {
	if err := imp.validate(); err != nil {
		return err
	}
	d.mu.Lock()
	d.setLocked(imp, d.now())
	d.mu.Unlock()
	return nil
}

// Epoch returns when the current impairment (and so its schedule) started.
func (d *Delayer) Epoch() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.base.Add(d.epoch)
}

// Stats returns the counters so far.
func (d *Delayer) Stats() DelayerStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// delayLocked draws the delay of a packet arriving at now.
func (d *Delayer) delayLocked(now time.Duration) time.Duration {
	delay := d.imp.Delay
	since := now - d.epoch
	for _, s := range d.steps {
		if since < s.At {
			break
		}
		delay = s.Delay
	}
	if j := d.imp.Jitter; j > 0 {
		var x float64
		if d.imp.JitterDist == Normal {
			x = d.rng.NormFloat64()
		} else {
			x = 2*d.rng.Float64() - 1
		}
		delay += time.Duration(x * float64(j))
		if delay < 0 {
			delay = 0
		}
	}
	return delay
}

func (d *Delayer) hook(a nfqueue.Attribute) int {
	if a.PacketID == nil {
		return 0
	}
	id := *a.PacketID
	now := d.now()
	arrival := now
	d.mu.Lock()
	d.stats.Received++
	if a.Timestamp != nil && !a.Timestamp.IsZero() {
		if k := a.Timestamp.Sub(d.base); k <= now && k > now-time.Second {
			arrival = k
			d.stats.Stamped++
			d.stats.RecvLagMax = max(d.stats.RecvLagMax, now-k)
		}
	}
	if d.imp.Loss > 0 && d.rng.Float64() < d.imp.Loss {
		d.stats.Dropped++
		d.mu.Unlock()
		if err := d.nf.SetVerdict(id, nfqueue.NfDrop); err != nil {
			d.countVerdictError(err)
		}
		return 0
	}
	at := arrival + d.delayLocked(arrival)
	var head bool
	if d.imp.Reorder {
		heap.Push(&d.heap, pending{id, at})
		head = d.heap[0].id == id
	} else {
		if at < d.last {
			at = d.last
		}
		d.last = at
		d.fifo = append(d.fifo, pending{id, at})
		head = len(d.fifo)-d.fifoHead == 1
	}
	d.mu.Unlock()
	if head {
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
	return 0
}

func (d *Delayer) countVerdictError(err error) {
	d.mu.Lock()
	d.stats.VerdictErrors++
	n := d.stats.VerdictErrors
	d.mu.Unlock()
	if n <= 3 {
		d.log.WithError(err).Warn("nfqueue verdict")
	}
}

// peekLocked returns the next packet due, across both holding structures (a Set that toggles
// Reorder can leave packets in either).
func (d *Delayer) peekLocked() (pending, bool) {
	var p pending
	ok := false
	if d.fifoHead < len(d.fifo) {
		p, ok = d.fifo[d.fifoHead], true
	}
	if len(d.heap) > 0 && (!ok || d.heap[0].at < p.at) {
		p, ok = d.heap[0], true
	}
	return p, ok
}

func (d *Delayer) popLocked(p pending) {
	if len(d.heap) > 0 && d.heap[0].id == p.id && d.heap[0].at == p.at {
		heap.Pop(&d.heap)
		return
	}
	d.fifo[d.fifoHead] = pending{}
	d.fifoHead++
	if d.fifoHead == len(d.fifo) {
		d.fifo, d.fifoHead = d.fifo[:0], 0
	} else if d.fifoHead > 4096 && d.fifoHead*2 > len(d.fifo) {
		n := copy(d.fifo, d.fifo[d.fifoHead:])
		d.fifo, d.fifoHead = d.fifo[:n], 0
	}
}

func (d *Delayer) releaser(ctx context.Context) {
	defer d.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		d.mu.Lock()
		p, ok := d.peekLocked()
		if !ok {
			d.mu.Unlock()
			select {
			case <-d.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		now := d.now()
		if p.at <= now {
			d.popLocked(p)
			d.stats.Released++
			d.stats.ReleaseLateMax = max(d.stats.ReleaseLateMax, now-p.at)
			d.mu.Unlock()
			if err := d.nf.SetVerdict(p.id, nfqueue.NfAccept); err != nil {
				d.countVerdictError(err)
			}
			continue
		}
		d.mu.Unlock()
		wait := p.at - now
		if wait > spinWindow {
			timer.Reset(wait - spinWindow)
			select {
			case <-timer.C:
			case <-d.wake:
				if !timer.Stop() {
					<-timer.C
				}
			case <-ctx.Done():
				return
			}
			continue
		}
		for d.now() < p.at {
			runtime.Gosched()
		}
	}
}

// Close stops the delayer, releasing every held packet at once (unbinding the queue would
// drop them).
func (d *Delayer) Close() error {
	d.stopRel()
	d.wg.Wait()
	d.mu.Lock()
	var ids []uint32
	for p, ok := d.peekLocked(); ok; p, ok = d.peekLocked() {
		d.popLocked(p)
		ids = append(ids, p.id)
	}
	d.mu.Unlock()
	for _, id := range ids {
		_ = d.nf.SetVerdict(id, nfqueue.NfAccept)
	}
	d.cancel()
	return d.nf.Close()
}
