package sender

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/probekit/probekit/shared/cliutil"
	pipeline "github.com/probekit/probekit/shared/sender"
	"github.com/probekit/probekit/shared/stats"
	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/timestamp"
)

// Record is one reply as stampsend prints it with --json / --format csv.
type Record struct {
	Seq          uint32
	Bytes        int
	From         string
	TTL          int // IP TTL / hop limit of the reply as received
	SenderTTL    uint8
	ReflectorSeq uint32
	SSID         uint16
	RTT          time.Duration // (T4 − T1) − (T3 − T2)
	Residence    time.Duration // T3 − T2
	Forward      time.Duration // T2 − T1
	Backward     time.Duration // T4 − T3
	T1, T2, T3   time.Time
	T4           time.Time
	TxSource     timestamp.Source
	RxSource     timestamp.Source
	Duplicate    bool
	// TOS is the DSCP/ECN byte the reply arrived with.
	TOS uint8
	// CoS is the reflector's Class of Service TLV, "dscp1=46 dscp2=34 ecn2=2 rp=0" ("" without).
	CoS string
}

var recordColumns = []string{"seq", "bytes", "from", "ttl", "sender_ttl", "reflector_seq", "ssid", "rtt_us",
	"residence_us", "forward_us", "backward_us", "t1", "t2", "t3", "t4", "tx_source", "rx_source", "duplicate", "tos", "cos"}

func us(d time.Duration) float64 { return float64(d) / 1e3 }

// Summary is the end-of-session report (the last JSON line with --json): the summary every
// active sender shares (shared/sender/summary.schema.json) and stampsend's own fields.
type Summary struct {
	pipeline.Summary
	Mode       string  `json:"mode"`
	SSID       uint16  `json:"ssid"`
	Size       int     `json:"size"`
	Malformed  uint64  `json:"malformed"`
	BadHMAC    uint64  `json:"bad_hmac"`
	Unknown    uint64  `json:"unknown"`
	Foreign    uint64  `json:"foreign"`
	SendErrors uint64  `json:"send_errors"`
	DurationS  float64 `json:"duration_s"`

	RTT       stats.Summary `json:"rtt"`
	JitterUS  float64       `json:"jitter_us"`
	Residence stats.Summary `json:"residence"`
	Forward   stats.Summary `json:"forward"`
	Backward  stats.Summary `json:"backward"`

	SenderSynchronized    bool   `json:"sender_synchronized"`
	ReflectorSynchronized bool   `json:"reflector_synchronized"`
	OneWayValid           bool   `json:"one_way_valid"`
	Warning               string `json:"warning,omitempty"`

	TxKernel     uint64 `json:"tx_kernel_timestamps"`
	RxKernel     uint64 `json:"rx_kernel_timestamps"`
	TxSource     string `json:"tx_source"`
	RxSource     string `json:"rx_source"`
	SSIDEchoed   bool   `json:"ssid_echoed"`
	Unrecognized []int  `json:"unrecognized_tlvs,omitempty"`
	TLVProblem   string `json:"tlv_problem,omitempty"`
	// LocationSource and LocationDestination are the sender and reflector addresses and ports
	// the reflector reported in the last answered Location TLV (--tlv location): its view of
	// the packet, which differs from the sender's when a NAT rewrote it. "?" stands for an
	// address the reflector did not report.
	LocationSource      string `json:"location_source,omitempty"`
	LocationDestination string `json:"location_destination,omitempty"`
}

// accumulator turns the pipeline's replies into records and the statistics stampsend adds to
// the pipeline's (residence, one-way delays, TLV findings). It runs on the receiving goroutine.
type accumulator struct {
	cfg    Config
	mode   testpkt.Mode
	signer *testpkt.Signer
	emit   *cliutil.Emitter

	mu                     sync.Mutex
	res, fwd, bwd          stats.Series
	allSynced, reflSynced  bool
	anyReply, ssidSeen     bool
	noSSI                  atomic.Bool
	unrecognized           map[testpkt.TLVType]bool
	tlvProblem             string
	locSrc, locDst         string
	locSrcAddr, locDstAddr netip.Addr
	locSrcPort, locDstPort uint16
	ownSynced              bool
	size                   int // of every test packet
	err                    error
}

func newAccumulator(cfg Config, mode testpkt.Mode) *accumulator {
	a := &accumulator{cfg: cfg, mode: mode, reflSynced: true, ownSynced: cfg.Synchronized,
		unrecognized: map[testpkt.TLVType]bool{}}
	if len(cfg.Key) > 0 {
		a.signer = testpkt.NewSigner(cfg.Key)
	}
	if cfg.Format != cliutil.FormatText && !cfg.Quiet {
		a.emit = cliutil.NewEmitter(cfg.Out, cfg.Format, recordColumns...)
	}
	return a
}

// sawNoSSID notes a reply with SSID 0 (a reflector without RFC 8972, X-04).
func (a *accumulator) sawNoSSID() { a.noSSI.Store(true) }

// locationString formats an address and port from a Location TLV, "?" for an address the
// reflector left unreported.
func locationString(a netip.Addr, port uint16) string {
	if !a.IsValid() {
		return fmt.Sprintf("?:%d", port)
	}
	return netip.AddrPortFrom(a, port).String()
}

// textRecord formats a reply like ping does.
func textRecord(r *Record) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d bytes from %s: seq=%d ttl=%d rtt=%.3f ms residence=%.1f us", r.Bytes, r.From, r.Seq, r.TTL,
		float64(r.RTT)/1e6, us(r.Residence))
	if r.Duplicate {
		b.WriteString(" (DUP!)")
	}
	return b.String()
}

// add records one reply the pipeline validated and matched (r holds its times and RTT, rp its
// decoded packet) and prints its line or record.
func (a *accumulator) add(rp *testpkt.ReflectedPacket, r *pipeline.Reply) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	cfg := &a.cfg
	m, data := r.Msg, r.Data
	if rp.SSID == cfg.SSID {
		a.ssidSeen = true
	}
	rec := Record{Seq: r.Seq, Bytes: len(data), TTL: m.TTL, SenderTTL: rp.SenderTTL,
		ReflectorSeq: rp.Seq, SSID: rp.SSID, RxSource: m.RxSource, T4: r.T4, TOS: m.TOS,
		T1: r.T1, TxSource: r.TxSource, T2: rp.ReceiveTime(), T3: rp.TransmitTime(),
		RTT: r.RTT, Residence: r.Residence, Duplicate: r.Duplicate}
	rec.Forward, rec.Backward = rec.T2.Sub(rec.T1), rec.T4.Sub(rec.T3)
	if !r.Duplicate {
		a.anyReply = true
		if rp.ReceiveTimestamp != 0 {
			a.res.Add(rec.Residence)
			a.fwd.Add(rec.Forward)
			a.bwd.Add(rec.Backward)
		}
		if !rp.ErrorEstimate.S() {
			a.reflSynced = false
		}
		if len(data) > a.mode.ReflectedLen() {
			t := testpkt.ParseReplyTLVs(data, a.mode.ReflectedLen(), a.signer)
			for _, u := range t.Unrecognized {
				a.unrecognized[u] = true
			}
			if c := t.ClassOfService; c != nil {
				rec.CoS = fmt.Sprintf("dscp1=%d dscp2=%d ecn2=%d rp=%d", c.DSCP1, c.DSCP2, c.ECN2, c.RPD)
			}
			if l := t.Location; l != nil {
				src, dst := l.Addresses()
				if a.locSrcAddr != src || a.locSrcPort != l.SrcPort || a.locDstAddr != dst || a.locDstPort != l.DstPort || a.locSrc == "" {
					// Formatting allocates: only when the reflector's view changes.
					a.locSrcAddr, a.locSrcPort, a.locDstAddr, a.locDstPort = src, l.SrcPort, dst, l.DstPort
					a.locSrc, a.locDst = locationString(src, l.SrcPort), locationString(dst, l.DstPort)
				}
			}
			switch {
			case t.IntegrityFailed:
				a.tlvProblem = "reflector reported a TLV integrity failure (I flag or bad HMAC TLV)"
			case t.Malformed:
				a.tlvProblem = fmt.Sprintf("reflector flagged TLV %v as malformed", t.MalformedType)
			}
		}
	}
	var err error
	if a.emit != nil || !cfg.Quiet {
		rec.From = m.Addr.String() // formatting allocates: only for output
	}
	switch {
	case a.emit != nil:
		err = a.emit.Emit(rec.Seq, rec.Bytes, rec.From, rec.TTL, int(rec.SenderTTL), rec.ReflectorSeq, int(rec.SSID), us(rec.RTT),
			us(rec.Residence), us(rec.Forward), us(rec.Backward), rec.T1, rec.T2, rec.T3, rec.T4, rec.TxSource, rec.RxSource, rec.Duplicate,
			int(rec.TOS), rec.CoS)
	case !cfg.Quiet:
		_, err = fmt.Fprintln(cfg.Out, textRecord(&rec))
	}
	if err != nil && a.err == nil {
		a.err = err
	}
	return nil
}

// summary combines the pipeline's statistics with stampsend's own.
func (a *accumulator) summary(st *pipeline.Stats, elapsed time.Duration) *Summary {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := &Summary{Summary: st.Summary("stampsend", a.cfg.Target.String()), Mode: a.mode.String(), SSID: a.cfg.SSID,
		Size: a.size, Malformed: st.Malformed, BadHMAC: st.BadAuth, Unknown: st.Unknown, Foreign: st.Foreign,
		SendErrors: st.SendErrors, DurationS: elapsed.Seconds(),
		RTT: st.RTT.Summary(), JitterUS: us(st.Jitter.Value()), Residence: a.res.Summary(),
		Forward: a.fwd.Summary(), Backward: a.bwd.Summary(),
		SenderSynchronized: a.ownSynced, ReflectorSynchronized: a.reflSynced && a.anyReply,
		TxKernel: st.TxKernel, RxKernel: st.RxKernel, SSIDEchoed: a.ssidSeen, TLVProblem: a.tlvProblem,
		LocationSource: a.locSrc, LocationDestination: a.locDst}
	s.TxSource, s.RxSource = sourceName(st.TxKernel, s.Received), sourceName(st.RxKernel, s.Received)
	for t := range a.unrecognized {
		s.Unrecognized = append(s.Unrecognized, int(t))
	}
	slices.Sort(s.Unrecognized)
	var warn []string
	s.OneWayValid = s.SenderSynchronized && s.ReflectorSynchronized
	if !s.OneWayValid && s.Forward.Count > 0 {
		who := []string{}
		if !s.SenderSynchronized {
			who = append(who, "sender")
		}
		if !s.ReflectorSynchronized {
			who = append(who, "reflector")
		}
		warn = append(warn, fmt.Sprintf("clocks not synchronised (Error Estimate S=0: %s): one-way delays include the clock offset", strings.Join(who, ", ")))
	}
	if s.Forward.Count > 0 && (s.Forward.MinUS < 0 || s.Backward.MinUS < 0) {
		warn = append(warn, "negative one-way delays: the clocks differ by more than the path delay")
	}
	if a.noSSI.Load() {
		warn = append(warn, "reflector returned SSID 0: it does not implement RFC 8972 (use --require-ssid to stop)")
	}
	s.Warning = strings.Join(warn, "; ")
	return s
}

func sourceName(kernel, total uint64) string {
	switch {
	case total == 0:
		return "none"
	case kernel == total:
		return "kernel"
	case kernel == 0:
		return "user"
	}
	return "mixed"
}

func ms(v float64) float64 { return v / 1e3 }

// printSummary writes the summary: a JSON line after the records with --json, text after the
// reply lines in text format; with --format csv stdout keeps the uniform table and the summary
// goes to SummaryOut (stderr in stampsend).
func (a *accumulator) printSummary(s *Summary) error {
	if a.emit != nil {
		if err := a.emit.Flush(); err != nil {
			return err
		}
	}
	if a.err != nil {
		return a.err
	}
	w := a.cfg.Out
	switch a.cfg.Format {
	case cliutil.FormatJSON:
		b, err := json.Marshal(s)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	case cliutil.FormatCSV:
		if a.cfg.SummaryOut == nil {
			return nil
		}
		w = a.cfg.SummaryOut
	}
	return writeText(w, s)
}

func writeText(w io.Writer, s *Summary) error {
	var b strings.Builder
	fmt.Fprintf(&b, "--- %s stamp statistics ---\n", s.Target)
	fmt.Fprintf(&b, "%d packets transmitted, %d received, %.2f%% packet loss, %d duplicates, %d reordered, %d late, time %.0fms\n",
		s.Sent, s.Received, s.LossPct, s.Duplicates, s.Reordered, s.Late, s.DurationS*1e3)
	if s.RTT.Count > 0 {
		fmt.Fprintf(&b, "rtt min/mean/max/stddev = %.3f/%.3f/%.3f/%.3f ms\n", ms(s.RTT.MinUS), ms(s.RTT.MeanUS), ms(s.RTT.MaxUS), ms(s.RTT.StddevUS))
		fmt.Fprintf(&b, "rtt p50/p90/p99 = %.3f/%.3f/%.3f ms, jitter = %.3f ms\n", ms(s.RTT.P50US), ms(s.RTT.P90US), ms(s.RTT.P99US), ms(s.JitterUS))
	}
	if s.Residence.Count > 0 {
		fmt.Fprintf(&b, "reflector residence (T3-T2) min/mean/max = %.1f/%.1f/%.1f us, p50/p99 = %.1f/%.1f us\n",
			s.Residence.MinUS, s.Residence.MeanUS, s.Residence.MaxUS, s.Residence.P50US, s.Residence.P99US)
		fmt.Fprintf(&b, "one-way forward (T2-T1) min/mean/max = %.3f/%.3f/%.3f ms, backward (T4-T3) min/mean/max = %.3f/%.3f/%.3f ms\n",
			ms(s.Forward.MinUS), ms(s.Forward.MeanUS), ms(s.Forward.MaxUS), ms(s.Backward.MinUS), ms(s.Backward.MeanUS), ms(s.Backward.MaxUS))
	}
	if s.BadHMAC+s.Malformed+s.Unknown+s.Foreign+s.SendErrors > 0 {
		fmt.Fprintf(&b, "discarded: %d bad HMAC, %d malformed, %d unknown sequence, %d foreign; %d send errors\n",
			s.BadHMAC, s.Malformed, s.Unknown, s.Foreign, s.SendErrors)
	}
	if len(s.Unrecognized) > 0 {
		fmt.Fprintf(&b, "reflector did not recognise TLV types %v\n", s.Unrecognized)
	}
	if s.TLVProblem != "" {
		fmt.Fprintf(&b, "TLVs: %s\n", s.TLVProblem)
	}
	if s.LocationSource != "" {
		fmt.Fprintf(&b, "location: the reflector saw %s -> %s\n", s.LocationSource, s.LocationDestination)
	}
	if s.Warning != "" {
		fmt.Fprintf(&b, "warning: %s\n", s.Warning)
	}
	fmt.Fprintf(&b, "timestamps: T1 %s (%d/%d), T4 %s (%d/%d)\n", s.TxSource, s.TxKernel, s.Received, s.RxSource, s.RxKernel, s.Received)
	_, err := io.WriteString(w, b.String())
	return err
}
