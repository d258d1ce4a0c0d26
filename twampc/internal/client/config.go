// Package client is twampc: the TWAMP Control-Client and Session-Sender (RFC 5357), with
// authenticated/encrypted/mixed modes, parallel sessions, TWAMP Light and twping-like output.
package client

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/probekit/probekit/shared/twampctl"
)

// DefaultPort is the TWAMP-Control port (and the default TWAMP Light reflector port).
const DefaultPort = 862

// Schedule is the send schedule of a session.
type Schedule struct {
	Interval time.Duration
	// Poisson draws exponential gaps with mean Interval (RFC 3432 style); otherwise periodic.
	Poisson bool
}

// ParseSchedule parses twping's -i syntax ("0.1e" exponential, "0.01f" fixed, seconds) and
// Go durations ("10ms", "10mse" for exponential).
func ParseSchedule(s string) (Schedule, error) {
	var sc Schedule
	switch {
	case strings.HasSuffix(s, "e"):
		sc.Poisson = true
		s = strings.TrimSuffix(s, "e")
	case strings.HasSuffix(s, "f"):
		s = strings.TrimSuffix(s, "f")
	}
	if d, err := time.ParseDuration(s); err == nil {
		sc.Interval = d
	} else {
		f, err := strconv.ParseFloat(s, 64)
		// !(in range) also rejects NaN, whose conversion to Duration is platform-defined.
		if err != nil || !(f >= 0 && f <= 3600) {
			return sc, fmt.Errorf("bad interval %q (seconds like 0.1, or a duration like 10ms, optional suffix e|f)", s)
		}
		sc.Interval = time.Duration(f * float64(time.Second))
	}
	if sc.Interval < 0 {
		return sc, fmt.Errorf("negative interval")
	}
	return sc, nil
}

// Config is twampc's configuration.
type Config struct {
	// Target is HOST[:PORT] of the TWAMP server (or TWAMP Light reflector).
	Target string
	// Network is "tcp", "tcp4" or "tcp6" (-4/-6).
	Network string
	// Source is the local address to bind (-S), empty for the kernel's choice.
	Source string
	Count  int
	Schedule
	// Padding is the Padding Length; < 0 chooses twping's equal-size default (27 open/mixed,
	// 64 authenticated/encrypted).
	Padding     int
	ZeroPadding bool
	DSCP        uint8
	// Modes are the security modes the client accepts (strongest common chosen).
	Modes    twampctl.Mode
	Identity string
	Secret   []byte
	// Sessions run in parallel over one control connection.
	Sessions int
	// TestPorts is an optional local port range for the session senders.
	TestPortLo, TestPortHi uint16
	// LossTimeout is how long to wait for replies after the last packet; it is also the
	// Timeout sent in Request-TW-Session.
	LossTimeout time.Duration
	// StartDelay delays the Start Time and first packet.
	StartDelay time.Duration
	// ZeroAddresses sends zero Sender/Receiver addresses (-Z, NAT).
	ZeroAddresses bool
	// Individual uses RFC 5938 Start-N-Sessions/Stop-N-Sessions when the server offers them.
	Individual bool
	// DSCPECN asks for RFC 7750 DSCP and ECN monitoring: the reflector returns the DS field
	// it received, so DSCP re-marking and ECN marks on the forward path are reported.
	DSCPECN bool
	// ReflectOctets asks for the RFC 6038 Reflect Octets mode: OctetsToBeReflected goes in
	// Request-TW-Session (the server must echo it in Accept-Session) and ReflectPadding
	// octets of each packet's padding come back in its reply (< 0: 2, the Server Octets).
	ReflectOctets       bool
	OctetsToBeReflected uint16
	ReflectPadding      int
	// Symmetric uses the RFC 6038 Symmetrical Size sender format (requests as long as replies).
	Symmetric bool
	// Light sends TWAMP Light test packets without a control connection.
	Light bool
	// ConnectTimeout bounds connection setup.
	ConnectTimeout time.Duration
	// KeepPackets keeps per-packet records for output.
	KeepPackets bool
	// Percentiles printed in the text summary.
	Percentiles []float64
	Logger      logrus.FieldLogger
}

func (c *Config) setDefaults() {
	if c.Network == "" {
		c.Network = "tcp"
	}
	if c.Count == 0 {
		c.Count = 100
	}
	if c.Modes == 0 {
		c.Modes = twampctl.ModeUnauthenticated
	}
	if c.Sessions == 0 {
		c.Sessions = 1
	}
	if c.LossTimeout == 0 {
		c.LossTimeout = 2 * time.Second
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if len(c.Percentiles) == 0 {
		c.Percentiles = []float64{50, 90, 95, 99}
	}
	if c.Logger == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		c.Logger = l
	}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.Target == "" {
		return fmt.Errorf("missing HOST[:PORT]")
	}
	if c.Count < 0 || c.Sessions < 0 || c.Sessions > 1024 {
		return fmt.Errorf("count must be ≥ 0 and sessions within 1..1024")
	}
	if c.Padding > 65000 {
		return fmt.Errorf("padding %d too large", c.Padding)
	}
	if c.Light && c.Modes != 0 && c.Modes != twampctl.ModeUnauthenticated {
		return fmt.Errorf("TWAMP Light is unauthenticated only")
	}
	if c.TestPortHi < c.TestPortLo {
		return fmt.Errorf("bad test port range")
	}
	return nil
}

// hostPort adds the default port to a target without one.
func hostPort(target string) string {
	if _, _, err := net.SplitHostPort(target); err == nil {
		return target
	}
	if a, err := netip.ParseAddr(strings.Trim(target, "[]")); err == nil && a.Is6() {
		return net.JoinHostPort(a.String(), strconv.Itoa(DefaultPort))
	}
	return net.JoinHostPort(target, strconv.Itoa(DefaultPort))
}
