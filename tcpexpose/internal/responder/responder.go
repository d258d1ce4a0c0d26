// Package responder is tcpexpose's stateless TCP responder (the original's mptcp-server):
// it answers crafted test segments with fixed parameters so that every change a path makes
// is visible to the initiator.
package responder

import (
	"encoding/binary"
	"net/netip"

	"github.com/probekit/probekit/shared/tcpcraft"
	"github.com/probekit/probekit/tcpexpose/internal/wire"
)

// Params are the responder's fixed values (defaults: the original's, wire.Server*).
type Params struct {
	ISN    uint32
	Window uint16
	MSS    uint16
	WScale uint8
	TSval  uint32
	TTL    uint8
}

// DefaultParams returns the original responder's values.
func DefaultParams() Params {
	return Params{ISN: wire.ServerISN, Window: wire.ServerWindow, MSS: wire.ServerMSS, WScale: wire.ServerWScale,
		TSval: wire.ServerTSval, TTL: 64}
}

// maxReflect bounds the reflection payload: two headers of at most 60+60 bytes (IPv4) or
// 40+60 plus extension headers (IPv6).
const maxReflect = 512

// Responder builds replies. It keeps no per-connection state; its buffers make Reply
// allocation-free, so one Responder serves one goroutine.
type Responder struct {
	P Params
	// Port is the port answered (segments to other ports are ignored); Addr, when valid and
	// specified, the only destination address answered.
	Port uint16
	Addr netip.Addr

	in      tcpcraft.Segment
	out     tcpcraft.Segment
	opts    [tcpcraft.MaxOptionsLen]tcpcraft.Option
	mss     [2]byte
	ws      [1]byte
	ts      [8]byte
	mpAck   [8]byte
	payload [maxReflect]byte
	hdr     [2 * maxReflect]byte
}

// New returns a responder for port (and addr, if specified).
func New(p Params, addr netip.Addr, port uint16) *Responder {
	return &Responder{P: p, Port: port, Addr: addr.Unmap()}
}

// Kind of reply, for counters.
type Kind int

// Reply kinds.
const (
	None Kind = iota
	SynAck
	Ack
	DupAck
	Reflect
	FinAck
)

// isKnown reports option kinds the responder answers itself instead of echoing.
func isKnown(k uint8) bool {
	switch k {
	case tcpcraft.OptEOL, tcpcraft.OptNOP, tcpcraft.OptMSS, tcpcraft.OptWindowScale, tcpcraft.OptSACKPermitted,
		tcpcraft.OptSACK, tcpcraft.OptTimestamps, wire.OptMPData:
		return true
	}
	return false
}

// Reply decodes one received IP packet and appends the reply to out[:0], returning it (nil
// and None when the packet needs no answer: not TCP to our port, RST, pure ACK, malformed).
//
//   - SYN → SYN/ACK: ISN, window, MSS fixed; SACK-permitted, TS (TSval fixed, TSecr = the
//     SYN's TSval) and WS only when the SYN carried them; ECE when the SYN asked for ECN
//     (ECE+CWR); every unknown option echoed kind-preserving, in order, while it fits. A SYN
//     with payload is ACKed past it and, with the reflect marker, reflected like data.
//   - data → ACK (seq = the segment's ACK, ack = end of the data); first byte 0xb2: duplicate
//     ACK (ack = the segment's seq); 0xa1: the payload holds the received IP+TCP header and
//     the reply's own header. MP_DATA → MP_ACK (DSN + data length); TS echoed; unknown
//     options echoed.
//   - FIN → FIN/ACK.
func (r *Responder) Reply(pkt []byte, out []byte) ([]byte, Kind) {
	in := &r.in
	if tcpcraft.Decode(pkt, in) != nil || in.DstPort != r.Port || !in.ChecksumOK || !in.IPChecksumOK {
		return nil, None
	}
	if r.Addr.IsValid() && !r.Addr.IsUnspecified() && in.Dst.Unmap() != r.Addr {
		return nil, None
	}
	if in.Flags&tcpcraft.FlagRST != 0 {
		return nil, None
	}
	syn := in.Flags&(tcpcraft.FlagSYN|tcpcraft.FlagACK) == tcpcraft.FlagSYN
	fin := in.Flags&tcpcraft.FlagFIN != 0
	if !syn && (in.Flags&tcpcraft.FlagACK == 0 || in.Flags&tcpcraft.FlagSYN != 0) {
		return nil, None // SYN/ACKs and segments without ACK are not ours to answer
	}
	if !syn && !fin && len(in.Payload) == 0 {
		return nil, None // pure ACK
	}
	o := &r.out
	*o = tcpcraft.Segment{Version: in.Version, Src: in.Dst, Dst: in.Src, TTL: r.P.TTL, SrcPort: in.DstPort, DstPort: in.SrcPort,
		Window: r.P.Window, IPFlags: tcpcraft.IPFlagDF}
	if in.IsV6() {
		o.IPFlags = 0
	}
	opts := r.opts[:0]
	kind := Ack
	tsval, tsecr, hasTS := uint32(0), uint32(0), false
	if t, ok := in.Option(tcpcraft.OptTimestamps); ok {
		tsval, tsecr, hasTS = t.TimestampsValue()
		_ = tsecr
	}
	if syn {
		kind = SynAck
		o.Flags = tcpcraft.FlagSYN | tcpcraft.FlagACK
		o.Seq = r.P.ISN
		o.Ack = in.Seq + 1 + uint32(len(in.Payload))
		if in.Flags&(tcpcraft.FlagECE|tcpcraft.FlagCWR) == tcpcraft.FlagECE|tcpcraft.FlagCWR {
			o.Flags |= tcpcraft.FlagECE
		}
		binary.BigEndian.PutUint16(r.mss[:], r.P.MSS)
		opts = append(opts, tcpcraft.Option{Kind: tcpcraft.OptMSS, Data: r.mss[:]})
		if _, ok := in.Option(tcpcraft.OptSACKPermitted); ok {
			opts = append(opts, tcpcraft.Option{Kind: tcpcraft.OptSACKPermitted})
		}
		if hasTS {
			binary.BigEndian.PutUint32(r.ts[:], r.P.TSval)
			binary.BigEndian.PutUint32(r.ts[4:], tsval)
			opts = append(opts, tcpcraft.Option{Kind: tcpcraft.OptTimestamps, Data: r.ts[:]})
		}
		if _, ok := in.Option(tcpcraft.OptWindowScale); ok {
			r.ws[0] = r.P.WScale
			opts = append(opts, tcpcraft.Option{Kind: tcpcraft.OptNOP}, tcpcraft.Option{Kind: tcpcraft.OptWindowScale, Data: r.ws[:]})
		}
	} else {
		o.Flags = tcpcraft.FlagACK
		o.Seq = in.Ack
		o.Ack = in.Seq + uint32(len(in.Payload))
		if fin {
			kind = FinAck
			o.Flags |= tcpcraft.FlagFIN
			o.Ack++
		} else if in.Payload[0] == wire.MarkerDupAck {
			kind = DupAck
			o.Ack = in.Seq
		}
		if hasTS {
			binary.BigEndian.PutUint32(r.ts[:], r.P.TSval)
			binary.BigEndian.PutUint32(r.ts[4:], tsval)
			opts = append(opts, tcpcraft.Option{Kind: tcpcraft.OptNOP}, tcpcraft.Option{Kind: tcpcraft.OptNOP},
				tcpcraft.Option{Kind: tcpcraft.OptTimestamps, Data: r.ts[:]})
		}
		if m, ok := in.Option(wire.OptMPData); ok {
			if dsn, _, ok := wire.MPDataValue(m); ok {
				binary.BigEndian.PutUint64(r.mpAck[:], dsn+uint64(len(in.Payload)))
				opts = append(opts, tcpcraft.Option{Kind: tcpcraft.OptNOP}, tcpcraft.Option{Kind: tcpcraft.OptNOP},
					tcpcraft.Option{Kind: wire.OptMPAck, Data: r.mpAck[:]})
			}
		}
	}
	// Echo unknown options kind-preserving while they fit the 40-byte area.
	used := 0
	for _, x := range opts {
		used += x.WireLen()
	}
	for _, x := range in.Options {
		if isKnown(x.Kind) {
			continue
		}
		if used+x.WireLen() > tcpcraft.MaxOptionsLen {
			continue
		}
		opts = append(opts, x)
		used += x.WireLen()
	}
	o.Options = opts
	if len(in.Payload) > 0 && in.Payload[0] == wire.MarkerReflect && kind != DupAck && !fin {
		if rp, ok := r.reflect(pkt, out); ok {
			return rp, Reflect
		}
	}
	return o.AppendTo(out[:0]), kind
}

// reflect fills the payload with the received header and the reply's own header (TCP
// checksum zeroed), then builds the reply.
func (r *Responder) reflect(pkt, out []byte) ([]byte, bool) {
	in, o := &r.in, &r.out
	recv := in.Header(pkt)
	o.Payload = nil
	// The reply's header does not depend on its payload apart from the length fields and the
	// TCP checksum, so build it once with a placeholder payload of the final length.
	hdrLen := tcpcraft.IPv4HeaderLen
	if o.IsV6() {
		hdrLen = tcpcraft.IPv6HeaderLen
	}
	hdrLen += tcpcraft.TCPHeaderLen + tcpcraft.OptionsLen(o.Options)
	if len(recv)+hdrLen > maxReflect {
		return nil, false
	}
	n := copy(r.payload[:], recv)
	o.Payload = r.payload[:n+hdrLen]
	clear(o.Payload[n:])
	h := o.AppendTo(r.hdr[:0])
	copy(r.payload[n:], h[:hdrLen])
	binary.BigEndian.PutUint16(r.payload[n+hdrLen-tcpcraft.TCPHeaderLen-tcpcraft.OptionsLen(o.Options)+16:], 0)
	return o.AppendTo(out[:0]), true
}
