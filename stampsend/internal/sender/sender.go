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
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/shared/pace"
	pipeline "github.com/probekit/probekit/shared/sender"
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

// session is stampsend's side of the Session-Sender pipeline (shared/sender): it builds the
// packets, decodes and checks the replies (HMAC, SSID) and turns them into records.
type session struct {
	cfg  Config
	log  logrus.FieldLogger
	mode testpkt.Mode
	b    *builder
	p    *pipeline.Pipeline
	acc  *accumulator
	rp   testpkt.ReflectedPacket // the reply being handled (receiving goroutine)

	// Access Report retransmission state: arNext and arLeft belong to the sending goroutine,
	// arAcked is set by the receiving one.
	arNext  time.Time
	arLeft  int
	arAcked atomic.Bool
}

// wantAR reports whether the packet sent at now carries the Access Report.
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

func (s *session) build(b []byte, seq uint32, t1 time.Time) (int, error) {
	return len(s.b.build(b, seq, t1, seq, s.wantAR(t1))), nil
}

// decode checks a reply's HMAC (authenticated mode) and SSID and hands its sequence number
// and reflector times to the pipeline.
func (s *session) decode(data []byte, r *pipeline.Reply) error {
	s.rp.Mode = s.mode
	if err := s.rp.UnmarshalBinary(data); err != nil {
		return fmt.Errorf("%w: %v", pipeline.ErrMalformed, err)
	}
	if s.acc.signer != nil && !s.acc.signer.Verify(data) {
		return pipeline.ErrAuth
	}
	switch ssid := s.rp.SSID; {
	case ssid == 0 && s.cfg.SSID != 0:
		// A reflector without RFC 8972 returns zeros: still ours, with a warning.
		if s.cfg.RequireSSID {
			return ErrNoSSID
		}
		s.acc.sawNoSSID()
	case ssid != s.cfg.SSID:
		return fmt.Errorf("%w: SSID %d", pipeline.ErrForeign, ssid)
	}
	r.Seq = s.rp.SenderSeq
	if s.rp.ReceiveTimestamp != 0 && s.rp.Timestamp != 0 {
		r.T2, r.T3 = s.rp.ReceiveTime(), s.rp.TransmitTime()
	}
	return nil
}

func (s *session) onReply(r *pipeline.Reply) error {
	if s.b.arOffset >= 0 && len(r.Data) > s.mode.ReflectedLen() && !s.arAcked.Load() {
		if t := testpkt.ParseReplyTLVs(r.Data, s.mode.ReflectedLen(), s.acc.signer); t.AccessReport != nil {
			s.arAcked.Store(true)
		}
	}
	return s.acc.add(&s.rp, r)
}

// newSession lays out the packets and the pipeline; conn may be nil for offline use
// (pipeline.Record and Handle in tests).
func newSession(cfg Config, log logrus.FieldLogger, conn *udpsock.Conn) (*session, error) {
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
	s.acc = newAccumulator(cfg, s.mode)
	s.acc.size = b.Len()
	s.p, err = pipeline.New(pipeline.Config{Conn: conn, Target: cfg.Target, TOS: cfg.DSCP<<2 | cfg.ECN&3,
		Schedule: pace.NewSchedule(cfg.Interval, cfg.Poisson, cfg.Seed), Count: cfg.Count, Duration: cfg.Duration,
		Timeout: cfg.Timeout, MaxLen: b.Len(), Build: s.build, Decode: s.decode, OnReply: s.onReply, Log: log})
	return s, err
}

// Run runs one session and returns its summary (also printed to cfg.Out). Cancelling ctx
// (SIGINT) stops sending; the summary then covers what was sent. The error is
// pipeline.ErrNoReply when nothing came back and pipeline.ErrReflectorGone when the replies
// stopped; the summary is printed complete before either.
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
	network, bind := "udp4", cfg.Source
	if cfg.Target.Addr().Is6() && !cfg.Target.Addr().Is4In6() {
		network = "udp6"
	}
	if bind == "" {
		bind = ":0"
	}
	opts := pipeline.SocketOptions(cfg.NoKernelTimestamps)
	rctx, rcancel := context.WithCancel(context.Background())
	defer rcancel()
	conn, err := udpsock.Listen(rctx, network, bind, opts)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
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
	s, err := newSession(cfg, log, conn)
	if err != nil {
		return nil, err
	}
	if cfg.Ready != nil {
		cfg.Ready(conn.LocalAddr())
	}
	log.WithFields(logrus.Fields{"target": cfg.Target.String(), "local": conn.LocalAddr().String(),
		"mode": s.mode.String(), "size": s.b.Len(), "ssid": cfg.SSID, "rx_timestamps": conn.Features().RxTimestamp,
		"tx_timestamps": conn.Features().TxTimestamps}).Debug("stampsend: session")

	start := time.Now()
	st, runErr := s.p.Run(ctx)
	if st == nil {
		return nil, runErr
	}
	sum := s.acc.summary(st, time.Since(start))
	if err := s.acc.printSummary(sum); err != nil {
		return sum, err
	}
	return sum, runErr
}
