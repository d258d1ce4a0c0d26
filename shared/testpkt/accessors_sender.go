package testpkt

import (
	"encoding/binary"

	"github.com/probekit/probekit/shared/timestamp"
)

// In-place field access for the hot paths of senders and load generators: a packet is laid out
// once (SenderPacket.AppendTo plus TLVs) and per packet only a few fields change. The offsets
// stay in this package; callers name the RFC field.

// SequenceNumber reads the Sequence Number, the first field of every STAMP and TWAMP test
// packet in both directions and every mode (RFC 8762 §4.2-4.3, RFC 5357 §4.1.2, §4.2.1);
// ok is false when b is shorter than the field.
func SequenceNumber(b []byte) (seq uint32, ok bool) {
	if len(b) < offSeq+4 {
		return 0, false
	}
	return binary.BigEndian.Uint32(b[offSeq:]), true
}

// PutSequenceNumber writes the Sequence Number into b (at least 4 octets).
func PutSequenceNumber(b []byte, seq uint32) { binary.BigEndian.PutUint32(b[offSeq:], seq) }

// PutTimestamp writes the Timestamp field of a packet of mode m in place: T1 in a
// Session-Sender packet, T3 in a reflected one (the field has the same place in both
// directions). b must hold the field: 12 octets unauthenticated, 24 authenticated.
func PutTimestamp(b []byte, m Mode, ts uint64) {
	if m.Authenticated() {
		binary.BigEndian.PutUint64(b[offAuthTS:], ts)
	} else {
		binary.BigEndian.PutUint64(b[offTS:], ts)
	}
}

// PutErrorEstimate writes the Error Estimate that follows the Timestamp in a packet of mode m
// (either direction); b must hold it (14 octets unauthenticated, 26 authenticated).
func PutErrorEstimate(b []byte, m Mode, ee timestamp.ErrorEstimate) {
	if m.Authenticated() {
		ee.Put(b[offAuthEE:])
	} else {
		ee.Put(b[offEE:])
	}
}

// PutBase writes p's base fields (not Extra) in place into w, which must hold at least
// p.Mode.SenderLen() octets; MBZ octets are left as they are, so clear w once first.
func (p *SenderPacket) PutBase(w []byte) {
	_ = w[p.Mode.SenderLen()-1]
	PutSequenceNumber(w, p.Seq)
	PutTimestamp(w, p.Mode, p.Timestamp)
	PutErrorEstimate(w, p.Mode, p.ErrorEstimate)
	switch p.Mode {
	case ModeAuthenticated:
		binary.BigEndian.PutUint16(w[offAuthSID:], p.SSID)
		copy(w[offAuthHMAC:], p.HMAC[:])
	case ModeTWAMPAuthenticated:
		copy(w[offTWAMPHMAC:], p.HMAC[:])
	default:
		binary.BigEndian.PutUint16(w[offSSID:], p.SSID)
	}
}

// ReflectedTimes reads T2 (Receive Timestamp), T3 (Timestamp) and the reflector's Error
// Estimate from an unauthenticated reflected packet that may be cut short after T2 (24
// octets, as a load generator's stamping echo leaves them); ok is false when b is shorter.
// Full replies decode with ReflectedPacket.UnmarshalBinary instead.
func ReflectedTimes(b []byte) (t2, t3 uint64, ee timestamp.ErrorEstimate, ok bool) {
	if len(b) < offRxTS+8 {
		return 0, 0, 0, false
	}
	return binary.BigEndian.Uint64(b[offRxTS:]), binary.BigEndian.Uint64(b[offTS:]),
		timestamp.ReadErrorEstimate(b[offEE:]), true
}

// PutReceiveTimestamp writes T2 (Receive Timestamp) into an unauthenticated reflected packet b
// of at least 24 octets.
func PutReceiveTimestamp(b []byte, t2 uint64) { binary.BigEndian.PutUint64(b[offRxTS:], t2) }

// Sender DSCP and ECN (RFC 7750 §2): the DS field the reflector received, in the octet right
// after Sender TTL of the open reply (41) and in the MBZ after it in the authenticated layout
// (81, inside the HMAC span).
const (
	offSndDSCPECN     = offSndTTL + 1
	offAuthSndDSCPECN = offAuthSndTTL + 1
)

func sndDSCPECNOffset(m Mode) int {
	if m.Authenticated() {
		return offAuthSndDSCPECN
	}
	return offSndDSCPECN
}

// SenderDSCPECN reads the RFC 7750 Sender DSCP and ECN octet of a reflected TWAMP packet of
// mode m; ok is false when the reply is too short to carry it.
func SenderDSCPECN(b []byte, m Mode) (v uint8, ok bool) {
	off := sndDSCPECNOffset(m)
	if len(b) <= off {
		return 0, false
	}
	return b[off], true
}

// SenderDSCPECNLen is the shortest reflected TWAMP packet of mode m that carries the RFC 7750
// Sender DSCP and ECN octet (42 open: one more than the base layout; 82 authenticated).
func SenderDSCPECNLen(m Mode) int { return sndDSCPECNOffset(m) + 1 }

// PutSenderDSCPECN writes the RFC 7750 Sender DSCP and ECN octet into a reflected TWAMP
// packet of mode m at least SenderDSCPECNLen(m) octets long.
func PutSenderDSCPECN(b []byte, m Mode, v uint8) { b[sndDSCPECNOffset(m)] = v }

// PutTLVHeader writes a TLV header (Flags, Type, Length; RFC 8972 §4) at the start of b, e.g.
// to turn a reserved TLV into Extra Padding of the same length without moving the rest.
func PutTLVHeader(b []byte, flags uint8, typ TLVType, length int) {
	_ = b[TLVHeaderLen-1]
	b[0], b[1] = flags, uint8(typ)
	binary.BigEndian.PutUint16(b[2:], uint16(length))
}
