// Package spp runs the spp tool: it reads the two measurement points (files, live
// interfaces or remote slaves), matches packets into records and pairs, and prints RTTs;
// or, as a slave, captures one point and streams SPP sample frames to a master.
package spp

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/probekit/probekit/spp/internal/format"
	"github.com/probekit/probekit/spp/internal/pktid"
)

// Output formats of the pair lines.
const (
	OutputText = "text"
	OutputJSON = "json"
	OutputCSV  = "csv"
)

// Verbosity bits of -v (the original's values).
const (
	VerbQueues     = 1
	VerbThreads    = 2
	VerbPairs      = 4
	VerbRecords    = 8
	VerbInstances  = 16
	VerbPackets    = 32
	VerbRTTCount   = 64
	VerbNetwork    = 128
	VerbNetVerbose = 1024
)

// Defaults of the original.
const (
	DefaultWindow        = 60
	DefaultPort          = 9822
	DefaultSearchFile    = 10000
	DefaultSearchLive    = 500
	DefaultTSLen         = 2
	DefaultGranularity   = 100
	DefaultFrameInterval = time.Second
	// LiveSnaplen is the original's pcap_open_live snap length.
	LiveSnaplen = 8192
)

// Config is everything the command line sets.
type Config struct {
	A, B       netip.Addr // -a (near REF), -A (near MON)
	NatA, NatB netip.Addr // -n, -N (optional)

	RefFile, MonFile     string // -f, -F ("-" = stdin)
	RefIface, MonIface   string // -i, -I (-I is also the slave's capture interface)
	RefRemote, MonRemote string // -r, -R: the slave sending that point's frames
	Slave                string // -s: run as slave sending frames to this master

	Offset    int64  // -o, whole seconds, signed
	Window    int64  // -d, whole seconds
	MaxSearch int    // -G; 0 = 10000 for files, 500 live
	Code      uint32 // -#; 0 = default (63, or pktid.DefaultIPv6 for IPv6 targets)
	Verbose   uint   // -v bitmask

	TSLen         int           // -l: 1..4 bytes, 0 = absolute timestamps
	Granularity   int           // -g µs
	FrameInterval time.Duration // -t: max time between sample frames

	Count    bool // -c
	SPT      bool // -p
	MonStamp bool // -m
	Begin    bool // -b

	Output  string // text, json, csv
	Summary bool   // --summary
	// Port is the UDP port of sample frames (9822 in the original).
	Port int

	Stdout io.Writer
	Stderr io.Writer // where the -v 64 "RTT COUNT" line goes
	Log    logrus.FieldLogger

	onListen func() // called once the master's sample-frame socket is bound (tests)
}

// ErrUsage marks configuration mistakes (the command maps them to exit status 2).
var ErrUsage = errors.New("usage")

func usagef(f string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(f, a...))
}

// live reports whether any point is a live interface or a remote slave.
func (c *Config) live() bool {
	return c.RefIface != "" || c.MonIface != "" || c.RefRemote != "" || c.MonRemote != ""
}

// Live reports whether the run measures until it is stopped (a live interface, a remote
// slave, or the slave itself) rather than to the end of two capture files.
func (c *Config) Live() bool { return c.live() || c.Slave != "" }

// Validate checks the combination of options and fills in defaults.
func (c *Config) Validate() error {
	if !c.A.IsValid() || !c.B.IsValid() {
		return usagef("-a and -A (the target addresses near the reference and monitor points) are required")
	}
	c.A, c.B = c.A.Unmap(), c.B.Unmap()
	if c.A.Is4() != c.B.Is4() {
		return usagef("-a %s and -A %s are of different IP versions", c.A, c.B)
	}
	if c.A == c.B {
		return usagef("-a and -A are the same address %s", c.A)
	}
	for _, n := range []netip.Addr{c.NatA, c.NatB} {
		if n.IsValid() && n.Unmap().Is4() != c.A.Is4() {
			return usagef("NAT address %s is not of the targets' IP version", n)
		}
	}
	if c.Window < 0 {
		return usagef("-d %d: the window must not be negative", c.Window)
	}
	if c.MaxSearch < 0 {
		return usagef("-G %d: must be positive", c.MaxSearch)
	}
	if c.MonStamp && c.Begin {
		return usagef("-m and -b choose different timestamps; give one of them")
	}
	if c.TSLen < 0 || c.TSLen > 4 {
		return usagef("-l %d: timestamp length must be 1..4 bytes, or 0 for absolute timestamps", c.TSLen)
	}
	if c.Granularity <= 0 {
		return usagef("-g %d: granularity must be a positive number of microseconds", c.Granularity)
	}
	if c.FrameInterval <= 0 {
		return usagef("-t: the maximum time between sample frames must be positive")
	}
	if c.Port <= 0 || c.Port > 65535 {
		return usagef("--port %d: not a UDP port", c.Port)
	}
	switch c.Output {
	case "", OutputText:
		c.Output = OutputText
	case OutputJSON, OutputCSV:
	default:
		return usagef("unknown output format %q", c.Output)
	}
	if c.Code == 0 {
		c.Code = pktid.Default
		if c.A.Unmap().Is6() {
			c.Code = pktid.DefaultIPv6
		}
	}
	if c.Code > pktid.All {
		return usagef("-# %d: field code must be 1..%d", c.Code, pktid.All)
	}
	if c.Slave != "" {
		if c.MonIface == "" {
			return usagef("slave mode (-s) captures on the interface given with -I")
		}
		if c.RefFile != "" || c.MonFile != "" || c.RefIface != "" || c.RefRemote != "" || c.MonRemote != "" {
			return usagef("slave mode (-s) takes only -I as its input")
		}
		return nil
	}
	n := func(s ...string) int {
		k := 0
		for _, v := range s {
			if v != "" {
				k++
			}
		}
		return k
	}
	if k := n(c.RefFile, c.RefIface, c.RefRemote); k != 1 {
		return usagef("give exactly one reference point input (-f FILE, -i IFACE or -r SLAVE), got %d", k)
	}
	if k := n(c.MonFile, c.MonIface, c.MonRemote); k != 1 {
		return usagef("give exactly one monitor point input (-F FILE, -I IFACE or -R SLAVE), got %d", k)
	}
	if c.RefFile == "-" && c.MonFile == "-" {
		return usagef("only one of -f and -F can read standard input")
	}
	if c.RefRemote != "" && c.MonRemote != "" {
		return usagef("only one point can be a remote slave (-r or -R)")
	}
	if c.MaxSearch == 0 {
		c.MaxSearch = DefaultSearchFile
		if c.live() {
			c.MaxSearch = DefaultSearchLive
		}
	}
	return nil
}

func (c *Config) formatOptions() format.Options {
	o := format.Options{Count: c.Count, SPT: c.SPT}
	switch {
	case c.MonStamp:
		o.Stamp = format.StampMon
	case c.Begin:
		o.Stamp = format.StampBegin
	}
	return o
}
