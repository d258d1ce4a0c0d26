package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/probekit/probekit/shared/pace"
	pipeline "github.com/probekit/probekit/shared/sender"
	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/timestamp"
	"github.com/probekit/probekit/shared/twampctl"
	"github.com/probekit/probekit/shared/udpsock"
)

// Record is what is known about one sent packet.
type Record struct {
	Seq          uint32 `json:"seq"`
	ReflectorSeq uint32 `json:"reflector_seq"`
	Received     bool   `json:"received"`
	T1           int64  `json:"t1_ns"`        // sender transmit as carried in the packet (Unix ns)
	T1Kernel     int64  `json:"t1_kernel_ns"` // kernel transmit timestamp (0 when unavailable)
	T2           int64  `json:"t2_ns"`        // reflector receive
	T3           int64  `json:"t3_ns"`        // reflector transmit
	T4           int64  `json:"t4_ns"`        // sender receive
	SenderTTL    uint8  `json:"sender_ttl"`
	TTL          uint8  `json:"ttl"`
	// FwdTOS is the DS field the reflector received (RFC 7750; valid when monitoring),
	// RevTOS the DS field of the reply as received here.
	FwdTOS uint8 `json:"fwd_tos"`
	RevTOS uint8 `json:"rev_tos"`
	// Error Estimates of the four timestamps (RFC 4656 §4.1.2): senderEE is the reply's copy
	// of the one sent with T1, reflEE the reflector's (it covers both T2 and T3, RFC 5357
	// §4.2.1), rxEE this host's clock at T4.
	senderEE, reflEE, rxEE timestamp.ErrorEstimate
}

// Err is twping's error bound on the round-trip time, in seconds: the sum of the Error
// Estimates of T1, T2, T3 and T4 (owamp IterateSummarizeTWSession, delay_err[OWP_DELAY] =
// err(sent.send) + err(reflected.recv) + err(reflected.send) + err(sent.recv)).
func (r *Record) Err() float64 {
	return r.senderEE.Seconds() + r.rxEE.Seconds() + 2*r.reflEE.Seconds()
}

// SendErr bounds the send (T2 − T1) time: err(T1) + err(T2), owamp's delay_err[TWP_FWD_DELAY].
func (r *Record) SendErr() float64 { return r.senderEE.Seconds() + r.reflEE.Seconds() }

// ReflectErr bounds the reflect (T4 − T3) time: err(T3) + err(T4), delay_err[TWP_BCK_DELAY].
func (r *Record) ReflectErr() float64 { return r.reflEE.Seconds() + r.rxEE.Seconds() }

// synced reports whether all four timestamps came from clocks synchronised to UTC (S bits).
func (r *Record) synced() bool { return r.senderEE.S() && r.reflEE.S() && r.rxEE.S() }

// Depart is the best departure time known: the kernel transmit timestamp when the socket
// delivered one, else the T1 written into the packet just before sendmmsg.
func (r *Record) Depart() int64 {
	if r.T1Kernel != 0 {
		return r.T1Kernel
	}
	return r.T1
}

// RTT is the shared Session-Sender's round-trip time (sender.RTT): (T4 − T1) − (T3 − T2)
// with T1 the best departure time, the residence subtracted when the reflector stamped both
// T2 and T3 and it is plausible.
func (r *Record) RTT() time.Duration {
	rtt, _ := pipeline.RTT(unixTime(r.Depart()), unixTime(r.T2), unixTime(r.T3), unixTime(r.T4))
	return rtt
}

// Processing is the reflector's residence T3 − T2 as sender.RTT takes it (0 when unusable).
func (r *Record) Processing() time.Duration {
	_, res := pipeline.RTT(unixTime(r.Depart()), unixTime(r.T2), unixTime(r.T3), unixTime(r.T4))
	return res
}

// unixTime is time.Unix(0, ns), and the zero Time for 0 (a timestamp not given).
func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// session is one test session: its socket, the negotiated parameters and the results.
type session struct {
	idx      int
	sock     *udpsock.Conn
	local    netip.AddrPort
	remote   netip.AddrPort
	sid      [16]byte
	mode     twampctl.Mode        // test security: unauthenticated, authenticated or encrypted
	tc       *twampctl.TestCrypto // sender's
	rtc      *twampctl.TestCrypto // receiver's clone (TestCrypto is single-goroutine)
	padding  int
	dscp     uint8
	count    int
	schedule Schedule
	zeroPad  bool
	monitor  bool                    // RFC 7750 negotiated
	ee       timestamp.ErrorEstimate // this host's clock (clockEE), sent with T1 and applied to T4
	// RFC 6038: symmetric is the Symmetrical Size sender format; with reflect, every packet
	// carries serverOctets and every reply must return expect at layout.ReflectorOff.
	symmetric    bool
	reflect      bool
	layout       twampctl.ReflectLayout
	serverOctets uint16
	pad          []byte // padding template shared by every packet
	expect       []byte

	sent    int
	records []Record // written by the receiving goroutine (onReply), read after the run
	res     *Result

	// The shared Session-Sender pipeline and the state its callbacks use: sp and size on the
	// sending goroutine, rp on the receiving one.
	p    *pipeline.Pipeline
	sp   testpkt.SenderPacket
	size int
	rp   testpkt.ReflectedPacket
}

func (s *session) senderLen() int {
	return twampctl.SenderPaddingOffset(s.mode, s.symmetric) + s.padding
}

// prepare builds the padding template and, with RFC 6038 Reflect Octets, the octets every
// reply must carry back; it runs before the sender and receiver goroutines start.
func (s *session) prepare() {
	size := s.senderLen()
	s.pad = make([]byte, max(size, testpkt.AuthBaseLen))
	if !s.zeroPad {
		_, _ = rand.Read(s.pad) // pseudo-random padding (RFC 5357 §4.1.2), same for every packet
	}
	if s.reflect && s.layout.Length > 0 {
		var sp testpkt.SenderPacket
		sp.Mode = s.pktMode()
		pkt := s.build(make([]byte, len(s.pad)), &sp, size)
		s.expect = append([]byte(nil), pkt[s.layout.SenderOff:s.layout.SenderOff+s.layout.Length]...)
	}
}

// build writes one sender packet of size octets into b (len(b) == len(s.pad)) before sealing.
func (s *session) build(b []byte, sp *testpkt.SenderPacket, size int) []byte {
	copy(b, s.pad)
	out := sp.AppendTo(b[:0])
	if len(out) > size {
		out = out[:size] // beyond 14 octets the open layout is zero MBZ = zero padding
	} else {
		out = b[:size]
	}
	if s.symmetric {
		// RFC 6038 Symmetrical Size: MBZ up to the reflector header size.
		if hl := sp.Mode.SenderLen(); hl < s.layout.SenderOff {
			clear(out[hl:min(size, s.layout.SenderOff)])
		}
	}
	if s.reflect {
		s.layout.PutServerOctets(out, s.serverOctets)
	}
	return out
}

func (s *session) pktMode() testpkt.Mode {
	if s.mode == twampctl.ModeUnauthenticated {
		return testpkt.ModeUnauthenticated
	}
	return testpkt.ModeTWAMPAuthenticated
}

// newPipeline sets up the session's Session-Sender pipeline on conn (nil: offline, driven
// with Record and Handle by tests): count packets on the schedule from start, replies awaited
// for timeout after the last one (the loss timeout).
func (s *session) newPipeline(conn *udpsock.Conn, start time.Time, timeout time.Duration, log logrus.FieldLogger) error {
	if s.pad == nil {
		s.prepare()
	}
	s.size = s.senderLen()
	s.sp = testpkt.SenderPacket{Mode: s.pktMode(), ErrorEstimate: s.ee}
	s.rp.Mode = s.pktMode()
	sched := pace.NewSchedule(s.schedule.Interval, s.schedule.Poisson, uint64(time.Now().UnixNano()))
	p, err := pipeline.New(pipeline.Config{Conn: conn, Target: s.remote, TOS: s.dscp << 2, Schedule: sched,
		Start: start, Count: uint64(s.count), Timeout: timeout, MaxLen: len(s.pad),
		Build: s.buildPacket, Decode: s.decode, OnReply: s.onReply, Log: log})
	s.p = p
	return err
}

// buildPacket writes packet seq with T1 = t1 (sending goroutine): padding template, header,
// RFC 6038 fields, then the HMAC and encryption of the authenticated modes.
func (s *session) buildPacket(b []byte, seq uint32, t1 time.Time) (int, error) {
	s.sp.Seq = seq
	s.sp.Timestamp = testpkt.Stamp(t1, false)
	out := s.build(b, &s.sp, s.size)
	if s.tc != nil {
		if err := s.tc.SealSender(out); err != nil {
			return 0, err
		}
	}
	return len(out), nil
}

// decode authenticates and decrypts a reply (authenticated and encrypted modes: a reply that
// does not open under the session keys is another session's or forged) and hands its sequence
// number and reflector times to the pipeline. TWAMP has no SSID: the session is the socket,
// its peer address and port (checked by the pipeline) and, in the secure modes, the keys.
func (s *session) decode(data []byte, r *pipeline.Reply) error {
	if s.rtc != nil {
		if err := s.rtc.OpenReflector(data); err != nil {
			return fmt.Errorf("%w: %v", pipeline.ErrAuth, err)
		}
	}
	if err := s.rp.UnmarshalBinary(data); err != nil {
		return fmt.Errorf("%w: %v", pipeline.ErrMalformed, err)
	}
	r.Seq = s.rp.SenderSeq
	if s.rp.ReceiveTimestamp != 0 && s.rp.Timestamp != 0 {
		r.T2, r.T3 = s.rp.ReceiveTime(), s.rp.TransmitTime()
	}
	return nil
}

// onReply records a reply the pipeline validated and matched. Reflect duplicates (one
// reflector sequence number twice: the reverse path duplicated the reply) are told from send
// duplicates (one sender sequence number answered twice: the forward path duplicated the
// packet) as twping does.
func (s *session) onReply(r *pipeline.Reply) error {
	res := s.res
	d := res.ReflSeq.Duplicates()
	res.ReflSeq.Add(uint64(s.rp.Seq))
	if res.ReflSeq.Duplicates() > d {
		res.ReflectDuplicates++
		return nil
	}
	if r.Duplicate {
		res.SendDuplicates++
		return nil
	}
	if int(r.Seq) >= len(s.records) {
		return nil // the pipeline only passes sequence numbers it sent (< count)
	}
	rec := &s.records[r.Seq]
	rec.Seq, rec.ReflectorSeq, rec.Received = r.Seq, s.rp.Seq, true
	rec.T1 = r.T1User.UnixNano()
	if !r.T1Kernel.IsZero() {
		rec.T1Kernel = r.T1Kernel.UnixNano()
	}
	if !r.T2.IsZero() {
		rec.T2, rec.T3 = r.T2.UnixNano(), r.T3.UnixNano()
	}
	rec.T4 = r.T4.UnixNano()
	rec.SenderTTL = s.rp.SenderTTL
	rec.senderEE, rec.reflEE, rec.rxEE = s.rp.SenderErrorEstimate, s.rp.ErrorEstimate, s.ee
	if s.expect != nil {
		if got := s.layout.Reflected(r.Data); got == nil || !bytes.Equal(got, s.expect) {
			res.ReflectMismatch++
		}
	}
	m := r.Msg
	rec.RevTOS = m.TOS
	if s.monitor {
		if v, ok := testpkt.SenderDSCPECN(r.Data, s.rp.Mode); ok {
			rec.FwdTOS = v
		}
	}
	if m.TTL > 0 && m.TTL < 256 {
		rec.TTL = uint8(m.TTL)
	}
	return nil
}

// collect copies the pipeline's statistics into the result and fills the records of the
// packets that got no reply with their departure times (after the run).
func (s *session) collect(st *pipeline.Stats) {
	s.sent = int(st.Sent)
	res := s.res
	res.Sent, res.First, res.Last = s.sent, st.First, st.Last
	res.Seq, res.Jitter = st.Seq, st.Jitter
	res.Invalid, res.Late, res.KernelRx = st.Invalid(), st.Late, st.RxKernel
	for j := range s.records[:s.sent] {
		if rec := &s.records[j]; !rec.Received {
			rec.Seq = uint32(j)
			rec.T1, rec.T1Kernel, _ = s.p.Departure(uint32(j))
		}
	}
	res.finish(s.records[:s.sent])
}

func unmap(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }

// listenTest binds the session's UDP socket on local (port from the range when given).
func listenTest(ctx context.Context, local netip.Addr, lo, hi uint16, used map[uint16]bool) (*udpsock.Conn, error) {
	network := "udp4"
	if local.Is6() {
		network = "udp6"
	}
	opts := pipeline.SocketOptions(false)
	if lo == 0 {
		return udpsock.Listen(ctx, network, netip.AddrPortFrom(local, 0).String(), opts)
	}
	var last error
	for p := int(lo); p <= int(hi); p++ {
		if used[uint16(p)] {
			continue
		}
		c, err := udpsock.Listen(ctx, network, netip.AddrPortFrom(local, uint16(p)).String(), opts)
		if err == nil {
			used[uint16(p)] = true
			return c, nil
		}
		last = err
	}
	return nil, &net.OpError{Op: "listen", Net: network, Err: last}
}

// ntpDuration encodes a duration as an NTP-format interval (Timeout field).
func ntpDuration(d time.Duration) uint64 {
	sec := uint64(d / time.Second)
	frac := uint64(d%time.Second) << 32 / uint64(time.Second)
	return sec<<32 | frac
}

// writeRaw prints twping's -R lines, one per sent packet, 16 space-separated columns:
//
//	SSEQ STIME SS SERR SRTIME SRS SRERR STTL RSEQ RSTIME RSS RSERR RTIME RS RERR RTTL
//
// Times are 64-bit NTP timestamps in decimal (as owping/twping print them): STIME the best
// departure time (kernel transmit stamp when available), SRTIME/RSTIME the reflector's T2/T3,
// RTIME the arrival here (T4); xS is the Error Estimate's S bit, xERR its error in seconds;
// STTL is the TTL the reflector received (Sender TTL), RTTL the reply's. A lost packet has
// zero reflector and receive columns and TTL 255, as owping prints lost packets.
func (s *session) writeRaw(w io.Writer) error {
	bw := bufio.NewWriter(w)
	ntp := func(ns int64) uint64 {
		if ns == 0 {
			return 0
		}
		return uint64(timestamp.NTPFromTime(time.Unix(0, ns)))
	}
	sync := func(e timestamp.ErrorEstimate) int {
		if e.S() {
			return 1
		}
		return 0
	}
	for i := range s.records[:s.sent] {
		r := &s.records[i]
		if !r.Received {
			fmt.Fprintf(bw, "%d %d %d %g 0 0 0 255 0 0 0 0 0 0 0 255\n", r.Seq, ntp(r.Depart()), sync(s.ee), s.ee.Seconds())
			continue
		}
		fmt.Fprintf(bw, "%d %d %d %g %d %d %g %d %d %d %d %g %d %d %g %d\n",
			r.Seq, ntp(r.Depart()), sync(r.senderEE), r.senderEE.Seconds(),
			ntp(r.T2), sync(r.reflEE), r.reflEE.Seconds(), r.SenderTTL,
			r.ReflectorSeq, ntp(r.T3), sync(r.reflEE), r.reflEE.Seconds(),
			ntp(r.T4), sync(r.rxEE), r.rxEE.Seconds(), r.TTL)
	}
	return bw.Flush()
}
