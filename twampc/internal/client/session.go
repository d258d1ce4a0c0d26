package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/probekit/probekit/shared/pace"
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

// RTT is (T4 − T1) − (T3 − T2), with T1 the best departure time.
func (r *Record) RTT() time.Duration { return time.Duration((r.T4 - r.Depart()) - (r.T3 - r.T2)) }

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

	sent      int
	firstSent time.Time
	lastSent  time.Time
	records   []Record // written by the receiver only
	sentT1    []int64  // written by the sender only
	txIDs     []uint32 // sender: transmit-timestamp ID of each packet
	txTimes   []int64  // receiver: kernel transmit time by ID
	res       *Result
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

// send transmits count packets on the schedule, paced by a pace.Pacer (sleep then spin;
// bursts below 100 µs): the packets it hands out together leave in one sendmmsg, each with
// its own T1 and kernel transmit time.
func (s *session) send(ctx context.Context, start time.Time) error {
	if s.count <= 0 {
		return nil
	}
	defer pace.LockThread()()
	const batch = udpsock.DefaultBatch
	size := s.senderLen()
	msgs := make([]udpsock.Message, batch)
	if s.pad == nil {
		s.prepare()
	}
	pad := s.pad
	bufs := make([]byte, batch*len(pad))
	var sp testpkt.SenderPacket
	sp.Mode = s.pktMode()
	sp.ErrorEstimate = s.ee
	sched := pace.NewSchedule(s.schedule.Interval, s.schedule.Poisson, uint64(time.Now().UnixNano()))
	p := pace.New(start, pace.Config{Schedule: sched, Count: uint64(s.count), MaxBatch: batch})
	seq := 0
	for {
		k, ok := p.Next(ctx)
		if !ok {
			if seq < s.count {
				return ctx.Err()
			}
			return nil
		}
		for i := 0; i < k; i++ {
			b := bufs[i*len(pad) : (i+1)*len(pad)]
			copy(b, pad)
			sp.Seq = uint32(seq)
			t1 := time.Now()
			sp.Timestamp = testpkt.Stamp(t1, false)
			out := s.build(b, &sp, size)
			if s.tc != nil {
				if err := s.tc.SealSender(out); err != nil {
					return err
				}
			}
			s.sentT1[seq] = t1.UnixNano()
			msgs[i] = udpsock.Message{Buf: out, N: len(out), Addr: s.remote, TOS: s.dscp << 2}
			seq++
		}
		sent, err := s.sock.WriteBatch(msgs[:k])
		for j := 0; j < sent; j++ {
			s.txIDs[seq-k+j] = msgs[j].TxID
		}
		if s.sent == 0 && sent > 0 {
			s.firstSent = time.Unix(0, s.sentT1[0])
		}
		s.sent += sent
		s.lastSent = time.Now()
		if err != nil && !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ENOBUFS) {
			return err
		}
	}
}

// receive reads replies until every packet came back or deadline() passes.
func (s *session) receive(ctx context.Context, deadline func() time.Time) {
	const batch = udpsock.DefaultBatch
	msgs := make([]udpsock.Message, batch)
	buf := make([]byte, batch*9217)
	for i := range msgs {
		msgs[i].Buf = buf[i*9217 : (i+1)*9217]
	}
	var rp testpkt.ReflectedPacket
	rp.Mode = s.pktMode()
	r := s.res
	sinceDrain, lastDrain := 0, time.Now()
	for r.Seq.Received() < uint64(s.count) {
		if ctx.Err() != nil {
			return
		}
		dl := deadline()
		if !dl.IsZero() && time.Now().After(dl) {
			return
		}
		// Poll in short slices so the deadline (known only once sending ends) is honoured.
		_ = s.sock.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		n, err := s.sock.ReadBatch(msgs)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EINTR) {
				continue
			}
			return
		}
		for i := 0; i < n; i++ {
			m := &msgs[i]
			s.handleReply(m, &rp)
		}
		// Collect transmit timestamps every few hundred replies or milliseconds rather than
		// with a syscall per batch; the error queue holds them meanwhile.
		sinceDrain += n
		if now := time.Now(); sinceDrain >= 256 || now.Sub(lastDrain) > 5*time.Millisecond {
			s.drainTx(0)
			sinceDrain, lastDrain = 0, now
		}
	}
}

// drainTx collects kernel transmit timestamps from the error queue (waiting up to wait).
func (s *session) drainTx(wait time.Duration) {
	fn := func(id uint32, t time.Time, _ timestamp.Source) {
		if int(id) < len(s.txTimes) {
			s.txTimes[id] = t.UnixNano()
		}
	}
	if wait > 0 {
		_, _ = s.sock.WaitTxTimestamps(wait, fn)
		return
	}
	_, _ = s.sock.TxTimestamps(fn)
}

// applyTx attaches the kernel transmit times to the records (after sender and receiver ended).
func (s *session) applyTx() {
	for seq := 0; seq < s.sent; seq++ {
		if id := s.txIDs[seq]; int(id) < len(s.txTimes) && s.txTimes[id] != 0 {
			s.records[seq].T1Kernel = s.txTimes[id]
		}
	}
}

func (s *session) handleReply(m *udpsock.Message, rp *testpkt.ReflectedPacket) {
	r := s.res
	if m.Truncated || unmap(m.Addr) != s.remote {
		r.Invalid++
		return
	}
	data := m.Buf[:m.N]
	if s.rtc != nil {
		if err := s.rtc.OpenReflector(data); err != nil {
			r.Invalid++
			return
		}
	}
	if err := rp.UnmarshalBinary(data); err != nil {
		r.Invalid++
		return
	}
	if !r.ReflSeq.Add(uint64(rp.Seq)) {
		r.ReflectDuplicates++
		return
	}
	seq := rp.SenderSeq
	if !r.Seq.Add(uint64(seq)) || int(seq) >= len(s.records) {
		r.SendDuplicates++
		return
	}
	rec := &s.records[seq]
	rec.Seq, rec.ReflectorSeq, rec.Received = seq, rp.Seq, true
	rec.T1 = rp.SenderTime().UnixNano()
	rec.T2 = rp.ReceiveTime().UnixNano()
	rec.T3 = rp.TransmitTime().UnixNano()
	rec.T4 = m.RxTime.UnixNano()
	rec.SenderTTL = rp.SenderTTL
	rec.senderEE, rec.reflEE, rec.rxEE = rp.SenderErrorEstimate, rp.ErrorEstimate, s.ee
	if s.expect != nil {
		if got := s.layout.Reflected(data); got == nil || !bytes.Equal(got, s.expect) {
			r.ReflectMismatch++
		}
	}
	rec.RevTOS = m.TOS
	if s.monitor {
		if v, ok := testpkt.SenderDSCPECN(data, rp.Mode); ok {
			rec.FwdTOS = v
		}
	}
	if m.TTL > 0 && m.TTL < 256 {
		rec.TTL = uint8(m.TTL)
	}
	r.Jitter.Add(rec.RTT())
	if m.RxSource == timestamp.SourceKernel || m.RxSource == timestamp.SourceHardware {
		r.KernelRx++
	}
}

func unmap(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }

// listenTest binds the session's UDP socket on local (port from the range when given).
func listenTest(ctx context.Context, local netip.Addr, lo, hi uint16, used map[uint16]bool) (*udpsock.Conn, error) {
	network := "udp4"
	if local.Is6() {
		network = "udp6"
	}
	opts := udpsock.Options{RxTimestamps: true, TxTimestamps: true, RecvTTL: true, RecvTOS: true, ReadBuffer: 64 << 20, WriteBuffer: 4 << 20}
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
