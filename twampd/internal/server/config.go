// Package server is twampd: the TWAMP Server (control, RFC 5357 §3) and Session-Reflector
// (built on shared/reflector), plus the TWAMP Light reflector and the monitoring endpoints.
package server

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/shared/httpside"
	"github.com/probekit/probekit/shared/reflector"
	"github.com/probekit/probekit/shared/twampctl"
)

// Defaults (RFC 5357 §3.1, §4.2 and owamp's).
const (
	DefaultPort     = 862
	DefaultServWait = 900 * time.Second
	DefaultRefWait  = 900 * time.Second
	DefaultCount    = 2048
	// DefaultMaxTimeout caps the Timeout a client may ask for after Stop-Sessions.
	DefaultMaxTimeout = 60 * time.Second
	// DefaultHandshakeTimeout bounds Server-Greeting → Set-Up-Response → Server-Start:
	// SERVWAIT applies only after it, so idle TCP connections cannot hold the connection
	// slots for 15 minutes (issue 11 H2).
	DefaultHandshakeTimeout = 10 * time.Second
	// Resource bounds of the command line's defaults (issue 11 H1, H2). A requested
	// session costs a UDP socket and a few kilobytes; a running one ~300 KiB of batch
	// buffers plus its socket buffer (kernel memory): 1000 running sessions hold ~300 MB.
	DefaultMaxConnections           = 64
	DefaultMaxConnectionsPerHost    = 8
	DefaultMaxSessions              = 1000
	DefaultMaxSessionsPerConnection = 32
	// SupportedExtensions are the extension mode bits this server implements and advertises:
	// RFC 5938 individual session control, RFC 6038 reflect octets and symmetrical size, and
	// RFC 7750 DSCP and ECN monitoring.
	SupportedExtensions = twampctl.ModeIndividualSessionControl | twampctl.ModeReflectOctets |
		twampctl.ModeSymmetricalSize | twampctl.ModeDSCPECN
)

// PortRange is the UDP port range for test sessions (cliutil.PortRange, parsed by
// cliutil.ParsePortRange like every tool's --test-ports); zero means "kernel chooses".
type PortRange = cliutil.PortRange

// Limits bound what one identity (or unauthenticated clients) may use.
type Limits struct {
	// MaxSessions is the most concurrent test sessions (0 = no per-user limit).
	MaxSessions int
	// MaxPadding is the largest Padding Length accepted (0 = no limit).
	MaxPadding uint32
	// Deny refuses the identity altogether.
	Deny bool
}

// LimitsFile maps identities to limits. The key "open" applies to unauthenticated clients,
// "*" to authenticated identities without their own line.
type LimitsFile map[string]Limits

// ParseLimits reads lines `identity key=value ...` with keys sessions, padding, deny
// (e.g. `testuser sessions=4 padding=1400`, `open sessions=1`, `mallory deny`).
func ParseLimits(r io.Reader) (LimitsFile, error) {
	lf := LimitsFile{}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		s := sc.Text()
		if i := strings.IndexByte(s, '#'); i >= 0 {
			s = s[:i]
		}
		f := strings.Fields(s)
		if len(f) == 0 {
			continue
		}
		var l Limits
		for _, kv := range f[1:] {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "deny":
				l.Deny = true
				continue
			case "sessions", "padding":
			default:
				return nil, fmt.Errorf("limits line %d: unknown key %q (sessions, padding, deny)", line, k)
			}
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("limits line %d: %s=%q is not a number", line, k, v)
			}
			if k == "sessions" {
				l.MaxSessions = int(n)
			} else {
				l.MaxPadding = uint32(n)
			}
		}
		if _, dup := lf[f[0]]; dup {
			return nil, fmt.Errorf("limits line %d: duplicate identity %q", line, f[0])
		}
		lf[f[0]] = l
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("limits line %d: %w", line+1, err)
	}
	return lf, nil
}

// LoadLimits reads a limits file.
func LoadLimits(path string) (LimitsFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("limits: %w", err)
	}
	defer f.Close()
	lf, err := ParseLimits(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return lf, nil
}

// For returns the limits of an identity ("" = unauthenticated).
func (lf LimitsFile) For(identity string) Limits {
	if identity == "" {
		return lf["open"]
	}
	if l, ok := lf[identity]; ok {
		return l
	}
	return lf["*"]
}

// Config is twampd's configuration.
type Config struct {
	// Listen addresses for TWAMP-Control (TCP) or, with Light, the TWAMP Light reflector (UDP).
	Listen []string
	// Modes are the security modes offered (twampctl.Mode bits O/A/E/M).
	Modes twampctl.Mode
	// Keys holds the shared secrets for modes A, E and M.
	Keys twampctl.KeyFile
	// Limits are per-identity limits (nil = none).
	Limits LimitsFile
	// Count is the PBKDF2 iteration count offered (DefaultCount when 0).
	Count uint32
	// ServWait closes idle control connections; RefWait ends test sessions without packets.
	ServWait, RefWait time.Duration
	// TestPorts is the fallback range for test sessions after the requested port.
	TestPorts PortRange
	// MaxSessions bounds concurrent test sessions over all clients (0 = unlimited).
	MaxSessions int
	// MaxConnections bounds concurrent control connections (0 = unlimited). When it is
	// reached, the oldest connection open longer than EvictIdleAfter whose started sessions
	// received no test packet within EvictIdleAfter (requested-only sessions end with it) is
	// closed for the newcomer; if there is none, the newcomer gets a Server-Greeting with
	// Modes 0 (RFC 4656 §3.1: refused) and is closed.
	MaxConnections int
	// MaxConnectionsPerHost bounds concurrent control connections from one client address,
	// an IPv6 client's /64 (0 = unlimited), refused the same way.
	MaxConnectionsPerHost int
	// MaxSessionsPerConnection bounds the sessions one control connection may hold
	// (requested or running; 0 = unlimited); beyond it Request-TW-Session gets Accept=4.
	MaxSessionsPerConnection int
	// HandshakeTimeout bounds the connection setup before SERVWAIT applies
	// (DefaultHandshakeTimeout when 0).
	HandshakeTimeout time.Duration
	// EvictIdleAfter is how long a control connection must have been open, and without test
	// packets, before it may be closed for a newcomer at MaxConnections (HandshakeTimeout
	// when 0).
	EvictIdleAfter time.Duration
	// StrictStop closes the control connection when Stop-Sessions has the wrong count
	// (RFC 5357 §3.8); otherwise the mismatch is logged and the sessions stopped.
	StrictStop bool
	// MaxTimeout caps the post-Stop-Sessions Timeout (DefaultMaxTimeout when 0).
	MaxTimeout time.Duration
	// Light runs a TWAMP Light reflector on Listen (UDP) instead of the control server.
	Light bool
	// MetricsAddr serves /metrics and /status (e.g. 127.0.0.1:9862); empty disables. An
	// address other than loopback needs MetricsToken (shared/httpside rules).
	MetricsAddr string
	// MetricsToken is the bearer token the metrics port requires off loopback.
	MetricsToken string
	// KernelTimestamps asks for SO_TIMESTAMPING receive timestamps for T2.
	KernelTimestamps bool
	// Synchronized sets the S bit in the reflector's Error Estimate.
	Synchronized bool
	// BusyPoll, when positive, polls each test socket for up to this long before sleeping
	// (reflector.Config.BusyPoll); it excludes Realtime.
	BusyPoll time.Duration
	// Realtime, when positive, serves each test socket on a SCHED_FIFO thread of this
	// priority (1…99, needs CAP_SYS_NICE; reflector.Config.Realtime); best with Blocking.
	Realtime int
	// Blocking waits for test packets inside recvmmsg instead of the Go network poller
	// (udpsock.Options.Blocking): one OS thread per test socket.
	Blocking bool
	// StrictSize (--light) drops requests shorter than their reply (41 octets), so no reply
	// amplifies a spoofed request; otherwise such replies are limited per source address
	// (reflector.Config.StrictSize). Control-negotiated sessions are exempt.
	StrictSize bool
	// Workers (--light) opens that many SO_REUSEPORT sockets per address, one reflector
	// worker each, so sessions spread over CPUs (1 when ≤ 1).
	Workers int
	// Logger receives logs; nil discards.
	Logger logrus.FieldLogger
}

func (c *Config) setDefaults() {
	if len(c.Listen) == 0 {
		c.Listen = []string{fmt.Sprintf(":%d", DefaultPort)}
	}
	if c.Modes == 0 {
		c.Modes = twampctl.ModeUnauthenticated
	}
	if c.Count == 0 {
		c.Count = DefaultCount
	}
	if c.ServWait == 0 {
		c.ServWait = DefaultServWait
	}
	if c.RefWait == 0 {
		c.RefWait = DefaultRefWait
	}
	if c.MaxTimeout == 0 {
		c.MaxTimeout = DefaultMaxTimeout
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.EvictIdleAfter <= 0 {
		c.EvictIdleAfter = c.HandshakeTimeout
	}
	if c.Logger == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		c.Logger = l
	}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.Modes.Security() == 0 || c.Modes&^twampctl.SecurityModes != 0 {
		return fmt.Errorf("modes must be a combination of O, A, E, M, got %s", c.Modes)
	}
	if c.Modes&(twampctl.ModeAuthenticated|twampctl.ModeEncrypted|twampctl.ModeMixed) != 0 && len(c.Keys) == 0 {
		return fmt.Errorf("modes A, E and M need a key file with at least one identity")
	}
	if c.MetricsAddr != "" {
		ap, err := netip.ParseAddrPort(c.MetricsAddr)
		if err != nil {
			return fmt.Errorf("metrics address %q: want IP:PORT (127.0.0.1:9862)", c.MetricsAddr)
		}
		if !ap.Addr().IsLoopback() && c.MetricsToken == "" {
			return fmt.Errorf("metrics address %s is not loopback: it needs a token file (%w)", c.MetricsAddr, httpside.ErrTokenRequired)
		}
	}
	if err := reflector.CheckScheduling(c.BusyPoll, c.Realtime); err != nil {
		return err
	}
	if c.Count != 0 {
		if err := twampctl.ValidCount(c.Count); err != nil {
			return err
		}
	}
	return nil
}
