// Package sender is the Session-Sender pipeline every active measurement tool shares (pace →
// build → sendmmsg → transmit stamps → validate and match replies → statistics), the
// counterpart of shared/reflector: the tool supplies how a test packet is built and how a
// reply is decoded, the pipeline does the timing, the bookkeeping and the arithmetic once.
//
// Reply validation: a reply counts only when it comes from the target address and port,
// decodes, passes the tool's identity and authentication checks (Decode), and names a
// sequence number that was actually sent and is still remembered. Anything else is counted
// as invalid by cause and never changes loss, RTT, duplicates, reordering or jitter, so a
// forged reply cannot fake a loss of four billion packets or mark genuine replies stale.
//
// RTT: one computation for every tool, RTT (below): (T4 − T1) − (T3 − T2), where T1 is the
// kernel transmit timestamp of the packet (the user-space clock read just before sendmmsg
// when the kernel gives none), T4 the kernel receive timestamp of the reply, and T2/T3 the
// reflector's receive and transmit timestamps. T1 is taken from the sender's own memory,
// never from the copy in the reply.
//
// Exit status: Run's errors say whether the reflector answered (ErrNoReply, ErrReflectorGone;
// tools exit 1 after printing their results), and the first valid reply calls
// cliutil.MarkComplete, so a Ctrl-C after replies came back ends the tool like a finished run
// (exit 0, as ping) while one before any reply exits 130.
package sender

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/shared/pace"
	"github.com/probekit/probekit/shared/stats"
	"github.com/probekit/probekit/shared/timestamp"
	"github.com/probekit/probekit/shared/udpsock"
)

// Sentinel errors. Decode returns ErrMalformed, ErrForeign or ErrAuth (possibly wrapped) to
// say why a reply is invalid; Run returns ErrNoReply or ErrReflectorGone (wrapped) with
// complete statistics.
var (
	// ErrMalformed: the reply does not decode (too short, truncated, bad framing).
	ErrMalformed = errors.New("malformed reply")
	// ErrForeign: the reply belongs to another session (source address or port, SSID).
	ErrForeign = errors.New("reply from another session")
	// ErrAuth: the reply failed authentication (HMAC, decryption).
	ErrAuth = errors.New("reply failed authentication")
	// ErrNoReply: packets were sent and not one valid reply came back.
	ErrNoReply = errors.New("no reply received")
	// ErrReflectorGone: replies came back and then stopped (see Config.DeadAfter).
	ErrReflectorGone = errors.New("reflector stopped answering")
)

// Defaults for Config fields left zero.
const (
	DefaultTimeout   = 2 * time.Second
	DefaultDeadAfter = 10
	// MaxRing bounds the packets remembered for matching (and their transmit stamps): a reply
	// to a packet sent more than MaxRing packets earlier counts as unknown.
	MaxRing = 1 << 20
	// ReadBufLen is the receive buffer per datagram: a jumbo frame's payload.
	ReadBufLen = 9216
	// pollEvery bounds how long the receiver sleeps in ReadBatch before looking at its stop
	// signal.
	pollEvery = 50 * time.Millisecond
)

// SocketOptions are the socket options of a Session-Sender's test socket: kernel transmit
// and receive timestamps (unless noKernel), received TTL and TOS, and buffers large enough
// for bursts of replies at the highest rates the pacer offers.
func SocketOptions(noKernel bool) udpsock.Options {
	return udpsock.Options{RxTimestamps: !noKernel, TxTimestamps: !noKernel, RecvTTL: true, RecvTOS: true,
		Batch: udpsock.DefaultBatch, ReadBuffer: 16 << 20, WriteBuffer: 4 << 20}
}

// Reply is one reply as the pipeline hands it to Config.OnReply (valid for that call only).
type Reply struct {
	// Msg is the datagram as received (address, TTL, TOS, RxTime); Data its payload.
	Msg  *udpsock.Message
	Data []byte
	// Seq is the Session-Sender sequence number the reply answers (set by Decode).
	Seq uint32
	// T2 and T3 are the reflector's receive and transmit times (set by Decode; T2 zero when
	// the reflector did not stamp its receive time).
	T2, T3 time.Time
	// T1 is the departure used for the RTT: T1Kernel when the kernel stamped the packet,
	// else T1User, the clock read written into the packet just before sendmmsg.
	T1, T1User, T1Kernel time.Time
	TxSource             timestamp.Source
	// T4 is the arrival (Msg.RxTime).
	T4 time.Time
	// RTT and Residence as computed by RTT.
	RTT, Residence time.Duration
	// Duplicate: this sequence number had already been answered (the statistics count the
	// first arrival only).
	Duplicate bool
}

// RTT returns the round-trip time and the reflector's residence time of one reply:
// (T4 − T1) − (T3 − T2). The residence T3 − T2 is subtracted only when the reflector stamped
// both times and 0 ≤ T3 − T2 ≤ T4 − T1; otherwise (T2 left zero, a clock step inside the
// reflector) the RTT is T4 − T1 and the residence 0.
func RTT(t1, t2, t3, t4 time.Time) (rtt, residence time.Duration) {
	raw := t4.Sub(t1)
	if t2.IsZero() || t3.IsZero() {
		return raw, 0
	}
	res := t3.Sub(t2)
	if res < 0 || res > raw {
		return raw, 0
	}
	return raw - res, res
}

// Config is one session's pipeline.
type Config struct {
	// Conn is the session's socket (TxTimestamps for kernel T1, RxTimestamps for kernel T4).
	Conn *udpsock.Conn
	// Target is the reflector; replies from any other address or port are foreign.
	Target netip.AddrPort
	// TOS is the DSCP/ECN byte of the test packets.
	TOS uint8
	// Schedule, Start, Count and Duration drive the pace.Pacer (Count 0: until Duration or ctx;
	// Start zero: when Run is called).
	Schedule *pace.Schedule
	Start    time.Time
	Count    uint64
	Duration time.Duration
	// Timeout: a reply arriving later than this after its packet's departure counts as late
	// (lost, RFC 4656 §4.1.1 loss threshold); after the last packet the pipeline waits this
	// long for outstanding replies (DefaultTimeout when 0).
	Timeout time.Duration
	// DeadAfter: when replies came back and then the last packets got none, at least
	// DeadAfter of them and spanning more than Timeout by the schedule (count × interval),
	// Run returns ErrReflectorGone (DefaultDeadAfter when 0, never when negative).
	DeadAfter int
	// MaxLen is the largest packet Build writes.
	MaxLen int
	// Build writes packet seq, departing at t1, into b (len(b) == MaxLen) and returns its
	// length. It runs on the sending goroutine, without the pipeline's lock (replies are
	// matched meanwhile; it may sign, encrypt or add TLVs), and must not allocate.
	Build func(b []byte, seq uint32, t1 time.Time) (int, error)
	// Decode checks and decodes a reply payload (it may decrypt in place): it sets r.Seq, r.T2
	// and r.T3, or returns an error wrapping ErrMalformed, ErrForeign or ErrAuth (any other
	// error stops the session). It runs on the receiving goroutine.
	Decode func(data []byte, r *Reply) error
	// OnReply receives every valid, matched, timely reply after the statistics took it
	// (duplicates included, marked); an error stops the session. Receiving goroutine.
	OnReply func(r *Reply) error
	// Log receives debug records (send errors the session survives).
	Log logrus.FieldLogger
}

// Stats are a session's counters and distributions. Only replies that passed validation
// reach Seq, RTT and Jitter.
type Stats struct {
	Sent uint64
	// Seq: received (first arrivals), duplicates, reordering; Lost is Sent − received.
	Seq stats.Sequence
	// RTT (first arrivals) and its RFC 3550 jitter in arrival order.
	RTT    stats.Series
	Jitter stats.Jitter
	// Late replies came after Timeout (counted lost); invalid replies by cause: Malformed,
	// Foreign (address/port or session identity), BadAuth, Unknown (a sequence number not
	// sent, or no longer remembered).
	Late, Malformed, Foreign, BadAuth, Unknown uint64
	// SendErrors counts packets the kernel refused (ENOBUFS, an ICMP error it reported).
	SendErrors uint64
	// TxKernel and RxKernel count first arrivals whose T1 / T4 came from the kernel.
	TxKernel, RxKernel uint64
	// First and Last are the departures of the first and last packet sent.
	First, Last time.Time
}

// Invalid is the number of replies discarded by validation.
func (s *Stats) Invalid() uint64 { return s.Malformed + s.Foreign + s.BadAuth + s.Unknown }

// Received is the number of distinct packets answered in time.
func (s *Stats) Received() uint64 { return s.Seq.Received() }

// Lost is Sent − Received.
func (s *Stats) Lost() uint64 { return s.Seq.Lost() }

// slot is the pipeline's memory of one sent packet.
type slot struct {
	seq    uint32
	used   bool
	t1     int64 // user-space send time (the T1 in the packet), Unix ns
	t1k    int64 // kernel transmit timestamp, Unix ns (0 = none yet)
	t1kSrc timestamp.Source
}

// Pipeline runs one session. Create it with New, run it once with Run.
type Pipeline struct {
	cfg Config
	log logrus.FieldLogger

	mu     sync.Mutex // ring, txmap, st (shared by the sending and receiving goroutines)
	ring   []slot
	txmap  []uint32 // transmit-stamp ID mod len → seq+1
	st     Stats
	maxAck int64  // highest sequence number answered in time, -1 for none
	issued uint64 // packets handed to sendmmsg (sent, or being sent)

	// runCtx is Run's context: the first valid reply marks the run complete for cliutil (a
	// signal after replies came back ends it as a finished run, like ping).
	runCtx    context.Context
	marked    bool
	abort     chan struct{}
	abortOnce sync.Once
	offline   Reply // Handle's, so that it allocates nothing either
	abortErr  error

	// testHookRead, when set, runs in place of a read of the receive loop, which then
	// re-checks stop (a test stalls the receiver with it until the wait ends).
	testHookRead func(stop <-chan struct{})
}

// New checks cfg and returns a pipeline.
func New(cfg Config) (*Pipeline, error) {
	if cfg.Decode == nil {
		return nil, errors.New("sender: Decode is required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.DeadAfter == 0 {
		cfg.DeadAfter = DefaultDeadAfter
	}
	if cfg.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		cfg.Log = l
	}
	n := uint64(MaxRing)
	if cfg.Count > 0 && cfg.Count < n {
		n = cfg.Count
	}
	p := &Pipeline{cfg: cfg, log: cfg.Log, ring: make([]slot, n), txmap: make([]uint32, n), maxAck: -1,
		abort: make(chan struct{})}
	return p, nil
}

// Abort ends the session at once (e.g. its TWAMP-Control connection was lost): Run stops
// sending and waiting and returns err with the statistics gathered so far.
func (p *Pipeline) Abort(err error) {
	p.abortOnce.Do(func() {
		p.abortErr = err
		close(p.abort)
	})
}

func (p *Pipeline) aborted() bool {
	select {
	case <-p.abort:
		return true
	default:
		return false
	}
}

// Departure returns the user-space and kernel transmit times (Unix ns, kernel 0 when none) of
// packet seq, if it was sent and is still remembered. Call it after Run (e.g. to print lost
// packets).
func (p *Pipeline) Departure(seq uint32) (user, kernel int64, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	sl := &p.ring[uint64(seq)%uint64(len(p.ring))]
	if !sl.used || sl.seq != seq || uint64(seq) >= p.st.Sent {
		return 0, 0, false
	}
	return sl.t1, sl.t1k, true
}

// Run sends the session and collects its replies, then returns the statistics. Cancelling
// ctx stops sending; outstanding replies are still awaited for Timeout, so an interrupted run
// reports complete results for what it sent. The error is ErrNoReply when nothing came back,
// ErrReflectorGone when the replies stopped, the Abort error, or a socket failure; the
// statistics are complete in every case.
func (p *Pipeline) Run(ctx context.Context) (*Stats, error) {
	switch cfg := &p.cfg; {
	case cfg.Conn == nil || cfg.Build == nil:
		return nil, errors.New("sender: Run needs Conn and Build")
	case cfg.Schedule == nil || cfg.Schedule.Interval() < 0:
		return nil, errors.New("sender: Run needs a schedule with a non-negative interval")
	case cfg.MaxLen <= 0:
		return nil, errors.New("sender: MaxLen must be positive")
	}
	p.runCtx = ctx
	if p.cfg.Start.IsZero() {
		p.cfg.Start = time.Now()
	}
	recvDone := make(chan error, 1)
	stopRecv := make(chan struct{})
	go func() { recvDone <- p.receive(stopRecv) }()

	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	go func() {
		select {
		case <-p.abort:
			scancel()
		case <-sctx.Done():
		}
	}()
	sendErr := p.send(sctx)
	p.mu.Lock()
	last := p.st.Last
	p.mu.Unlock()
	// Wait for outstanding replies: until everything is back, the timeout passes, the
	// receiver fails or the session is aborted.
	deadline := time.NewTimer(max(time.Until(last.Add(p.cfg.Timeout)), 0))
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var recvErr error
	gotRecv := false
wait:
	for !p.complete() {
		select {
		case <-deadline.C:
			break wait
		case recvErr = <-recvDone:
			gotRecv = true
			break wait
		case <-p.abort:
			break wait
		case <-tick.C:
		}
	}
	// Wake a blocked read, then stop: in this order the receiver's final drain cannot have
	// its own deadline replaced by this expired one (it would then read nothing).
	_ = p.cfg.Conn.SetReadDeadline(time.Now())
	close(stopRecv)
	if !gotRecv {
		recvErr = <-recvDone
	}
	p.collectLateTxStamps()

	p.mu.Lock()
	st := p.st
	maxAck := p.maxAck
	p.mu.Unlock()
	st.Seq.SetSent(st.Sent)
	switch {
	case p.aborted():
		return &st, p.abortErr
	case sendErr != nil:
		return &st, sendErr
	case recvErr != nil:
		return &st, recvErr
	}
	return &st, p.verdict(&st, maxAck)
}

// verdict says whether the reflector answered: nothing back is ErrNoReply; replies that
// stopped (DeadAfter unanswered packets in a row at the end, spanning more than Timeout by the
// schedule) is ErrReflectorGone.
func (p *Pipeline) verdict(st *Stats, maxAck int64) error {
	if st.Sent == 0 {
		return nil
	}
	if st.Received() == 0 {
		return fmt.Errorf("%w from %s (%d sent)", ErrNoReply, p.cfg.Target, st.Sent)
	}
	trailing := int64(st.Sent) - 1 - maxAck
	if p.cfg.DeadAfter < 0 || trailing <= 0 {
		return nil
	}
	// By the schedule, not the clock: a stalled sender that left in a burst must not look
	// like a short outage.
	if trailing >= int64(p.cfg.DeadAfter) && time.Duration(trailing)*p.cfg.Schedule.Interval() > p.cfg.Timeout {
		return fmt.Errorf("%w: no reply from %s to the last %d packets (last answered seq %d)",
			ErrReflectorGone, p.cfg.Target, trailing, maxAck)
	}
	return nil
}

func (p *Pipeline) complete() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st.Sent > 0 && p.st.Seq.Received()+p.st.Late >= p.st.Sent
}

// send paces the packets with a pace.Pacer: the packets it hands out together leave in one
// sendmmsg, each built with its own T1.
func (p *Pipeline) send(ctx context.Context) error {
	defer pace.LockThread()()
	cfg := &p.cfg
	const batch = pace.DefaultMaxBatch
	msgs := make([]udpsock.Message, batch)
	buf := make([]byte, batch*cfg.MaxLen)
	for i := range msgs {
		msgs[i] = udpsock.Message{Buf: buf[i*cfg.MaxLen : (i+1)*cfg.MaxLen], Addr: cfg.Target, TOS: cfg.TOS}
	}
	pc := pace.New(cfg.Start, pace.Config{Schedule: cfg.Schedule, Count: cfg.Count, Duration: cfg.Duration, MaxBatch: batch})
	var seq uint64
	ring := uint64(len(p.ring))
	txOn := cfg.Conn.Features().TxTimestamps
	t1s := make([]int64, batch)
	for !p.aborted() {
		n, ok := pc.Next(ctx)
		if !ok {
			return nil
		}
		// Built without the lock: Build may sign or encrypt and add TLVs, and the receiving
		// goroutine must not wait for that to match replies.
		for i := 0; i < n; i++ {
			t1 := time.Now()
			q := uint32(seq + uint64(i))
			k, err := cfg.Build(msgs[i].Buf[:cfg.MaxLen], q, t1)
			if err != nil {
				return fmt.Errorf("build packet %d: %w", q, err)
			}
			msgs[i].N, t1s[i] = k, t1.UnixNano()
		}
		p.mu.Lock()
		sent := p.st.Sent
		for i := 0; i < n; i++ {
			q := uint32(seq + uint64(i))
			// Marked used before the send: on loopback the reply can be read before
			// WriteBatch returns.
			p.ring[uint64(q)%ring] = slot{seq: q, used: true, t1: t1s[i]}
			// The kernel numbers transmit stamps per datagram sent on the socket (OPT_ID), so
			// the identifier is known before the send; registering it now lets a stamp read
			// before WriteBatch returns find its packet.
			p.txmap[(sent+uint64(i))%ring] = q + 1
		}
		p.issued = seq + uint64(n)
		p.mu.Unlock()
		k, err := cfg.Conn.WriteBatch(msgs[:n])
		p.mu.Lock()
		for i := k; i < n; i++ {
			p.ring[(seq+uint64(i))%ring].used = false // not sent: no reply can match it
		}
		p.issued = seq + uint64(k)
		for i := 0; i < k; i++ {
			q := uint32(seq + uint64(i))
			if id := msgs[i].TxID; txOn && uint64(id) != (p.st.Sent+uint64(i))&0xFFFFFFFF {
				p.txmap[uint64(id)%ring] = q + 1 // the socket's counter moved (a failed send)
			}
			if p.st.Sent == 0 && i == 0 {
				p.st.First = time.Unix(0, p.ring[uint64(q)%ring].t1)
			}
			p.st.Last = time.Unix(0, p.ring[uint64(q)%ring].t1)
		}
		// Sequence numbers stay dense: an unsent packet's number goes to the next packet.
		seq += uint64(k)
		p.st.Sent += uint64(k)
		if k < n && err != nil {
			p.st.SendErrors += uint64(n - k)
		}
		p.mu.Unlock()
		if err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOBUFS) {
				p.log.WithError(err).Debug("sender: send")
				continue
			}
			return fmt.Errorf("send: %w", err)
		}
		if txOn {
			_, _ = cfg.Conn.TxTimestamps(p.onTx)
		}
	}
	return nil
}

// onTx records a kernel transmit stamp with its packet.
func (p *Pipeline) onTx(id uint32, t time.Time, src timestamp.Source) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ring := uint64(len(p.ring))
	v := p.txmap[uint64(id)%ring]
	if v == 0 {
		return
	}
	seq := v - 1
	sl := &p.ring[uint64(seq)%ring]
	if sl.seq == seq {
		sl.t1k, sl.t1kSrc = t.UnixNano(), src
	}
}

// collectLateTxStamps reads the transmit stamps still queued after the run, so lost
// packets report their kernel departure too.
func (p *Pipeline) collectLateTxStamps() {
	if !p.cfg.Conn.Features().TxTimestamps {
		return
	}
	_, _ = p.cfg.Conn.TxTimestamps(p.onTx)
	p.mu.Lock()
	missing := false
	for i := uint64(0); i < p.st.Sent && i < uint64(len(p.ring)); i++ {
		if sl := &p.ring[i]; sl.used && sl.t1k == 0 {
			missing = true
			break
		}
	}
	p.mu.Unlock()
	if missing {
		_, _ = p.cfg.Conn.WaitTxTimestamps(20*time.Millisecond, p.onTx)
	}
}

// receive reads replies until stop is closed.
func (p *Pipeline) receive(stop <-chan struct{}) error {
	const batch = udpsock.DefaultBatch
	msgs := make([]udpsock.Message, batch)
	buf := make([]byte, batch*ReadBufLen)
	for i := range msgs {
		msgs[i].Buf = buf[i*ReadBufLen : (i+1)*ReadBufLen]
	}
	conn := p.cfg.Conn
	tx := conn.Features().TxTimestamps
	var r Reply
	for {
		select {
		case <-stop:
			// Replies the kernel queued before the wait ended but this goroutine had not
			// read yet (it was not scheduled, the VM stalled) are still judged, each by its
			// own receive stamp: one that arrived within Timeout counts, a later one is Late.
			return p.drain(msgs, &r)
		default:
		}
		if p.testHookRead != nil {
			p.testHookRead(stop)
			continue // re-check stop: the hook may have outlasted the wait
		}
		_ = conn.SetReadDeadline(time.Now().Add(pollEvery))
		n, err := conn.ReadBatch(msgs)
		if tx {
			// Transmit stamps are queued when the packet leaves, before its reply can arrive.
			_, _ = conn.TxTimestamps(p.onTx)
		}
		if err != nil {
			switch {
			case errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, syscall.EINTR):
				continue
			case errors.Is(err, udpsock.ErrClosed):
				return nil
			}
			return fmt.Errorf("receive: %w", err)
		}
		for i := 0; i < n; i++ {
			if err := p.handle(&msgs[i], &r); err != nil {
				return err
			}
		}
	}
}

// drainFor bounds the final read of what is already queued (a peer flooding the socket
// cannot keep Run from returning).
const drainFor = 100 * time.Millisecond

// drain handles what is already queued in the socket, without waiting for more.
func (p *Pipeline) drain(msgs []udpsock.Message, r *Reply) error {
	conn := p.cfg.Conn
	for end := time.Now().Add(drainFor); time.Now().Before(end); {
		// A deadline just ahead: a read finds queued datagrams at once and otherwise
		// returns after 1 ms (an expired deadline would not read at all).
		_ = conn.SetReadDeadline(time.Now().Add(time.Millisecond))
		n, err := conn.ReadBatch(msgs)
		if conn.Features().TxTimestamps {
			_, _ = conn.TxTimestamps(p.onTx)
		}
		if err != nil || n == 0 {
			if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, syscall.ECONNREFUSED) &&
				!errors.Is(err, syscall.EINTR) && !errors.Is(err, udpsock.ErrClosed) {
				return fmt.Errorf("receive: %w", err)
			}
			return nil
		}
		for i := 0; i < n; i++ {
			if err := p.handle(&msgs[i], r); err != nil {
				return err
			}
		}
	}
	return nil
}

// handle validates one datagram, matches it with its packet and records it.
func (p *Pipeline) handle(m *udpsock.Message, r *Reply) error {
	cfg := &p.cfg
	if unmap(m.Addr) != unmap(cfg.Target) {
		p.count(&p.st.Foreign)
		return nil
	}
	if m.Truncated {
		p.count(&p.st.Malformed)
		return nil
	}
	*r = Reply{Msg: m, Data: m.Buf[:m.N], T4: m.RxTime}
	if err := cfg.Decode(r.Data, r); err != nil {
		switch {
		case errors.Is(err, ErrMalformed):
			p.count(&p.st.Malformed)
		case errors.Is(err, ErrForeign):
			p.count(&p.st.Foreign)
		case errors.Is(err, ErrAuth):
			p.count(&p.st.BadAuth)
		default:
			return err
		}
		return nil
	}
	p.mu.Lock()
	ring := uint64(len(p.ring))
	sl := p.ring[uint64(r.Seq)%ring]
	if !sl.used || sl.seq != r.Seq || uint64(r.Seq) >= p.issued {
		// Never sent, or no longer remembered: it cannot be matched, so it must not move
		// the loss or reordering counters.
		p.st.Unknown++
		p.mu.Unlock()
		return nil
	}
	r.T1User, r.T1, r.TxSource = time.Unix(0, sl.t1), time.Unix(0, sl.t1), timestamp.SourceUser
	if sl.t1k != 0 {
		r.T1Kernel = time.Unix(0, sl.t1k)
		r.T1, r.TxSource = r.T1Kernel, sl.t1kSrc
	}
	r.RTT, r.Residence = RTT(r.T1, r.T2, r.T3, r.T4)
	if r.T4.Sub(r.T1) > cfg.Timeout {
		p.st.Late++
		p.mu.Unlock()
		return nil
	}
	st := &p.st
	if !st.Seq.Add(uint64(r.Seq)) {
		r.Duplicate = true
	} else {
		p.maxAck = max(p.maxAck, int64(r.Seq))
		if !p.marked && p.runCtx != nil {
			p.marked = true
			cliutil.MarkComplete(p.runCtx)
		}
		st.RTT.Add(r.RTT)
		st.Jitter.Add(r.RTT)
		if r.TxSource >= timestamp.SourceKernel {
			st.TxKernel++
		}
		if m.RxSource >= timestamp.SourceKernel {
			st.RxKernel++
		}
	}
	p.mu.Unlock()
	if cfg.OnReply != nil {
		return cfg.OnReply(r)
	}
	return nil
}

// Record notes packet seq as sent at t1User (kernel transmit stamp t1Kernel, zero for none),
// without a socket: with Handle and Stats it drives the pipeline offline (tests, replays).
// Sequence numbers count up from 0; recording seq counts seq+1 packets as sent.
func (p *Pipeline) Record(seq uint32, t1User, t1Kernel time.Time, src timestamp.Source) {
	p.mu.Lock()
	defer p.mu.Unlock()
	sl := slot{seq: seq, used: true, t1: t1User.UnixNano()}
	if !t1Kernel.IsZero() {
		sl.t1k, sl.t1kSrc = t1Kernel.UnixNano(), src
	}
	p.ring[uint64(seq)%uint64(len(p.ring))] = sl
	if n := uint64(seq) + 1; n > p.st.Sent {
		p.st.Sent, p.issued, p.st.Last = n, n, t1User
	}
	if seq == 0 {
		p.st.First = t1User
	}
}

// Handle runs one received datagram through validation, matching and the statistics, as the
// receiving goroutine does; Run's callers never need it. Call it from one goroutine at a time.
func (p *Pipeline) Handle(m *udpsock.Message) error {
	return p.handle(m, &p.offline)
}

// Stats returns a copy of the statistics so far (for the offline use with Record and Handle;
// Run returns its own).
func (p *Pipeline) Stats() *Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.st
	st.Seq.SetSent(st.Sent)
	return &st
}

func (p *Pipeline) count(c *uint64) {
	p.mu.Lock()
	*c++
	p.mu.Unlock()
}

// unmap normalises a peer address for comparison: IPv4-mapped IPv6 as IPv4 (dual-stack
// sockets), without the IPv6 zone (a link-local target given without one).
func unmap(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap().WithZone(""), a.Port())
}
