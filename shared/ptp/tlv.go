package ptp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/probekit/probekit/shared/checksum"
)

// Framing constants.
const (
	// PacketVersion is the first byte of every packet (never checked by the original).
	PacketVersion = 1
	// MaxPacket is the largest packet a sender may emit and the receive size of the original.
	MaxPacket = 1400
	// MaxValue is the largest TLV value: len is one byte and includes the 2-byte header.
	MaxValue = 253
	// MinPacket is a version byte and a checksum with no TLV.
	MinPacket = 3
	// MaxMesh is the longest MESH value.
	MaxMesh = 64
	// ReachSize is the size of a REACH value.
	ReachSize = 53
	// UUIDSize is the size of a UUID value.
	UUIDSize = 16
)

// Protocol versions announced in SERVERVER/CLIENTVER.
const (
	ProtoV2 = 2 // chrisy/ptptest 0.2
	ProtoV3 = 3 // probekit: the v3 TLVs of this package
)

// Type is a TLV type number.
type Type uint8

// TLV types: the original's registry (PTP_TYPE_*) and probekit's version 3 additions.
const (
	TypeProtoVer      Type = 0  // never sent
	TypeServerVer     Type = 1  // uint, s→c
	TypeClientVer     Type = 2  // uint, c→s, c→c
	TypeSequence      Type = 3  // uint (4 bytes sent)
	TypeUUID          Type = 4  // 16 bytes
	TypeMesh          Type = 5  // v3: string ≤ 64
	TypeListPage      Type = 6  // v3: page u8, pages u8
	TypeMyTS          Type = 8  // uint (8 bytes), 32.32 Unix time
	TypeYourTS        Type = 9  // uint (8 bytes), the echoed MYTS
	TypeEchoSeq       Type = 10 // v3: u32
	TypePeerUUID      Type = 11 // v3: 16 bytes
	TypeReach         Type = 12 // v3: 53 bytes
	TypeNATInfo       Type = 13 // v3: 3 bytes + address
	TypeRelayTo       Type = 14 // v3: 16 bytes
	TypeRelayFrom     Type = 15 // v3: 16 bytes
	TypeCandidate     Type = 16 // v3: address
	TypePathInfo      Type = 17 // v3: optional, opaque here
	TypePortMap       Type = 18 // v3: 6 bytes + address, c→s, one per port-mapping protocol
	TypeBulkFirst     Type = 20 // v3: first type reserved for bulk transfer
	TypeBulkLast      Type = 29 // v3: last type reserved for bulk transfer
	TypePTPAddr       Type = 32 // address: client's local IP + socket port
	TypeIntAddr       Type = 33 // never sent
	TypeUPnP          Type = 34 // never sent
	TypeMeta          Type = 35 // Python json.dumps text
	TypeShutdown      Type = 45 // uint (1 byte, value 1)
	TypeClientListExt Type = 64 // address
	TypeClientLen     Type = 65 // uint (1 byte)
	TypeYourAddr      Type = 66 // address
	TypeClientListInt Type = 67 // address
	TypeCC            Type = 96 // never sent
)

var typeNames = map[Type]string{
	TypeProtoVer: "PROTOVER", TypeServerVer: "SERVERVER", TypeClientVer: "CLIENTVER",
	TypeSequence: "SEQUENCE", TypeUUID: "UUID", TypeMesh: "MESH", TypeListPage: "LISTPAGE",
	TypeMyTS: "MYTS", TypeYourTS: "YOURTS", TypeEchoSeq: "ECHOSEQ", TypePeerUUID: "PEERUUID",
	TypeReach: "REACH", TypeNATInfo: "NATINFO", TypeRelayTo: "RELAYTO", TypeRelayFrom: "RELAYFROM",
	TypeCandidate: "CANDIDATE", TypePathInfo: "PATHINFO", TypePortMap: "PORTMAP", TypePTPAddr: "PTPADDR",
	TypeIntAddr: "INTADDR", TypeUPnP: "UPNP", TypeMeta: "META", TypeShutdown: "SHUTDOWN",
	TypeClientListExt: "CLIENTLIST_EXT", TypeClientLen: "CLIENTLEN", TypeYourAddr: "YOURADDR",
	TypeClientListInt: "CLIENTLIST_INT", TypeCC: "CC",
}

// String returns the original's name of t (without PTP_TYPE_), or TYPE<n>.
func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	if t >= TypeBulkFirst && t <= TypeBulkLast {
		return fmt.Sprintf("BULK%d", t)
	}
	return fmt.Sprintf("TYPE%d", uint8(t))
}

// Sentinel errors; decoding errors wrap ErrMalformed unless they are ErrChecksum.
var (
	ErrShort        = errors.New("ptp: packet shorter than version byte and checksum")
	ErrChecksum     = errors.New("ptp: checksum mismatch")
	ErrMalformed    = errors.New("ptp: malformed packet")
	ErrTooLarge     = errors.New("ptp: packet larger than 1400 bytes")
	ErrValueTooLong = errors.New("ptp: TLV value longer than 253 bytes")
	ErrV3Field      = errors.New("ptp: version 3 TLV in a message announcing version < 3")
	ErrNoRelayTo    = errors.New("ptp: no RELAYTO TLV")
)

// TLV is one type-length-value element; Value aliases the packet it was read from.
type TLV struct {
	Type  Type
	Value []byte
}

// Open checks the framing and the RFC 1071 trailer checksum of pkt and returns the TLV bytes
// between the version byte and the checksum. It does not allocate.
func Open(pkt []byte) ([]byte, error) {
	if len(pkt) < MinPacket {
		return nil, ErrShort
	}
	n := len(pkt) - 2
	if checksum.Checksum(pkt[:n]) != binary.BigEndian.Uint16(pkt[n:]) {
		return nil, ErrChecksum
	}
	return pkt[1:n], nil
}

// NextTLV reads the TLV at the start of b and returns it with the bytes after it. It rejects
// len < 2 and a value running past b (both wrap ErrMalformed).
func NextTLV(b []byte) (TLV, []byte, error) {
	if len(b) < 2 {
		return TLV{}, nil, fmt.Errorf("%w: %d stray bytes before the checksum", ErrMalformed, len(b))
	}
	l := int(b[1])
	if l < 2 {
		return TLV{}, nil, fmt.Errorf("%w: TLV %v len %d < 2", ErrMalformed, Type(b[0]), l)
	}
	if l > len(b) {
		return TLV{}, nil, fmt.Errorf("%w: TLV %v len %d overruns the packet (%d bytes left)", ErrMalformed, Type(b[0]), l, len(b))
	}
	return TLV{Type: Type(b[0]), Value: b[2:l]}, b[l:], nil
}

// AppendTLV appends one TLV. The caller keeps len(v) ≤ MaxValue (Message.AppendTo checks).
func AppendTLV(b []byte, t Type, v []byte) []byte {
	b = append(b, byte(t), byte(len(v)+2))
	return append(b, v...)
}

// Seal appends the checksum of pkt (version byte and TLVs) and returns the packet.
func Seal(pkt []byte) []byte {
	return binary.BigEndian.AppendUint16(pkt, checksum.Checksum(pkt))
}

// Uint decodes a big-endian unsigned value of 1 to 8 bytes (the original sends 1, 4 or 8).
func Uint(v []byte) (uint64, bool) {
	if len(v) < 1 || len(v) > 8 {
		return 0, false
	}
	var x uint64
	for _, c := range v {
		x = x<<8 | uint64(c)
	}
	return x, true
}

// Address decodes a 6-byte (IPv4+port) or 18-byte (IPv6+port) address value.
func Address(v []byte) (netip.AddrPort, bool) {
	switch len(v) {
	case 6:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(v[:4])), binary.BigEndian.Uint16(v[4:])), true
	case 18:
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(v[:16])), binary.BigEndian.Uint16(v[16:])), true
	}
	return netip.AddrPort{}, false
}

// AppendAddress appends the 6- or 18-byte value of a (IPv4-mapped IPv6 addresses as IPv4).
func AppendAddress(b []byte, a netip.AddrPort) []byte {
	ip := a.Addr().Unmap()
	if ip.Is4() {
		v := ip.As4()
		b = append(b, v[:]...)
	} else {
		v := ip.As16()
		b = append(b, v[:]...)
	}
	return binary.BigEndian.AppendUint16(b, a.Port())
}

// AddressSize is the value size of a: 6 for IPv4 (or IPv4-mapped), 18 otherwise.
func AddressSize(a netip.AddrPort) int {
	if a.Addr().Unmap().Is4() {
		return 6
	}
	return 18
}

func appendAddrTLV(b []byte, t Type, a netip.AddrPort) []byte {
	b = append(b, byte(t), byte(AddressSize(a)+2))
	return AppendAddress(b, a)
}

func appendUintTLV(b []byte, t Type, v uint64, size int) []byte {
	b = append(b, byte(t), byte(size+2))
	for i := size - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

// RewriteRelay turns the RELAYTO TLV of a packet that Open accepted into RELAYFROM carrying
// origin, in place (same size), recomputes the checksum and returns the UUID RELAYTO named.
// The server forwards the result unchanged otherwise. It does not allocate.
func RewriteRelay(pkt []byte, origin UUID) (UUID, error) {
	if len(pkt) < MinPacket {
		return UUID{}, ErrShort
	}
	n := len(pkt) - 2
	b := pkt[1:n]
	off := 1
	for len(b) > 0 {
		t, rest, err := NextTLV(b)
		if err != nil {
			return UUID{}, err
		}
		if t.Type == TypeRelayTo {
			if len(t.Value) != UUIDSize {
				return UUID{}, fmt.Errorf("%w: RELAYTO of %d bytes", ErrMalformed, len(t.Value))
			}
			to := UUID(t.Value)
			pkt[off] = byte(TypeRelayFrom)
			copy(pkt[off+2:], origin[:])
			binary.BigEndian.PutUint16(pkt[n:], checksum.Checksum(pkt[:n]))
			return to, nil
		}
		off += len(b) - len(rest)
		b = rest
	}
	return UUID{}, ErrNoRelayTo
}
