// Package loadgen offers UDP test packets to an echo or reflector at a fixed rate and
// measures what comes back: loss, RTT, reflector residence time and the target's CPU time.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/probekit/probekit/shared/pace"
	"github.com/probekit/probekit/shared/stats"
	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/timestamp"
	"github.com/probekit/probekit/shared/udpsock"
)

// Defaults for Config fields left zero.
const (
	DefaultSize     = 44 // an unauthenticated STAMP Session-Sender test packet
	DefaultWait     = 200 * time.Millisecond
	DefaultSpin     = 30 * time.Microsecond
	DefaultMaxBatch = 64
	// quietAfterLast is how long the socket must stay silent after the last expected reply
	// before a run ends early.
	quietAfterLast = 20 * time.Millisecond
	// MaxPackets bounds one run's bookkeeping (16 bytes per packet).
	MaxPackets = 20_000_000
)

// Config describes one fixed-rate run.
type Config struct {
	// Target receives the packets; replies must come back to the sending socket.
	Target netip.AddrPort
	// Rate is the offered load in packets per second; Duration how long to offer it.
	Rate     float64
	Duration time.Duration
	// Size is the UDP payload length (DefaultSize when 0; at least 4 for the sequence number).
	Size int
	// Wait is how long to keep receiving after the last send (DefaultWait when 0).
	Wait time.Duration
	// PID, when non-zero, is the process whose CPU time (/proc/PID/stat utime+stime) is
	// measured from the first send until the last reply or the end of Wait.
	PID int
	// Spin is the busy-wait window before each send slot: the sender sleeps until Spin before
	// the slot and spins the rest (DefaultSpin when 0, never spins when negative). Rates above
	// 10 kpps are paced in bursts instead (pace.DefaultBurstBelow).
	Spin time.Duration
	// MaxBatch bounds the packets sent in one sendmmsg when the schedule has several due
	// (DefaultMaxBatch when 0).
	MaxBatch int
	// Residence, when set, extracts the reflector's residence time (T3 − T2) from a reply.
	Residence func(reply []byte) (time.Duration, bool)
	// TOS is the DSCP/ECN byte of the test packets.
	TOS uint8
}

// Percentiles summarises a set of durations.
type Percentiles struct {
	Count int           `json:"count"`
	Min   time.Duration `json:"min_ns"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	Max   time.Duration `json:"max_ns"`
}

// Result is what one run measured.
type Result struct {
	Rate     float64       `json:"rate_pps"`
	Duration time.Duration `json:"duration_ns"`
	Size     int           `json:"size"`
	Sent     uint64        `json:"sent"`
	Received uint64        `json:"received"`
	Lost     uint64        `json:"lost"`
	// Duplicates are replies for a sequence number already answered; Unexpected are replies
	// too short to carry one or naming a packet that was never sent.
	Duplicates uint64  `json:"duplicates"`
	Unexpected uint64  `json:"unexpected"`
	Loss       float64 `json:"loss"`
	// SendElapsed is the time from the first to the last send; SentRate and ReplyRate are the
	// achieved rates over it.
	SendElapsed time.Duration `json:"send_elapsed_ns"`
	SentRate    float64       `json:"sent_pps"`
	ReplyRate   float64       `json:"reply_pps"`
	// SendLate is how far behind its schedule each sendmmsg went out.
	SendLate  Percentiles `json:"send_late"`
	RTT       Percentiles `json:"rtt"`
	Residence Percentiles `json:"residence"`
	// CPU is the target's CPU time over the run and CPUPerPacket that divided by Received.
	CPU          time.Duration `json:"cpu_ns"`
	CPUPerPacket time.Duration `json:"cpu_per_packet_ns"`
	// SelfCPU is the generator's own CPU time over the run.
	SelfCPU time.Duration `json:"self_cpu_ns"`
}

// GeneratorBound reports whether the sender failed to offer the configured rate (more than
// 3 % short), in which case the generator, not the target, limited the run.
func (r Result) GeneratorBound() bool { return r.SentRate < 0.97*r.Rate }

// FillPacket writes the default payload: the sequence number at offset 0 and, when the
// packet is long enough, an NTP send time at 4..12 and a valid RFC 4656 Error Estimate
// (unsynchronised, multiplier 1) at 12..14 — the STAMP Session-Sender layout; the rest is
// zero, so a reflector's T2 field (16..24) in an echoed packet stays zero.
func FillPacket(b []byte, seq uint32, now time.Time) {
	testpkt.PutSequenceNumber(b, seq)
	if len(b) >= testpkt.TWAMPSenderLen {
		testpkt.PutTimestamp(b, testpkt.ModeUnauthenticated, uint64(timestamp.NTPFromTime(now)))
		testpkt.PutErrorEstimate(b, testpkt.ModeUnauthenticated, timestamp.MakeErrorEstimate(false, false, 0, 1))
	}
}

// STAMPResidence reads T3 (offset 4) and T2 (offset 16) of an unauthenticated STAMP or TWAMP
// reflector reply, in NTP or PTP format as the Error Estimate's Z bit says, and returns
// T3 − T2. Echoed packets (T2 zero) and implausible values (negative, over 1 s) are refused.
func STAMPResidence(reply []byte) (time.Duration, bool) {
	raw2, raw3, ee, ok := testpkt.ReflectedTimes(reply)
	if !ok {
		return 0, false
	}
	var t2, t3 time.Time
	if ee.Z() {
		p2, p3 := timestamp.PTP(raw2), timestamp.PTP(raw3)
		if p2 == 0 || p3 == 0 || !p2.Valid() || !p3.Valid() {
			return 0, false
		}
		t2, t3 = p2.Time(), p3.Time()
	} else {
		n2, n3 := timestamp.NTP(raw2), timestamp.NTP(raw3)
		if n2 == 0 || n3 == 0 {
			return 0, false
		}
		t2, t3 = n2.Time(), n3.Time()
	}
	d := t3.Sub(t2)
	if d < 0 || d > time.Second {
		return 0, false
	}
	return d, true
}

// Run offers cfg.Rate packets/s to cfg.Target from conn for cfg.Duration and collects the
// replies on the same socket. conn should have RxTimestamps for kernel-stamped RTTs and a
// large ReadBuffer so the generator itself does not drop replies.
func Run(ctx context.Context, conn *udpsock.Conn, cfg Config) (Result, error) {
	if err := cfg.normalise(); err != nil {
		return Result{}, err
	}
	total := int(math.Ceil(cfg.Rate * cfg.Duration.Seconds()))
	if total < 1 {
		total = 1
	}
	if total > MaxPackets {
		return Result{}, fmt.Errorf("loadgen: %d packets exceed the %d per run limit", total, MaxPackets)
	}
	st := &runState{
		cfg:      cfg,
		total:    total,
		sendWall: make([]int64, total),
		seen:     make([]uint64, (total+63)/64),
	}
	var res Result
	res.Rate, res.Duration, res.Size = cfg.Rate, cfg.Duration, cfg.Size

	cpu0, err := procCPU(cfg.PID)
	if err != nil {
		return res, err
	}
	self0, _ := ProcCPU(selfPID)

	rctx, stopRecv := context.WithCancel(ctx)
	defer stopRecv()
	var wg sync.WaitGroup
	var recvErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		recvErr = st.receive(rctx, conn)
	}()

	sendStart, sendEnd, sendErr := st.send(ctx, conn)
	// Wait for the stragglers until Wait passes or every packet was answered and the socket
	// has been quiet for a moment: loopback packets sent from different CPUs can overtake
	// each other, so a duplicate may trail the last unique reply.
	deadline := time.Now().Add(cfg.Wait)
	quiet := min(cfg.Wait, quietAfterLast)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if st.received.Load() >= st.sent.Load() && time.Since(time.Unix(0, st.lastReply.Load())) >= quiet {
			break
		}
		time.Sleep(time.Millisecond)
	}
	stopRecv()
	conn.SetReadDeadline(time.Now()) // wake the receiver
	wg.Wait()
	conn.SetReadDeadline(time.Time{})

	cpu1, err := procCPU(cfg.PID)
	if err != nil {
		return res, err
	}
	self1, _ := ProcCPU(selfPID)

	res.Sent = st.sent.Load()
	res.Received = st.received.Load()
	res.Duplicates = st.duplicates
	res.Unexpected = st.unexpected
	res.Lost = res.Sent - res.Received
	if res.Sent > 0 {
		res.Loss = float64(res.Lost) / float64(res.Sent)
	}
	res.SendElapsed = sendEnd.Sub(sendStart)
	if res.SendElapsed <= 0 || res.Sent == 1 {
		// A single batch: count it over the nominal duration.
		res.SendElapsed = cfg.Duration
	} else {
		// Sent packets span Sent-1 intervals; scale to Sent intervals for the rate.
		res.SendElapsed = time.Duration(float64(res.SendElapsed) * float64(res.Sent) / float64(res.Sent-1))
	}
	res.SentRate = float64(res.Sent) / res.SendElapsed.Seconds()
	res.ReplyRate = float64(res.Received) / res.SendElapsed.Seconds()
	res.SendLate = summarise(&st.late)
	res.RTT = summarise(&st.rtt)
	res.Residence = summarise(&st.residence)
	if cfg.PID != 0 {
		res.CPU = cpu1 - cpu0
		if res.Received > 0 {
			res.CPUPerPacket = res.CPU / time.Duration(res.Received)
		}
	}
	res.SelfCPU = self1 - self0
	if sendErr != nil {
		return res, sendErr
	}
	if recvErr != nil {
		return res, recvErr
	}
	return res, ctx.Err()
}

var selfPID = unix.Getpid()

func procCPU(pid int) (time.Duration, error) {
	if pid == 0 {
		return 0, nil
	}
	return ProcCPU(pid)
}

func (cfg *Config) normalise() error {
	if !cfg.Target.IsValid() {
		return errors.New("loadgen: no target address")
	}
	if cfg.Rate <= 0 || math.IsInf(cfg.Rate, 0) || math.IsNaN(cfg.Rate) {
		return fmt.Errorf("loadgen: rate %v must be a positive number", cfg.Rate)
	}
	if cfg.Duration <= 0 {
		return fmt.Errorf("loadgen: duration %v must be positive", cfg.Duration)
	}
	if cfg.Size == 0 {
		cfg.Size = DefaultSize
	}
	if cfg.Size < 4 || cfg.Size > 65507 {
		return fmt.Errorf("loadgen: size %d outside 4..65507", cfg.Size)
	}
	if cfg.Wait == 0 {
		cfg.Wait = DefaultWait
	}
	if cfg.Spin == 0 {
		cfg.Spin = DefaultSpin
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	return nil
}

// runState is shared by the sender and the receiver goroutine. sendWall[i] is written before
// packet i is sent and read after its reply arrives; the send→reply causality through the
// kernel orders them, and sent (atomic) publishes the count.
type runState struct {
	cfg      Config
	total    int
	sendWall []int64 // Unix ns of each packet's send
	// issued counts packets handed to sendmmsg (published before the call, so a reply can
	// never be read before its packet counts as issued); sent those the kernel accepted.
	issued atomic.Uint64
	sent   atomic.Uint64
	late   stats.Series

	// Receiver-owned.
	lastReply  atomic.Int64 // Unix ns of the last datagram read
	seen       []uint64
	received   atomic.Uint64
	duplicates uint64
	unexpected uint64
	rtt        stats.Series
	residence  stats.Series
}

// send paces the packets with a pace.Pacer (packet i due at start + i/Rate; sleep then spin
// the last Spin, bursts below 100 µs) and sends every packet it hands out in one sendmmsg.
func (st *runState) send(ctx context.Context, conn *udpsock.Conn) (first, last time.Time, err error) {
	defer pace.LockThread()()
	cfg := st.cfg
	msgs := make([]udpsock.Message, cfg.MaxBatch)
	bufs := make([]byte, cfg.MaxBatch*cfg.Size)
	for i := range msgs {
		msgs[i] = udpsock.Message{Buf: bufs[i*cfg.Size : (i+1)*cfg.Size], Addr: cfg.Target, TOS: cfg.TOS}
	}
	interval := time.Duration(math.Round(float64(time.Second) / cfg.Rate))
	p := pace.New(time.Now(), pace.Config{Schedule: pace.NewSchedule(interval, false, 0),
		Count: uint64(st.total), MaxBatch: cfg.MaxBatch, Spin: cfg.Spin})
	next := 0
	for {
		n, ok := p.Next(ctx)
		if !ok {
			return first, last, nil
		}
		now := time.Now()
		st.late.Add(p.Late())
		wall := now.UnixNano()
		for i := 0; i < n; i++ {
			FillPacket(msgs[i].Buf, uint32(next+i), now)
			st.sendWall[next+i] = wall
		}
		if next == 0 {
			first = now
		}
		last = now
		st.issued.Store(uint64(next + n))
		k, werr := conn.WriteBatch(msgs[:n])
		next += k
		st.sent.Store(uint64(next))
		if werr != nil {
			if errors.Is(werr, udpsock.ErrClosed) && ctx.Err() != nil {
				return first, last, nil
			}
			return first, last, fmt.Errorf("loadgen: send: %w", werr)
		}
	}
}

// receive counts replies until ctx is cancelled.
func (st *runState) receive(ctx context.Context, conn *udpsock.Conn) error {
	msgs := make([]udpsock.Message, 64)
	buf := make([]byte, 64*2048)
	for i := range msgs {
		msgs[i].Buf = buf[i*2048 : (i+1)*2048]
	}
	// Run wakes the blocked read with a past deadline after cancelling ctx.
	for ctx.Err() == nil {
		n, err := conn.ReadBatch(msgs)
		if err != nil {
			if ctx.Err() != nil || isTimeout(err) {
				continue
			}
			if errors.Is(err, udpsock.ErrClosed) {
				return nil
			}
			return fmt.Errorf("loadgen: receive: %w", err)
		}
		issued := st.issued.Load()
		for i := 0; i < n; i++ {
			st.account(&msgs[i], issued)
		}
		st.lastReply.Store(time.Now().UnixNano())
	}
	return nil
}

func (st *runState) account(m *udpsock.Message, issued uint64) {
	seq, ok := testpkt.SequenceNumber(m.Buf[:m.N])
	if !ok || m.Addr != st.cfg.Target {
		st.unexpected++
		return
	}
	if uint64(seq) >= issued {
		st.unexpected++
		return
	}
	word, bit := seq/64, uint64(1)<<(seq%64)
	if st.seen[word]&bit != 0 {
		st.duplicates++
		return
	}
	st.seen[word] |= bit
	st.received.Add(1)
	st.rtt.Add(time.Duration(m.RxTime.UnixNano() - st.sendWall[seq]))
	if st.cfg.Residence != nil {
		if d, ok := st.cfg.Residence(m.Buf[:m.N]); ok {
			st.residence.Add(d)
		}
	}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// summarise reads the order statistics of a series (exact up to stats.ExactLimit samples,
// within 0.05 % beyond).
func summarise(s *stats.Series) Percentiles {
	if s.Count() == 0 {
		return Percentiles{}
	}
	return Percentiles{Count: int(s.Count()), Min: s.Min(), P50: s.Percentile(50), P90: s.Percentile(90),
		P99: s.Percentile(99), Max: s.Max()}
}
