package client

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/probekit/probekit/shared/stats"
)

// Result holds one session's measurements.
type Result struct {
	Session   int
	SID       [16]byte
	Sender    string
	Reflector string
	Mode      string
	DSCP      uint8
	Padding   int
	Sent      int
	First     time.Time
	Last      time.Time

	Seq, ReflSeq                       stats.Sequence
	SendDuplicates, ReflectDuplicates  uint64
	Invalid, KernelRx, KernelTx        uint64
	Jitter                             stats.Jitter
	RTT, Forward, Backward, Processing stats.Series
	FwdHopsMin, FwdHopsMax             int
	BackHopsMin, BackHopsMax           int
	unsynced                           bool
	// Monitor is set when RFC 7750 monitoring was negotiated. The counts are of received
	// packets whose DS field differed from the one sent (DSCP re-marked) or carried ECN CE,
	// per direction.
	Monitor                        bool
	FwdDSCPChanged, RevDSCPChanged uint64
	FwdCE, RevCE                   uint64
	// RFC 6038: Reflect is set when Reflect Octets was negotiated; ReflectMismatch counts
	// replies whose reflected padding octets differ from those sent.
	Reflect                       bool
	Symmetric                     bool
	ReflectedOctets, ServerOctets uint16
	ReflectPadding                int
	ReflectMismatch               uint64
}

// finish computes the delay series from the records after sending and receiving ended.
func (r *Result) finish(recs []Record) {
	r.Seq.SetSent(uint64(r.Sent))
	r.FwdHopsMin, r.BackHopsMin = -1, -1
	r.FwdHopsMax, r.BackHopsMax = -1, -1
	hop := func(ttl uint8, lo, hi *int) {
		if ttl == 0 {
			return
		}
		h := 255 - int(ttl)
		if *lo < 0 || h < *lo {
			*lo = h
		}
		if h > *hi {
			*hi = h
		}
	}
	for i := range recs {
		p := &recs[i]
		if !p.Received {
			continue
		}
		r.RTT.Add(p.RTT())
		r.Forward.Add(time.Duration(p.T2 - p.Depart()))
		if p.T1Kernel != 0 {
			r.KernelTx++
		}
		r.Backward.Add(time.Duration(p.T4 - p.T3))
		r.Processing.Add(time.Duration(p.T3 - p.T2))
		if r.Monitor {
			if p.FwdTOS>>2 != r.DSCP {
				r.FwdDSCPChanged++
			}
			if p.FwdTOS&3 == 3 {
				r.FwdCE++
			}
		}
		if p.RevTOS>>2 != r.DSCP {
			r.RevDSCPChanged++
		}
		if p.RevTOS&3 == 3 {
			r.RevCE++
		}
		hop(p.SenderTTL, &r.FwdHopsMin, &r.FwdHopsMax)
		hop(p.TTL, &r.BackHopsMin, &r.BackHopsMax)
	}
}

// Synchronized reports whether both ends claimed synchronised clocks (EE S bits) on every
// reply, i.e. whether one-way delays are meaningful.
func (r *Result) Synchronized() bool { return !r.unsynced && r.RTT.Count() > 0 }

// DelaySummary is a delay distribution in the JSON summary (µs).
type DelaySummary struct {
	stats.Summary
	Percentiles map[string]float64 `json:"percentiles_us,omitempty"`
}

// Summary is a session's JSON summary.
type Summary struct {
	Type               string                `json:"type"`
	Session            int                   `json:"session"`
	SID                string                `json:"sid"`
	Mode               string                `json:"mode"`
	Sender             string                `json:"sender"`
	Reflector          string                `json:"reflector"`
	DSCP               uint8                 `json:"dscp"`
	Padding            int                   `json:"padding"`
	First              time.Time             `json:"first"`
	Last               time.Time             `json:"last"`
	Sent               int                   `json:"sent"`
	Loss               stats.SequenceSummary `json:"loss"`
	SendDuplicates     uint64                `json:"send_duplicates"`
	ReflectDuplicates  uint64                `json:"reflect_duplicates"`
	Invalid            uint64                `json:"invalid"`
	RTT                DelaySummary          `json:"rtt"`
	Forward            DelaySummary          `json:"send"`
	Backward           DelaySummary          `json:"reflect"`
	Processing         DelaySummary          `json:"reflector_processing"`
	JitterUS           float64               `json:"jitter_rfc3550_us"`
	ClockSynchronized  bool                  `json:"clock_synchronized"`
	KernelRxTimestamp  uint64                `json:"kernel_rx_timestamps"`
	KernelTxTimestamp  uint64                `json:"kernel_tx_timestamps"`
	DSCPECNMonitoring  bool                  `json:"dscp_ecn_monitoring"`
	SendDSCPChanged    uint64                `json:"send_dscp_changed"`
	SendCE             uint64                `json:"send_ecn_ce"`
	ReflectDSCPChanged uint64                `json:"reflect_dscp_changed"`
	ReflectCE          uint64                `json:"reflect_ecn_ce"`
	RFC6038            *Reflect6038Summary   `json:"rfc6038,omitempty"`
	SendHops           [2]int                `json:"send_hops"`
	ReflectHops        [2]int                `json:"reflect_hops"`
}

// Reflect6038Summary reports the RFC 6038 features of a session.
type Reflect6038Summary struct {
	Symmetric       bool   `json:"symmetrical_size"`
	ReflectOctets   bool   `json:"reflect_octets"`
	ReflectedOctets string `json:"reflected_octets"` // as confirmed in Accept-Session
	ServerOctets    string `json:"server_octets"`
	PaddingOctets   int    `json:"padding_reflected"`
	Mismatches      uint64 `json:"reflect_mismatches"`
}

func delaySummary(s *stats.Series, pcts []float64) DelaySummary {
	d := DelaySummary{Summary: s.Summary(), Percentiles: map[string]float64{}}
	for _, p := range pcts {
		d.Percentiles[fmt.Sprintf("p%g", p)] = us(s.Percentile(p))
	}
	return d
}

func us(d time.Duration) float64 { return float64(d) / 1e3 }

// Summary returns the JSON summary.
func (r *Result) Summary(pcts []float64) Summary {
	var rs *Reflect6038Summary
	if r.Reflect || r.Symmetric {
		rs = &Reflect6038Summary{Symmetric: r.Symmetric, ReflectOctets: r.Reflect,
			ReflectedOctets: fmt.Sprintf("%04x", r.ReflectedOctets), ServerOctets: fmt.Sprintf("%04x", r.ServerOctets),
			PaddingOctets: r.ReflectPadding, Mismatches: r.ReflectMismatch}
	}
	return Summary{
		RFC6038: rs,
		Type:    "summary", Session: r.Session, SID: fmt.Sprintf("%x", r.SID), Mode: r.Mode,
		Sender: r.Sender, Reflector: r.Reflector, DSCP: r.DSCP, Padding: r.Padding,
		First: r.First, Last: r.Last, Sent: r.Sent, Loss: r.Seq.Summary(),
		SendDuplicates: r.SendDuplicates, ReflectDuplicates: r.ReflectDuplicates, Invalid: r.Invalid,
		RTT: delaySummary(&r.RTT, pcts), Forward: delaySummary(&r.Forward, pcts),
		Backward: delaySummary(&r.Backward, pcts), Processing: delaySummary(&r.Processing, pcts),
		JitterUS: r.Jitter.Nanos() / 1e3, ClockSynchronized: r.Synchronized(), KernelRxTimestamp: r.KernelRx, KernelTxTimestamp: r.KernelTx,
		DSCPECNMonitoring: r.Monitor, SendDSCPChanged: r.FwdDSCPChanged, SendCE: r.FwdCE,
		ReflectDSCPChanged: r.RevDSCPChanged, ReflectCE: r.RevCE,
		SendHops: [2]int{r.FwdHopsMin, r.FwdHopsMax}, ReflectHops: [2]int{r.BackHopsMin, r.BackHopsMax},
	}
}

// Unit is a time unit of the text summary (twping -n): n, u, m (default) or s.
type Unit byte

// ParseUnit parses twping's -n letter.
func ParseUnit(s string) (Unit, error) {
	switch s {
	case "n", "u", "m", "s":
		return Unit(s[0]), nil
	case "":
		return 'm', nil
	}
	return 0, fmt.Errorf("unit %q: want n, u, m or s", s)
}

// format prints d in the unit with the precision twping uses (three decimals above ns).
func (u Unit) format(d time.Duration) string {
	switch u {
	case 'n':
		return fmt.Sprintf("%d", int64(d))
	case 'u':
		return fmt.Sprintf("%.3f", float64(d)/1e3)
	case 's':
		return fmt.Sprintf("%.6f", float64(d)/1e9)
	}
	return fmt.Sprintf("%.3f", float64(d)/1e6)
}

func (u Unit) String() string {
	switch u {
	case 'n':
		return "ns"
	case 'u':
		return "us"
	case 's':
		return "s"
	}
	return "ms"
}

func hops(lo, hi int) string {
	switch {
	case lo < 0:
		return "unknown"
	case lo == hi:
		return fmt.Sprintf("%d (consistently)", lo)
	default:
		return fmt.Sprintf("takes %d values; min hops = %d, max hops = %d", hi-lo+1, lo, hi)
	}
}

// WriteText prints the twping-style summary block with times in milliseconds.
func (r *Result) WriteText(w io.Writer, pcts []float64) { r.WriteTextUnit(w, pcts, 'm') }

// WriteTextUnit prints the twping-style summary block with times in unit u.
func (r *Result) WriteTextUnit(w io.Writer, pcts []float64, u Unit) {
	ms := u.format
	lost := r.Seq.Lost()
	pct := 0.0
	if r.Sent > 0 {
		pct = 100 * float64(lost) / float64(r.Sent)
	}
	fmt.Fprintf(w, "\n--- twampc statistics from [%s] to [%s] ---\n", r.Sender, r.Reflector)
	fmt.Fprintf(w, "SID:\t%x\nmode:\t%s\n", r.SID, r.Mode)
	if !r.First.IsZero() {
		fmt.Fprintf(w, "first:\t%s\nlast:\t%s\n", r.First.UTC().Format(time.RFC3339Nano), r.Last.UTC().Format(time.RFC3339Nano))
	}
	fmt.Fprintf(w, "%d sent, %d lost (%.3f%%), %d send duplicates, %d reflect duplicates\n",
		r.Sent, lost, pct, r.SendDuplicates, r.ReflectDuplicates)
	if r.Seq.Reordered() > 0 {
		fmt.Fprintf(w, "%d reordered (ratio %.3f%%, max extent %d)\n", r.Seq.Reordered(), 100*r.Seq.ReorderedRatio(), r.Seq.MaxExtent())
	}
	if r.Invalid > 0 {
		fmt.Fprintf(w, "%d invalid replies discarded\n", r.Invalid)
	}
	if r.Symmetric {
		fmt.Fprintln(w, "symmetrical size (RFC 6038): requests as long as replies")
	}
	if r.Reflect {
		fmt.Fprintf(w, "reflect octets (RFC 6038): octets %04x confirmed, server octets %04x, %d padding octets reflected, %d replies mismatched\n",
			r.ReflectedOctets, r.ServerOctets, r.ReflectPadding, r.ReflectMismatch)
	}
	if r.RTT.Count() == 0 {
		fmt.Fprintln(w, "no replies received")
		return
	}
	line := func(name string, s *stats.Series) {
		fmt.Fprintf(w, "%s min/median/max = %s/%s/%s %s", name, ms(s.Min()), ms(s.Percentile(50)), ms(s.Max()), u)
		var ps []string
		for _, p := range pcts {
			ps = append(ps, fmt.Sprintf("p%g=%s", p, ms(s.Percentile(p))))
		}
		fmt.Fprintf(w, " (%s)\n", strings.Join(ps, " "))
	}
	line("round-trip time", &r.RTT)
	if !r.Synchronized() {
		fmt.Fprintln(w, "one-way delays: clocks not synchronised (Error Estimate S=0), values include the clock offset")
	}
	line("send time", &r.Forward)
	line("reflect time", &r.Backward)
	fmt.Fprintf(w, "reflector processing time min/max = %s/%s %s\n", ms(r.Processing.Min()), ms(r.Processing.Max()), u)
	fmt.Fprintf(w, "two-way jitter = %s %s (P95-P50), %s %s (RFC 3550)\n",
		ms(r.RTT.Percentile(95)-r.RTT.Percentile(50)), u, ms(r.Jitter.Value()), u)
	fmt.Fprintf(w, "send jitter = %s %s (P95-P50)\n", ms(r.Forward.Percentile(95)-r.Forward.Percentile(50)), u)
	fmt.Fprintf(w, "reflect jitter = %s %s (P95-P50)\n", ms(r.Backward.Percentile(95)-r.Backward.Percentile(50)), u)
	if r.Monitor {
		fmt.Fprintf(w, "send DSCP/ECN (RFC 7750): %d re-marked from DSCP %d, %d ECN CE\n", r.FwdDSCPChanged, r.DSCP, r.FwdCE)
	}
	fmt.Fprintf(w, "reflect DSCP/ECN: %d re-marked from DSCP %d, %d ECN CE\n", r.RevDSCPChanged, r.DSCP, r.RevCE)
	fmt.Fprintf(w, "send hops = %s\n", hops(r.FwdHopsMin, r.FwdHopsMax))
	fmt.Fprintf(w, "reflect hops = %s\n", hops(r.BackHopsMin, r.BackHopsMax))
}
