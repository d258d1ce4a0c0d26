// Package cmd builds stampsend's command line and maps it onto sender.Config.
package cmd

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/probekit/probekit/shared/cliutil"
	pipeline "github.com/probekit/probekit/shared/sender"
	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/stampsend/internal/sender"
)

// Flag names.
const (
	flagCount       = "count"
	flagDuration    = "duration"
	flagInterval    = "interval"
	flagSchedule    = "schedule"
	flagSize        = "size"
	flagPadding     = "padding"
	flagSSID        = "ssid"
	flagKeyFile     = "key-file"
	flagPTP         = "ptp"
	flagDSCP        = "dscp"
	flagECN         = "ecn"
	flagTTL         = "ttl"
	flagTLV         = "tlv"
	flagTimeout     = "timeout"
	flagQuiet       = "quiet"
	flagRequireSSID = "require-ssid"
	flagSource      = "source"
	flagNoKernel    = "no-kernel-timestamps"
	flagSynced      = "synchronized"
	flagClockError  = "clock-error"
	flagSeed        = "seed"
	flagARInterval  = "access-report-interval"
	flagARRetries   = "access-report-retries"
)

// ErrNoReply is returned when not a single reply came back (exit status 1, like ping).
var ErrNoReply = pipeline.ErrNoReply

// NewApp returns the stampsend command.
func NewApp(version string) *cli.App {
	app := cliutil.NewApp("stampsend", "STAMP Session-Sender (RFC 8762, RFC 8972): RTT, loss, jitter, one-way delay", version)
	app.ArgsUsage = "HOST[:PORT]"
	// --tlv values contain commas (cos:dscp=ef,ecn=ect0); do not split them.
	app.DisableSliceFlagSeparator = true
	app.Description = "stampsend sends STAMP test packets to a Session-Reflector (UDP 862 by default) and prints one " +
		"line per reply like ping, then a summary: loss, duplicates, reordering, RTT min/mean/max/stddev and " +
		"percentiles, jitter, the reflector's residence time (T3-T2) and one-way delays, with a warning when the " +
		"Error Estimates say the clocks are not synchronised. RTT = (T4-T1) - (T3-T2) with kernel transmit and " +
		"receive timestamps where available. --json prints one JSON object per reply and a JSON summary; " +
		"--format csv prints a table (summary on stderr). TLVs are chosen with --tlv NAME[:OPT=V,...]: " +
		strings.Join(sender.TLVNames, ", ") + ". " +
		"Replies are validated against what was sent (source address and port, SSID, HMAC, a sequence number " +
		"actually sent); others are counted as discarded and never change loss, RTT or reordering. " +
		"The exit status is 1, after the summary, when no reply came back or the reflector stopped answering " +
		"(no reply to the last packets for longer than --timeout); Ctrl-C after replies " +
		"came back exits 0 like ping."
	app.Flags = append(app.Flags,
		cliutil.IntFlag(flagCount, "stop after `N` packets (0 = until --duration or Ctrl-C)", 0, 0, math.MaxInt64, "c"),
		&cli.DurationFlag{Name: flagDuration, Aliases: []string{"w"}, Usage: "stop sending after `DURATION`"},
		&cli.StringFlag{Name: flagInterval, Aliases: []string{"i"}, Value: "1s", Usage: "`INTERVAL` between packets (1s, 10ms, or seconds as 0.01)"},
		&cli.StringFlag{Name: flagSchedule, Value: "periodic", Usage: "departure schedule: periodic (RFC 3432) or poisson (RFC 2330, mean = interval)"},
		cliutil.IntFlag(flagSize, "UDP payload `SIZE` in octets (filled with an Extra Padding TLV; 0 = base packet + TLVs)", 0, 0, 9000),
		cliutil.IntFlag(flagPadding, "add an Extra Padding TLV with `N` octets", 0, 0, 9000),
		cliutil.IntFlag(flagSSID, "session identifier (default: random non-zero)", 0, 0, 65535),
		&cli.StringFlag{Name: flagKeyFile, Aliases: []string{"k"}, Usage: "HMAC key `FILE` (raw octets or hex:…): authenticated mode"},
		&cli.BoolFlag{Name: flagPTP, Usage: "send T1 in truncated PTPv2 format (Z=1) instead of NTP"},
		cliutil.DSCPFlag(flagDSCP, "DSCP of the test packets (0..63 or ef, af41, cs1 …)", 0),
		&cli.StringFlag{Name: flagECN, Value: "not-ect", Usage: "ECN of the test packets: not-ect, ect0, ect1, ce"},
		cliutil.IntFlag(flagTTL, "IP TTL / hop limit of the test packets (0 = system default)", 0, 0, 255),
		&cli.StringSliceFlag{Name: flagTLV, Usage: "add a TLV, `NAME[:OPT=V,...]` (repeatable): " + strings.Join(sender.TLVNames, ", ")},
		&cli.DurationFlag{Name: flagTimeout, Aliases: []string{"W"}, Value: 2 * time.Second, Usage: "a reply later than this is late; wait this long after the last packet"},
		&cli.BoolFlag{Name: flagQuiet, Aliases: []string{"q"}, Usage: "print only the summary (no per-reply lines or records)"},
		&cli.BoolFlag{Name: flagRequireSSID, Usage: "stop when the reflector returns SSID 0 (no RFC 8972 support)"},
		&cli.StringFlag{Name: flagSource, Aliases: []string{"I"}, Usage: "local `ADDR[:PORT]` to send from"},
		&cli.BoolFlag{Name: flagNoKernel, Usage: "use user-space clocks instead of kernel timestamps"},
		&cli.BoolFlag{Name: flagSynced, Usage: "set the S bit: this host's clock is synchronised to UTC"},
		&cli.DurationFlag{Name: flagClockError, Value: time.Millisecond, Usage: "clock error reported in the Error Estimate"},
		cliutil.IntFlag(flagSeed, "seed of the Poisson schedule (0 = random)", 0, 0, math.MaxInt64),
		&cli.DurationFlag{Name: flagARInterval, Value: 3 * time.Second, Usage: "resend an unanswered Access Report TLV after `DURATION`"},
		cliutil.IntFlag(flagARRetries, "resend an unanswered Access Report TLV at most `N` times", 4, 0, 1000),
	)
	app.Action = func(c *cli.Context) error {
		cfg, err := Config(c)
		if err != nil {
			return err
		}
		// The summary is printed complete before any error: no reply at all
		// (pipeline.ErrNoReply) and replies that stopped (pipeline.ErrReflectorGone) exit 1.
		_, err = sender.Run(c.Context, cfg, cliutil.Logger(c))
		return err
	}
	return app
}

// ParseTarget resolves HOST[:PORT] (port 862 by default, B-01).
func ParseTarget(ctx context.Context, s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Port() == 0 {
			return ap, cliutil.Usagef("target %q: port 0", s)
		}
		return ap, nil
	}
	host, port := s, strconv.Itoa(testpkt.DefaultPort)
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
	} else {
		host = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	}
	pn, err := cliutil.ParsePort(port, false)
	if err != nil {
		return netip.AddrPort{}, cliutil.Usagef("target %q: port %v", s, err)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(a, pn), nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("resolve %s: %w", host, err)
	}
	return netip.AddrPortFrom(addrs[0].Unmap(), pn), nil
}

// ParseInterval accepts a Go duration ("10ms") or seconds ("0.01", as ping's -i).
func ParseInterval(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is neither a duration nor seconds", s)
	}
	return time.Duration(f * float64(time.Second)), nil
}

var ecnValues = map[string]uint8{"not-ect": 0, "ect1": 1, "ect0": 2, "ce": 3}

// Config validates the command line and returns the session configuration.
func Config(c *cli.Context) (sender.Config, error) {
	var cfg sender.Config
	if c.NArg() != 1 {
		return cfg, cliutil.Usagef("want exactly one HOST[:PORT]")
	}
	target, err := ParseTarget(c.Context, c.Args().First())
	if err != nil {
		return cfg, err
	}
	iv, err := ParseInterval(c.String(flagInterval))
	if err != nil || iv <= 0 {
		return cfg, cliutil.Usagef("--%s: want a positive interval: %v", flagInterval, err)
	}
	cfg = sender.Config{
		Target: target, Source: c.String(flagSource), Count: uint64(cliutil.Int(c, flagCount)), Duration: c.Duration(flagDuration),
		Interval: iv, Seed: uint64(cliutil.Int(c, flagSeed)), Size: int(cliutil.Int(c, flagSize)), PTP: c.Bool(flagPTP),
		Synchronized: c.Bool(flagSynced), ClockError: c.Duration(flagClockError), DSCP: uint8(cliutil.Int(c, flagDSCP)),
		TTL: int(cliutil.Int(c, flagTTL)), Timeout: c.Duration(flagTimeout), RequireSSID: c.Bool(flagRequireSSID),
		NoKernelTimestamps: c.Bool(flagNoKernel), Quiet: c.Bool(flagQuiet), Format: cliutil.OutputFormat(c),
		Out: c.App.Writer, SummaryOut: c.App.ErrWriter, AccessReportInterval: c.Duration(flagARInterval),
		AccessReportRetries: int(cliutil.Int(c, flagARRetries)),
	}
	if cfg.AccessReportRetries == 0 {
		cfg.AccessReportRetries = -1 // sender.Config: negative means no retries
	}
	switch c.String(flagSchedule) {
	case "periodic":
	case "poisson":
		cfg.Poisson = true
	default:
		return cfg, cliutil.Usagef("--%s: periodic or poisson", flagSchedule)
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	e, ok := ecnValues[c.String(flagECN)]
	if !ok {
		return cfg, cliutil.Usagef("--%s: not-ect, ect0, ect1 or ce", flagECN)
	}
	cfg.ECN = e
	ssid := cliutil.Int(c, flagSSID)
	if !c.IsSet(flagSSID) {
		ssid = 1 + rand.Int64N(65535) // non-zero, fresh per session
	}
	cfg.SSID = uint16(ssid)
	if cfg.Timeout <= 0 {
		return cfg, cliutil.Usagef("--%s must be positive", flagTimeout)
	}
	if kf := c.String(flagKeyFile); kf != "" {
		k, err := testpkt.LoadKeyFile(kf)
		if err != nil {
			return cfg, err
		}
		cfg.Key = k
	}
	for _, spec := range c.StringSlice(flagTLV) {
		t, err := sender.ParseTLVSpec(spec, target)
		if err != nil {
			return cfg, &cliutil.UsageError{Err: fmt.Errorf("--%s: %w", flagTLV, err)}
		}
		cfg.TLVs = append(cfg.TLVs, t)
	}
	if n := cliutil.Int(c, flagPadding); n > 0 {
		cfg.TLVs = append(cfg.TLVs, sender.TLVSpec{Name: "padding", Type: testpkt.TypeExtraPadding, Value: make([]byte, n)})
	}
	return cfg, nil
}
