package reflector

import (
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/timestamp"
)

// Config configures a Reflector. The zero value is a stateful, unauthenticated STAMP reflector
// that learns any number of sessions, expires them after DefaultIdleTimeout and honours Class of
// Service DSCP requests.
type Config struct {
	// Mode is the packet layout this reflector's sockets expect for learned sessions:
	// testpkt.ModeUnauthenticated or testpkt.ModeAuthenticated.
	Mode testpkt.Mode
	// Key is the default STAMP HMAC key (authenticated mode; in unauthenticated mode it also
	// verifies HMAC TLVs when set). Provisioned sessions may carry their own.
	Key []byte
	// Stateless reflects the sender's sequence number (B-11) and zeroes Follow-Up Telemetry;
	// otherwise each session counts from 0 (B-12).
	Stateless bool
	// ProvisionedOnly drops packets of sessions that were not provisioned.
	ProvisionedOnly bool
	// MaxSessions limits the sessions, learned and provisioned together (DefaultMaxSessions
	// when ≤ 0; there is no unlimited table). When it is full, a new session takes the place
	// of the least recently used learned one (Stats.Evicted), so a flood of new sessions
	// cannot lock newcomers out.
	MaxSessions int
	// SessionRate and SessionBurst bound how many new learned sessions one source prefix
	// (IPv4 /24, IPv6 /64) may open: SessionRate per second on average, SessionBurst at once
	// (DefaultSessionRate and DefaultSessionBurst when 0; a negative rate lifts the limit).
	// Packets of refused sessions are dropped (DropRateLimited) and logged, rate-limited.
	SessionRate  float64
	SessionBurst int
	// StrictSize refuses every request whose reply would be longer than it (DropAmplification):
	// the minimum reply sizes of the RFCs (44 octets for unauthenticated STAMP, RFC 8762
	// §4.6 TWAMP-Light interop; 41 for TWAMP open mode, RFC 5357) exceed the 14-octet minimum
	// request. Without it such replies are limited to ShortReplyRate per second and source
	// address (DefaultShortReplyRate when 0; negative: no limit). Provisioned sessions, set up
	// by the operator or TWAMP-Control, are exempt.
	StrictSize     bool
	ShortReplyRate float64
	// IdleTimeout expires learned sessions (DefaultIdleTimeout when 0).
	IdleTimeout time.Duration
	// RefuseDSCP is the local policy of RFC 8972 §4.4: when set, Class of Service DSCP1
	// requests are not applied (the reply keeps the received DSCP and RP = 1).
	RefuseDSCP bool
	// PTP writes T2/T3 in truncated PTPv2 format with Z = 1 (B-06); NTP otherwise.
	PTP bool
	// Synchronized sets the S bit of the reflector's Error Estimate.
	Synchronized bool
	// ClockError is the estimated clock error for the Error Estimate (1 ms when 0).
	ClockError time.Duration
	// SyncSource is reported in Timestamp Information TLVs (testpkt.SyncNTP when 0).
	SyncSource uint8
	// Format is the protocol of learned sessions (FormatSTAMP by default).
	Format Format
	// Batch is the number of datagrams per recvmmsg/sendmmsg (udpsock.DefaultBatch when 0).
	Batch int
	// MaxPacket is the largest test packet reflected (9216 when 0); longer ones are dropped
	// because a truncated copy would break symmetric size.
	MaxPacket int
	// BusyPoll, when positive, makes Serve poll the socket without sleeping for up to this
	// long after each batch (udpsock Options.BusyPoll): lower residence time (no scheduler
	// wake-up for packets arriving within the window) at the cost of a spinning CPU. It
	// excludes Realtime (see CheckScheduling).
	BusyPoll time.Duration
	// Realtime, when positive, runs each Serve loop on its own OS thread with SCHED_FIFO at
	// this priority (1…99, needs CAP_SYS_NICE; a warning and normal scheduling otherwise).
	// Combined with blocking reads it keeps residence time low on a busy host.
	Realtime int
	// Workers is the number of goroutines serving each socket (1 when ≤ 0; see
	// ServeOptions.Workers, which overrides it for one ServeWith). Sockets served with an
	// Idle timeout (TWAMP sessions) keep one.
	Workers int
	// Logger receives per-session events at debug level and errors; nil discards.
	Logger logrus.FieldLogger
}

// MaxBusyPoll is the longest busy-poll window Config.BusyPoll accepts.
const MaxBusyPoll = time.Second

// CheckScheduling validates the socket-loop scheduling options that daemons take from their
// command line: busy polling of 0 … MaxBusyPoll, a SCHED_FIFO priority of 0 (off) … 99, and
// not both, because the kernel throttles a real-time thread that never sleeps
// (sched_rt_runtime_us: 50 ms of every second), which held packets for tens of ms (p99
// residence 24 ms measured at 10 kpps).
func CheckScheduling(busyPoll time.Duration, realtime int) error {
	switch {
	case busyPoll < 0 || busyPoll > MaxBusyPoll:
		return fmt.Errorf("busy polling must be 0 … %v, got %v", MaxBusyPoll, busyPoll)
	case realtime < 0 || realtime > 99:
		return fmt.Errorf("real-time priority must be 1 … 99 (0 = off), got %d", realtime)
	case busyPoll > 0 && realtime > 0:
		return errors.New("busy polling and real-time priority exclude each other (a spinning real-time thread is throttled by the kernel)")
	}
	return nil
}

// DefaultIdleTimeout is how long a learned session lives without packets.
const DefaultIdleTimeout = 5 * time.Minute

// Drop reasons counted by Stats.
const (
	DropShort         = iota // shorter than the layout allows
	DropAuth                 // HMAC (or Authenticator) failed (B-19)
	DropUnknown              // not provisioned in ProvisionedOnly mode
	DropTableFull            // MaxSessions reached
	DropNoReply              // Return Path TLV asked for no reply (RFC 9503)
	DropTooLong              // longer than MaxPacket / truncated on receive
	DropSendError            // sendmmsg failed
	DropRateLimited          // new session refused: its source prefix opened too many (SessionRate)
	DropReplay               // authenticated sequence number already answered or too old
	DropAmplification        // reply would be longer than the request (StrictSize or ShortReplyRate)
	numDrops
)

var dropNames = [numDrops]string{"short", "auth", "unknown_session", "table_full", "no_reply_requested", "too_long",
	"send_error", "session_rate_limited", "replay", "amplification"}

// Defaults of the admission limits (see Config).
const (
	DefaultSessionRate    = 100
	DefaultSessionBurst   = 1000
	DefaultShortReplyRate = 1000
)

// DropName returns the metric label of a drop reason.
func DropName(i int) string { return dropNames[i] }

// NumDrops is the number of drop reasons.
const NumDrops = numDrops

// residenceBounds are the upper bounds (inclusive) of the residence-time histogram buckets.
var residenceBounds = [...]time.Duration{
	time.Microsecond, 2 * time.Microsecond, 5 * time.Microsecond, 10 * time.Microsecond,
	20 * time.Microsecond, 50 * time.Microsecond, 100 * time.Microsecond, 200 * time.Microsecond,
	500 * time.Microsecond, time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond,
}

// ResidenceBounds returns the histogram bucket bounds (the last bucket is +Inf).
func ResidenceBounds() []time.Duration { return residenceBounds[:] }

// keyring is the default key with a generation so workers notice reloads.
type keyring struct {
	key []byte
	gen uint64
}

// Reflector is a Session-Reflector: configuration, the session table, the default key and the
// counters shared by every socket it serves (see Serve and Worker).
type Reflector struct {
	cfg   Config
	table *Table
	keys  atomic.Pointer[keyring]
	gen   atomic.Uint64
	ee    timestamp.ErrorEstimate
	log   logrus.FieldLogger
	local []netip.Addr
	// workers numbers the Workers, each of which adds to its own Stats slot.
	workers      atomic.Uint64
	newSessions  *limiter // per source prefix (SessionRate)
	shortReplies *limiter // per source address (ShortReplyRate)
	logAdmit     rateLog
	logFull      rateLog
	logAmplify   rateLog
	Stats        Stats
}

// ErrConfig reports an invalid Config.
var ErrConfig = errors.New("reflector: invalid configuration")

// New returns a Reflector for cfg.
func New(cfg Config) (*Reflector, error) {
	if cfg.Mode != testpkt.ModeUnauthenticated && cfg.Mode != testpkt.ModeAuthenticated {
		return nil, errors.Join(ErrConfig, errors.New("mode must be unauthenticated or authenticated"))
	}
	if cfg.Mode == testpkt.ModeAuthenticated && len(cfg.Key) == 0 && !cfg.ProvisionedOnly {
		return nil, errors.Join(ErrConfig, errors.New("authenticated mode needs a key"))
	}
	if err := CheckScheduling(cfg.BusyPoll, cfg.Realtime); err != nil {
		return nil, errors.Join(ErrConfig, err)
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.ClockError <= 0 {
		cfg.ClockError = time.Millisecond
	}
	if cfg.SyncSource == 0 {
		cfg.SyncSource = testpkt.SyncNTP
	}
	if cfg.MaxPacket <= 0 {
		cfg.MaxPacket = 9216
	}
	if cfg.MaxPacket < testpkt.AuthBaseLen {
		cfg.MaxPacket = testpkt.AuthBaseLen
	}
	log := cfg.Logger
	if log == nil {
		l := logrus.New()
		l.SetOutput(discard{})
		log = l
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.SessionRate == 0 {
		cfg.SessionRate = DefaultSessionRate
	}
	if cfg.SessionBurst <= 0 {
		cfg.SessionBurst = DefaultSessionBurst
	}
	if cfg.ShortReplyRate == 0 {
		cfg.ShortReplyRate = DefaultShortReplyRate
	}
	r := &Reflector{
		cfg:          cfg,
		table:        NewTable(cfg.MaxSessions),
		newSessions:  newLimiter(cfg.SessionRate, cfg.SessionBurst),
		shortReplies: newLimiter(cfg.ShortReplyRate, int(cfg.ShortReplyRate)),
		ee:           timestamp.NewErrorEstimate(cfg.Synchronized, cfg.PTP, cfg.ClockError),
		log:          log,
		local:        localAddrs(),
	}
	r.SetKey(cfg.Key)
	return r, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Config returns the configuration in use (with defaults filled).
func (r *Reflector) Config() Config { return r.cfg }

// Table returns the session table (for provisioning and monitoring).
func (r *Reflector) Table() *Table { return r.table }

// SetKey replaces the default key (SIGHUP reload); workers pick it up on their next packet.
func (r *Reflector) SetKey(key []byte) {
	r.keys.Store(&keyring{key: append([]byte(nil), key...), gen: r.gen.Add(1)})
}

// ErrorEstimate returns the Error Estimate the reflector writes.
func (r *Reflector) ErrorEstimate() timestamp.ErrorEstimate { return r.ee }

// ExpireIdle removes learned sessions idle for longer than the idle timeout.
func (r *Reflector) ExpireIdle(now time.Time) int {
	n := r.table.Expire(now.Add(-r.cfg.IdleTimeout))
	r.Stats.Expired.Add(uint64(n))
	return n
}
