// Package sender is stampsend's STAMP Session-Sender: it paces test packets (periodic or
// Poisson), matches replies to kernel transmit and receive timestamps, and turns them into
// per-packet records and a summary (RTT, loss, duplicates, reordering, jitter, reflector
// residence, one-way delays).
package sender

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/shared/pace"
	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/timestamp"
	"github.com/probekit/probekit/shared/udpsock"
)

// Config is one stampsend session.
type Config struct {
	Target netip.AddrPort
	// Source is the local ADDR:PORT to bind ("" = any).
	Source string
	// Count packets (0 = until Duration or interrupted); Duration bounds the sending time.
	Count    uint64
	Duration time.Duration
	// Interval between packets: the period, or the mean of exponential gaps when Poisson is set
	// (RFC 2330 §11.1.1, RFC 3432 for periodic).
	Interval time.Duration
	Poisson  bool
	Seed     uint64
	// Size is the UDP payload size (0 = the base packet plus TLVs); extra room becomes an
	// Extra Padding TLV.
	Size int
	// SSID identifies the session (X-01: non-zero).
	SSID uint16
	// Key selects authenticated mode (HMAC-SHA-256/128) when non-empty.
	Key []byte
	// PTP writes T1 in truncated PTPv2 format.
	PTP bool
	// Synchronized sets the S bit of our Error Estimate; ClockError its error.
	Synchronized bool
	ClockError   time.Duration
	DSCP, ECN    uint8
	TTL          int
	TLVs         []TLVSpec
	// Timeout: a reply later than this after its packet counts as late, and after the last
	// packet the sender waits this long for outstanding replies.
	Timeout time.Duration
	// AccessReportInterval and AccessReportRetries drive the Access Report TLV (RFC 8972
	// §4.6): it goes in the first packet and, until a reply echoes it, again every interval
	// (3 s when 0), at most retries more times (4 when 0; -1 for none). Other packets carry
	// Extra Padding of the same size in its place.
	AccessReportInterval time.Duration
	AccessReportRetries  int
	// RequireSSID stops the session when the reflector returns SSID 0.
	RequireSSID bool
	// NoKernelTimestamps uses user-space clocks for T1 and T4.
	NoKernelTimestamps bool
	// Quiet suppresses the per-reply lines and records (the summary is still printed, as a
	// JSON line with --json).
	Quiet  bool
	Format cliutil.Format
	Out    io.Writer
	// SummaryOut receives the text summary with --format csv (stdout keeps the table).
	SummaryOut io.Writer
	// Ready, when set, is called with the local address once the socket is bound.
	Ready func(local netip.AddrPort)
}

// ErrNoSSID is returned with RequireSSID when the reflector does not echo the SSID.
var ErrNoSSID = errors.New("reflector returned SSID 0: it does not implement RFC 8972")

const ringSize = 1 << 20

// slot is the sender's memory of one packet.
type slot struct {
	seq    uint32
	used   bool
	t1     int64 // user-space send time (the T1 on the wire), Unix ns
	t1k    int64 // kernel transmit timestamp, Unix ns (0 = none yet)
	t1kSrc timestamp.Source
}

type session struct {
	cfg  Config
	log  logrus.FieldLogger
	mode testpkt.Mode
	conn *udpsock.Conn
	b    *builder

	mu    sync.Mutex
	ring  []slot
	txmap []uint32 // TxID mod ringSize → seq+1
	sent  uint64
	lastT time.Time

	acc *accumulator

	// Access Report retransmission state (guarded by mu; arAcked set by the receiver).
	arNext  time.Time
	arLeft  int
	arAcked atomic.Bool
}

// wantAR reports whether the packet sent at now carries the Access Report (s.mu held).
func (s *session) wantAR(now time.Time) bool {
	if s.b.arOffset < 0 || s.arAcked.Load() || s.arLeft < 0 || now.Before(s.arNext) {
		return false
	}
	s.arLeft--
	s.arNext = now.Add(s.cfg.AccessReportInterval)
	if s.arLeft < 0 {
		s.arNext = time.Time{}
	}
	return true
}

func (s *session) onTx(id uint32, t time.Time, src timestamp.Source) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.txmap[id%ringSize]
	if v == 0 {
		return
	}
	seq := v - 1
	sl := &s.ring[seq%ringSize]
	if sl.used && sl.seq == seq {
		sl.t1k, sl.t1kSrc = t.UnixNano(), src
	}
}

// Run runs one session and returns its summary (also printed to cfg.Out). Cancelling ctx
// (SIGINT) stops sending; the summary then covers what was sent.
func Run(ctx context.Context, cfg Config, log logrus.FieldLogger) (*Summary, error) {
	if cfg.Interval <= 0 {
		return nil, errors.New("interval must be positive")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.ClockError <= 0 {
		cfg.ClockError = time.Millisecond
	}
	if cfg.Out == nil {
		cfg.Out = os.Stdout
	}
	if cfg.AccessReportInterval <= 0 {
		cfg.AccessReportInterval = 3 * time.Second
	}
	switch {
	case cfg.AccessReportRetries == 0:
		cfg.AccessReportRetries = 4
	case cfg.AccessReportRetries < 0:
		cfg.AccessReportRetries = 0
	}
	s := &session{cfg: cfg, log: log, mode: testpkt.ModeUnauthenticated, arLeft: cfg.AccessReportRetries}
	if len(cfg.Key) > 0 {
		s.mode = testpkt.ModeAuthenticated
	}
	ee := timestamp.NewErrorEstimate(cfg.Synchronized, cfg.PTP, cfg.ClockError)
	b, err := newBuilder(s.mode, cfg.SSID, ee, cfg.PTP, cfg.Key, cfg.TLVs, cfg.Size)
	if err != nil {
		return nil, err
	}
	s.b = b

	network, bind := "udp4", cfg.Source
	if cfg.Target.Addr().Is6() && !cfg.Target.Addr().Is4In6() {
		network = "udp6"
	}
	if bind == "" {
		bind = ":0"
	}
	opts := udpsock.Options{RxTimestamps: !cfg.NoKernelTimestamps, TxTimestamps: !cfg.NoKernelTimestamps,
		RecvTTL: true, RecvTOS: true, Batch: 64, ReadBuffer: 16 << 20, WriteBuffer: 4 << 20}
	rctx, rcancel := context.WithCancel(context.Background())
	defer rcancel()
	conn, err := udpsock.Listen(rctx, network, bind, opts)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	s.conn = conn
	tos := cfg.DSCP<<2 | cfg.ECN&3
	if tos != 0 {
		if err := conn.SetTOS(tos); err != nil {
			return nil, fmt.Errorf("--dscp/--ecn: %w", err)
		}
	}
	if cfg.TTL > 0 {
		if err := conn.SetTTL(cfg.TTL); err != nil {
			return nil, fmt.Errorf("--ttl: %w", err)
		}
	}
	if cfg.Ready != nil {
		cfg.Ready(conn.LocalAddr())
	}
	s.ring = make([]slot, ringSize)
	s.txmap = make([]uint32, ringSize)
	s.acc = newAccumulator(cfg, s.mode, conn.Features().TxTimestamps)
	log.WithFields(logrus.Fields{"target": cfg.Target.String(), "local": conn.LocalAddr().String(),
		"mode": s.mode.String(), "size": b.Len(), "ssid": cfg.SSID, "rx_timestamps": conn.Features().RxTimestamp,
		"tx_timestamps": conn.Features().TxTimestamps}).Debug("stampsend: session")

	recvDone := make(chan error, 1)
	stopRecv := make(chan struct{})
	go func() { recvDone <- s.receive(stopRecv) }()

	start := time.Now()
	sendErr := s.send(ctx, start)
	lastSend := s.lastSend()
	// Wait for outstanding replies: until everything is back, the timeout passes, the
	// receiver fails or a second interruption.
	deadline := time.NewTimer(max(time.Until(lastSend.Add(cfg.Timeout)), 0))
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var recvErr error
wait:
	for {
		if s.acc.complete(s.sentCount()) {
			break
		}
		select {
		case <-deadline.C:
			break wait
		case recvErr = <-recvDone:
			recvDone <- recvErr
			break wait
		case <-tick.C:
		}
	}
	close(stopRecv)
	_ = conn.SetReadDeadline(time.Now())
	if err := <-recvDone; err != nil && recvErr == nil {
		recvErr = err
	}
	sum := s.acc.summary(s.sentCount(), time.Since(start))
	if err := s.acc.printSummary(sum); err != nil {
		return sum, err
	}
	if sendErr != nil {
		return sum, sendErr
	}
	if recvErr != nil {
		return sum, recvErr
	}
	return sum, nil
}

func (s *session) sentCount() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent
}

func (s *session) lastSend() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastT
}

// send paces the packets with a pace.Pacer (sleep then spin; bursts below 100 µs): the
// packets it hands out together leave in one sendmmsg, each with its own T1.
func (s *session) send(ctx context.Context, start time.Time) error {
	defer pace.LockThread()()
	cfg := &s.cfg
	const batch = pace.DefaultMaxBatch
	msgs := make([]udpsock.Message, batch)
	buf := make([]byte, batch*s.b.Len())
	for i := range msgs {
		msgs[i] = udpsock.Message{Buf: buf[i*s.b.Len() : (i+1)*s.b.Len()], Addr: cfg.Target, TOS: cfg.DSCP<<2 | cfg.ECN&3}
	}
	p := pace.New(start, pace.Config{Schedule: pace.NewSchedule(cfg.Interval, cfg.Poisson, cfg.Seed),
		Count: cfg.Count, Duration: cfg.Duration, MaxBatch: batch})
	var seq uint64
	for {
		n, ok := p.Next(ctx)
		if !ok {
			return nil
		}
		s.mu.Lock()
		for i := 0; i < n; i++ {
			t1 := time.Now()
			q := uint32(seq)
			s.b.build(msgs[i].Buf, q, t1, uint32(seq), s.wantAR(t1))
			s.ring[q%ringSize] = slot{seq: q, used: true, t1: t1.UnixNano()}
			// The kernel numbers transmit stamps per datagram sent on the socket (OPT_ID), so
			// the identifier is known before the send; registering it now lets a stamp that is
			// read before WriteBatch returns find its packet.
			s.txmap[uint32(s.sent+uint64(i))%ringSize] = q + 1
			s.lastT = t1
			seq++
		}
		s.mu.Unlock()
		k, err := s.conn.WriteBatch(msgs[:n])
		s.mu.Lock()
		for i := 0; i < k; i++ {
			q := uint32(seq) - uint32(n) + uint32(i)
			if id := msgs[i].TxID; id != uint32(s.sent+uint64(i)) {
				s.txmap[id%ringSize] = q + 1 // the socket's counter moved (a failed send)
			}
		}
		s.sent += uint64(k)
		s.mu.Unlock()
		if err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOBUFS) {
				s.log.WithError(err).Debug("stampsend: send")
				s.acc.sendErrors.Add(uint64(n - k))
				continue
			}
			return fmt.Errorf("send: %w", err)
		}
		if s.conn.Features().TxTimestamps {
			_, _ = s.conn.TxTimestamps(s.onTx)
		}
	}
}

// receive reads replies until stop is closed.
func (s *session) receive(stop <-chan struct{}) error {
	msgs := make([]udpsock.Message, 64)
	buf := make([]byte, 64*9216)
	for i := range msgs {
		msgs[i].Buf = buf[i*9216 : (i+1)*9216]
	}
	tx := s.conn.Features().TxTimestamps
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		_ = s.conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		n, err := s.conn.ReadBatch(msgs)
		if tx {
			// Transmit stamps are queued when the packet leaves, before its reply can arrive.
			_, _ = s.conn.TxTimestamps(s.onTx)
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EINTR) {
				continue
			}
			if errors.Is(err, udpsock.ErrClosed) {
				return nil
			}
			return fmt.Errorf("receive: %w", err)
		}
		for i := 0; i < n; i++ {
			m := &msgs[i]
			if m.Addr != s.cfg.Target && netip.AddrPortFrom(m.Addr.Addr().Unmap(), m.Addr.Port()) != s.cfg.Target {
				s.acc.foreign.Add(1)
				continue
			}
			if err := s.handle(m); err != nil {
				return err
			}
		}
	}
}

// handle matches one reply with its packet and records it.
func (s *session) handle(m *udpsock.Message) error {
	data := m.Buf[:m.N]
	rp := testpkt.ReflectedPacket{Mode: s.mode}
	if err := rp.UnmarshalBinary(data); err != nil {
		s.acc.malformed.Add(1)
		return nil
	}
	s.mu.Lock()
	sl := s.ring[rp.SenderSeq%ringSize]
	s.mu.Unlock()
	if !sl.used || sl.seq != rp.SenderSeq {
		s.acc.unknown.Add(1)
		return nil
	}
	if s.b.arOffset >= 0 && len(data) > s.mode.ReflectedLen() && !s.arAcked.Load() {
		if t := testpkt.ParseReplyTLVs(data, s.mode.ReflectedLen(), s.acc.signer); t.AccessReport != nil {
			s.arAcked.Store(true)
		}
	}
	return s.acc.add(&rp, data, m, sl)
}
