package probe

import (
	"context"

	"github.com/probekit/probekit/shared/tcpcraft"
	"github.com/probekit/probekit/tcpexpose/internal/wire"
)

// The tests the original did not have (TX-7). Codes: 0 = passes unchanged, −1 = not run.

// Codes of ChangeMss (SYN with MSS 1460 — clamps never raise — carrying the reflect marker as
// one byte of SYN data, so the responder's SYN/ACK reflects the SYN it received).
const (
	MssUnchanged    = 0
	MssNoReply      = 1
	MssRST          = 2
	MssLowered      = 3 // outgoing MSS lowered (clamping)
	MssRemoved      = 4 // outgoing MSS option removed
	MssOtherChange  = 5 // outgoing MSS raised or otherwise changed
	MssIncoming     = 6 // the SYN/ACK's MSS differs from what the responder sent
	MssNoReflection = 7 // no reflection: the SYN was re-originated (SYN proxy, TCP proxy) or its data dropped
)

// Codes of WsConsistent.
const (
	WsConsistent    = 0
	WsNoReply       = 1
	WsRST           = 2
	WsOutgoing      = 3 // outgoing window scale changed or removed
	WsIncoming      = 4 // the SYN/ACK's window scale differs from what the responder sent
	WsNoReflection  = 5 // no reflection of the SYN (re-originated): the SYN/ACK's WS comes from a middlebox if it is not the responder's
	WsNotResponders = 6 // no reflection and the SYN/ACK's WS is not the responder's: negotiated by a middlebox
)

// Codes of TtlReset (hop counts from the TTLs of the reflected SYN and of the SYN/ACK).
const (
	TtlConsistent   = 0
	TtlNoReflection = 1
	TtlOutgoing     = 3 // the SYN reached the responder with fewer hops than the replies take: re-originated on the way
	TtlIncoming     = 4 // the replies took fewer hops than the SYN: re-originated on the way back
)

// Codes of SackTranslated (a D-SACK block over data already ACKed, on a data segment).
const (
	SackUnchanged    = 0
	SackNoAck        = 1
	SackRST          = 2
	SackRemoved      = 3
	SackTranslated   = 4 // ACK and SACK edges shifted by the same offset (sequence translation)
	SackInconsistent = 5 // edges changed unlike the ACK (or the ACK translated and the SACK not)
)

// Codes of UnseenAck (a data segment ACKing 100000 bytes the responder never sent).
const (
	UnseenAnswered   = 0
	UnseenDropped    = 1
	UnseenRST        = 2
	UnseenLeaked     = 3 // it reached the responder with another source than the flow's in-window segments (left un-NATed)
	UnseenOtherReply = 4 // answered, but not by the responder (no reflection)
)

// Codes of Ecn (ECN-setup SYN, then data with ECT(0)).
const (
	EcnWorks      = 0
	EcnNoReply    = 1 // the ECN-setup SYN got nothing (a plain SYN works): ECN breaks the connection
	EcnRST        = 2
	EcnStripped   = 3 // the SYN/ACK does not confirm ECN (ECE+CWR stripped from the SYN, or ECE from the SYN/ACK)
	EcnBleached   = 4 // the data arrived without its ECT(0) codepoint
	EcnCEMarked   = 5 // the data arrived marked CE
	EcnDataFailed = 6 // ECN negotiated but the ECT data got no reflection
)

func (r *runner) synReflectTest(ctx context.Context) (*outcome, error) {
	o := newOutcome("ChangeMss", "WsConsistent", "TtlReset")
	opts := []tcpcraft.Option{tcpcraft.MSS(1460), tcpcraft.SACKPermitted(), tcpcraft.Timestamps(wire.ClientTSval, 0), tcpcraft.NOP(), tcpcraft.WindowScale(7)}
	c := r.e.NewConn(wire.ClientISN, wire.ClientWindow, wire.ClientTSval)
	o.conns = append(o.conns, c)
	syn, got, err := r.synTries(ctx, c, tcpcraft.FlagSYN, opts, []byte{wire.MarkerReflect})
	if err != nil {
		return nil, err
	}
	sa := synAckOf(got)
	if sa == nil {
		v := MssNoReply
		if hasRST(got) {
			v = MssRST
		}
		o.keys["ChangeMss"], o.keys["WsConsistent"] = v, v
		return o, nil
	}
	c.RcvNxt = sa.Seq + 1 + uint32(len(sa.Payload))
	if err := c.Send(c.Segment(tcpcraft.FlagACK, nil, nil)); err != nil {
		return nil, err
	}
	var refl *wire.Reflection
	if len(sa.Payload) > 0 {
		refl, _ = wire.ParseReflection(sa.Payload)
	}
	saMSS, saHasMSS := uint16(0), false
	if m, ok := sa.Option(tcpcraft.OptMSS); ok {
		saMSS, saHasMSS = m.MSSValue()
	}
	saWS, saHasWS := uint8(0), false
	if w, ok := sa.Option(tcpcraft.OptWindowScale); ok {
		saWS, saHasWS = w.WindowScaleValue()
	}
	if refl == nil {
		o.keys["ChangeMss"] = MssNoReflection
		o.keys["TtlReset"] = TtlNoReflection
		o.keys["WsConsistent"] = WsNoReflection
		if saHasWS && saWS != wire.ServerWScale {
			o.keys["WsConsistent"] = WsNotResponders
		}
		o.cond("syn.reoriginated")
	} else {
		o.reflection, o.reflectedFrom = refl, syn
		o.mods = diffHeader(syn, &refl.Received, refl.ReceivedLen)
		// MSS
		rm, rok := refl.Received.Option(tcpcraft.OptMSS)
		rv, _ := rm.MSSValue()
		sm, sok := refl.Sent.Option(tcpcraft.OptMSS)
		sv, _ := sm.MSSValue()
		switch {
		case !rok:
			o.keys["ChangeMss"] = MssRemoved
			o.cond("mss.option.removed")
		case rv < 1460:
			o.keys["ChangeMss"] = MssLowered
			o.cond("mss.option.received.deflated")
		case rv != 1460:
			o.keys["ChangeMss"] = MssOtherChange
			o.cond("mss.option.received.inflated")
		case sok != saHasMSS || sv != saMSS:
			o.keys["ChangeMss"] = MssIncoming
			o.cond("mss.option.incoming.changed")
		default:
			o.keys["ChangeMss"] = MssUnchanged
		}
		// Window scale
		rw, rwok := refl.Received.Option(tcpcraft.OptWindowScale)
		rwv, _ := rw.WindowScaleValue()
		sw, swok := refl.Sent.Option(tcpcraft.OptWindowScale)
		swv, _ := sw.WindowScaleValue()
		switch {
		case !rwok || rwv != 7:
			o.keys["WsConsistent"] = WsOutgoing
			o.cond("ws.outgoing.changed")
		case swok != saHasWS || swv != saWS:
			o.keys["WsConsistent"] = WsIncoming
			o.cond("ws.incoming.changed")
		default:
			o.keys["WsConsistent"] = WsConsistent
		}
		// TTL: hops out = our TTL − TTL at the responder; hops back = responder's TTL − ours.
		out := int(syn.TTL) - int(refl.Received.TTL)
		back := int(refl.Sent.TTL) - int(sa.TTL)
		switch {
		case out < back:
			o.keys["TtlReset"] = TtlOutgoing
			o.cond("ttl.outgoing.reset")
		case back < out:
			o.keys["TtlReset"] = TtlIncoming
			o.cond("ttl.incoming.reset")
		default:
			o.keys["TtlReset"] = TtlConsistent
		}
		o.notes = append(o.notes, hopNote(out, back))
	}
	r.closeConn(ctx, c, got)
	return o, nil
}

func hopNote(out, back int) string {
	return "hops: " + itoa(out) + " out (TTL at the responder), " + itoa(back) + " back"
}

func (r *runner) sackTest(ctx context.Context) (*outcome, error) {
	o := newOutcome("SackTranslated")
	c, sa, got, err := r.connect(ctx, o, []tcpcraft.Option{tcpcraft.MSS(wire.ClientMSS), tcpcraft.SACKPermitted()})
	if err != nil || sa == nil {
		return o, err
	}
	_, dgot, err := r.sendData(ctx, c, []int{100}, []byte{wire.MarkerReflect}, nil, false, hasReflection)
	if err != nil {
		return nil, err
	}
	got = append(got, dgot...)
	if !hasReflection(dgot) {
		o.keys["SackTranslated"] = SackNoAck
		r.closeConn(ctx, c, got)
		return o, nil
	}
	advance(c, dgot)
	// D-SACK (RFC 2883) over the reflection data we already ACK.
	left, right := c.PeerISN+1, c.RcvNxt
	dsack := tcpcraft.SACK([2]uint32{left, right})
	built, dgot, err := r.sendData(ctx, c, []int{100}, []byte{wire.MarkerReflect},
		func(int, uint32, int) []tcpcraft.Option {
			return []tcpcraft.Option{tcpcraft.NOP(), tcpcraft.NOP(), dsack}
		}, false, hasReflection)
	if err != nil {
		return nil, err
	}
	got = append(got, dgot...)
	_, refl := reflectionOf(dgot)
	switch {
	case hasRST(dgot) && refl == nil:
		o.keys["SackTranslated"] = SackRST
	case refl == nil:
		o.keys["SackTranslated"] = SackNoAck
		o.cond("sack.dropped")
	default:
		o.reflection, o.reflectedFrom = refl, built[0]
		o.mods = diffHeader(built[0], &refl.Received, refl.ReceivedLen)
		so, ok := refl.Received.Option(tcpcraft.OptSACK)
		if !ok || len(so.Data) != 8 {
			o.keys["SackTranslated"] = SackRemoved
			o.cond("sack.removed")
			break
		}
		rl := beU32(so.Data)
		rr := beU32(so.Data[4:])
		dAck := refl.Received.Ack - built[0].Ack
		dl, dr := rl-left, rr-right
		switch {
		case dAck == 0 && dl == 0 && dr == 0:
			o.keys["SackTranslated"] = SackUnchanged
		case dl == dAck && dr == dAck:
			o.keys["SackTranslated"] = SackTranslated
			o.cond("sack.translated")
		default:
			o.keys["SackTranslated"] = SackInconsistent
			o.cond("sack.inconsistent")
		}
	}
	advance(c, dgot)
	r.closeConn(ctx, c, got)
	return o, nil
}

func beU32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func (r *runner) unseenAckTest(ctx context.Context) (*outcome, error) {
	o := newOutcome("UnseenAck")
	c, sa, got, err := r.connect(ctx, o, []tcpcraft.Option{tcpcraft.MSS(wire.ClientMSS)})
	if err != nil || sa == nil {
		return o, err
	}
	_, dgot, err := r.sendData(ctx, c, []int{100}, []byte{wire.MarkerReflect}, nil, false, hasReflection)
	if err != nil {
		return nil, err
	}
	got = append(got, dgot...)
	_, first := reflectionOf(dgot)
	if first == nil {
		r.closeConn(ctx, c, got)
		return o, nil
	}
	advance(c, dgot)
	rcv := c.RcvNxt
	c.RcvNxt += 100000
	built, dgot, err := r.sendData(ctx, c, []int{100}, []byte{wire.MarkerReflect}, nil, false, hasReflection)
	if err != nil {
		return nil, err
	}
	c.RcvNxt = rcv
	got = append(got, dgot...)
	_, refl := reflectionOf(dgot)
	switch {
	case refl != nil:
		o.reflection, o.reflectedFrom = refl, built[0]
		if refl.Received.Src != first.Received.Src || refl.Received.SrcPort != first.Received.SrcPort {
			o.keys["UnseenAck"] = UnseenLeaked
			o.cond("ack.unseen.leaked")
			o.mods = append(o.mods, Modification{Field: "ip.src", Old: first.Received.Src.String() + "." + itoa(int(first.Received.SrcPort)),
				New: refl.Received.Src.String() + "." + itoa(int(refl.Received.SrcPort))})
		} else {
			o.keys["UnseenAck"] = UnseenAnswered
		}
	case hasRST(dgot):
		o.keys["UnseenAck"] = UnseenRST
		o.cond("ack.unseen.rst")
	case len(dgot) > 0:
		o.keys["UnseenAck"] = UnseenOtherReply
	default:
		o.keys["UnseenAck"] = UnseenDropped
		o.cond("ack.unseen.dropped")
	}
	advance(c, dgot)
	r.closeConn(ctx, c, got)
	return o, nil
}

func (r *runner) ecnTest(ctx context.Context) (*outcome, error) {
	o := newOutcome("Ecn")
	c := r.e.NewConn(wire.ClientISN, wire.ClientWindow, wire.ClientTSval)
	o.conns = append(o.conns, c)
	_, got, err := r.synTries(ctx, c, tcpcraft.FlagSYN|tcpcraft.FlagECE|tcpcraft.FlagCWR, []tcpcraft.Option{tcpcraft.MSS(wire.ClientMSS)}, nil)
	if err != nil {
		return nil, err
	}
	sa := synAckOf(got)
	switch {
	case sa == nil && hasRST(got):
		o.keys["Ecn"] = EcnRST
		o.cond("ecn.connectivity.broken")
		return o, nil
	case sa == nil:
		o.keys["Ecn"] = EcnNoReply
		o.cond("ecn.connectivity.broken")
		return o, nil
	}
	if err := c.Send(c.Segment(tcpcraft.FlagACK, nil, nil)); err != nil {
		return nil, err
	}
	w, err := r.awaitWindow(ctx, c, sa)
	if err != nil {
		return nil, err
	}
	got = append(got, w...)
	if sa.Flags&(tcpcraft.FlagECE|tcpcraft.FlagCWR) != tcpcraft.FlagECE {
		o.keys["Ecn"] = EcnStripped
		o.cond("ecn.negotiation.failed")
		r.closeConn(ctx, c, got)
		return o, nil
	}
	c.TOS = 0x02 // ECT(0)
	built, dgot, err := r.sendData(ctx, c, []int{100}, []byte{wire.MarkerReflect}, nil, false, hasReflection)
	c.TOS = 0
	if err != nil {
		return nil, err
	}
	got = append(got, dgot...)
	_, refl := reflectionOf(dgot)
	switch {
	case refl == nil:
		o.keys["Ecn"] = EcnDataFailed
		o.cond("ecn.connectivity.broken")
	case refl.Received.TOS&3 == 2:
		o.keys["Ecn"] = EcnWorks
		o.cond("ecn.connectivity.works")
	case refl.Received.TOS&3 == 3:
		o.keys["Ecn"] = EcnCEMarked
		o.cond("ecn.ce.marked")
	default:
		o.keys["Ecn"] = EcnBleached
		o.cond("ecn.ect.bleached")
	}
	if refl != nil {
		o.reflection, o.reflectedFrom = refl, built[0]
		o.mods = diffHeader(built[0], &refl.Received, refl.ReceivedLen)
	}
	advance(c, dgot)
	r.closeConn(ctx, c, got)
	return o, nil
}
