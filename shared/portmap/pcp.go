package portmap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// PCP (RFC 6887) constants, named as the RFC names them.
const (
	PCPVersion    = 2
	PCPServerPort = 5351 // also NAT-PMP's
	OpcodeMAP     = 1
	// Sizes: common header (§7.1, §7.2) and MAP opcode payload (§11.1).
	pcpHeaderSize = 24
	mapOpSize     = 36
	// PCPMapSize is a MAP request or response without options.
	PCPMapSize = pcpHeaderSize + mapOpSize
	// ProtoUDP is the IANA protocol number in MAP.
	ProtoUDP = 17
)

// PCP result codes (RFC 6887 §7.4).
const (
	ResultSuccess               = 0
	ResultUnsuppVersion         = 1
	ResultNotAuthorized         = 2
	ResultMalformedRequest      = 3
	ResultUnsuppOpcode          = 4
	ResultUnsuppOption          = 5
	ResultMalformedOption       = 6
	ResultNetworkFailure        = 7
	ResultNoResources           = 8
	ResultUnsuppProtocol        = 9
	ResultUserExQuota           = 10
	ResultCannotProvideExternal = 11
	ResultAddressMismatch       = 12
	ResultExcessiveRemotePeers  = 13
)

var resultNames = [...]string{"SUCCESS", "UNSUPP_VERSION", "NOT_AUTHORIZED", "MALFORMED_REQUEST", "UNSUPP_OPCODE",
	"UNSUPP_OPTION", "MALFORMED_OPTION", "NETWORK_FAILURE", "NO_RESOURCES", "UNSUPP_PROTOCOL", "USER_EX_QUOTA",
	"CANNOT_PROVIDE_EXTERNAL", "ADDRESS_MISMATCH", "EXCESSIVE_REMOTE_PEERS"}

// ResultName is the RFC's name of a PCP result code.
func ResultName(code uint8) string {
	if int(code) < len(resultNames) {
		return resultNames[code]
	}
	return fmt.Sprintf("result %d", code)
}

// ErrMalformed is returned for PCP bytes that do not decode.
var ErrMalformed = errors.New("portmap: malformed PCP message")

// PCPMap is a PCP MAP request or response (RFC 6887 §7.1/§7.2 header + §11.1 payload).
// Options are neither sent nor interpreted (a response's options are skipped).
type PCPMap struct {
	Response bool
	// ResultCode and Epoch are response fields; ClientIP is a request field (the header's
	// "PCP Client's IP Address").
	ResultCode uint8
	Lifetime   uint32
	Epoch      uint32
	ClientIP   netip.Addr
	// MAP payload. In a response the port and address are the assigned ones.
	Nonce        [12]byte
	Protocol     uint8
	InternalPort uint16
	ExternalPort uint16
	ExternalIP   netip.Addr
}

// addr16 is an address in the 16-byte form PCP uses (IPv4 as ::ffff:a.b.c.d).
func addr16(a netip.Addr) [16]byte {
	if !a.IsValid() {
		return [16]byte{10: 0xff, 11: 0xff} // ::ffff:0.0.0.0, "no preference" for IPv4 (§11.1)
	}
	if a.Is4() {
		return netip.AddrFrom16(a.As16()).As16()
	}
	return a.As16()
}

// AppendTo appends the 60-byte message.
func (m *PCPMap) AppendTo(b []byte) []byte {
	b = append(b, PCPVersion)
	op := byte(OpcodeMAP)
	if m.Response {
		op |= 0x80
	}
	b = append(b, op)
	if m.Response {
		b = append(b, 0, m.ResultCode)
	} else {
		b = append(b, 0, 0)
	}
	b = binary.BigEndian.AppendUint32(b, m.Lifetime)
	if m.Response {
		b = binary.BigEndian.AppendUint32(b, m.Epoch)
		b = append(b, make([]byte, 12)...)
	} else {
		ip := addr16(m.ClientIP)
		b = append(b, ip[:]...)
	}
	b = append(b, m.Nonce[:]...)
	b = append(b, m.Protocol, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, m.InternalPort)
	b = binary.BigEndian.AppendUint16(b, m.ExternalPort)
	ext := addr16(m.ExternalIP)
	return append(b, ext[:]...)
}

// UnmarshalBinary decodes a MAP request or response; trailing options are skipped, not
// checked. A NAT-PMP answer (version 0) gives ErrNATPMPAnswer.
func (m *PCPMap) UnmarshalBinary(b []byte) error {
	if len(b) >= 2 && b[0] == 0 {
		return ErrNATPMPAnswer
	}
	if len(b) < pcpHeaderSize {
		return fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	if b[0] != PCPVersion {
		return fmt.Errorf("%w: version %d", ErrMalformed, b[0])
	}
	*m = PCPMap{Response: b[1]&0x80 != 0}
	if op := b[1] & 0x7f; op != OpcodeMAP {
		return fmt.Errorf("%w: opcode %d", ErrMalformed, op)
	}
	m.Lifetime = binary.BigEndian.Uint32(b[4:8])
	if m.Response {
		m.ResultCode = b[3]
		m.Epoch = binary.BigEndian.Uint32(b[8:12])
	} else {
		m.ClientIP = netip.AddrFrom16([16]byte(b[8:24])).Unmap()
	}
	// Responses, error responses included, carry the opcode payload (RFC 6887 §7.2).
	if len(b) < PCPMapSize {
		return fmt.Errorf("%w: MAP of %d bytes", ErrMalformed, len(b))
	}
	p := b[pcpHeaderSize:]
	copy(m.Nonce[:], p[:12])
	m.Protocol = p[12]
	m.InternalPort = binary.BigEndian.Uint16(p[16:18])
	m.ExternalPort = binary.BigEndian.Uint16(p[18:20])
	m.ExternalIP = netip.AddrFrom16([16]byte(p[20:36])).Unmap()
	return nil
}

// ErrNATPMPAnswer: the gateway answered in NAT-PMP (it does not speak PCP).
var ErrNATPMPAnswer = errors.New("gateway answered with NAT-PMP (no PCP)")
