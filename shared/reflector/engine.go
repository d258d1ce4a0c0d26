package reflector

import (
	"net/netip"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/timestamp"
)

// Packet is one received test packet with what the socket reported about it.
type Packet struct {
	// Data is the UDP payload. Authenticators of encrypted modes may rewrite it in place.
	Data []byte
	// Peer is the sender's address and port. Local is the address and port the datagram was
	// sent to: on a wildcard socket, its real destination when the socket reports it (Serve
	// does), otherwise the unspecified address.
	Peer, Local netip.AddrPort
	// Listener is the address the receiving socket is bound to. It keys the session table, so
	// sessions (and the operator's provisioning) name the listener even on a wildcard socket
	// that reports each datagram's own destination in Local; when unset, Local keys sessions.
	Listener netip.AddrPort
	// RxTime is T2, ideally the kernel receive timestamp; RxSource says where it came from.
	RxTime   time.Time
	RxSource timestamp.Source
	// TOS is the received DSCP/ECN byte, TTL the received IPv4 TTL / IPv6 hop limit (0 when
	// unknown).
	TOS uint8
	TTL int
}

func (p *Packet) listener() netip.AddrPort {
	if p.Listener.IsValid() {
		return p.Listener
	}
	return p.Local
}

// replyLen is the reply size for a request of n octets: symmetric with the request but at
// least the reflector layout's base, which in TWAMP's open mode is 41 octets (RFC 5357
// §4.2.1), 42 with RFC 7750's octet; the authenticated layouts are 112 in both protocols.
func replyLen(f Format, m testpkt.Mode, n int, s *Session) int {
	if f == FormatTWAMP && !m.Authenticated() {
		if s != nil && s.SenderDSCPECN {
			return max(n, testpkt.SenderDSCPECNLen(m)) // RFC 7750: open replies grow to 42
		}
		return max(n, testpkt.TWAMPReflectedLen)
	}
	return max(n, m.ReflectedLen())
}

// Worker reflects packets for one goroutine: it caches the signers it needs and decodes into
// reused structs, so Reflect allocates nothing, and adds to its own slot of the Stats. Do not
// share a Worker between goroutines; several Workers of one Reflector run in parallel,
// locking only the session-table shard of a lookup and the few state fields of their
// session, never across TLV or HMAC work.
type Worker struct {
	r      *Reflector
	slot   int
	keyGen uint64
	def    *STAMPAuth
	// Now returns T3; time.Now by default. Tests replace it to get deterministic replies.
	Now func() time.Time
	req testpkt.SenderPacket
}

// NewWorker returns a Worker for r.
func (r *Reflector) NewWorker() *Worker {
	return &Worker{r: r, Now: time.Now, slot: int(r.workers.Add(1)-1) % statSlots}
}

func (w *Worker) refreshKey() {
	kr := w.r.keys.Load()
	if kr.gen == w.keyGen {
		return
	}
	w.keyGen = kr.gen
	if len(kr.key) == 0 {
		w.def = nil
		return
	}
	w.def = NewSTAMPAuth(kr.key)
}

func (w *Worker) drop(reason int) ([]byte, uint8, bool) {
	w.r.Stats.Drops[reason].add(w.slot, 1)
	return nil, 0, false
}

// Reflect processes one test packet and writes the reply into out[:0] (out needs capacity for
// max(len(p.Data), base) octets). It returns the reply, the TOS byte to send it with, and
// false when the packet is dropped; every drop is counted in Stats.Drops.
//
// Order of work: layout and length checks, session lookup (read only), authentication — so a
// packet failing its HMAC changes nothing (B-19) — then the reply-size policy, session
// admission, the replay window and session state, the reply's base fields, TLVs, T3 as late
// as possible, and the HMACs over the final bytes.
func (w *Worker) Reflect(p *Packet, out []byte) ([]byte, uint8, bool) {
	r := w.r
	cfg := &r.cfg
	st := &r.Stats
	r.Stats.Received.add(w.slot, 1)
	n := len(p.Data)
	if n > cfg.MaxPacket {
		return w.drop(DropTooLong)
	}
	w.refreshKey()

	// Session lookup: the SSID sits at the offset of the listener's layout.
	var ssid uint16
	if cfg.Format == FormatSTAMP {
		ssid = testpkt.SSIDOf(cfg.Mode, p.Data)
	}
	key := SessionKey{Peer: p.Peer, Local: p.listener(), SSID: ssid}
	rxNs := p.RxTime.UnixNano()
	s := r.table.lookup(&key, rxNs)
	if s == nil && cfg.ProvisionedOnly {
		return w.drop(DropUnknown)
	}
	mode, format := cfg.Mode, cfg.Format
	if s != nil {
		mode, format = s.Mode, s.Format
	}
	reqBase := mode.SenderLen()
	minLen := reqBase
	if mode == testpkt.ModeUnauthenticated {
		minLen = testpkt.TWAMPSenderLen // B-17: shorter requests get the zero-filled base
	}
	if n < minLen {
		return w.drop(DropShort)
	}

	// Authentication before any state change (B-19).
	var auth Authenticator
	var signer *testpkt.Signer
	if s != nil && s.Auth != nil {
		auth = s.Auth
	} else if w.def != nil {
		auth = w.def
	}
	if sa, ok := auth.(*STAMPAuth); ok {
		signer = sa.s
	}
	if mode.Authenticated() {
		if auth == nil || !auth.Open(p.Data) {
			return w.drop(DropAuth)
		}
	}
	req := &w.req
	req.Mode = mode
	if err := req.UnmarshalBinary(p.Data); err != nil {
		return w.drop(DropShort)
	}

	// The reply is built in the STAMP layout (bl octets) and cut to rl, TWAMP's size.
	repBase := mode.ReflectedLen()
	bl := max(n, repBase)
	rl := replyLen(format, mode, n, s)
	if rl > n && (s == nil || !s.Provisioned) {
		// A reply longer than its request (the RFCs' minimum reply sizes) amplifies a
		// spoofed sender's traffic: refused with StrictSize, else limited per source
		// address. Provisioned sessions were set up by the operator or TWAMP-Control.
		if cfg.StrictSize {
			return w.drop(DropAmplification)
		}
		if !r.shortReplies.take(addrKey(p.Peer.Addr()), rxNs) {
			r.logAmplify.warn(r.log, rxNs, "reflector: replies to short requests rate-limited (amplification)", func() logrus.Fields {
				return logrus.Fields{"peer": p.Peer.Addr().String(), "request": n, "reply": rl}
			})
			return w.drop(DropAmplification)
		}
	}
	if cap(out) < bl {
		return w.drop(DropTooLong)
	}
	out = out[:bl]
	clear(out)
	if n > repBase {
		copy(out[repBase:], p.Data[repBase:])
	}

	var tc tlvCtx
	hasTLVs := format == FormatSTAMP && n > reqBase
	if hasTLVs && returnPathNoReply(p.Data[reqBase:]) {
		return w.drop(DropNoReply)
	}

	// Session admission: a new learned session needs a token of its source prefix and a
	// place in the table, made by evicting the least recently used session when full.
	stateful := !cfg.Stateless
	if s == nil && stateful {
		if !r.newSessions.take(prefixKey(p.Peer.Addr()), rxNs) {
			r.logAdmit.warn(r.log, rxNs, "reflector: new sessions from one source prefix rate-limited", func() logrus.Fields {
				return logrus.Fields{"peer": p.Peer.Addr().String(), "rate_per_s": cfg.SessionRate, "burst": cfg.SessionBurst}
			})
			return w.drop(DropRateLimited)
		}
		ns, evicted, ok := r.table.learn(&key, format, mode, p.RxTime)
		if !ok {
			r.logFull.warn(r.log, rxNs, "reflector: session table full", func() logrus.Fields {
				return logrus.Fields{"max_sessions": r.table.max}
			})
			return w.drop(DropTableFull)
		}
		if evicted {
			st.Evicted.add(w.slot, 1)
			r.logFull.warn(r.log, rxNs, "reflector: session table full, least recently used sessions evicted", func() logrus.Fields {
				return logrus.Fields{"max_sessions": r.table.max, "evicted_total": st.Evicted.Load()}
			})
		}
		s = ns
	}

	// Session state, under the session's own lock for these few fields only.
	var seq uint32
	if s != nil {
		s.mu.Lock()
		if stateful && mode.Authenticated() && !s.replay.check(req.Seq) {
			s.mu.Unlock()
			return w.drop(DropReplay)
		}
		s.rx++
		s.tx++
		tc.rx, tc.tx = s.rx, s.tx
		if stateful {
			seq = s.seq
			s.seq++
			tc.prevSeq, tc.prevT3, tc.hasPrev = s.prevSeq, s.prevT3, s.hasPrev
		} else {
			seq = req.Seq // B-11
		}
		s.mu.Unlock()
	} else {
		seq = req.Seq // B-11
		if hasTLVs {  // Direct Measurement without a session: the reflector's totals
			tc.rx, tc.tx = uint32(st.Received.Load()), uint32(st.Reflected.Load()+1)
		}
	}
	var tos uint8
	if s != nil && s.DSCP > 0 {
		tos = uint8(s.DSCP) << 2
	}

	// Base fields (B-09/B-10, B-13…B-15, X-02).
	ptp := cfg.PTP
	t2 := testpkt.Stamp(p.RxTime, ptp)
	ttl := uint8(0)
	if p.TTL > 0 && p.TTL < 256 {
		ttl = uint8(p.TTL)
	}
	base := testpkt.ReflectedPacket{Mode: mode, Seq: seq, ErrorEstimate: r.ee, ReceiveTimestamp: t2,
		SenderSeq: req.Seq, SenderTimestamp: req.Timestamp, SenderErrorEstimate: req.ErrorEstimate, SenderTTL: ttl}
	if format == FormatSTAMP {
		base.SSID = req.SSID // TWAMP has MBZ there
	}
	base.PutBase(out)

	hmacTLV := -1
	if hasTLVs && bl > repBase {
		tc.p, tc.stateless, tc.auth = p, !stateful || s == nil, mode.Authenticated()
		tc.signer = signer
		tc.tos = tos
		hmacTLV = w.tlvs(out, repBase, &tc)
		tos = tc.tos
		if hmacTLV >= 0 && signer != nil {
			mac := signer.TLVSum(out, repBase, hmacTLV)
			copy(out[hmacTLV+testpkt.TLVHeaderLen:], mac[:])
		}
	}

	var hook ReplyHook
	if s != nil {
		if s.SenderDSCPECN && format == FormatTWAMP {
			testpkt.PutSenderDSCPECN(out, mode, p.TOS) // RFC 7750 §2
		}
		hook = s.Hook
	}
	out = out[:rl]
	if hook != nil {
		hook.Reply(out, p.Data)
	}

	// T3 as late as possible: everything but the base HMAC is final.
	now := w.Now()
	t3 := testpkt.Stamp(now, ptp)
	testpkt.PutTransmitTimestamp(out, mode, t3)
	if s != nil && stateful {
		// Follow-Up Telemetry reports the latest reply; with several workers on one
		// session an older one finishing late does not overwrite it.
		s.mu.Lock()
		if !s.hasPrev || int32(seq-s.prevSeq) >= 0 {
			s.prevSeq, s.prevT3, s.hasPrev = seq, t3, true
		}
		s.mu.Unlock()
	}
	if mode.Authenticated() {
		auth.Seal(out)
	}
	st.Reflected.add(w.slot, 1)
	if p.RxSource == timestamp.SourceKernel || p.RxSource == timestamp.SourceHardware {
		st.RxKernel.add(w.slot, 1)
	}
	st.observe(w.slot, now.Sub(p.RxTime))
	return out, tos, true
}

// returnPathNoReply reports whether the request's TLVs hold a Return Path TLV asking for no
// reply (RFC 9503 §4: one-way measurement).
func returnPathNoReply(ext []byte) bool {
	it := testpkt.NewTLVIterator(ext)
	for it.Next() {
		if tl := it.TLV(); tl.Type == testpkt.TypeReturnPath && testpkt.ReturnPathNoReplyRequested(tl.Value) {
			return true
		}
	}
	return false
}

// tlvCtx carries what TLV processing needs to know about the packet and session.
type tlvCtx struct {
	p                *Packet
	stateless, auth  bool
	signer           *testpkt.Signer
	rx, tx           uint32
	prevSeq          uint32
	prevT3           uint64
	hasPrev          bool
	tos              uint8
	integrityChecked bool
}

// tlvs applies RFC 8972 reflector rules to the TLVs copied into out[base:] and returns the
// offset of the HMAC TLV whose value must be recomputed (-1 for none).
func (w *Worker) tlvs(out []byte, base int, c *tlvCtx) int {
	ext := out[base:]
	// TWAMP-Light senders pad rather than send TLVs (B-17, B-20): an extension area whose first
	// TLV is of the reserved type 0 (zero padding) or does not even frame is padding and is
	// copied verbatim.
	first := testpkt.NewTLVIterator(ext)
	if !first.Next() || first.TLV().Type == 0 {
		return -1
	}
	// Integrity first: the HMAC TLV over the request as received. In authenticated
	// mode TLVs other than Extra Padding need one.
	hmacOff, hmacLen := -1, 0
	needsHMAC := false
	it := testpkt.NewTLVIterator(ext)
	for it.Next() {
		tl := it.TLV()
		switch tl.Type {
		case testpkt.TypeHMAC:
			if hmacOff < 0 {
				hmacOff, hmacLen = base+it.Offset(), len(tl.Value)
			}
		case testpkt.TypeExtraPadding:
		default:
			if hmacOff < 0 {
				needsHMAC = true
			}
		}
	}
	integrityFailed := false
	if hmacOff >= 0 && c.signer != nil {
		v := c.p.Data[hmacOff+testpkt.TLVHeaderLen:]
		integrityFailed = hmacLen != testpkt.HMACLen || !c.signer.VerifyTLV(c.p.Data, base, hmacOff, v[:hmacLen])
	} else if c.auth && needsHMAC {
		integrityFailed = true
	}
	if integrityFailed {
		it = testpkt.NewTLVIterator(ext)
		for it.Next() {
			ext[it.Offset()] = testpkt.FlagI
		}
		return -1
	}

	recompute := -1
	it = testpkt.NewTLVIterator(ext)
	for it.Next() {
		off := it.Offset()
		tl := it.TLV()
		v := tl.Value
		flags := uint8(0) // U/M/I computed afresh; reserved bits zero on send
		switch tl.Type {
		case testpkt.TypeExtraPadding:
		case testpkt.TypeLocation:
			dst := c.p.Local
			if dst.Addr().IsUnspecified() {
				dst = netip.AddrPortFrom(netip.Addr{}, dst.Port())
			}
			if !testpkt.FillLocation(v, c.p.Peer, dst) {
				flags = testpkt.FlagM
			}
		case testpkt.TypeTimestampInformation:
			if len(v) != testpkt.LenTimestampInformation {
				flags = testpkt.FlagM
				break
			}
			method := testpkt.MethodSoftware
			if c.p.RxSource == timestamp.SourceHardware {
				method = testpkt.MethodHardware
			}
			sync := w.r.cfg.SyncSource
			testpkt.TimestampInformation{SyncIn: sync, MethodIn: method, SyncOut: sync,
				MethodOut: testpkt.MethodSoftware}.Put(v)
		case testpkt.TypeClassOfService:
			cos, err := testpkt.ParseClassOfService(v)
			if err != nil {
				flags = testpkt.FlagM
				break
			}
			cos.DSCP2, cos.ECN2 = c.p.TOS>>2, c.p.TOS&0x3 // erratum 8199: ECN too
			if w.r.cfg.RefuseDSCP {
				c.tos = c.p.TOS&^0x3 | cos.ECN1
				cos.RPD = 1
			} else {
				c.tos = cos.DSCP1<<2 | cos.ECN1
				cos.RPD = 0
			}
			cos.RPE = 1
			cos.Put(v)
		case testpkt.TypeDirectMeasurement:
			if len(v) != testpkt.LenDirectMeasurement {
				flags = testpkt.FlagM
				break
			}
			testpkt.PutDirectMeasurementReflector(v, c.rx, c.tx)
		case testpkt.TypeAccessReport:
			ar, err := testpkt.ParseAccessReport(v)
			if err != nil {
				flags = testpkt.FlagM
			} else if !ar.Valid() {
				flags = testpkt.FlagU
			}
		case testpkt.TypeFollowUpTelemetry:
			if len(v) != testpkt.LenFollowUpTelemetry {
				clear(v) // erratum 8339
				flags = testpkt.FlagM
				break
			}
			fu := testpkt.FollowUpTelemetry{}
			if !c.stateless && c.hasPrev {
				fu = testpkt.FollowUpTelemetry{Seq: c.prevSeq, Timestamp: c.prevT3, Method: testpkt.MethodSoftware}
			}
			fu.Put(v)
		case testpkt.TypeHMAC:
			switch {
			case len(v) != testpkt.HMACLen:
				flags = testpkt.FlagM
			case c.signer == nil:
				flags = testpkt.FlagU
			case recompute < 0:
				recompute = base + off
			}
		case testpkt.TypeDestinationNodeAddress:
			// Any of the host's addresses is ours on a wildcard listener, whichever one
			// this datagram was sent to.
			if !w.r.isLocal(v, c.p.listener().Addr()) {
				flags = testpkt.FlagU // RFC 9503 §3: not ours, still reflected
			}
		default:
			// Return Path (unsupported SR), Micro-session ID, Reflected Test Packet Control
			// (off, T-11), experimental (off, T-12) and unknown types: U=1, copied.
			flags = testpkt.FlagU
		}
		ext[off] = flags
		if flags&testpkt.FlagM != 0 {
			return recompute // stop, the rest is copied verbatim
		}
	}
	if it.Err() != nil && len(ext)-it.Offset() >= testpkt.TLVHeaderLen {
		ext[it.Offset()] = testpkt.FlagM // overrun: flag the bad TLV, copy the rest
	}
	return recompute
}
