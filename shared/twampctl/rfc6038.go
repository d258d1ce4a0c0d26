package twampctl

import (
	"encoding/binary"
	"fmt"
)

// RFC 6038 (Reflect Octets and Symmetrical Size) test-packet layout. Offsets are 0-based.
//
// Session-Sender, RFC 5357 format (no Symmetrical Size):
//
//	open/mixed:  0 Seq(4) · 4 Timestamp(8) · 12 EE(2) · 14 Packet Padding
//	auth/enc:    0 Seq(4) · 4 MBZ(12) · 16 Timestamp(8) · 24 EE(2) · 26 MBZ(6) · 32 HMAC(16) · 48 Packet Padding
//
// Session-Sender, Symmetrical Size format (RFC 6038 §4.2.1): MBZ fills the sender header up
// to the size of the reflector's header, so a reply is exactly as long as its request and no
// padding needs truncating:
//
//	open/mixed:  0 Seq(4) · 4 Timestamp(8) · 12 EE(2) · 14 MBZ(27) · 41 Packet Padding
//	auth/enc:    0 … 32 HMAC(16) · 48 MBZ(64) · 112 Packet Padding
//
// With Reflect Octets negotiated the first two octets of the sender's Packet Padding carry
// the Server Octets of Accept-Session, and the Session-Reflector copies the first "Length of
// Padding to Reflect" octets of the sender's Packet Padding (Server Octets included) to the
// start of its own Packet Padding (RFC 6038 §4.2.2):
//
//	open/mixed:  41 Packet Padding (reflected) — 42 when RFC 7750 puts Sender DSCP/ECN at 41
//	auth/enc:    112 Packet Padding (reflected)
const (
	SymmetricalMBZOpen = 27 // 14 + 27 = 41, the open reflector header
	SymmetricalMBZAuth = 64 // 48 + 64 = 112, the authenticated reflector header
	// ServerOctetsLen is the size of Server Octets at the start of the sender's padding.
	ServerOctetsLen = 2
)

// SenderPaddingOffset is where Packet Padding starts in a Session-Sender packet of the given
// test security (ModeUnauthenticated, ModeAuthenticated or ModeEncrypted).
func SenderPaddingOffset(testSecurity Mode, symmetric bool) int {
	if testSecurity == ModeUnauthenticated {
		if symmetric {
			return 14 + SymmetricalMBZOpen
		}
		return 14
	}
	if symmetric {
		return TestSenderAuthLen + SymmetricalMBZAuth
	}
	return TestSenderAuthLen
}

// ReflectorPaddingOffset is where Packet Padding starts in a Session-Reflector packet;
// dscpECN is RFC 7750 monitoring, whose octet follows Sender TTL in the open layout.
func ReflectorPaddingOffset(testSecurity Mode, dscpECN bool) int {
	if testSecurity == ModeUnauthenticated {
		if dscpECN {
			return 42
		}
		return 41
	}
	return TestReflectorAuthLen
}

// ReflectLayout is the per-session RFC 6038 reflection plan shared by reflector and sender.
type ReflectLayout struct {
	SenderOff    int // sender's Packet Padding
	ReflectorOff int // reflector's Packet Padding
	Length       int // Length of Padding to Reflect
}

// NewReflectLayout builds the plan for a session's negotiated mode (security, extension bits).
func NewReflectLayout(mode Mode, length uint16) ReflectLayout {
	ts := mode.TestSecurity()
	return ReflectLayout{
		SenderOff:    SenderPaddingOffset(ts, mode&ModeSymmetricalSize != 0),
		ReflectorOff: ReflectorPaddingOffset(ts, mode&ModeDSCPECN != 0),
		Length:       int(length),
	}
}

// SenderHeaderLen is the sender packet size without padding.
func (l ReflectLayout) SenderHeaderLen() int { return l.SenderOff }

// Room is how many reflected octets fit in the reply to a request with paddingLength octets
// of Packet Padding, when the reply is max(request, reflector header) long.
func (l ReflectLayout) Room(paddingLength int) int {
	reply := max(l.SenderOff+paddingLength, l.ReflectorOff)
	return min(reply-l.ReflectorOff, paddingLength)
}

// Check validates a Request-TW-Session's Length of Padding to Reflect against its Padding
// Length: every requested octet must exist in the request and fit in the reply.
func (l ReflectLayout) Check(paddingLength uint32) error {
	if l.Length == 0 {
		return nil
	}
	if paddingLength > 1<<16 || l.Length > l.Room(int(paddingLength)) {
		return fmt.Errorf("length of padding to reflect %d exceeds the %d octets a reply with padding %d can carry",
			l.Length, max(0, l.Room(int(min(paddingLength, 1<<16)))), paddingLength)
	}
	return nil
}

// Reflect copies the requested padding octets of req into reply and returns how many it
// copied (fewer when either packet is shorter than negotiated).
func (l ReflectLayout) Reflect(reply, req []byte) int {
	n := min(l.Length, len(req)-l.SenderOff, len(reply)-l.ReflectorOff)
	if n <= 0 {
		return 0
	}
	return copy(reply[l.ReflectorOff:l.ReflectorOff+n], req[l.SenderOff:l.SenderOff+n])
}

// Reflected returns the reflected octets of a reply (nil when the reply is too short).
func (l ReflectLayout) Reflected(reply []byte) []byte {
	if l.Length == 0 || len(reply) < l.ReflectorOff+l.Length {
		return nil
	}
	return reply[l.ReflectorOff : l.ReflectorOff+l.Length]
}

// PutServerOctets writes Server Octets at the start of a sender packet's padding.
func (l ReflectLayout) PutServerOctets(pkt []byte, v uint16) {
	if len(pkt) >= l.SenderOff+ServerOctetsLen {
		binary.BigEndian.PutUint16(pkt[l.SenderOff:], v)
	}
}

// ServerOctets reads Server Octets from a sender packet (false when it has no room for them).
func (l ReflectLayout) ServerOctets(pkt []byte) (uint16, bool) {
	if len(pkt) < l.SenderOff+ServerOctetsLen {
		return 0, false
	}
	return binary.BigEndian.Uint16(pkt[l.SenderOff:]), true
}
