package testpkt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/probekit/probekit/shared/timestamp"
)

// Sizes of the base packets (RFC 8762 §4.2, §4.3; RFC 5357 §4.1.2, §4.2.1).
const (
	// BaseLen is the size of an unauthenticated STAMP Session-Sender or Session-Reflector
	// packet (B-03, B-09).
	BaseLen = 44
	// AuthBaseLen is the size of an authenticated STAMP packet (both directions, B-04, B-10)
	// and of an authenticated / encrypted TWAMP reflected packet.
	AuthBaseLen = 112
	// TWAMPAuthSenderLen is the size of an authenticated / encrypted TWAMP-Test sender packet
	// without padding (RFC 5357 §4.1.2).
	TWAMPAuthSenderLen = 48
	// TWAMPSenderLen is the size of an unauthenticated TWAMP-Test sender packet without padding.
	TWAMPSenderLen = 14
	// TWAMPReflectedLen is the size of an unauthenticated TWAMP-Test reflected packet without
	// padding: the STAMP layout up to and including the Sender TTL.
	TWAMPReflectedLen = 41
	// MinReflectedLen is the shortest unauthenticated reply ReflectedPacket accepts: some
	// TWAMP-Light reflectors (twampy) stop after the Sender Error Estimate.
	MinReflectedLen = 38
	// HMACLen is the size of the truncated HMAC field.
	HMACLen = 16
	// HMACCoverage is how many leading octets of an authenticated STAMP packet the base HMAC
	// covers (B-18).
	HMACCoverage = 96
	// DefaultPort is the IANA UDP port for STAMP and TWAMP test packets (B-01, B-02).
	DefaultPort = 862
)

// Mode selects the packet layout.
type Mode uint8

const (
	// ModeUnauthenticated is the unauthenticated STAMP layout (also TWAMP unauthenticated).
	ModeUnauthenticated Mode = iota
	// ModeAuthenticated is the authenticated STAMP layout (112 octets, HMAC at 96).
	ModeAuthenticated
	// ModeTWAMPAuthenticated is the TWAMP authenticated / encrypted layout: the sender packet
	// has 48 octets with the HMAC at 32; the reflected packet is the STAMP authenticated one.
	ModeTWAMPAuthenticated
)

// String returns "unauthenticated", "authenticated" or "twamp-authenticated".
func (m Mode) String() string {
	switch m {
	case ModeUnauthenticated:
		return "unauthenticated"
	case ModeAuthenticated:
		return "authenticated"
	case ModeTWAMPAuthenticated:
		return "twamp-authenticated"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// Authenticated reports whether m carries an HMAC.
func (m Mode) Authenticated() bool { return m != ModeUnauthenticated }

// SenderLen is the base size of a Session-Sender packet in mode m.
func (m Mode) SenderLen() int {
	switch m {
	case ModeAuthenticated:
		return AuthBaseLen
	case ModeTWAMPAuthenticated:
		return TWAMPAuthSenderLen
	}
	return BaseLen
}

// ReflectedLen is the base size of a Session-Reflector packet in mode m.
func (m Mode) ReflectedLen() int {
	if m.Authenticated() {
		return AuthBaseLen
	}
	return BaseLen
}

// Errors returned by the decoders; match them with errors.Is.
var (
	// ErrShort means the packet is shorter than its layout's base size.
	ErrShort = errors.New("testpkt: packet too short")
	// ErrMode means the Mode field holds no known layout.
	ErrMode = errors.New("testpkt: unknown mode")
)

// Field offsets (reference/stamp.md §2).
const (
	offSeq = 0
	// unauthenticated sender / reflector
	offTS      = 4
	offEE      = 12
	offSSID    = 14
	offRxTS    = 16
	offSndSeq  = 24
	offSndTS   = 28
	offSndEE   = 36
	offSndTTL  = 40
	offAuthTS  = 16
	offAuthEE  = 24
	offAuthSID = 26
	// authenticated reflector
	offAuthRxTS   = 32
	offAuthSndSeq = 48
	offAuthSndTS  = 64
	offAuthSndEE  = 72
	offAuthSndTTL = 80
	offAuthHMAC   = 96
	// TWAMP authenticated sender
	offTWAMPHMAC = 32
)

// SenderPacket is a Session-Sender test packet.
//
//	unauthenticated (44): 0 Seq(4) · 4 Timestamp(8) · 12 EE(2) · 14 SSID(2) · 16 MBZ(28)
//	authenticated (112):  0 Seq(4) · 4 MBZ(12) · 16 Timestamp(8) · 24 EE(2) · 26 SSID(2) ·
//	                      28 MBZ(68) · 96 HMAC(16)
//	TWAMP auth (48):      0 Seq(4) · 4 MBZ(12) · 16 Timestamp(8) · 24 EE(2) · 26 MBZ(6) · 32 HMAC(16)
type SenderPacket struct {
	// Mode selects the layout; set it before UnmarshalBinary.
	Mode Mode
	// Seq is the sender's sequence number.
	Seq uint32
	// Timestamp is T1 as the raw wire value, NTP or PTP according to ErrorEstimate.Z().
	Timestamp uint64
	// ErrorEstimate describes the sender's clock.
	ErrorEstimate timestamp.ErrorEstimate
	// SSID is the RFC 8972 Session Identifier (always 0 in TWAMP layouts).
	SSID uint16
	// HMAC is the truncated HMAC; AppendTo writes it as is, Sign fills it.
	HMAC [HMACLen]byte
	// Extra holds the octets after the base packet: TLVs (STAMP) or padding (TWAMP).
	Extra []byte
}

// Len returns the encoded size of p.
func (p *SenderPacket) Len() int { return p.Mode.SenderLen() + len(p.Extra) }

// AppendTo appends the wire form of p to b; MBZ octets are zero (B-08).
func (p *SenderPacket) AppendTo(b []byte) []byte {
	n := p.Mode.SenderLen()
	start := len(b)
	b = append(b, make([]byte, n)...)
	p.PutBase(b[start:])
	return append(b, p.Extra...)
}

// MarshalBinary returns the wire form of p.
func (p *SenderPacket) MarshalBinary() ([]byte, error) {
	if p.Mode > ModeTWAMPAuthenticated {
		return nil, ErrMode
	}
	return p.AppendTo(make([]byte, 0, p.Len())), nil
}

// UnmarshalBinary decodes b in the layout named by p.Mode. MBZ octets are ignored (B-08) and
// Extra aliases b. An unauthenticated packet shorter than 44 octets is accepted down to the
// 14-octet TWAMP-Test minimum, with the missing fields zero (B-17: a reflector answers it with
// the zero-filled 44-octet base).
func (p *SenderPacket) UnmarshalBinary(b []byte) error {
	mode := p.Mode
	*p = SenderPacket{Mode: mode}
	switch mode {
	case ModeUnauthenticated:
		if len(b) < TWAMPSenderLen {
			return fmt.Errorf("sender packet: %w (%d < %d octets)", ErrShort, len(b), TWAMPSenderLen)
		}
		p.Seq = binary.BigEndian.Uint32(b[offSeq:])
		p.Timestamp = binary.BigEndian.Uint64(b[offTS:])
		p.ErrorEstimate = timestamp.ReadErrorEstimate(b[offEE:])
		if len(b) >= offSSID+2 {
			p.SSID = binary.BigEndian.Uint16(b[offSSID:])
		}
		if len(b) > BaseLen {
			p.Extra = b[BaseLen:]
		}
	case ModeAuthenticated, ModeTWAMPAuthenticated:
		n := mode.SenderLen()
		if len(b) < n {
			return fmt.Errorf("sender packet (%s): %w (%d < %d octets)", mode, ErrShort, len(b), n)
		}
		p.Seq = binary.BigEndian.Uint32(b[offSeq:])
		p.Timestamp = binary.BigEndian.Uint64(b[offAuthTS:])
		p.ErrorEstimate = timestamp.ReadErrorEstimate(b[offAuthEE:])
		if mode == ModeAuthenticated {
			p.SSID = binary.BigEndian.Uint16(b[offAuthSID:])
			copy(p.HMAC[:], b[offAuthHMAC:])
		} else {
			copy(p.HMAC[:], b[offTWAMPHMAC:])
		}
		if len(b) > n {
			p.Extra = b[n:]
		}
	default:
		return ErrMode
	}
	return nil
}

// Time decodes p's T1 by its Error Estimate's Z bit.
func (p *SenderPacket) Time() time.Time { return Time(p.Timestamp, p.ErrorEstimate) }

// ReflectedPacket is a Session-Reflector test packet.
//
//	unauthenticated (44): 0 Seq(4) · 4 T3(8) · 12 EE(2) · 14 SSID(2) · 16 T2(8) ·
//	                      24 Sender Seq(4) · 28 Sender T1(8) · 36 Sender EE(2) · 38 MBZ(2) ·
//	                      40 Sender TTL(1) · 41 MBZ(3)
//	authenticated (112):  0 Seq(4) · 4 MBZ(12) · 16 T3(8) · 24 EE(2) · 26 SSID(2) · 28 MBZ(4) ·
//	                      32 T2(8) · 40 MBZ(8) · 48 Sender Seq(4) · 52 MBZ(12) · 64 Sender T1(8) ·
//	                      72 Sender EE(2) · 74 MBZ(6) · 80 Sender TTL(1) · 81 MBZ(15) · 96 HMAC(16)
type ReflectedPacket struct {
	// Mode selects the layout; set it before UnmarshalBinary.
	Mode Mode
	// Seq is the reflector's sequence number.
	Seq uint32
	// Timestamp is T3 (transmit time) as the raw wire value; ErrorEstimate.Z() says NTP or PTP.
	Timestamp uint64
	// ErrorEstimate describes the reflector's clock; it applies to both T2 and T3 (B-13).
	ErrorEstimate timestamp.ErrorEstimate
	// SSID is the Session Identifier copied from the sender packet.
	SSID uint16
	// ReceiveTimestamp is T2 as the raw wire value.
	ReceiveTimestamp uint64
	// SenderSeq, SenderTimestamp and SenderErrorEstimate are copied from the sender packet.
	SenderSeq           uint32
	SenderTimestamp     uint64
	SenderErrorEstimate timestamp.ErrorEstimate
	// SenderTTL is the IPv4 TTL / IPv6 Hop Limit the reflector received (B-15).
	SenderTTL uint8
	// HMAC is the truncated HMAC of an authenticated packet.
	HMAC [HMACLen]byte
	// Extra holds the octets after the base packet (TLVs or TWAMP padding).
	Extra []byte
	// Short is set by UnmarshalBinary when an unauthenticated reply was shorter than 44
	// octets (TWAMP-Light); SenderTTL is then only meaningful for 41 octets or more.
	Short bool
}

// Len returns the encoded size of p.
func (p *ReflectedPacket) Len() int { return p.Mode.ReflectedLen() + len(p.Extra) }

// AppendTo appends the wire form of p to b; MBZ octets are zero (B-08).
func (p *ReflectedPacket) AppendTo(b []byte) []byte {
	n := p.Mode.ReflectedLen()
	start := len(b)
	b = append(b, make([]byte, n)...)
	p.PutBase(b[start:])
	return append(b, p.Extra...)
}

// PutBase writes p's base fields (not Extra) in place into w, which must hold at least
// p.Mode.ReflectedLen() octets; MBZ octets are left as they are. It is the Session-Reflector's
// allocation-free path: the reply buffer is cleared once, PutBase fills it, and
// PutTransmitTimestamp sets T3 last.
func (p *ReflectedPacket) PutBase(w []byte) {
	_ = w[p.Mode.ReflectedLen()-1]
	binary.BigEndian.PutUint32(w[offSeq:], p.Seq)
	if p.Mode.Authenticated() {
		binary.BigEndian.PutUint64(w[offAuthTS:], p.Timestamp)
		p.ErrorEstimate.Put(w[offAuthEE:])
		binary.BigEndian.PutUint16(w[offAuthSID:], p.SSID)
		binary.BigEndian.PutUint64(w[offAuthRxTS:], p.ReceiveTimestamp)
		binary.BigEndian.PutUint32(w[offAuthSndSeq:], p.SenderSeq)
		binary.BigEndian.PutUint64(w[offAuthSndTS:], p.SenderTimestamp)
		p.SenderErrorEstimate.Put(w[offAuthSndEE:])
		w[offAuthSndTTL] = p.SenderTTL
		copy(w[offAuthHMAC:], p.HMAC[:])
	} else {
		binary.BigEndian.PutUint64(w[offTS:], p.Timestamp)
		p.ErrorEstimate.Put(w[offEE:])
		binary.BigEndian.PutUint16(w[offSSID:], p.SSID)
		binary.BigEndian.PutUint64(w[offRxTS:], p.ReceiveTimestamp)
		binary.BigEndian.PutUint32(w[offSndSeq:], p.SenderSeq)
		binary.BigEndian.PutUint64(w[offSndTS:], p.SenderTimestamp)
		p.SenderErrorEstimate.Put(w[offSndEE:])
		w[offSndTTL] = p.SenderTTL
	}
}

// PutTransmitTimestamp writes T3 (raw wire value) into the reflected packet w of mode m.
func PutTransmitTimestamp(w []byte, m Mode, t3 uint64) {
	if m.Authenticated() {
		binary.BigEndian.PutUint64(w[offAuthTS:], t3)
	} else {
		binary.BigEndian.PutUint64(w[offTS:], t3)
	}
}

// MarshalBinary returns the wire form of p.
func (p *ReflectedPacket) MarshalBinary() ([]byte, error) {
	if p.Mode > ModeTWAMPAuthenticated {
		return nil, ErrMode
	}
	return p.AppendTo(make([]byte, 0, p.Len())), nil
}

// UnmarshalBinary decodes b in the layout named by p.Mode, leniently (reference/stamp.md §5.2):
// MBZ octets are never checked, and unauthenticated replies of 38 to 43 octets from TWAMP-Light
// reflectors are accepted with Short set. Extra aliases b.
func (p *ReflectedPacket) UnmarshalBinary(b []byte) error {
	mode := p.Mode
	*p = ReflectedPacket{Mode: mode}
	switch mode {
	case ModeUnauthenticated:
		if len(b) < MinReflectedLen {
			return fmt.Errorf("reflected packet: %w (%d < %d octets)", ErrShort, len(b), MinReflectedLen)
		}
		p.Seq = binary.BigEndian.Uint32(b[offSeq:])
		p.Timestamp = binary.BigEndian.Uint64(b[offTS:])
		p.ErrorEstimate = timestamp.ReadErrorEstimate(b[offEE:])
		p.SSID = binary.BigEndian.Uint16(b[offSSID:])
		p.ReceiveTimestamp = binary.BigEndian.Uint64(b[offRxTS:])
		p.SenderSeq = binary.BigEndian.Uint32(b[offSndSeq:])
		p.SenderTimestamp = binary.BigEndian.Uint64(b[offSndTS:])
		p.SenderErrorEstimate = timestamp.ReadErrorEstimate(b[offSndEE:])
		if len(b) > offSndTTL {
			p.SenderTTL = b[offSndTTL]
		}
		if len(b) < BaseLen {
			p.Short = true
		} else if len(b) > BaseLen {
			p.Extra = b[BaseLen:]
		}
	case ModeAuthenticated, ModeTWAMPAuthenticated:
		if len(b) < AuthBaseLen {
			return fmt.Errorf("reflected packet (%s): %w (%d < %d octets)", mode, ErrShort, len(b), AuthBaseLen)
		}
		p.Seq = binary.BigEndian.Uint32(b[offSeq:])
		p.Timestamp = binary.BigEndian.Uint64(b[offAuthTS:])
		p.ErrorEstimate = timestamp.ReadErrorEstimate(b[offAuthEE:])
		if mode == ModeAuthenticated {
			p.SSID = binary.BigEndian.Uint16(b[offAuthSID:])
		}
		p.ReceiveTimestamp = binary.BigEndian.Uint64(b[offAuthRxTS:])
		p.SenderSeq = binary.BigEndian.Uint32(b[offAuthSndSeq:])
		p.SenderTimestamp = binary.BigEndian.Uint64(b[offAuthSndTS:])
		p.SenderErrorEstimate = timestamp.ReadErrorEstimate(b[offAuthSndEE:])
		p.SenderTTL = b[offAuthSndTTL]
		copy(p.HMAC[:], b[offAuthHMAC:])
		if len(b) > AuthBaseLen {
			p.Extra = b[AuthBaseLen:]
		}
	default:
		return ErrMode
	}
	return nil
}

// TransmitTime decodes T3 by the reflector's Z bit (B-06).
func (p *ReflectedPacket) TransmitTime() time.Time { return Time(p.Timestamp, p.ErrorEstimate) }

// ReceiveTime decodes T2 by the reflector's Z bit (B-06).
func (p *ReflectedPacket) ReceiveTime() time.Time {
	return Time(p.ReceiveTimestamp, p.ErrorEstimate)
}

// SenderTime decodes the copied T1 by the sender's own Z bit.
func (p *ReflectedPacket) SenderTime() time.Time {
	return Time(p.SenderTimestamp, p.SenderErrorEstimate)
}

// Residence returns T3 − T2, the time the packet spent in the reflector. Both stamps come
// from one clock, so the value is meaningful even when that clock is not synchronised.
func (p *ReflectedPacket) Residence() time.Duration {
	return p.TransmitTime().Sub(p.ReceiveTime())
}

// Time converts a raw 64-bit wire timestamp to time.Time: truncated PTPv2 when ee's Z bit is
// set (RFC 8186), NTP otherwise (B-06). An NTP value of 0 yields the zero time.Time.
func Time(raw uint64, ee timestamp.ErrorEstimate) time.Time {
	if ee.Z() {
		return timestamp.PTP(raw).Time()
	}
	return timestamp.NTP(raw).Time()
}

// Stamp converts t to a raw 64-bit wire timestamp: truncated PTPv2 when ptp is true, NTP
// otherwise.
func Stamp(t time.Time, ptp bool) uint64 {
	if ptp {
		return uint64(timestamp.PTPFromTime(t))
	}
	return uint64(timestamp.NTPFromTime(t))
}

// SSIDOffset returns the offset of the SSID field in a packet of mode m (both directions), or
// -1 for the TWAMP layouts, which have none.
func SSIDOffset(m Mode) int {
	switch m {
	case ModeUnauthenticated:
		return offSSID
	case ModeAuthenticated:
		return offAuthSID
	}
	return -1
}
