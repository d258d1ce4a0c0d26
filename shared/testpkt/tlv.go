package testpkt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// TLVHeaderLen is the size of a TLV header: Flags(1) · Type(1) · Length(2).
const TLVHeaderLen = 4

// TLV flag bits (RFC 8972 §4, §5.2 "STAMP TLV Flags" registry: bit 0 U, bit 1 M, bit 2 I,
// bits 3–7 unassigned; reference/stamp.md §2). The remaining bits are reserved: zero on
// transmit, ignored on receipt.
const (
	// FlagU (Unrecognized): set by the sender on every TLV; the reflector clears it for
	// types it understands and keeps it for others.
	FlagU uint8 = 0x80
	// FlagM (Malformed): set by the reflector on a TLV whose length is invalid.
	FlagM uint8 = 0x40
	// FlagI (Integrity): set by the reflector on every TLV when the HMAC TLV fails.
	FlagI uint8 = 0x20
	// FlagC is the "conformant reflected" flag of the Reflected Test Packet Control TLV (12):
	// bit 3, which draft-ietf-ippm-asymmetrical-pkts §3 allocates; unassigned in the RFC 8972
	// registry, so it means nothing on other TLVs.
	FlagC uint8 = 0x10
	// FlagsDefined masks every flag bit with a meaning.
	FlagsDefined = FlagU | FlagM | FlagI | FlagC
)

// TLVType is an RFC 8972 STAMP TLV type.
type TLVType uint8

// TLV types. 0–8 are RFC 8972 §5.1 (Table 2) and 9–11 later RFCs, as the IANA "STAMP TLV
// Types" registry lists them (https://www.iana.org/assignments/stamp-tlv-types/): 9
// Destination Node Address and 10 Return Path (RFC 9503 §3, §4), 11 Micro-session ID (RFC
// 9534 §3.1, figure "Micro-session ID TLV", Type = 11). 12, Reflected Test Packet Control,
// comes from draft-ietf-ippm-asymmetrical-pkts and was not in the registry snapshot checked
// (2024-02-01).
const (
	TypeExtraPadding           TLVType = 1
	TypeLocation               TLVType = 2
	TypeTimestampInformation   TLVType = 3
	TypeClassOfService         TLVType = 4
	TypeDirectMeasurement      TLVType = 5
	TypeAccessReport           TLVType = 6
	TypeFollowUpTelemetry      TLVType = 7
	TypeHMAC                   TLVType = 8
	TypeDestinationNodeAddress TLVType = 9
	TypeReturnPath             TLVType = 10
	TypeMicroSessionID         TLVType = 11
	TypeReflectedControl       TLVType = 12
	// TypeExperimentalFirst … TypeExperimentalLast are reserved for experiments; their numbers
	// collide between implementations (reference/stamp.md §1).
	TypeExperimentalFirst TLVType = 240
	TypeExperimentalLast  TLVType = 251
)

var typeNames = map[TLVType]string{
	TypeExtraPadding:           "extra-padding",
	TypeLocation:               "location",
	TypeTimestampInformation:   "timestamp-information",
	TypeClassOfService:         "class-of-service",
	TypeDirectMeasurement:      "direct-measurement",
	TypeAccessReport:           "access-report",
	TypeFollowUpTelemetry:      "follow-up-telemetry",
	TypeHMAC:                   "hmac",
	TypeDestinationNodeAddress: "destination-node-address",
	TypeReturnPath:             "return-path",
	TypeMicroSessionID:         "micro-session-id",
	TypeReflectedControl:       "reflected-test-packet-control",
}

// String returns the TLV's name, e.g. "class-of-service", or "type-N".
func (t TLVType) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type-%d", uint8(t))
}

// Fixed value lengths of the RFC 8972 TLVs.
const (
	LenTimestampInformation = 4
	LenClassOfService       = 4
	LenDirectMeasurement    = 12
	LenAccessReport         = 4
	LenFollowUpTelemetry    = 16
	LenHMAC                 = HMACLen
	// LenLocationMin is the Location TLV's fixed part (destination and source port).
	LenLocationMin = 4
)

// Errors of the TLV decoders.
var (
	// ErrTLVTruncated means fewer than 4 octets were left for a TLV header.
	ErrTLVTruncated = errors.New("testpkt: truncated TLV header")
	// ErrTLVOverrun means a TLV's Length runs past the end of the packet.
	ErrTLVOverrun = errors.New("testpkt: TLV length overruns packet")
	// ErrTLVLength means a TLV's Length is wrong for its type.
	ErrTLVLength = errors.New("testpkt: wrong TLV length for type")
)

// TLV is one decoded TLV. Value aliases the decoded buffer.
type TLV struct {
	Flags uint8
	Type  TLVType
	Value []byte
}

// Len returns the encoded size of t.
func (t TLV) Len() int { return TLVHeaderLen + len(t.Value) }

// AppendTo appends the wire form of t to b.
func (t TLV) AppendTo(b []byte) []byte { return AppendTLV(b, t.Flags, t.Type, t.Value) }

// AppendTLV appends one TLV to b. Values longer than 65535 octets are a programming error.
func AppendTLV(b []byte, flags uint8, typ TLVType, value []byte) []byte {
	if len(value) > 0xFFFF {
		panic("testpkt: TLV value longer than 65535 octets")
	}
	b = append(b, flags, uint8(typ), byte(len(value)>>8), byte(len(value)))
	return append(b, value...)
}

// TLVIterator walks the TLVs of a packet's extension area in place, without allocating:
//
//	it := testpkt.NewTLVIterator(pkt[testpkt.BaseLen:])
//	for it.Next() { use(it.TLV(), it.Offset()) }
//	if err := it.Err(); err != nil { ... malformed at it.Offset() ... }
type TLVIterator struct {
	b   []byte
	off int // offset of the current TLV
	nxt int // offset of the next TLV
	tlv TLV
	err error
}

// NewTLVIterator returns an iterator over b, the octets after the base packet.
func NewTLVIterator(b []byte) TLVIterator { return TLVIterator{b: b} }

// Next advances to the next TLV and reports whether there is one. It returns false at the end
// of b or at a framing error (see Err); Offset then points at the bad TLV.
func (it *TLVIterator) Next() bool {
	if it.err != nil {
		return false
	}
	it.off = it.nxt
	rest := len(it.b) - it.off
	if rest == 0 {
		return false
	}
	if rest < TLVHeaderLen {
		it.err = ErrTLVTruncated
		return false
	}
	h := it.b[it.off:]
	n := int(binary.BigEndian.Uint16(h[2:]))
	if n > rest-TLVHeaderLen {
		it.err = ErrTLVOverrun
		return false
	}
	it.tlv = TLV{Flags: h[0], Type: TLVType(h[1]), Value: h[TLVHeaderLen : TLVHeaderLen+n : TLVHeaderLen+n]}
	it.nxt = it.off + TLVHeaderLen + n
	return true
}

// TLV returns the current TLV.
func (it *TLVIterator) TLV() TLV { return it.tlv }

// Offset returns the offset in b of the current TLV's header (or of the bad TLV after a framing
// error).
func (it *TLVIterator) Offset() int { return it.off }

// Err returns the framing error that stopped the iteration, or nil at a clean end.
func (it *TLVIterator) Err() error { return it.err }

// ParseTLVs decodes every TLV in b. On a framing error it returns the TLVs before it and the
// error, wrapped with the offset.
func ParseTLVs(b []byte) ([]TLV, error) {
	var out []TLV
	it := NewTLVIterator(b)
	for it.Next() {
		out = append(out, it.TLV())
	}
	if err := it.Err(); err != nil {
		return out, fmt.Errorf("TLV at offset %d: %w", it.Offset(), err)
	}
	return out, nil
}

// DSCP/ECN helpers.

// ECN code points (RFC 3168).
const (
	ECNNotECT uint8 = 0
	ECNECT1   uint8 = 1
	ECNECT0   uint8 = 2
	ECNCE     uint8 = 3
)

// ClassOfService is the value of the Class of Service TLV (RFC 8972 §4.4 with erratum 8199,
// and draft-ietf-ippm-stamp-cos-ecn's use of the former Reserved octet):
//
//	DSCP1(6) DSCP2(6) ECN2(2) RPD(2) | ECN1(2) RPE(2) Reserved(4) | Reserved(8)
//
// DSCP1/ECN1 are what the sender asks the reflector to use on the reply; DSCP2/ECN2 are what
// the reflector received; RPD (RFC 8972 "RP") = 1 when the reflector did not use DSCP1; RPE
// is set to 1 by a reflector that implements the ECN request (as teaparty does).
type ClassOfService struct {
	DSCP1, DSCP2 uint8
	ECN2         uint8
	RPD          uint8
	ECN1         uint8
	RPE          uint8
}

// Put writes the 4-octet value into b.
func (c ClassOfService) Put(b []byte) {
	_ = b[3]
	b[0] = c.DSCP1<<2 | (c.DSCP2>>4)&0x3
	b[1] = c.DSCP2<<4 | (c.ECN2&0x3)<<2 | c.RPD&0x3
	b[2] = (c.ECN1&0x3)<<6 | (c.RPE&0x3)<<4
	b[3] = 0
}

// AppendTo appends the 4-octet value to b.
func (c ClassOfService) AppendTo(b []byte) []byte {
	var v [LenClassOfService]byte
	c.Put(v[:])
	return append(b, v[:]...)
}

// ParseClassOfService decodes a Class of Service value.
func ParseClassOfService(v []byte) (ClassOfService, error) {
	if len(v) != LenClassOfService {
		return ClassOfService{}, fmt.Errorf("class of service: %w (%d)", ErrTLVLength, len(v))
	}
	return ClassOfService{
		DSCP1: v[0] >> 2,
		DSCP2: (v[0]&0x3)<<4 | v[1]>>4,
		ECN2:  (v[1] >> 2) & 0x3,
		RPD:   v[1] & 0x3,
		ECN1:  v[2] >> 6,
		RPE:   (v[2] >> 4) & 0x3,
	}, nil
}

// Synchronization sources and timestamping methods of the Timestamp Information TLV
// (RFC 8972 §4.3; IANA "STAMP Synchronization Sources", RFC 8972 Table 7: 1 NTP, 2 PTP,
// 3 SSU/BITS, 4 GPS/GLONASS/LORAN-C/BDS/Galileo, 5 local free-running; "STAMP Timestamping
// Methods", Table 9: 1 HW Assist, 2 SW Local, 3 Control Plane).
const (
	SyncNTP   uint8 = 1
	SyncPTP   uint8 = 2
	SyncSSU   uint8 = 3
	SyncGNSS  uint8 = 4
	SyncLocal uint8 = 5

	MethodHardware     uint8 = 1
	MethodSoftware     uint8 = 2
	MethodControlPlane uint8 = 3
)

// TimestampInformation is the value of the Timestamp Information TLV.
type TimestampInformation struct {
	SyncIn, MethodIn, SyncOut, MethodOut uint8
}

// Put writes the 4-octet value into b.
func (t TimestampInformation) Put(b []byte) {
	_ = b[3]
	b[0], b[1], b[2], b[3] = t.SyncIn, t.MethodIn, t.SyncOut, t.MethodOut
}

// AppendTo appends the 4-octet value to b.
func (t TimestampInformation) AppendTo(b []byte) []byte {
	return append(b, t.SyncIn, t.MethodIn, t.SyncOut, t.MethodOut)
}

// ParseTimestampInformation decodes a Timestamp Information value.
func ParseTimestampInformation(v []byte) (TimestampInformation, error) {
	if len(v) != LenTimestampInformation {
		return TimestampInformation{}, fmt.Errorf("timestamp information: %w (%d)", ErrTLVLength, len(v))
	}
	return TimestampInformation{v[0], v[1], v[2], v[3]}, nil
}

// DirectMeasurement is the value of the Direct Measurement TLV (RFC 8972 §4.5): the sender's
// transmit counter and the reflector's per-session receive and transmit counters.
type DirectMeasurement struct {
	SenderTx, ReflectorRx, ReflectorTx uint32
}

// Put writes the 12-octet value into b.
func (d DirectMeasurement) Put(b []byte) {
	_ = b[11]
	binary.BigEndian.PutUint32(b[0:], d.SenderTx)
	binary.BigEndian.PutUint32(b[4:], d.ReflectorRx)
	binary.BigEndian.PutUint32(b[8:], d.ReflectorTx)
}

// PutDirectMeasurementReflector fills the reflector's receive and transmit counters into a
// received Direct Measurement value in place, keeping the sender's transmit counter (the
// reflector's side of RFC 8972 §4.5). v must be LenDirectMeasurement octets.
func PutDirectMeasurementReflector(v []byte, rx, tx uint32) {
	_ = v[LenDirectMeasurement-1]
	binary.BigEndian.PutUint32(v[4:], rx)
	binary.BigEndian.PutUint32(v[8:], tx)
}

// AppendTo appends the 12-octet value to b.
func (d DirectMeasurement) AppendTo(b []byte) []byte {
	var v [LenDirectMeasurement]byte
	d.Put(v[:])
	return append(b, v[:]...)
}

// ParseDirectMeasurement decodes a Direct Measurement value.
func ParseDirectMeasurement(v []byte) (DirectMeasurement, error) {
	if len(v) != LenDirectMeasurement {
		return DirectMeasurement{}, fmt.Errorf("direct measurement: %w (%d)", ErrTLVLength, len(v))
	}
	return DirectMeasurement{
		SenderTx:    binary.BigEndian.Uint32(v[0:]),
		ReflectorRx: binary.BigEndian.Uint32(v[4:]),
		ReflectorTx: binary.BigEndian.Uint32(v[8:]),
	}, nil
}

// Access Report identifiers and return codes (RFC 8972 §4.6, Length 4; IANA "STAMP Return
// Codes", Table 11: 1 network available, 2 network unavailable).
const (
	AccessID3GPP        uint8 = 1
	AccessIDNon3GPP     uint8 = 2
	AccessAvailable     uint8 = 1
	AccessUnavailable   uint8 = 2
	accessReportIDShift       = 4
)

// AccessReport is the value of the Access Report TLV: ID(4) Resv(4) Return Code(8) Reserved(16).
type AccessReport struct {
	ID         uint8
	ReturnCode uint8
}

// Put writes the 4-octet value into b.
func (a AccessReport) Put(b []byte) {
	_ = b[3]
	b[0], b[1], b[2], b[3] = (a.ID&0xF)<<accessReportIDShift, a.ReturnCode, 0, 0
}

// AppendTo appends the 4-octet value to b.
func (a AccessReport) AppendTo(b []byte) []byte {
	return append(b, (a.ID&0xF)<<accessReportIDShift, a.ReturnCode, 0, 0)
}

// Valid reports whether the ID names a known access type; RFC 8972 says to discard the TLV
// otherwise.
func (a AccessReport) Valid() bool { return a.ID == AccessID3GPP || a.ID == AccessIDNon3GPP }

// ParseAccessReport decodes an Access Report value.
func ParseAccessReport(v []byte) (AccessReport, error) {
	if len(v) != LenAccessReport {
		return AccessReport{}, fmt.Errorf("access report: %w (%d)", ErrTLVLength, len(v))
	}
	return AccessReport{ID: v[0] >> accessReportIDShift, ReturnCode: v[1]}, nil
}

// FollowUpTelemetry is the value of the Follow-Up Telemetry TLV (RFC 8972 §4.7): the sequence
// number and follow-up (actual transmit) timestamp of the reflector's previous reply in the
// session, and how that timestamp was taken.
type FollowUpTelemetry struct {
	Seq       uint32
	Timestamp uint64
	Method    uint8
}

// Put writes the 16-octet value into b.
func (f FollowUpTelemetry) Put(b []byte) {
	_ = b[15]
	binary.BigEndian.PutUint32(b[0:], f.Seq)
	binary.BigEndian.PutUint64(b[4:], f.Timestamp)
	b[12], b[13], b[14], b[15] = f.Method, 0, 0, 0
}

// AppendTo appends the 16-octet value to b.
func (f FollowUpTelemetry) AppendTo(b []byte) []byte {
	var v [LenFollowUpTelemetry]byte
	f.Put(v[:])
	return append(b, v[:]...)
}

// ParseFollowUpTelemetry decodes a Follow-Up Telemetry value.
func ParseFollowUpTelemetry(v []byte) (FollowUpTelemetry, error) {
	if len(v) != LenFollowUpTelemetry {
		return FollowUpTelemetry{}, fmt.Errorf("follow-up telemetry: %w (%d)", ErrTLVLength, len(v))
	}
	return FollowUpTelemetry{
		Seq:       binary.BigEndian.Uint32(v[0:]),
		Timestamp: binary.BigEndian.Uint64(v[4:]),
		Method:    v[12],
	}, nil
}

// Location sub-TLV types: the IANA "STAMP Sub-TLV Types" registry
// (https://www.iana.org/assignments/stamp-tlv-types/stamp-tlv-types.xhtml, created by
// RFC 8972 §5.3, Table 5; values 1–9, all "TLV Used: Location"). Types 1, 4 and 7 are the
// generic requests a Session-Sender sends; the Session-Reflector answers each with the
// specific type for the address it saw (RFC 8972 §4.2.2): EUI-48/EUI-64 for the source MAC,
// IPv4/IPv6 for the addresses. Every sub-TLV uses the TLV framing (RFC 8972 §4.2.1, Figure 5).
const (
	SubSourceMAC   TLVType = 1 // request; Length 8, Value 8 octets MBZ
	SubSourceEUI48 TLVType = 2 // answer; Length 8: EUI-48 (6) · MBZ (2)
	SubSourceEUI64 TLVType = 3 // answer; Length 8: EUI-64 (8)
	SubDestIP      TLVType = 4 // request; Length 16, Value 16 octets MBZ
	SubDestIPv4    TLVType = 5 // answer; Length 16: IPv4 address (4) · MBZ (12)
	SubDestIPv6    TLVType = 6 // answer; Length 16: IPv6 address (16)
	SubSourceIP    TLVType = 7 // request; Length 16, Value 16 octets MBZ
	SubSourceIPv4  TLVType = 8 // answer; Length 16: IPv4 address (4) · MBZ (12)
	SubSourceIPv6  TLVType = 9 // answer; Length 16: IPv6 address (16)

	// LenLocationMAC and LenLocationIP are the only valid Length values of the MAC (types
	// 1–3) and IP (types 4–9) sub-TLVs: a reflector keeps the TLV's length (T-02), so the
	// request already has room for the longest answer.
	LenLocationMAC = 8
	LenLocationIP  = 16

	locationPortsLen      = 4
	locationDstPortOffset = 0
	locationSrcPortOffset = 2
)

// Location is the value of the Location TLV (RFC 8972 §4.2): the UDP ports the reflector saw
// and sub-TLVs asking for (and carrying back) addresses. Sub-TLVs use the TLV framing.
type Location struct {
	DstPort, SrcPort uint16
	Sub              []TLV
}

// AppendTo appends the value to b.
func (l Location) AppendTo(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, l.DstPort)
	b = binary.BigEndian.AppendUint16(b, l.SrcPort)
	for _, s := range l.Sub {
		b = s.AppendTo(b)
	}
	return b
}

// Addresses returns the source and destination addresses the reflector reported in
// sub-TLVs it answered (U clear); an address it did not report, or left as zeros (RFC 8972
// §4.2.2 lets a reflector leave fields unreported that way), is the zero Addr. It stops at a
// sub-TLV with M set: the reflector did not process the ones after it (RFC 8972 §4).
func (l Location) Addresses() (src, dst netip.Addr) {
	for _, s := range l.Sub {
		if s.Flags&FlagM != 0 {
			break
		}
		if s.Flags&FlagU != 0 {
			continue
		}
		a, ok := LocationSubAddr(s)
		if !ok || a.IsUnspecified() {
			continue
		}
		switch s.Type {
		case SubSourceIPv4, SubSourceIPv6:
			src = a
		case SubDestIPv4, SubDestIPv6:
			dst = a
		}
	}
	return src, dst
}

// LocationSubAddr decodes the address of a Destination/Source IPv4 or IPv6 Address sub-TLV:
// the first 4 octets of the 16-octet value for IPv4, all 16 for IPv6. It also reads the bare
// 4-octet IPv4 value of pre-RFC requests. ok is false for other types and lengths.
func LocationSubAddr(s TLV) (netip.Addr, bool) {
	switch {
	case (s.Type == SubDestIPv4 || s.Type == SubSourceIPv4) && (len(s.Value) == LenLocationIP || len(s.Value) == lenIPv4):
		return netip.AddrFrom4([4]byte(s.Value[:lenIPv4])), true
	case (s.Type == SubDestIPv6 || s.Type == SubSourceIPv6) && len(s.Value) == LenLocationIP:
		return netip.AddrFrom16([16]byte(s.Value)), true
	}
	return netip.Addr{}, false
}

const lenIPv4 = 4

// ParseLocation decodes a Location value.
func ParseLocation(v []byte) (Location, error) {
	if len(v) < LenLocationMin {
		return Location{}, fmt.Errorf("location: %w (%d)", ErrTLVLength, len(v))
	}
	l := Location{
		DstPort: binary.BigEndian.Uint16(v[locationDstPortOffset:]),
		SrcPort: binary.BigEndian.Uint16(v[locationSrcPortOffset:]),
	}
	sub, err := ParseTLVs(v[locationPortsLen:])
	l.Sub = sub
	if err != nil {
		return l, fmt.Errorf("location sub-TLVs: %w", err)
	}
	return l, nil
}

// NewLocationRequest returns a Session-Sender's Location TLV value as RFC 8972 §4.2 defines
// it: zero ports and the generic Source IP Address and Destination IP Address sub-TLVs
// (types 7 and 4, Length 16, zero value, flags U=1 like every TLV a sender sends, X-06). It
// does not depend on the address family: the reflector picks the IPv4 or IPv6 answer.
func NewLocationRequest() []byte {
	return Location{Sub: []TLV{
		{Flags: FlagU, Type: SubSourceIP, Value: make([]byte, LenLocationIP)},
		{Flags: FlagU, Type: SubDestIP, Value: make([]byte, LenLocationIP)},
	}}.AppendTo(nil)
}

// FillLocation answers a received Location value in place, keeping its length (T-02, RFC 8972
// §4.2.2): it writes the ports, then answers each sub-TLV and sets its flags as RFC 8972 §4
// and §4.2.1 say (I and the reserved bits always 0):
//
//   - Source/Destination IP Address (7/4, or an IPv4/IPv6 type 5, 6, 8, 9), Length 16: the
//     answer type for the packet's family (8/9, 5/6) with the address (IPv4: 4 octets then 12
//     zero octets), U=0. An unknown destination (a wildcard socket without RecvDst) is
//     reported as zeros, which RFC 8972 §4.2.2 allows.
//   - Source MAC Address (1, or 2/3), Length 8: a UDP socket never sees the MAC, so the answer
//     is Source EUI-64 Address (3) zeroed, U=0 (§4.2.2: no source MAC → zero EUI-64).
//   - Pre-RFC 4-octet IPv4 sub-TLVs (types 5/8 with Length 4, as early senders wrote them):
//     filled in place when the packet is IPv4, else U=1.
//   - Unknown sub-TLV types: copied, U=1.
//   - A known type with an invalid Length: M=1, and the sub-TLVs after it are copied
//     unprocessed (RFC 8972 §4: processing stops at a malformed TLV).
//
// It returns false, changing nothing, when the sub-TLV framing is broken or the value is
// shorter than the ports: the Location TLV itself is malformed and the caller sets its M flag.
func FillLocation(v []byte, src, dst netip.AddrPort) bool {
	if len(v) < LenLocationMin {
		return false
	}
	sub := v[locationPortsLen:]
	it := NewTLVIterator(sub)
	for it.Next() {
	}
	if it.Err() != nil {
		return false
	}
	binary.BigEndian.PutUint16(v[locationDstPortOffset:], dst.Port())
	binary.BigEndian.PutUint16(v[locationSrcPortOffset:], src.Port())
	sa, da := src.Addr().Unmap(), dst.Addr().Unmap()
	v4 := sa.Is4()
	it = NewTLVIterator(sub)
	for it.Next() {
		t := it.TLV()
		h := sub[it.Offset():]
		flags := uint8(0)
		switch t.Type {
		case SubSourceIP, SubSourceIPv4, SubSourceIPv6, SubDestIP, SubDestIPv4, SubDestIPv6:
			source := t.Type == SubSourceIP || t.Type == SubSourceIPv4 || t.Type == SubSourceIPv6
			a := da
			if source {
				a = sa
			}
			switch {
			case len(t.Value) == LenLocationIP:
				h[1] = uint8(locationAnswerType(source, v4))
				clear(t.Value)
				if a.Is4() && v4 {
					b := a.As4()
					copy(t.Value, b[:])
				} else if a.Is6() && !v4 {
					b := a.As16()
					copy(t.Value, b[:])
				}
			case len(t.Value) == lenIPv4 && (t.Type == SubSourceIPv4 || t.Type == SubDestIPv4):
				clear(t.Value)
				if v4 && a.Is4() {
					b := a.As4()
					copy(t.Value, b[:])
				} else if !v4 {
					flags = FlagU
				}
			default:
				h[0] = FlagM
				return true
			}
		case SubSourceMAC, SubSourceEUI48, SubSourceEUI64:
			if len(t.Value) != LenLocationMAC {
				h[0] = FlagM
				return true
			}
			h[1] = uint8(SubSourceEUI64)
			clear(t.Value)
		default:
			flags = FlagU
		}
		h[0] = flags
	}
	return true
}

// locationAnswerType is the specific sub-TLV type a reflector answers an address request with.
func locationAnswerType(source, v4 bool) TLVType {
	switch {
	case source && v4:
		return SubSourceIPv4
	case source:
		return SubSourceIPv6
	case v4:
		return SubDestIPv4
	}
	return SubDestIPv6
}

// Return Path sub-TLV types and control codes (RFC 9503 §4.1: Control Code sub-TLV Type=1
// Length=4, figure "Format of the Control Code Sub-TLV"; Return Address 2; SR-MPLS Label
// Stack 3; SRv6 Segment List Type=4, figure "Format of the SRv6 Segment List Sub-TLV"). These
// numbers are the Return Path TLV's own sub-TLV space, not the Location sub-TLV registry.
const (
	SubReturnPathControlCode TLVType = 1
	SubReturnAddress         TLVType = 2
	SubSRMPLSLabelStack      TLVType = 3
	SubSRv6SegmentList       TLVType = 4
	// ReturnPathNoReply asks the reflector not to reply (one-way measurement).
	ReturnPathNoReply uint32 = 0x0
	// ReturnPathSameLink asks for the reply on the link the test packet arrived on.
	ReturnPathSameLink uint32 = 0x1
)

// returnPathReplyFlag is the Control Code's only defined bit, the least significant one
// (RFC 9503 §4.1.1: 0x0 no reply requested, 0x1 reply on the same link; all other bits are
// reserved, sent as 0 and ignored on receipt).
const returnPathReplyFlag = 0x1

// ReturnPathNoReplyRequested reports whether a Return Path TLV value's Control Code sub-TLV
// says "no reply requested". Only the first Control Code counts (a sender must not send more
// than one, RFC 9503 §4.1), and only its reply bit: reserved bits are ignored.
func ReturnPathNoReplyRequested(v []byte) bool {
	it := NewTLVIterator(v)
	for it.Next() {
		t := it.TLV()
		if t.Type == SubReturnPathControlCode && len(t.Value) == 4 {
			return binary.BigEndian.Uint32(t.Value)&returnPathReplyFlag == ReturnPathNoReply
		}
	}
	return false
}
