package ptp

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"

	"github.com/probekit/probekit/shared/checksum"
	"github.com/probekit/probekit/shared/timestamp"
)

// UUID identifies a client (the original sends uuid1 bytes).
type UUID [UUIDSize]byte

// String returns the 32 hex digits of u.
func (u UUID) String() string { return hex.EncodeToString(u[:]) }

// IsZero reports whether u is all zeros.
func (u UUID) IsZero() bool { return u == UUID{} }

// ParseUUID parses 32 hex digits (dashes allowed).
func ParseUUID(s string) (UUID, error) {
	var u UUID
	h := make([]byte, 0, 32)
	for i := 0; i < len(s); i++ {
		if s[i] != '-' {
			h = append(h, s[i])
		}
	}
	if len(h) != 32 {
		return u, fmt.Errorf("ptp: UUID %q: want 32 hex digits", s)
	}
	if _, err := hex.Decode(u[:], h); err != nil {
		return u, fmt.Errorf("ptp: UUID %q: %w", s, err)
	}
	return u, nil
}

// Role says which version TLV a message carries.
type Role uint8

// Roles.
const (
	RoleNone   Role = iota // no version TLV
	RoleServer             // SERVERVER: sent by a server
	RoleClient             // CLIENTVER: sent by a client
)

// Field is a bit set of the single-valued TLVs present in a Message.
type Field uint32

// Fields. Repeated TLVs (CANDIDATE, REACH, list entries, other TLVs) are present when their
// slice is not empty; the list (entries and CLIENTLEN) is present with FieldList.
const (
	FieldSequence Field = 1 << iota
	FieldUUID
	FieldRelayTo   // v3
	FieldRelayFrom // v3
	FieldPTPAddr
	FieldMyTS
	FieldYourTS
	FieldEchoSeq // v3
	FieldYourAddr
	FieldShutdown
	FieldMesh    // v3
	FieldNATInfo // v3
	FieldListPage
	FieldList // CLIENTLIST_* entries and CLIENTLEN
	FieldMeta
)

const v3Fields = FieldRelayTo | FieldRelayFrom | FieldEchoSeq | FieldMesh | FieldNATInfo | FieldListPage

// Path is how a client reaches a peer (REACH path byte).
type Path uint8

// Paths.
const (
	PathNone    Path = 0
	PathDirect  Path = 1
	PathLAN     Path = 2
	PathHairpin Path = 3
	PathRelay   Path = 4
)

var pathNames = [...]string{"none", "direct", "lan", "hairpin", "relay"}

// String returns none, direct, lan, hairpin or relay.
func (p Path) String() string {
	if int(p) < len(pathNames) {
		return pathNames[p]
	}
	return fmt.Sprintf("path%d", uint8(p))
}

// Behavior is a NAT mapping or filtering behaviour (RFC 4787 terms) in NATINFO.
type Behavior uint8

// Behaviours.
const (
	BehaviorUnknown                 Behavior = 0
	BehaviorEndpointIndependent     Behavior = 1
	BehaviorAddressDependent        Behavior = 2
	BehaviorAddressAndPortDependent Behavior = 3
)

var behaviorNames = [...]string{"unknown", "endpoint-independent", "address-dependent", "address-and-port-dependent"}

// String returns the RFC 4787 name of b.
func (b Behavior) String() string {
	if int(b) < len(behaviorNames) {
		return behaviorNames[b]
	}
	return fmt.Sprintf("behavior%d", uint8(b))
}

// Hairpin values in NATINFO.
const (
	HairpinUnknown uint8 = 0
	HairpinYes     uint8 = 1
	HairpinNo      uint8 = 2
)

// NATInfo is a NATINFO value: the sender's NAT behaviour and public address.
type NATInfo struct {
	Mapping   Behavior
	Filtering Behavior
	Hairpin   uint8 // HairpinUnknown, HairpinYes, HairpinNo
	Public    netip.AddrPort
}

// Reach is a REACH value: what a client measured towards one peer. Times are microseconds.
type Reach struct {
	Peer                                   UUID
	Path                                   Path
	Sent, Received, Lost                   uint32
	RTTMin, RTTAvg, RTTP50, RTTP99, RTTMax uint32
	Jitter                                 uint32
}

// AppendTo appends the 53-byte REACH value.
func (r *Reach) AppendTo(b []byte) []byte {
	b = append(b, r.Peer[:]...)
	b = append(b, byte(r.Path))
	for _, v := range [...]uint32{r.Sent, r.Received, r.Lost, r.RTTMin, r.RTTAvg, r.RTTP50, r.RTTP99, r.RTTMax, r.Jitter} {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b
}

// UnmarshalBinary decodes a REACH value (bytes after the first 53 are ignored).
func (r *Reach) UnmarshalBinary(v []byte) error {
	if len(v) < ReachSize {
		return fmt.Errorf("%w: REACH of %d bytes", ErrMalformed, len(v))
	}
	r.Peer = UUID(v[:16])
	r.Path = Path(v[16])
	u := func(i int) uint32 { return binary.BigEndian.Uint32(v[17+4*i:]) }
	r.Sent, r.Received, r.Lost = u(0), u(1), u(2)
	r.RTTMin, r.RTTAvg, r.RTTP50, r.RTTP99, r.RTTMax = u(3), u(4), u(5), u(6), u(7)
	r.Jitter = u(8)
	return nil
}

// MaxEntryCandidates is how many CANDIDATE addresses a list entry holds; further ones are ignored.
const MaxEntryCandidates = 4

// Entry is one client in a server's list.
type Entry struct {
	Ext        netip.AddrPort // CLIENTLIST_EXT: the address the server sees
	Int        netip.AddrPort // CLIENTLIST_INT (invalid when absent): its PTPADDR, same public IP only
	UUID       UUID           // PEERUUID (v3), valid when HasUUID
	HasUUID    bool
	Candidates [MaxEntryCandidates]netip.AddrPort // v3 CANDIDATE repeated after PEERUUID
	NCand      uint8
}

// CandidateList returns the entry's candidates (aliases e).
func (e *Entry) CandidateList() []netip.AddrPort { return e.Candidates[:e.NCand] }

// Message is any PtP packet: the union of the messages of reference §4 and the v3 TLVs. Has
// says which single-valued TLVs are present; see the package doc for the TLV order AppendTo
// writes. Byte-slice fields alias the decoded packet.
type Message struct {
	Role    Role  // which version TLV: SERVERVER or CLIENTVER
	Version uint8 // its value (2 legacy, 3 probekit); decoded values above 255 read as 255
	Has     Field

	Sequence  uint32
	UUID      UUID
	RelayTo   UUID
	RelayFrom UUID
	PTPAddr   netip.AddrPort
	MyTS      timestamp.Fixed32
	YourTS    timestamp.Fixed32
	EchoSeq   uint32
	YourAddr  netip.AddrPort
	Mesh      []byte // ≤ MaxMesh bytes
	NAT       NATInfo
	Page      uint8 // LISTPAGE page index
	Pages     uint8 // LISTPAGE page count

	Candidates []netip.AddrPort // the sender's own CANDIDATE addresses
	PortMaps   []PortMap        // PORTMAP: the sender's port-mapping outcomes (c→s)
	Reach      []Reach
	Entries    []Entry // list entries (FieldList)
	ClientLen  int     // decoded CLIENTLEN (AppendTo writes len(Entries))

	Extra []TLV  // other TLVs (PATHINFO, bulk, unknown types): kept on decode, written before META
	Meta  []byte // META JSON text (AppendPyJSON); omitted by AppendTo when longer than MaxValue
}

// Reset clears m, keeping the capacity of its slices.
func (m *Message) Reset() {
	*m = Message{Candidates: m.Candidates[:0], PortMaps: m.PortMaps[:0], Reach: m.Reach[:0], Entries: m.Entries[:0], Extra: m.Extra[:0]}
}

// IsV3 reports whether the message carries anything PTP-W5 reserves for version-3 peers.
func (m *Message) IsV3() bool {
	if m.Has&v3Fields != 0 || len(m.Candidates) > 0 || len(m.PortMaps) > 0 || len(m.Reach) > 0 || len(m.Extra) > 0 {
		return true
	}
	for i := range m.Entries {
		if m.Entries[i].HasUUID || m.Entries[i].NCand > 0 {
			return true
		}
	}
	return false
}

// ListComplete reports what the original client checks before taking a list (PTP-C3): the
// message has a list and CLIENTLEN equals the number of CLIENTLIST_EXT entries.
func (m *Message) ListComplete() bool {
	return m.Has&FieldList != 0 && m.ClientLen == len(m.Entries)
}

// AppendTo appends the packet (version byte, TLVs, checksum) to b. It fails on a value or
// packet over the limits and on v3 TLVs in a message whose version TLV is below 3 (PTP-W5); a
// META over 253 bytes is left out (B4).
func (m *Message) AppendTo(b []byte) ([]byte, error) {
	if m.IsV3() && (m.Role == RoleNone || m.Version < ProtoV3) {
		return b, ErrV3Field
	}
	if len(m.Mesh) > MaxMesh {
		return b, fmt.Errorf("%w: MESH of %d bytes (max %d)", ErrValueTooLong, len(m.Mesh), MaxMesh)
	}
	start := len(b)
	b = append(b, PacketVersion)
	switch m.Role {
	case RoleServer:
		b = appendUintTLV(b, TypeServerVer, uint64(m.Version), 1)
	case RoleClient:
		b = appendUintTLV(b, TypeClientVer, uint64(m.Version), 1)
	}
	h := m.Has
	if h&FieldSequence != 0 {
		b = appendUintTLV(b, TypeSequence, uint64(m.Sequence), 4)
	}
	if h&FieldUUID != 0 {
		b = AppendTLV(b, TypeUUID, m.UUID[:])
	}
	if h&FieldRelayTo != 0 {
		b = AppendTLV(b, TypeRelayTo, m.RelayTo[:])
	}
	if h&FieldRelayFrom != 0 {
		b = AppendTLV(b, TypeRelayFrom, m.RelayFrom[:])
	}
	if h&FieldPTPAddr != 0 {
		b = appendAddrTLV(b, TypePTPAddr, m.PTPAddr)
	}
	if h&FieldMyTS != 0 {
		b = appendUintTLV(b, TypeMyTS, uint64(m.MyTS), 8)
	}
	if h&FieldYourTS != 0 {
		b = appendUintTLV(b, TypeYourTS, uint64(m.YourTS), 8)
	}
	if h&FieldEchoSeq != 0 {
		b = appendUintTLV(b, TypeEchoSeq, uint64(m.EchoSeq), 4)
	}
	if h&FieldYourAddr != 0 {
		b = appendAddrTLV(b, TypeYourAddr, m.YourAddr)
	}
	if h&FieldShutdown != 0 {
		b = appendUintTLV(b, TypeShutdown, 1, 1)
	}
	if h&FieldMesh != 0 {
		b = AppendTLV(b, TypeMesh, m.Mesh)
	}
	if h&FieldNATInfo != 0 {
		b = append(b, byte(TypeNATInfo), byte(5+AddressSize(m.NAT.Public)), byte(m.NAT.Mapping), byte(m.NAT.Filtering), m.NAT.Hairpin)
		b = AppendAddress(b, m.NAT.Public)
	}
	for _, c := range m.Candidates {
		b = appendAddrTLV(b, TypeCandidate, c)
	}
	for i := range m.PortMaps {
		b = append(b, byte(TypePortMap), byte(2+m.PortMaps[i].Size()))
		b = m.PortMaps[i].AppendTo(b)
	}
	for i := range m.Reach {
		b = append(b, byte(TypeReach), ReachSize+2)
		b = m.Reach[i].AppendTo(b)
	}
	if h&FieldListPage != 0 {
		b = append(b, byte(TypeListPage), 4, m.Page, m.Pages)
	}
	if h&FieldList != 0 {
		if len(m.Entries) > 255 {
			return b[:start], fmt.Errorf("%w: %d list entries (CLIENTLEN is one byte)", ErrTooLarge, len(m.Entries))
		}
		for i := range m.Entries {
			e := &m.Entries[i]
			b = appendAddrTLV(b, TypeClientListExt, e.Ext)
			if e.HasUUID {
				b = AppendTLV(b, TypePeerUUID, e.UUID[:])
			}
			if e.Int.IsValid() {
				b = appendAddrTLV(b, TypeClientListInt, e.Int)
			}
			for _, c := range e.CandidateList() {
				b = appendAddrTLV(b, TypeCandidate, c)
			}
			if len(b)-start > MaxPacket {
				return b[:start], ErrTooLarge
			}
		}
		b = appendUintTLV(b, TypeClientLen, uint64(len(m.Entries)), 1)
	}
	for _, t := range m.Extra {
		if len(t.Value) > MaxValue {
			return b[:start], fmt.Errorf("%w: %v of %d bytes", ErrValueTooLong, t.Type, len(t.Value))
		}
		b = AppendTLV(b, t.Type, t.Value)
	}
	if h&FieldMeta != 0 && len(m.Meta) <= MaxValue {
		b = AppendTLV(b, TypeMeta, m.Meta)
	}
	if len(b)-start+2 > MaxPacket {
		return b[:start], fmt.Errorf("%w: %d bytes", ErrTooLarge, len(b)-start+2)
	}
	return binary.BigEndian.AppendUint16(b, checksum.Checksum(b[start:])), nil
}

// Size returns the encoded size of m without encoding it (META counted only when it fits).
func (m *Message) Size() int {
	n := 3
	if m.Role != RoleNone {
		n += 3
	}
	h := m.Has
	add := func(f Field, size int) {
		if h&f != 0 {
			n += size
		}
	}
	add(FieldSequence, 6)
	add(FieldUUID, 18)
	add(FieldRelayTo, 18)
	add(FieldRelayFrom, 18)
	add(FieldPTPAddr, 2+AddressSize(m.PTPAddr))
	add(FieldMyTS, 10)
	add(FieldYourTS, 10)
	add(FieldEchoSeq, 6)
	add(FieldYourAddr, 2+AddressSize(m.YourAddr))
	add(FieldShutdown, 3)
	add(FieldMesh, 2+len(m.Mesh))
	add(FieldNATInfo, 5+AddressSize(m.NAT.Public))
	add(FieldListPage, 4)
	for _, c := range m.Candidates {
		n += 2 + AddressSize(c)
	}
	for i := range m.PortMaps {
		n += 2 + m.PortMaps[i].Size()
	}
	n += len(m.Reach) * (ReachSize + 2)
	if h&FieldList != 0 {
		n += 3
		for i := range m.Entries {
			n += EntrySize(&m.Entries[i])
		}
	}
	for _, t := range m.Extra {
		n += 2 + len(t.Value)
	}
	if h&FieldMeta != 0 && len(m.Meta) <= MaxValue {
		n += 2 + len(m.Meta)
	}
	return n
}

// EntrySize is the number of bytes entry e takes in a list.
func EntrySize(e *Entry) int {
	n := 2 + AddressSize(e.Ext)
	if e.HasUUID {
		n += 18
	}
	if e.Int.IsValid() {
		n += 2 + AddressSize(e.Int)
	}
	for _, c := range e.CandidateList() {
		n += 2 + AddressSize(c)
	}
	return n
}

func malformed(t Type, v []byte) error {
	return fmt.Errorf("%w: %v value of %d bytes", ErrMalformed, t, len(v))
}

// UnmarshalBinary decodes pkt into m (reusing m's slices; nothing is allocated once they have
// grown). It returns ErrChecksum for a bad checksum and an error wrapping ErrMalformed for
// broken framing or a value of an impossible size; unknown TLVs go to Extra.
func (m *Message) UnmarshalBinary(pkt []byte) error {
	m.Reset()
	b, err := Open(pkt)
	if err != nil {
		return err
	}
	var cur *Entry
	for len(b) > 0 {
		t, rest, err := NextTLV(b)
		if err != nil {
			return err
		}
		b = rest
		v := t.Value
		switch t.Type {
		case TypeServerVer, TypeClientVer:
			x, ok := Uint(v)
			if !ok {
				return malformed(t.Type, v)
			}
			m.Role = RoleClient
			if t.Type == TypeServerVer {
				m.Role = RoleServer
			}
			m.Version = uint8(min(x, 255))
		case TypeSequence:
			x, ok := Uint(v)
			if !ok {
				return malformed(t.Type, v)
			}
			m.Sequence, m.Has = uint32(x), m.Has|FieldSequence
		case TypeUUID, TypeRelayTo, TypeRelayFrom, TypePeerUUID:
			if len(v) != UUIDSize {
				return malformed(t.Type, v)
			}
			switch t.Type {
			case TypeUUID:
				m.UUID, m.Has = UUID(v), m.Has|FieldUUID
			case TypeRelayTo:
				m.RelayTo, m.Has = UUID(v), m.Has|FieldRelayTo
			case TypeRelayFrom:
				m.RelayFrom, m.Has = UUID(v), m.Has|FieldRelayFrom
			default:
				if cur != nil {
					cur.UUID, cur.HasUUID = UUID(v), true
				}
			}
		case TypeMyTS, TypeYourTS, TypeEchoSeq, TypeShutdown, TypeClientLen:
			x, ok := Uint(v)
			if !ok {
				return malformed(t.Type, v)
			}
			switch t.Type {
			case TypeMyTS:
				m.MyTS, m.Has = timestamp.Fixed32(x), m.Has|FieldMyTS
			case TypeYourTS:
				m.YourTS, m.Has = timestamp.Fixed32(x), m.Has|FieldYourTS
			case TypeEchoSeq:
				m.EchoSeq, m.Has = uint32(x), m.Has|FieldEchoSeq
			case TypeShutdown:
				// The original sends 1; any SHUTDOWN TLV means the client leaves.
				m.Has |= FieldShutdown
			default:
				m.ClientLen, m.Has = int(min(x, 1<<20)), m.Has|FieldList
			}
		case TypePTPAddr, TypeYourAddr, TypeClientListExt, TypeClientListInt, TypeCandidate:
			a, ok := Address(v)
			if !ok {
				return malformed(t.Type, v)
			}
			switch t.Type {
			case TypePTPAddr:
				m.PTPAddr, m.Has = a, m.Has|FieldPTPAddr
			case TypeYourAddr:
				m.YourAddr, m.Has = a, m.Has|FieldYourAddr
			case TypeClientListExt:
				m.Entries = append(m.Entries, Entry{Ext: a})
				cur = &m.Entries[len(m.Entries)-1]
				m.Has |= FieldList
			case TypeClientListInt:
				if cur != nil {
					cur.Int = a
				}
			default:
				if cur == nil {
					m.Candidates = append(m.Candidates, a)
				} else if cur.NCand < MaxEntryCandidates {
					cur.Candidates[cur.NCand] = a
					cur.NCand++
				}
			}
		case TypeMesh:
			if len(v) > MaxMesh {
				return malformed(t.Type, v)
			}
			m.Mesh, m.Has = v, m.Has|FieldMesh
		case TypeListPage:
			if len(v) != 2 {
				return malformed(t.Type, v)
			}
			m.Page, m.Pages, m.Has = v[0], v[1], m.Has|FieldListPage
		case TypeNATInfo:
			if len(v) < 3 {
				return malformed(t.Type, v)
			}
			a, ok := Address(v[3:])
			if !ok {
				return malformed(t.Type, v)
			}
			m.NAT = NATInfo{Mapping: Behavior(v[0]), Filtering: Behavior(v[1]), Hairpin: v[2], Public: a}
			m.Has |= FieldNATInfo
		case TypePortMap:
			var p PortMap
			if err := p.UnmarshalBinary(v); err != nil {
				return err
			}
			m.PortMaps = append(m.PortMaps, p)
		case TypeReach:
			var r Reach
			if err := r.UnmarshalBinary(v); err != nil {
				return err
			}
			m.Reach = append(m.Reach, r)
		case TypeMeta:
			m.Meta, m.Has = v, m.Has|FieldMeta
		default:
			m.Extra = append(m.Extra, t)
		}
	}
	return nil
}
