package tcpcraft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/probekit/probekit/shared/checksum"
)

// TCP header flags (RFC 9293 §3.1, RFC 3168, RFC 9768 AE). Flags holds the 12 bits after the
// data offset: the 3 reserved bits (FlagReserved), AE, CWR, ECE, URG, ACK, PSH, RST, SYN, FIN.
const (
	FlagFIN      uint16 = 0x001
	FlagSYN      uint16 = 0x002
	FlagRST      uint16 = 0x004
	FlagPSH      uint16 = 0x008
	FlagACK      uint16 = 0x010
	FlagURG      uint16 = 0x020
	FlagECE      uint16 = 0x040
	FlagCWR      uint16 = 0x080
	FlagAE       uint16 = 0x100
	FlagReserved uint16 = 0xe00
)

// Header sizes and protocol numbers.
const (
	IPv4HeaderLen = 20
	IPv6HeaderLen = 40
	TCPHeaderLen  = 20
	ProtoTCP      = 6

	// IPv4 flags (the top 3 bits of the fragment field).
	IPFlagReserved uint8 = 4
	IPFlagDF       uint8 = 2
	IPFlagMF       uint8 = 1
)

// Decoding errors; Decode wraps them with detail.
var (
	ErrTruncated = errors.New("tcpcraft: truncated packet")
	ErrNotTCP    = errors.New("tcpcraft: not a TCP segment")
	ErrHeader    = errors.New("tcpcraft: malformed header")
)

// Segment is one IPv4 or IPv6 packet carrying a TCP segment: every header field, the options
// and the payload. The zero values of the Override fields mean "compute": lengths, data offset
// and checksums are then right; set them to craft malformed packets on purpose.
type Segment struct {
	// IP header. Version 0 means 4 or 6 from Src.
	Version   uint8
	Src, Dst  netip.Addr
	TOS       uint8  // IPv4 TOS / IPv6 traffic class (DSCP and ECN)
	TTL       uint8  // IPv4 TTL / IPv6 hop limit
	ID        uint16 // IPv4 identification
	IPFlags   uint8  // IPv4 flags: IPFlagDF, IPFlagMF, IPFlagReserved
	FragOff   uint16 // IPv4 fragment offset in 8-byte units
	FlowLabel uint32 // IPv6 flow label (20 bits)
	IPOptions []byte // IPv4 options, written as given (pad them to 4 bytes for a valid IHL)

	// TCP header.
	SrcPort, DstPort uint16
	Seq, Ack         uint32
	Flags            uint16
	Window           uint16
	Urgent           uint16
	Options          []Option
	Payload          []byte

	// Overrides (0 / false: computed).
	IHL            uint8  // IPv4 header length in 32-bit words
	TotalLen       uint16 // IPv4 total length / IPv6 payload length
	DataOffset     uint8  // TCP data offset in 32-bit words
	IPChecksum     uint16 // used when SetIPChecksum
	TCPChecksum    uint16 // used when SetTCPChecksum
	SetIPChecksum  bool
	SetTCPChecksum bool
	Protocol       uint8 // IP protocol / next header (0: TCP)

	// Set by Decode.
	OptErr       error  // why option parsing stopped early (nil: the whole area parsed)
	IPHeaderLen  int    // bytes of IP header (incl. IPv6 extension headers)
	TCPHeaderLen int    // bytes of TCP header (data offset × 4)
	OptionBytes  []byte // the raw options area as received (aliases the packet)
	ChecksumOK   bool   // the received TCP checksum verifies
	IPChecksumOK bool   // the received IPv4 header checksum verifies (true for IPv6)

	optBuf [MaxOptionsLen]Option
}

// IsV6 reports whether the segment is (or will be written as) IPv6.
func (s *Segment) IsV6() bool {
	if s.Version != 0 {
		return s.Version == 6
	}
	return s.Src.Is6() && !s.Src.Is4In6()
}

// Has reports whether all of flags are set.
func (s *Segment) Has(flags uint16) bool { return s.Flags&flags == flags }

// Len is the TCP payload length.
func (s *Segment) Len() int { return len(s.Payload) }

// SeqLen is the sequence space the segment occupies (payload, plus one each for SYN and FIN).
func (s *Segment) SeqLen() uint32 {
	n := uint32(len(s.Payload))
	if s.Flags&FlagSYN != 0 {
		n++
	}
	if s.Flags&FlagFIN != 0 {
		n++
	}
	return n
}

// Option returns the first option of kind.
func (s *Segment) Option(kind uint8) (Option, bool) { return FindOption(s.Options, kind) }

// AppendTo appends the packet's bytes (IP header, TCP header, options with explicit zero
// padding, payload) to b.
func (s *Segment) AppendTo(b []byte) []byte {
	start := len(b)
	optLen := 0
	for _, o := range s.Options {
		optLen += o.WireLen()
	}
	padded := (optLen + 3) &^ 3
	doff := s.DataOffset
	if doff == 0 {
		doff = uint8((TCPHeaderLen + padded) / 4)
	}
	// A data offset larger than what the options fill is padded with zeros, so the header
	// is as long as it says.
	if need := int(doff)*4 - TCPHeaderLen; need > padded {
		padded = need
	}
	tcpLen := TCPHeaderLen + padded + len(s.Payload)
	proto := s.Protocol
	if proto == 0 {
		proto = ProtoTCP
	}
	v6 := s.IsV6()
	ipStart := start
	if v6 {
		plen := s.TotalLen
		if plen == 0 {
			plen = uint16(tcpLen)
		}
		var h [IPv6HeaderLen]byte
		binary.BigEndian.PutUint32(h[0:], 6<<28|uint32(s.TOS)<<20|s.FlowLabel&0xfffff)
		binary.BigEndian.PutUint16(h[4:], plen)
		h[6] = proto
		h[7] = s.TTL
		src, dst := s.Src.As16(), s.Dst.As16()
		copy(h[8:], src[:])
		copy(h[24:], dst[:])
		b = append(b, h[:]...)
	} else {
		ihl := s.IHL
		if ihl == 0 {
			ihl = uint8((IPv4HeaderLen + len(s.IPOptions) + 3) / 4)
		}
		tot := s.TotalLen
		if tot == 0 {
			tot = uint16(IPv4HeaderLen + len(s.IPOptions) + tcpLen)
		}
		var h [IPv4HeaderLen]byte
		h[0] = 4<<4 | ihl&0xf
		h[1] = s.TOS
		binary.BigEndian.PutUint16(h[2:], tot)
		binary.BigEndian.PutUint16(h[4:], s.ID)
		binary.BigEndian.PutUint16(h[6:], uint16(s.IPFlags&7)<<13|s.FragOff&0x1fff)
		h[8] = s.TTL
		h[9] = proto
		src, dst := s.Src.Unmap().As4(), s.Dst.Unmap().As4()
		copy(h[12:], src[:])
		copy(h[16:], dst[:])
		b = append(b, h[:]...)
		b = append(b, s.IPOptions...)
		hl := len(b) - ipStart
		csum := s.IPChecksum
		if !s.SetIPChecksum {
			csum = checksum.Checksum(b[ipStart : ipStart+hl])
		}
		binary.BigEndian.PutUint16(b[ipStart+10:], csum)
	}
	tcpStart := len(b)
	var t [TCPHeaderLen]byte
	binary.BigEndian.PutUint16(t[0:], s.SrcPort)
	binary.BigEndian.PutUint16(t[2:], s.DstPort)
	binary.BigEndian.PutUint32(t[4:], s.Seq)
	binary.BigEndian.PutUint32(t[8:], s.Ack)
	t[12] = doff<<4 | uint8(s.Flags>>8)&0xf
	t[13] = uint8(s.Flags)
	binary.BigEndian.PutUint16(t[14:], s.Window)
	binary.BigEndian.PutUint16(t[18:], s.Urgent)
	b = append(b, t[:]...)
	for _, o := range s.Options {
		b = AppendOption(b, o)
	}
	for len(b)-tcpStart < TCPHeaderLen+padded {
		b = append(b, 0)
	}
	b = append(b, s.Payload...)
	csum := s.TCPChecksum
	if !s.SetTCPChecksum {
		csum = checksum.Transport(s.Src, s.Dst, ProtoTCP, b[tcpStart:])
	}
	binary.BigEndian.PutUint16(b[tcpStart+16:], csum)
	return b
}

// Bytes returns the packet as a new slice.
func (s *Segment) Bytes() []byte { return s.AppendTo(nil) }

// MarshalBinary implements encoding.BinaryMarshaler.
func (s *Segment) MarshalBinary() ([]byte, error) { return s.Bytes(), nil }

// UnmarshalBinary decodes an IP packet (see Decode). The segment aliases data.
func (s *Segment) UnmarshalBinary(data []byte) error { return Decode(data, s) }

// IPv6 extension headers Decode walks to reach TCP.
const (
	ipv6HopByHop = 0
	ipv6Routing  = 43
	ipv6Fragment = 44
	ipv6DestOpts = 60
)

// Decode parses an IPv4 or IPv6 packet holding a TCP segment into s without allocating; s
// aliases pkt. Every length is checked against the bytes present: a short packet is
// ErrTruncated, inconsistent header fields are ErrHeader, another protocol (or a non-first
// fragment) is ErrNotTCP. Bytes after the IP total length (Ethernet padding) are ignored. A
// malformed options area does not fail the decode: s.Options holds the options before the
// bad one and s.OptErr says what was wrong.
func Decode(pkt []byte, s *Segment) error {
	*s = Segment{}
	if len(pkt) < 1 {
		return fmt.Errorf("%w: empty", ErrTruncated)
	}
	var tcp []byte
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < IPv4HeaderLen {
			return fmt.Errorf("%w: %d bytes, IPv4 header needs %d", ErrTruncated, len(pkt), IPv4HeaderLen)
		}
		ihl := int(pkt[0]&0xf) * 4
		tot := int(binary.BigEndian.Uint16(pkt[2:]))
		if ihl < IPv4HeaderLen {
			return fmt.Errorf("%w: IPv4 header length %d", ErrHeader, ihl)
		}
		if tot < ihl {
			return fmt.Errorf("%w: IPv4 total length %d below header length %d", ErrHeader, tot, ihl)
		}
		if len(pkt) < tot {
			return fmt.Errorf("%w: %d bytes, IPv4 total length %d", ErrTruncated, len(pkt), tot)
		}
		s.Version = 4
		s.IHL = pkt[0] & 0xf
		s.TOS = pkt[1]
		s.TotalLen = uint16(tot)
		s.ID = binary.BigEndian.Uint16(pkt[4:])
		fr := binary.BigEndian.Uint16(pkt[6:])
		s.IPFlags = uint8(fr >> 13)
		s.FragOff = fr & 0x1fff
		s.TTL = pkt[8]
		s.Protocol = pkt[9]
		s.IPChecksum = binary.BigEndian.Uint16(pkt[10:])
		s.Src = netip.AddrFrom4([4]byte(pkt[12:16]))
		s.Dst = netip.AddrFrom4([4]byte(pkt[16:20]))
		s.IPOptions = pkt[IPv4HeaderLen:ihl:ihl]
		s.IPChecksumOK = checksum.Checksum(pkt[:ihl]) == 0
		s.IPHeaderLen = ihl
		if s.Protocol != ProtoTCP || s.FragOff != 0 {
			return fmt.Errorf("%w: protocol %d, fragment offset %d", ErrNotTCP, s.Protocol, s.FragOff)
		}
		tcp = pkt[ihl:tot]
	case 6:
		if len(pkt) < IPv6HeaderLen {
			return fmt.Errorf("%w: %d bytes, IPv6 header needs %d", ErrTruncated, len(pkt), IPv6HeaderLen)
		}
		w := binary.BigEndian.Uint32(pkt)
		plen := int(binary.BigEndian.Uint16(pkt[4:]))
		if len(pkt) < IPv6HeaderLen+plen {
			return fmt.Errorf("%w: %d bytes, IPv6 payload length %d", ErrTruncated, len(pkt), plen)
		}
		s.Version = 6
		s.TOS = uint8(w >> 20)
		s.FlowLabel = w & 0xfffff
		s.TotalLen = uint16(plen)
		s.TTL = pkt[7]
		s.Src = netip.AddrFrom16([16]byte(pkt[8:24]))
		s.Dst = netip.AddrFrom16([16]byte(pkt[24:40]))
		s.IPChecksumOK = true
		next := pkt[6]
		off := IPv6HeaderLen
		end := IPv6HeaderLen + plen
		for next == ipv6HopByHop || next == ipv6Routing || next == ipv6DestOpts {
			if end-off < 8 {
				return fmt.Errorf("%w: IPv6 extension header %d at %d", ErrTruncated, next, off)
			}
			l := (int(pkt[off+1]) + 1) * 8
			if end-off < l {
				return fmt.Errorf("%w: IPv6 extension header %d of %d bytes at %d", ErrTruncated, next, l, off)
			}
			next = pkt[off]
			off += l
		}
		s.Protocol = next
		s.IPHeaderLen = off
		if next != ProtoTCP {
			return fmt.Errorf("%w: next header %d", ErrNotTCP, next)
		}
		tcp = pkt[off:end]
	default:
		return fmt.Errorf("%w: IP version %d", ErrHeader, pkt[0]>>4)
	}
	if len(tcp) < TCPHeaderLen {
		return fmt.Errorf("%w: %d bytes of TCP, header needs %d", ErrTruncated, len(tcp), TCPHeaderLen)
	}
	doff := int(tcp[12]>>4) * 4
	if doff < TCPHeaderLen {
		return fmt.Errorf("%w: TCP data offset %d", ErrHeader, doff)
	}
	if doff > len(tcp) {
		return fmt.Errorf("%w: TCP data offset %d beyond the %d-byte segment", ErrTruncated, doff, len(tcp))
	}
	s.SrcPort = binary.BigEndian.Uint16(tcp[0:])
	s.DstPort = binary.BigEndian.Uint16(tcp[2:])
	s.Seq = binary.BigEndian.Uint32(tcp[4:])
	s.Ack = binary.BigEndian.Uint32(tcp[8:])
	s.DataOffset = tcp[12] >> 4
	s.Flags = uint16(tcp[12]&0xf)<<8 | uint16(tcp[13])
	s.Window = binary.BigEndian.Uint16(tcp[14:])
	s.TCPChecksum = binary.BigEndian.Uint16(tcp[16:])
	s.Urgent = binary.BigEndian.Uint16(tcp[18:])
	s.TCPHeaderLen = doff
	s.OptionBytes = tcp[TCPHeaderLen:doff:doff]
	s.Payload = tcp[doff:len(tcp):len(tcp)]
	s.ChecksumOK = checksum.Verify(s.Src, s.Dst, ProtoTCP, tcp)
	s.SetIPChecksum, s.SetTCPChecksum = true, true
	s.Options, s.OptErr = ParseOptions(s.optBuf[:0], s.OptionBytes)
	return nil
}

// Header returns the IP and TCP headers of a decoded packet (pkt as passed to Decode).
func (s *Segment) Header(pkt []byte) []byte {
	n := min(s.IPHeaderLen+s.TCPHeaderLen, len(pkt))
	return pkt[:n]
}

// Clone returns a deep copy whose slices no longer alias the decoded packet.
func (s *Segment) Clone() *Segment {
	c := *s
	c.IPOptions = append([]byte(nil), s.IPOptions...)
	c.OptionBytes = append([]byte(nil), s.OptionBytes...)
	c.Payload = append([]byte(nil), s.Payload...)
	c.Options = make([]Option, len(s.Options))
	for i, o := range s.Options {
		o.Data = append([]byte(nil), o.Data...)
		c.Options[i] = o
	}
	return &c
}
