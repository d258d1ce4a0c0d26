package tcpcraft

import "net/netip"

// Flow is the per-connection state of a crafted TCP flow, kept explicitly so that a change by
// the path is judged against what was actually sent: our ISN and next sequence number, the
// peer's ISN and next expected sequence number, both timestamp bases and window scales.
type Flow struct {
	Local, Remote netip.AddrPort
	TTL           uint8
	TOS           uint8

	ISN, SndNxt uint32 // our initial and next sequence number
	PeerISN     uint32 // the peer's ISN from its SYN/ACK
	RcvNxt      uint32 // next sequence number expected from the peer
	Window      uint16 // our advertised window (unscaled field value)
	WScale      int    // our window scale shift sent (-1: none)
	PeerWScale  int    // the peer's window scale shift (-1: none)
	PeerMSS     int    // the peer's MSS option (0: none)
	TSBase      uint32 // our first TSval
	TSNow       uint32 // our next TSval
	PeerTSBase  uint32 // the peer's first TSval
	PeerTSLast  uint32 // the peer's latest TSval (our next TSecr)
	HaveTS      bool   // timestamps negotiated (both sides sent them)
	Established bool
	id          uint16
}

// NewFlow starts a flow with our ISN, window and TSval base.
func NewFlow(local, remote netip.AddrPort, isn uint32, window uint16, tsval uint32) *Flow {
	return &Flow{Local: local, Remote: remote, TTL: 64, ISN: isn, SndNxt: isn, Window: window,
		WScale: -1, PeerWScale: -1, TSBase: tsval, TSNow: tsval, id: uint16(isn)}
}

// Segment returns a segment of the flow from us to the peer with the given flags, options and
// payload at SndNxt (ACKing RcvNxt when flags has ACK); it does not advance SndNxt.
func (f *Flow) Segment(flags uint16, opts []Option, payload []byte) *Segment {
	f.id++
	s := &Segment{Src: f.Local.Addr(), Dst: f.Remote.Addr(), TTL: f.TTL, TOS: f.TOS, ID: f.id,
		IPFlags: IPFlagDF, SrcPort: f.Local.Port(), DstPort: f.Remote.Port(), Seq: f.SndNxt,
		Flags: flags, Window: f.Window, Options: opts, Payload: payload}
	if flags&FlagACK != 0 {
		s.Ack = f.RcvNxt
	}
	return s
}

// Sent advances SndNxt past s.
func (f *Flow) Sent(s *Segment) {
	if end := s.Seq + s.SeqLen(); int32(end-f.SndNxt) > 0 {
		f.SndNxt = end
	}
	if o, ok := s.Option(OptWindowScale); ok && s.Flags&FlagSYN != 0 {
		if v, ok := o.WindowScaleValue(); ok {
			f.WScale = int(v)
		}
	}
}

// Received updates the peer state from a segment of the flow: on SYN/ACK the peer's ISN, MSS,
// window scale and timestamp base; always the peer's latest TSval and RcvNxt.
func (f *Flow) Received(s *Segment) {
	if s.Flags&FlagSYN != 0 {
		f.PeerISN = s.Seq
		f.RcvNxt = s.Seq + 1
		if o, ok := s.Option(OptMSS); ok {
			v, _ := o.MSSValue()
			f.PeerMSS = int(v)
		}
		if o, ok := s.Option(OptWindowScale); ok {
			v, _ := o.WindowScaleValue()
			f.PeerWScale = int(v)
		}
		if o, ok := s.Option(OptTimestamps); ok {
			if v, _, ok := o.TimestampsValue(); ok {
				f.PeerTSBase, f.PeerTSLast, f.HaveTS = v, v, true
			}
		}
		if s.Flags&FlagACK != 0 {
			f.Established = true
		}
		return
	}
	if end := s.Seq + s.SeqLen(); int32(end-f.RcvNxt) > 0 {
		f.RcvNxt = end
	}
	if o, ok := s.Option(OptTimestamps); ok {
		if v, _, ok := o.TimestampsValue(); ok {
			f.PeerTSLast = v
		}
	}
}

// TS returns a Timestamps option with our next TSval (advancing it by one) echoing the peer's
// latest TSval.
func (f *Flow) TS() Option {
	v := f.TSNow
	f.TSNow++
	return Timestamps(v, f.PeerTSLast)
}

// FromPeer reports whether s belongs to the flow in the peer → us direction.
func (f *Flow) FromPeer(s *Segment) bool {
	return s.SrcPort == f.Remote.Port() && s.DstPort == f.Local.Port() &&
		s.Src == f.Remote.Addr() && s.Dst == f.Local.Addr()
}

// ToPeer reports whether s belongs to the flow in the us → peer direction.
func (f *Flow) ToPeer(s *Segment) bool {
	return s.SrcPort == f.Local.Port() && s.DstPort == f.Remote.Port() &&
		s.Src == f.Local.Addr() && s.Dst == f.Remote.Addr()
}
