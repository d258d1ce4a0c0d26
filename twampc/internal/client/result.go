package client

import (
	"fmt"
	"io"
	"net/netip"
	"time"

	pipeline "github.com/probekit/probekit/shared/sender"
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

	Seq, ReflSeq                      stats.Sequence
	SendDuplicates, ReflectDuplicates uint64
	Invalid, KernelRx, KernelTx       uint64
	// Late replies came after the loss timeout; they count as lost (RFC 4656 §4.1.1).
	Late                               uint64
	Jitter                             stats.Jitter
	RTT, Forward, Backward, Processing stats.Series
	FwdHopsMin, FwdHopsMax             int
	BackHopsMin, BackHopsMax           int
	fwdTTL, backTTL                    [256]bool // TTL values seen, for twping's "takes N values"
	// RTTErr, SendErr and ReflectErr are twping's "err": the largest sum of the timestamps'
	// Error Estimates over the received packets, in seconds (see Record.Err).
	RTTErr, SendErr, ReflectErr float64
	unsynced                    bool // some reply had an Error Estimate without the S bit
	clockOffset                 bool // some one-way delay was negative
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

// finish computes the delay series, error bounds and TTL counts from the records after
// sending and receiving ended.
func (r *Result) finish(recs []Record) {
	r.Seq.SetSent(uint64(r.Sent))
	r.FwdHopsMin, r.BackHopsMin = -1, -1
	r.FwdHopsMax, r.BackHopsMax = -1, -1
	r.fwdTTL, r.backTTL = [256]bool{}, [256]bool{}
	r.unsynced, r.clockOffset = false, false
	r.RTTErr, r.SendErr, r.ReflectErr = 0, 0, 0
	hop := func(ttl uint8, seen *[256]bool, lo, hi *int) {
		if ttl == 0 {
			return // not reported (no IP_RECVTTL, or a 38-octet TWAMP-Light reply)
		}
		seen[ttl] = true
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
		fwd, back := time.Duration(p.T2-p.Depart()), time.Duration(p.T4-p.T3)
		r.Forward.Add(fwd)
		if p.T1Kernel != 0 {
			r.KernelTx++
		}
		r.Backward.Add(back)
		if p.T2 != 0 {
			r.Processing.Add(p.Processing())
		}
		// owamp: the largest per-packet error of each delay type (stats->maxerr).
		r.RTTErr = max(r.RTTErr, p.Err())
		r.SendErr = max(r.SendErr, p.SendErr())
		r.ReflectErr = max(r.ReflectErr, p.ReflectErr())
		if !p.synced() {
			r.unsynced = true
		}
		if fwd < 0 || back < 0 {
			r.clockOffset = true // owamp's stats->clocks_offset
		}
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
		hop(p.SenderTTL, &r.fwdTTL, &r.FwdHopsMin, &r.FwdHopsMax)
		hop(p.TTL, &r.backTTL, &r.BackHopsMin, &r.BackHopsMax)
	}
}

// Synchronized reports whether every timestamp of every reply came from a clock synchronised
// to UTC (S bit of the sender's, the reflector's and this host's Error Estimates), i.e.
// whether one-way delays and the error bounds are meaningful.
func (r *Result) Synchronized() bool { return !r.unsynced && r.RTT.Count() > 0 }

// DelaySummary is a delay distribution in the JSON summary (µs).
type DelaySummary struct {
	stats.Summary
	Percentiles map[string]float64 `json:"percentiles_us,omitempty"`
	// ErrUS is twping's err for this delay (µs): the largest per-packet sum of the Error
	// Estimates involved (Record.Err); absent when no reply came back.
	ErrUS float64 `json:"err_us,omitempty"`
}

// Summary is a session's JSON summary: the summary every active sender shares
// (shared/sender/summary.schema.json; target is the reflector) and twampc's own fields, among
// them loss, the full RFC 4737 sequence statistics.
type Summary struct {
	pipeline.Summary
	Session            int                   `json:"session"`
	SID                string                `json:"sid"`
	Mode               string                `json:"mode"`
	Sender             string                `json:"sender"`
	Reflector          string                `json:"reflector"`
	DSCP               uint8                 `json:"dscp"`
	Padding            int                   `json:"padding"`
	First              time.Time             `json:"first"`
	Last               time.Time             `json:"last"`
	Loss               stats.SequenceSummary `json:"loss"`
	SendDuplicates     uint64                `json:"send_duplicates"`
	ReflectDuplicates  uint64                `json:"reflect_duplicates"`
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

func delaySummary(s *stats.Series, pcts []float64, errSec float64) DelaySummary {
	d := DelaySummary{Summary: s.Summary(), Percentiles: map[string]float64{}, ErrUS: errSec * 1e6}
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
		Summary: pipeline.NewSummary("twampc", r.Reflector, uint64(r.Sent), &r.Seq, r.Late, r.Invalid, &r.RTT, &r.Jitter),
		RFC6038: rs,
		Session: r.Session, SID: fmt.Sprintf("%x", r.SID), Mode: r.Mode,
		Sender: r.Sender, Reflector: r.Reflector, DSCP: r.DSCP, Padding: r.Padding,
		First: r.First, Last: r.Last, Loss: r.Seq.Summary(),
		SendDuplicates: r.SendDuplicates, ReflectDuplicates: r.ReflectDuplicates,
		RTT: delaySummary(&r.RTT, pcts, r.RTTErr), Forward: delaySummary(&r.Forward, pcts, r.SendErr),
		Backward: delaySummary(&r.Backward, pcts, r.ReflectErr), Processing: delaySummary(&r.Processing, pcts, 0),
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

// scale is the factor from seconds to the unit (owamp OWPStatsScaleFactor).
func (u Unit) scale() float64 {
	switch u {
	case 'n':
		return 1e9
	case 'u':
		return 1e6
	case 's':
		return 1
	}
	return 1e3
}

// format prints d in the unit as twping does: three significant digits ("%.3g").
func (u Unit) format(d time.Duration) string { return u.formatSeconds(d.Seconds()) }

func (u Unit) formatSeconds(sec float64) string { return fmt.Sprintf("%.3g", sec*u.scale()) }

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

// hops formats a direction's hop count line as owamp's PrintTtlStats: the number of distinct
// TTL values seen and the hop range 255 − TTL.
func hops(dir string, seen *[256]bool, lo, hi int) string {
	n := 0
	for _, ok := range seen {
		if ok {
			n++
		}
	}
	switch {
	case n == 0:
		return dir + " TTL not reported"
	case n == 1:
		return fmt.Sprintf("%s hops = %d (consistently)", dir, lo)
	default:
		return fmt.Sprintf("%s hops takes %d values; min hops = %d, max hops = %d", dir, n, lo, hi)
	}
}

// bracketed writes an address:port as owamp's summary header does: "[addr]:port".
func bracketed(s string) string {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return fmt.Sprintf("[%s]:%d", ap.Addr(), ap.Port())
	}
	return "[" + s + "]"
}

// writeHeader prints owamp's PrintStatsHeader lines: the session's ends and its SID.
func (r *Result) writeHeader(w io.Writer) {
	fmt.Fprintf(w, "\n--- twampc statistics from %s to %s ---\n", bracketed(r.Sender), bracketed(r.Reflector))
	fmt.Fprintf(w, "SID:\t%x\n", r.SID)
}

// writePackets prints twping -v's per-packet lines (owamp IterateSummarizeTWSession) under
// the session header: send (fwd), reflect (bck), round-trip and reflector processing time and
// the packet's error bound, or *LOST*.
func (r *Result) writePackets(w io.Writer, recs []Record, u Unit) {
	r.writeHeader(w)
	for i := range recs {
		p := &recs[i]
		if !p.Received {
			fmt.Fprintf(w, "seq_no=%-10d *LOST*\n", p.Seq)
			continue
		}
		fmt.Fprintf(w, "seq_no=%-10d fwd_delay=%s %s bck_delay=%s %s delay=%s %s proc_delay=%s %s\t(err=%s %s)\n", p.Seq,
			u.format(time.Duration(p.T2-p.Depart())), u, u.format(time.Duration(p.T4-p.T3)), u,
			u.format(p.RTT()), u, u.format(time.Duration(p.T3-p.T2)), u, u.formatSeconds(p.Err()), u)
	}
}

// WriteText prints the twping-style summary block with times in milliseconds.
func (r *Result) WriteText(w io.Writer, pcts []float64) { r.WriteTextUnit(w, pcts, 'm') }

// WriteTextUnit prints the twping summary block (owamp OWPStatsPrintSummary, twping's lines in
// twping's order and wording, times in unit u with three significant digits), then the lines
// twampc adds: reordering, invalid replies, RFC 3550 jitter, DSCP/ECN, RFC 6038.
func (r *Result) WriteTextUnit(w io.Writer, pcts []float64, u Unit) {
	lost := r.Seq.Lost()
	pct := 0.0
	if r.Sent > 0 {
		pct = 100 * float64(lost) / float64(r.Sent)
	}
	if r.clockOffset {
		fmt.Fprintf(w, "\nDirectional delays may be inaccurate due to out of sync clocks!\n")
	}
	r.writeHeader(w)
	fmt.Fprintf(w, "mode:\t%s\n", r.Mode)
	if !r.First.IsZero() {
		// owamp: local time, "%FT%T" and milliseconds.
		const layout = "2006-01-02T15:04:05.000"
		fmt.Fprintf(w, "first:\t%s\nlast:\t%s\n", r.First.Local().Format(layout), r.Last.Local().Format(layout))
	}
	fmt.Fprintf(w, "%d sent, %d lost (%.3f%%), %d send duplicates, %d reflect duplicates\n",
		r.Sent, lost, pct, r.SendDuplicates, r.ReflectDuplicates)
	have := r.RTT.Count() > 0
	val := func(d time.Duration) string {
		if !have {
			return "nan"
		}
		return u.format(d)
	}
	// "(err=…)" only when every timestamp's clock was synchronised, "(unsync)" otherwise, on
	// all three lines as twping prints them (owamp keeps one sync flag per summary). owamp
	// clears that flag only from lost packets' records; twampc uses the S bits of every reply.
	sync := r.Synchronized()
	line := func(name string, s *stats.Series, errSec float64) {
		fmt.Fprintf(w, "%s min/median/max = %s/%s/%s %s, ", name, val(s.Min()), val(s.Percentile(50)), val(s.Max()), u)
		if sync {
			fmt.Fprintf(w, "(err=%s %s)\n", u.formatSeconds(errSec), u)
		} else {
			fmt.Fprintln(w, "(unsync)")
		}
	}
	line("round-trip time", &r.RTT, r.RTTErr)
	line("send time", &r.Forward, r.SendErr)
	line("reflect time", &r.Backward, r.ReflectErr)
	fmt.Fprintf(w, "reflector processing time min/max = %s/%s %s\n", val(r.Processing.Min()), val(r.Processing.Max()), u)
	jitter := func(name string, s *stats.Series) {
		fmt.Fprintf(w, "%s jitter = %s %s (P95-P50)\n", name, val(s.Percentile(95)-s.Percentile(50)), u)
	}
	jitter("two-way", &r.RTT)
	jitter("send", &r.Forward)
	jitter("reflect", &r.Backward)
	if len(pcts) > 0 {
		fmt.Fprintln(w, "Percentiles:")
		for _, p := range pcts {
			fmt.Fprintf(w, "\t%.1f: %s %s\n", p, val(r.RTT.Percentile(p)), u)
		}
	}
	fmt.Fprintln(w, hops("send", &r.fwdTTL, r.FwdHopsMin, r.FwdHopsMax))
	fmt.Fprintln(w, hops("reflect", &r.backTTL, r.BackHopsMin, r.BackHopsMax))

	if r.Seq.Reordered() > 0 {
		fmt.Fprintf(w, "%d reordered (ratio %.3f%%, max extent %d)\n", r.Seq.Reordered(), 100*r.Seq.ReorderedRatio(), r.Seq.MaxExtent())
	}
	if r.Invalid > 0 {
		fmt.Fprintf(w, "%d invalid replies discarded\n", r.Invalid)
	}
	if r.Late > 0 {
		fmt.Fprintf(w, "%d replies after the loss timeout counted lost\n", r.Late)
	}
	if have {
		fmt.Fprintf(w, "two-way jitter (RFC 3550) = %s %s\n", u.format(r.Jitter.Value()), u)
		if r.Monitor {
			fmt.Fprintf(w, "send DSCP/ECN (RFC 7750): %d re-marked from DSCP %d, %d ECN CE\n", r.FwdDSCPChanged, r.DSCP, r.FwdCE)
		}
		fmt.Fprintf(w, "reflect DSCP/ECN: %d re-marked from DSCP %d, %d ECN CE\n", r.RevDSCPChanged, r.DSCP, r.RevCE)
	}
	if r.Symmetric {
		fmt.Fprintln(w, "symmetrical size (RFC 6038): requests as long as replies")
	}
	if r.Reflect {
		fmt.Fprintf(w, "reflect octets (RFC 6038): octets %04x confirmed, server octets %04x, %d padding octets reflected, %d replies mismatched\n",
			r.ReflectedOctets, r.ServerOctets, r.ReflectPadding, r.ReflectMismatch)
	}
}
