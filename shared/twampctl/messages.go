// Package twampctl encodes, decodes and secures TWAMP-Control messages (RFC 5357, RFC 4656
// key schedule, RFC 5618 mixed mode, RFC 5938 individual session control, RFC 6038 fields).
package twampctl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Mode is the 32-bit Modes/Mode bitmask of Server-Greeting and Set-Up-Response.
type Mode uint32

// Mode bits as registered in the IANA "TWAMP-Modes" registry.
const (
	ModeUnauthenticated          Mode = 1 << 0 // RFC 4656/5357
	ModeAuthenticated            Mode = 1 << 1 // RFC 4656/5357
	ModeEncrypted                Mode = 1 << 2 // RFC 4656/5357
	ModeMixed                    Mode = 1 << 3 // RFC 5618: unauthenticated TEST, encrypted CONTROL
	ModeIndividualSessionControl Mode = 1 << 4 // RFC 5938
	ModeReflectOctets            Mode = 1 << 5 // RFC 6038
	ModeSymmetricalSize          Mode = 1 << 6 // RFC 6038
	ModeIKEv2Derived             Mode = 1 << 7 // RFC 7717
	ModeDSCPECN                  Mode = 1 << 8 // RFC 7750
	ModePTPv2                    Mode = 1 << 9 // RFC 8186

	// SecurityModes are the four mutually exclusive security modes.
	SecurityModes = ModeUnauthenticated | ModeAuthenticated | ModeEncrypted | ModeMixed
)

var modeNames = []struct {
	m    Mode
	name string
}{
	{ModeUnauthenticated, "unauthenticated"}, {ModeAuthenticated, "authenticated"},
	{ModeEncrypted, "encrypted"}, {ModeMixed, "mixed"},
	{ModeIndividualSessionControl, "individual-session-control"},
	{ModeReflectOctets, "reflect-octets"}, {ModeSymmetricalSize, "symmetrical-size"},
	{ModeIKEv2Derived, "ikev2-derived"}, {ModeDSCPECN, "dscp-ecn"}, {ModePTPv2, "ptpv2"},
}

// String lists the set bits by name ("unauthenticated|reflect-octets"), unknown bits in hex.
func (m Mode) String() string {
	if m == 0 {
		return "none"
	}
	var parts []string
	rest := m
	for _, n := range modeNames {
		if m&n.m != 0 {
			parts = append(parts, n.name)
			rest &^= n.m
		}
	}
	if rest != 0 {
		parts = append(parts, fmt.Sprintf("0x%x", uint32(rest)))
	}
	return strings.Join(parts, "|")
}

// Security returns the security-mode bits of m (one bit in a valid Set-Up-Response).
func (m Mode) Security() Mode { return m & SecurityModes }

// Secure reports whether the control connection is encrypted (modes A, E and M).
func (m Mode) Secure() bool { return m&(ModeAuthenticated|ModeEncrypted|ModeMixed) != 0 }

// TestSecurity is the security applied to test packets: mixed mode tests are unauthenticated.
func (m Mode) TestSecurity() Mode {
	switch s := m.Security(); s {
	case ModeMixed:
		return ModeUnauthenticated
	default:
		return s
	}
}

// ValidChoice checks a client's Set-Up-Response Mode against the server's offered modes:
// exactly one security bit, and only bits the server offered.
func (m Mode) ValidChoice(offered Mode) error {
	s := m.Security()
	if s == 0 || s&(s-1) != 0 {
		return fmt.Errorf("%w: mode %s must select exactly one security mode", ErrMode, m)
	}
	if m&^offered != 0 {
		return fmt.Errorf("%w: mode %s not offered (server offers %s)", ErrMode, m, offered)
	}
	return nil
}

// ParseModeLetters parses a list of security modes: owamp-style letters ("O", "A", "E", "M",
// combinations like "AEO") or the words twampd and twampc print ("open" or
// "unauthenticated", "authenticated", "encrypted", "mixed"), separated by commas, '|' or
// spaces; both styles mix ("open,AE"). Case is ignored.
func ParseModeLetters(s string) (Mode, error) {
	var m Mode
	fields := strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return r == ',' || r == '|' || r == ' ' || r == '\t' })
	if len(fields) == 0 {
		return 0, fmt.Errorf("%w: empty mode list (use open, authenticated, encrypted, mixed or O, A, E, M)", ErrMode)
	}
	for _, f := range fields {
		switch f {
		case "open", "unauthenticated":
			m |= ModeUnauthenticated
			continue
		case "authenticated":
			m |= ModeAuthenticated
			continue
		case "encrypted":
			m |= ModeEncrypted
			continue
		case "mixed":
			m |= ModeMixed
			continue
		}
		for _, r := range f {
			switch r {
			case 'o':
				m |= ModeUnauthenticated
			case 'a':
				m |= ModeAuthenticated
			case 'e':
				m |= ModeEncrypted
			case 'm':
				m |= ModeMixed
			default:
				return 0, fmt.Errorf("%w: unknown mode %q (use open, authenticated, encrypted, mixed or the letters O, A, E, M)", ErrMode, f)
			}
		}
	}
	return m, nil
}

// Command is the first octet of a client command.
type Command uint8

// Command numbers (IANA "TWAMP-Control Command Numbers").
const (
	CmdReserved         Command = 0
	CmdForbidden        Command = 1 // OWAMP Request-Session
	CmdStartSessions    Command = 2
	CmdStopSessions     Command = 3
	CmdReservedFetch    Command = 4
	CmdRequestTWSession Command = 5
	CmdExperimentation  Command = 6
	CmdStartNSessions   Command = 7  // RFC 5938
	CmdStartNAck        Command = 8  // RFC 5938
	CmdStopNSessions    Command = 9  // RFC 5938
	CmdStopNAck         Command = 10 // RFC 5938
)

func (c Command) String() string {
	switch c {
	case CmdStartSessions:
		return "Start-Sessions"
	case CmdStopSessions:
		return "Stop-Sessions"
	case CmdRequestTWSession:
		return "Request-TW-Session"
	case CmdStartNSessions:
		return "Start-N-Sessions"
	case CmdStartNAck:
		return "Start-N-Ack"
	case CmdStopNSessions:
		return "Stop-N-Sessions"
	case CmdStopNAck:
		return "Stop-N-Ack"
	default:
		return fmt.Sprintf("command %d", uint8(c))
	}
}

// Accept is the Accept field of Server-Start, Accept-Session, Start-Ack and Stop-Sessions.
type Accept uint8

// Accept values (RFC 4656 §3.3).
const (
	AcceptOK                  Accept = 0
	AcceptFailure             Accept = 1
	AcceptInternalError       Accept = 2
	AcceptNotSupported        Accept = 3
	AcceptPermanentResource   Accept = 4
	AcceptTemporaryResource   Accept = 5
	acceptMaxDefined          Accept = 5
	acceptDescriptionFallback        = "failure"
)

// Normalize maps undefined values to AcceptFailure, as RFC 4656 requires of receivers.
func (a Accept) Normalize() Accept {
	if a > acceptMaxDefined {
		return AcceptFailure
	}
	return a
}

func (a Accept) String() string {
	switch a.Normalize() {
	case AcceptOK:
		return "ok"
	case AcceptInternalError:
		return "internal error"
	case AcceptNotSupported:
		return "not supported"
	case AcceptPermanentResource:
		return "permanent resource limitation"
	case AcceptTemporaryResource:
		return "temporary resource limitation"
	default:
		return acceptDescriptionFallback
	}
}

// Message sizes in octets (TCP payload, RFC 5357 §3).
const (
	ServerGreetingLen   = 64
	SetUpResponseLen    = 164
	ServerStartLen      = 48
	RequestTWSessionLen = 112
	AcceptSessionLen    = 48
	StartSessionsLen    = 32
	StartAckLen         = 32
	StopSessionsLen     = 32
	// NSessionsBaseLen is the size of a Start-N/Stop-N message without SIDs (header + HMAC).
	NSessionsBaseLen = 32
	// HMACLen is the truncated HMAC-SHA1 length used everywhere in TWAMP.
	HMACLen = 16
	// KeyIDLen is the size of the KeyID (identity) field.
	KeyIDLen = 80
	// MinCount is the smallest PBKDF2 iteration Count a client accepts (RFC 4656 §3.1).
	MinCount = 1024
	// MaxNSessions bounds Number of Sessions in Start-N/Stop-N so a peer cannot make us
	// read gigabytes; no server holds more sessions per control connection than this.
	MaxNSessions = 65535
)

// Sentinel errors callers branch on.
var (
	ErrLength      = errors.New("twamp control: wrong message length")
	ErrCommand     = errors.New("twamp control: unexpected command")
	ErrMode        = errors.New("twamp control: bad mode")
	ErrHMAC        = errors.New("twamp control: HMAC mismatch")
	ErrChallenge   = errors.New("twamp control: token challenge mismatch (wrong shared secret?)")
	ErrCount       = errors.New("twamp control: bad PBKDF2 count")
	ErrIPVN        = errors.New("twamp control: bad IP version")
	ErrNumSessions = errors.New("twamp control: bad number of sessions")
)

func checkLen(name string, b []byte, want int) error {
	if len(b) != want {
		return fmt.Errorf("%w: %s is %d octets, got %d", ErrLength, name, want, len(b))
	}
	return nil
}

// ServerGreeting is the first message on a control connection (server → client).
type ServerGreeting struct {
	Modes     Mode
	Challenge [16]byte
	Salt      [16]byte
	Count     uint32
}

// AppendTo appends the 64-octet wire form.
func (m *ServerGreeting) AppendTo(b []byte) []byte {
	b = append(b, make([]byte, 12)...)
	b = binary.BigEndian.AppendUint32(b, uint32(m.Modes))
	b = append(b, m.Challenge[:]...)
	b = append(b, m.Salt[:]...)
	b = binary.BigEndian.AppendUint32(b, m.Count)
	return append(b, make([]byte, 12)...)
}

// MarshalBinary returns the wire form.
func (m *ServerGreeting) MarshalBinary() ([]byte, error) { return m.AppendTo(nil), nil }

// UnmarshalBinary decodes exactly ServerGreetingLen octets; Unused/MBZ are ignored.
func (m *ServerGreeting) UnmarshalBinary(b []byte) error {
	if err := checkLen("Server-Greeting", b, ServerGreetingLen); err != nil {
		return err
	}
	m.Modes = Mode(binary.BigEndian.Uint32(b[12:]))
	copy(m.Challenge[:], b[16:32])
	copy(m.Salt[:], b[32:48])
	m.Count = binary.BigEndian.Uint32(b[48:])
	return nil
}

// ValidCount reports whether Count is acceptable for key derivation: a power of two ≥ 1024
// (RFC 4656 §3.1) and not absurdly large (a hostile server could stall the client).
func ValidCount(c uint32) error {
	if c < MinCount || c&(c-1) != 0 || c > 1<<24 {
		return fmt.Errorf("%w: %d (need a power of 2, 1024 ≤ count ≤ 2^24)", ErrCount, c)
	}
	return nil
}

// SetUpResponse is the client's answer to the greeting.
type SetUpResponse struct {
	Mode     Mode
	KeyID    [KeyIDLen]byte
	Token    [64]byte
	ClientIV [16]byte
}

// SetIdentity stores id as KeyID (UTF-8, zero-padded); ids longer than 80 octets fail.
func (m *SetUpResponse) SetIdentity(id string) error {
	if len(id) > KeyIDLen {
		return fmt.Errorf("twamp control: identity %q longer than %d octets", id, KeyIDLen)
	}
	m.KeyID = [KeyIDLen]byte{}
	copy(m.KeyID[:], id)
	return nil
}

// Identity returns KeyID up to the first zero octet.
func (m *SetUpResponse) Identity() string {
	s := m.KeyID[:]
	for i, c := range s {
		if c == 0 {
			s = s[:i]
			break
		}
	}
	return string(s)
}

// AppendTo appends the 164-octet wire form.
func (m *SetUpResponse) AppendTo(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(m.Mode))
	b = append(b, m.KeyID[:]...)
	b = append(b, m.Token[:]...)
	return append(b, m.ClientIV[:]...)
}

// MarshalBinary returns the wire form.
func (m *SetUpResponse) MarshalBinary() ([]byte, error) { return m.AppendTo(nil), nil }

// UnmarshalBinary decodes exactly SetUpResponseLen octets.
func (m *SetUpResponse) UnmarshalBinary(b []byte) error {
	if err := checkLen("Set-Up-Response", b, SetUpResponseLen); err != nil {
		return err
	}
	m.Mode = Mode(binary.BigEndian.Uint32(b))
	copy(m.KeyID[:], b[4:84])
	copy(m.Token[:], b[84:148])
	copy(m.ClientIV[:], b[148:164])
	return nil
}

// ServerStart ends connection setup. In secure modes the last 16 octets (Start-Time, MBZ)
// are the first block of the server's encrypted stream; see Conn.
type ServerStart struct {
	Accept    Accept
	ServerIV  [16]byte
	StartTime uint64 // NTP 64-bit (seconds since 1900 << 32 | fraction)
}

// AppendTo appends the 48-octet plaintext wire form.
func (m *ServerStart) AppendTo(b []byte) []byte {
	b = append(b, make([]byte, 15)...)
	b = append(b, byte(m.Accept))
	b = append(b, m.ServerIV[:]...)
	b = binary.BigEndian.AppendUint64(b, m.StartTime)
	return append(b, make([]byte, 8)...)
}

// MarshalBinary returns the plaintext wire form.
func (m *ServerStart) MarshalBinary() ([]byte, error) { return m.AppendTo(nil), nil }

// UnmarshalBinary decodes exactly ServerStartLen plaintext octets.
func (m *ServerStart) UnmarshalBinary(b []byte) error {
	if err := checkLen("Server-Start", b, ServerStartLen); err != nil {
		return err
	}
	m.Accept = Accept(b[15])
	copy(m.ServerIV[:], b[16:32])
	m.StartTime = binary.BigEndian.Uint64(b[32:])
	return nil
}

// RequestTWSession asks the server for one test session (command 5).
type RequestTWSession struct {
	IPVN            uint8 // 4 or 6
	ConfSender      uint8 // MUST be 0 in TWAMP
	ConfReceiver    uint8 // MUST be 0 in TWAMP
	ScheduleSlots   uint32
	Packets         uint32
	SenderPort      uint16
	ReceiverPort    uint16
	SenderAddress   [16]byte // IPv4 in the first 4 octets; all zero = control connection address
	ReceiverAddress [16]byte
	SID             [16]byte
	PaddingLength   uint32
	StartTime       uint64 // NTP; 0 = now
	Timeout         uint64 // NTP-format duration
	TypeP           uint32
	// RFC 6038 fields carried in the former MBZ octets 88–91.
	OctetsToBeReflected uint16
	PaddingToReflect    uint16
	HMAC                [HMACLen]byte
}

// AppendTo appends the 112-octet wire form.
func (m *RequestTWSession) AppendTo(b []byte) []byte {
	b = append(b, byte(CmdRequestTWSession), m.IPVN&0x0f, m.ConfSender, m.ConfReceiver)
	b = binary.BigEndian.AppendUint32(b, m.ScheduleSlots)
	b = binary.BigEndian.AppendUint32(b, m.Packets)
	b = binary.BigEndian.AppendUint16(b, m.SenderPort)
	b = binary.BigEndian.AppendUint16(b, m.ReceiverPort)
	b = append(b, m.SenderAddress[:]...)
	b = append(b, m.ReceiverAddress[:]...)
	b = append(b, m.SID[:]...)
	b = binary.BigEndian.AppendUint32(b, m.PaddingLength)
	b = binary.BigEndian.AppendUint64(b, m.StartTime)
	b = binary.BigEndian.AppendUint64(b, m.Timeout)
	b = binary.BigEndian.AppendUint32(b, m.TypeP)
	b = binary.BigEndian.AppendUint16(b, m.OctetsToBeReflected)
	b = binary.BigEndian.AppendUint16(b, m.PaddingToReflect)
	b = append(b, 0, 0, 0, 0)
	return append(b, m.HMAC[:]...)
}

// MarshalBinary returns the wire form.
func (m *RequestTWSession) MarshalBinary() ([]byte, error) { return m.AppendTo(nil), nil }

// UnmarshalBinary decodes exactly RequestTWSessionLen octets. The command octet must be 5;
// field values (IPVN, Conf-*) are checked by the server, which must answer Accept=3 rather
// than drop the connection.
func (m *RequestTWSession) UnmarshalBinary(b []byte) error {
	if err := checkLen("Request-TW-Session", b, RequestTWSessionLen); err != nil {
		return err
	}
	if Command(b[0]) != CmdRequestTWSession {
		return fmt.Errorf("%w: %s in Request-TW-Session", ErrCommand, Command(b[0]))
	}
	m.IPVN = b[1] & 0x0f
	m.ConfSender, m.ConfReceiver = b[2], b[3]
	m.ScheduleSlots = binary.BigEndian.Uint32(b[4:])
	m.Packets = binary.BigEndian.Uint32(b[8:])
	m.SenderPort = binary.BigEndian.Uint16(b[12:])
	m.ReceiverPort = binary.BigEndian.Uint16(b[14:])
	copy(m.SenderAddress[:], b[16:32])
	copy(m.ReceiverAddress[:], b[32:48])
	copy(m.SID[:], b[48:64])
	m.PaddingLength = binary.BigEndian.Uint32(b[64:])
	m.StartTime = binary.BigEndian.Uint64(b[68:])
	m.Timeout = binary.BigEndian.Uint64(b[76:])
	m.TypeP = binary.BigEndian.Uint32(b[84:])
	m.OctetsToBeReflected = binary.BigEndian.Uint16(b[88:])
	m.PaddingToReflect = binary.BigEndian.Uint16(b[90:])
	copy(m.HMAC[:], b[96:112])
	return nil
}

// AddrFromField decodes a 16-octet address field for IP version ipvn. An all-zero field
// yields the zero netip.Addr ("use the control connection's address").
func AddrFromField(ipvn uint8, f [16]byte) (netip.Addr, error) {
	switch ipvn {
	case 4:
		a := netip.AddrFrom4([4]byte(f[:4]))
		if a.IsUnspecified() {
			return netip.Addr{}, nil
		}
		return a, nil
	case 6:
		a := netip.AddrFrom16(f)
		if a.IsUnspecified() {
			return netip.Addr{}, nil
		}
		return a, nil
	default:
		return netip.Addr{}, fmt.Errorf("%w: %d", ErrIPVN, ipvn)
	}
}

// AddrField encodes a for an address field (the zero Addr encodes as zeros).
func AddrField(a netip.Addr) [16]byte {
	var f [16]byte
	switch {
	case !a.IsValid():
	case a.Is4():
		v := a.As4()
		copy(f[:], v[:])
	default:
		f = a.As16()
	}
	return f
}

// DSCP returns the DSCP of a Type-P descriptor in the RFC 5357 "00" format, and false for
// the PHB-ID format or reserved top bits.
func TypePDSCP(typeP uint32) (uint8, bool) {
	if typeP>>30 != 0 {
		return 0, false
	}
	return uint8(typeP>>24) & 0x3f, typeP&0x00ffffff == 0
}

// TypePFromDSCP builds the Type-P descriptor for a DSCP (RFC 5357 §3.5).
func TypePFromDSCP(dscp uint8) uint32 { return uint32(dscp&0x3f) << 24 }

// AcceptSession answers Request-TW-Session.
type AcceptSession struct {
	Accept Accept
	Port   uint16
	SID    [16]byte
	// RFC 6038 fields carried in the former MBZ octets 20–23.
	ReflectedOctets uint16
	ServerOctets    uint16
	HMAC            [HMACLen]byte
}

// AppendTo appends the 48-octet wire form.
func (m *AcceptSession) AppendTo(b []byte) []byte {
	b = append(b, byte(m.Accept), 0)
	b = binary.BigEndian.AppendUint16(b, m.Port)
	b = append(b, m.SID[:]...)
	b = binary.BigEndian.AppendUint16(b, m.ReflectedOctets)
	b = binary.BigEndian.AppendUint16(b, m.ServerOctets)
	b = append(b, make([]byte, 8)...)
	return append(b, m.HMAC[:]...)
}

// MarshalBinary returns the wire form.
func (m *AcceptSession) MarshalBinary() ([]byte, error) { return m.AppendTo(nil), nil }

// UnmarshalBinary decodes exactly AcceptSessionLen octets.
func (m *AcceptSession) UnmarshalBinary(b []byte) error {
	if err := checkLen("Accept-Session", b, AcceptSessionLen); err != nil {
		return err
	}
	m.Accept = Accept(b[0])
	m.Port = binary.BigEndian.Uint16(b[2:])
	copy(m.SID[:], b[4:20])
	m.ReflectedOctets = binary.BigEndian.Uint16(b[20:])
	m.ServerOctets = binary.BigEndian.Uint16(b[22:])
	copy(m.HMAC[:], b[32:48])
	return nil
}

// StartSessions starts every requested session (command 2).
type StartSessions struct {
	HMAC [HMACLen]byte
}

// AppendTo appends the 32-octet wire form.
func (m *StartSessions) AppendTo(b []byte) []byte {
	b = append(b, byte(CmdStartSessions))
	b = append(b, make([]byte, 15)...)
	return append(b, m.HMAC[:]...)
}

// MarshalBinary returns the wire form.
func (m *StartSessions) MarshalBinary() ([]byte, error) { return m.AppendTo(nil), nil }

// UnmarshalBinary decodes exactly StartSessionsLen octets with command 2.
func (m *StartSessions) UnmarshalBinary(b []byte) error {
	if err := checkLen("Start-Sessions", b, StartSessionsLen); err != nil {
		return err
	}
	if Command(b[0]) != CmdStartSessions {
		return fmt.Errorf("%w: %s in Start-Sessions", ErrCommand, Command(b[0]))
	}
	copy(m.HMAC[:], b[16:])
	return nil
}

// StartAck answers Start-Sessions.
type StartAck struct {
	Accept Accept
	HMAC   [HMACLen]byte
}

// AppendTo appends the 32-octet wire form.
func (m *StartAck) AppendTo(b []byte) []byte {
	b = append(b, byte(m.Accept))
	b = append(b, make([]byte, 15)...)
	return append(b, m.HMAC[:]...)
}

// MarshalBinary returns the wire form.
func (m *StartAck) MarshalBinary() ([]byte, error) { return m.AppendTo(nil), nil }

// UnmarshalBinary decodes exactly StartAckLen octets.
func (m *StartAck) UnmarshalBinary(b []byte) error {
	if err := checkLen("Start-Ack", b, StartAckLen); err != nil {
		return err
	}
	m.Accept = Accept(b[0])
	copy(m.HMAC[:], b[16:])
	return nil
}

// StopSessions stops every session (command 3).
type StopSessions struct {
	Accept      Accept
	NumSessions uint32
	HMAC        [HMACLen]byte
}

// AppendTo appends the 32-octet wire form.
func (m *StopSessions) AppendTo(b []byte) []byte {
	b = append(b, byte(CmdStopSessions), byte(m.Accept), 0, 0)
	b = binary.BigEndian.AppendUint32(b, m.NumSessions)
	b = append(b, make([]byte, 8)...)
	return append(b, m.HMAC[:]...)
}

// MarshalBinary returns the wire form.
func (m *StopSessions) MarshalBinary() ([]byte, error) { return m.AppendTo(nil), nil }

// UnmarshalBinary decodes exactly StopSessionsLen octets with command 3.
func (m *StopSessions) UnmarshalBinary(b []byte) error {
	if err := checkLen("Stop-Sessions", b, StopSessionsLen); err != nil {
		return err
	}
	if Command(b[0]) != CmdStopSessions {
		return fmt.Errorf("%w: %s in Stop-Sessions", ErrCommand, Command(b[0]))
	}
	m.Accept = Accept(b[1])
	m.NumSessions = binary.BigEndian.Uint32(b[4:])
	copy(m.HMAC[:], b[16:])
	return nil
}

// NSessions is any of the four RFC 5938 messages: Start-N-Sessions (7), Start-N-Ack (8),
// Stop-N-Sessions (9) and Stop-N-Ack (10). Layout: Command(1) · Accept(1; MBZ in
// Start-N-Sessions) · MBZ(10) · Number of Sessions(4) · SID(16)×N · HMAC(16).
type NSessions struct {
	Command Command
	Accept  Accept
	SIDs    [][16]byte
	HMAC    [HMACLen]byte
}

// NSessionsLen returns the wire length of an N-sessions message carrying n SIDs.
func NSessionsLen(n int) int { return NSessionsBaseLen + 16*n }

// NSessionsCount reads Number of Sessions from the first 16-octet block of an N-sessions
// message, bounding it by MaxNSessions.
func NSessionsCount(header []byte) (int, error) {
	if len(header) < 16 {
		return 0, fmt.Errorf("%w: N-sessions header is 16 octets, got %d", ErrLength, len(header))
	}
	n := binary.BigEndian.Uint32(header[12:])
	if n > MaxNSessions {
		return 0, fmt.Errorf("%w: %d SIDs (max %d)", ErrNumSessions, n, MaxNSessions)
	}
	return int(n), nil
}

func isNCommand(c Command) bool { return c >= CmdStartNSessions && c <= CmdStopNAck }

// AppendTo appends the wire form.
func (m *NSessions) AppendTo(b []byte) []byte {
	b = append(b, byte(m.Command), byte(m.Accept))
	b = append(b, make([]byte, 10)...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(m.SIDs)))
	for i := range m.SIDs {
		b = append(b, m.SIDs[i][:]...)
	}
	return append(b, m.HMAC[:]...)
}

// MarshalBinary returns the wire form.
func (m *NSessions) MarshalBinary() ([]byte, error) {
	if !isNCommand(m.Command) {
		return nil, fmt.Errorf("%w: %s is not an RFC 5938 message", ErrCommand, m.Command)
	}
	return m.AppendTo(nil), nil
}

// UnmarshalBinary decodes a whole N-sessions message; its length must match Number of
// Sessions exactly.
func (m *NSessions) UnmarshalBinary(b []byte) error {
	if len(b) < NSessionsBaseLen {
		return fmt.Errorf("%w: N-sessions message is at least %d octets, got %d", ErrLength, NSessionsBaseLen, len(b))
	}
	c := Command(b[0])
	if !isNCommand(c) {
		return fmt.Errorf("%w: %s is not an RFC 5938 message", ErrCommand, c)
	}
	n, err := NSessionsCount(b)
	if err != nil {
		return err
	}
	if err := checkLen(c.String(), b, NSessionsLen(n)); err != nil {
		return err
	}
	m.Command, m.Accept = c, Accept(b[1])
	m.SIDs = make([][16]byte, n)
	for i := range m.SIDs {
		copy(m.SIDs[i][:], b[16+16*i:])
	}
	copy(m.HMAC[:], b[len(b)-HMACLen:])
	return nil
}
