package probe

import (
	"github.com/probekit/probekit/shared/tcpcraft"
	"github.com/probekit/probekit/tcpexpose/internal/wire"
)

// The decisions of the original (tcpexposure.py's get_*_result and is_* functions), on the
// segments received for one probe. They are pure functions of what was sent and received,
// tested on constructed inputs; the codes are the original's.

// reflectionOf returns the first received segment carrying a header reflection.
func reflectionOf(got []*tcpcraft.Segment) (*tcpcraft.Segment, *wire.Reflection) {
	for _, s := range got {
		if len(s.Payload) < 80 {
			continue
		}
		if r, err := wire.ParseReflection(s.Payload); err == nil && r.Received.Protocol == tcpcraft.ProtoTCP {
			return s, r
		}
	}
	return nil, nil
}

func synAckOf(got []*tcpcraft.Segment) *tcpcraft.Segment {
	for _, s := range got {
		if s.Has(tcpcraft.FlagSYN | tcpcraft.FlagACK) {
			return s
		}
	}
	return nil
}

func hasRST(got []*tcpcraft.Segment) bool {
	for _, s := range got {
		if s.Flags&tcpcraft.FlagRST != 0 {
			return true
		}
	}
	return false
}

// acks lists the acknowledgement numbers of received ACK segments (not RST).
func acks(got []*tcpcraft.Segment) []uint32 {
	var a []uint32
	for _, s := range got {
		if s.Flags&tcpcraft.FlagACK != 0 && s.Flags&tcpcraft.FlagRST == 0 {
			a = append(a, s.Ack)
		}
	}
	return a
}

// highestAck is the highest acknowledgement number relative to base (0: none).
func highestAck(got []*tcpcraft.Segment, base uint32) (uint32, bool) {
	var best uint32
	ok := false
	for _, a := range acks(got) {
		if !ok || int32(a-best) > 0 {
			best, ok = a, true
		}
	}
	_ = base
	return best, ok
}

// synResult: 0 SYN/ACK, 1 nothing, 2 RST.
func synResult(got []*tcpcraft.Segment) int {
	if synAckOf(got) != nil {
		return 0
	}
	if hasRST(got) {
		return 2
	}
	return 1
}

// synOptResult: synResult, then for the echoed MP_CAPABLE: 3 removed, 4 zeroed, 5 modified.
func synOptResult(got []*tcpcraft.Segment, sent tcpcraft.Option) int {
	if r := synResult(got); r != 0 {
		return r
	}
	o, ok := synAckOf(got).Option(wire.OptMPCapable)
	if !ok {
		return 3
	}
	zero := true
	for _, b := range o.Data[min(2, len(o.Data)):] {
		if b != 0 {
			zero = false
		}
	}
	if zero {
		return 4
	}
	if !o.Equal(sent) {
		return 5
	}
	return 0
}

// unexpAwnd: 1 when the SYN/ACK window is not the responder's (a SYN proxy answered).
func unexpAwnd(got []*tcpcraft.Segment, window uint16) int {
	s := synAckOf(got)
	if s == nil {
		return -1
	}
	if s.Window != window {
		return 1
	}
	return 0
}

// dataResult: 0 when an ACK covers the segment exactly, else 1.
func dataResult(got []*tcpcraft.Segment, seq uint32, size int) int {
	for _, a := range acks(got) {
		if a == seq+uint32(size) {
			return 0
		}
	}
	return 1
}

// indirectAck: 1 when a pure ACK (no payload) acknowledged data: someone other than the
// responder (which always reflects) ACKed it, e.g. a proxy.
func indirectAck(got []*tcpcraft.Segment) int {
	for _, s := range got {
		if s.Flags&(tcpcraft.FlagRST|tcpcraft.FlagSYN|tcpcraft.FlagFIN) != 0 || s.Flags&tcpcraft.FlagACK == 0 || s.Ack == 0 {
			continue
		}
		if len(s.Payload) == 0 {
			return 1
		}
	}
	return 0
}

// seqRewritten: 1 when the responder received another sequence number than we sent.
func seqRewritten(r *wire.Reflection, seq uint32) int {
	if r == nil {
		return -1
	}
	if r.Received.Seq != seq {
		return 1
	}
	return 0
}

// awndRewritten: 1 when the responder received another window than we sent.
func awndRewritten(r *wire.Reflection, win uint16) int {
	if r == nil {
		return -1
	}
	if r.Received.Window != win {
		return 1
	}
	return 0
}

// incomingSeqRewritten: 1 when the reply's sequence number is not the one the responder sent.
func incomingSeqRewritten(reply *tcpcraft.Segment, r *wire.Reflection) int {
	if r == nil {
		return -1
	}
	if reply.Seq != r.Sent.Seq {
		return 1
	}
	return 0
}

// segmentSplit: 1 when the responder received less than we sent, 0 when all, -1 when more.
func segmentSplit(r *wire.Reflection, size int) int {
	switch {
	case r == nil:
		return -1
	case r.ReceivedLen < size:
		return 1
	case r.ReceivedLen == size:
		return 0
	}
	return -1
}

// splitOptHow: for a split segment, 1 when every ACK carried the option, 2 some, 3 none.
func splitOptHow(got []*tcpcraft.Segment, kind uint8) int {
	n, withOpt := 0, 0
	for _, s := range got {
		if s.Flags&tcpcraft.FlagACK == 0 || s.Flags&tcpcraft.FlagRST != 0 {
			continue
		}
		n++
		if _, ok := s.Option(kind); ok {
			withOpt++
		}
	}
	switch {
	case withOpt == 0:
		return 3
	case withOpt == n:
		return 1
	case withOpt < n:
		return 2
	}
	return 4
}

// tsHow is how_otimestamp_affected: 0 TSval passed, 1 TS removed, 2 TSval zeroed, 3 changed.
func tsHow(r *wire.Reflection, tsval uint32) int {
	if r == nil {
		return -1
	}
	o, ok := r.Received.Option(tcpcraft.OptTimestamps)
	if !ok {
		return 1
	}
	v, _, _ := o.TimestampsValue()
	switch v {
	case tsval:
		return 0
	case 0:
		return 2
	}
	return 3
}

// dataKnownOptResult is get_data_known_opt_result: 0 TSecr echoed, 1 no ACK, 2 outgoing TS
// removed, 3 TSval changed, 4 TSval zeroed, 5 incoming TS removed, 6 incoming TSecr changed,
// 7 incoming TSecr zeroed, 8 changed/zeroed/removed but re-synced, 9 other.
func dataKnownOptResult(got []*tcpcraft.Segment, r *wire.Reflection, tsval, seq uint32, size int) int {
	if dataResult(got, seq, size) == 1 {
		return 1
	}
	valid, zero, invalid := false, false, false
	for _, s := range got {
		if o, ok := s.Option(tcpcraft.OptTimestamps); ok {
			_, e, _ := o.TimestampsValue()
			switch e {
			case tsval:
				valid = true
			case 0:
				zero = true
			default:
				invalid = true
			}
			break
		}
	}
	out := tsHow(r, tsval)
	switch {
	case out == -1:
		return -1
	case valid:
		if out == 0 {
			return 0
		}
		return 8
	case zero:
		if out == 0 {
			return 7
		} else if out == 2 {
			return 4
		}
		return 9
	case invalid:
		if out == 0 {
			return 6
		} else if out == 3 {
			return 3
		}
		return 9
	}
	if out == 0 {
		return 5
	} else if out == 1 {
		return 2
	}
	return 9
}

// dataOptResult is get_data_opt_result: 0 MP_DATA and MP_ACK pass, 1 no ACK, 2 MP_DATA
// removed, 3 modified, 4 zeroed, 5 MP_ACK removed, 6 modified, 7 zeroed, 8 other.
func dataOptResult(got []*tcpcraft.Segment, r *wire.Reflection, dsn uint64, seq uint32, size int) int {
	if dataResult(got, seq, size) == 1 {
		return 1
	}
	zeroed, invalid := false, false
	for _, s := range got {
		o, ok := s.Option(wire.OptMPAck)
		if !ok {
			continue
		}
		v, ok := wire.MPAckValue(o)
		if !ok || v == 0 {
			zeroed = true
			continue
		}
		if v == dsn+uint64(size) {
			return 0
		}
		invalid = true
	}
	if r == nil {
		return -1
	}
	md, have := r.Received.Option(wire.OptMPData)
	rdsn, _, okv := wire.MPDataValue(md)
	switch {
	case invalid:
		if !have {
			return 8
		}
		if !okv || rdsn != dsn {
			return 3
		}
		return 6
	case zeroed:
		if !have {
			return 8
		}
		if okv && rdsn == 0 {
			return 4
		}
		return 7
	}
	if !have {
		return 2
	}
	return 5
}

// coalesced is are_segments_coalesced: 1 when the responder received more (or less) than the
// reference segment size in the reflected segment, 0 when exactly it.
func coalesced(r *wire.Reflection, size int) int {
	switch {
	case r == nil:
		return -1
	case r.ReceivedLen == size:
		return 0
	}
	return 1
}

// coalescedOptHow is how_tcpopt_coalesced for n coalesced segments: 1 all options kept, 2
// some, 3 none, 4 more than sent.
func coalescedOptHow(got []*tcpcraft.Segment, r *wire.Reflection, n int, kind uint8) int {
	if r == nil {
		return -1
	}
	inHdr := 0
	for _, o := range r.Received.Options {
		if o.Kind == kind {
			inHdr++
		}
	}
	inAcks := 0
	if kind == wire.OptMPData {
		seen := map[uint64]bool{}
		for _, s := range got {
			if o, ok := s.Option(wire.OptMPAck); ok {
				if v, ok := wire.MPAckValue(o); ok && !seen[v] {
					seen[v] = true
				}
			}
		}
		inAcks = len(seen)
	} else {
		for _, s := range got {
			if _, ok := s.Option(kind); ok {
				inAcks++
			}
		}
	}
	num := max(inHdr, inAcks-1)
	switch {
	case num == 0:
		return 3
	case num == n:
		return 1
	case num < n:
		return 2
	}
	return 4
}

// pseudoRtxResult is get_pseudo_rtx_result: 0 the retransmission with new payload arrived,
// 1 no ACK, 2 ACK advanced but not delivered, 3 ACK not advanced, 4 delivered resized, 5 RST,
// 6 other.
func pseudoRtxResult(got []*tcpcraft.Segment, r *wire.Reflection, size int, seq uint32) int {
	hi, ok := highestAck(got, seq)
	if !ok || hi == 0 {
		if hasRST(got) {
			return 5
		}
		return 1
	}
	if r == nil {
		switch {
		case int32(hi-seq) > 0:
			return 2
		case hi == seq:
			return 3
		}
		return 6
	}
	if r.ReceivedLen == size {
		return 0
	}
	return 4
}

// seqHoleResult: 0 ACKed beyond the hole, 1 no ACK, 2 ACK stuck at the hole, 3 other.
func seqHoleResult(got []*tcpcraft.Segment, seq uint32, skip, size int) int {
	hi, ok := highestAck(got, seq)
	switch {
	case ok && hi == seq+uint32(size):
		return 0
	case !ok || hi == 0:
		return 1
	case hi == seq-uint32(skip):
		return 2
	}
	return 3
}

// ackHoleResult: 0 the reply's sequence number is our (advanced) ACK, 1 no reply, 2 it is
// the ACK without the skip ("corrected"), 3 other.
func ackHoleResult(got []*tcpcraft.Segment, ack uint32, skip int) int {
	var hi uint32
	ok := false
	for _, s := range got {
		if s.Flags&tcpcraft.FlagRST != 0 {
			continue
		}
		if !ok || int32(s.Seq-hi) > 0 {
			hi, ok = s.Seq, true
		}
	}
	switch {
	case ok && hi == ack:
		return 0
	case !ok || hi == 0:
		return 1
	case hi == ack-uint32(skip):
		return 2
	}
	return 3
}
