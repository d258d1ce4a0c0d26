// Package checksum computes the RFC 1071 Internet checksum (with RFC 1624 incremental update and TCP/UDP pseudo-headers) and the CRC-32 packet hash of SPP.
package checksum

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// Sum adds the 16-bit big-endian words of b to initial in one's-complement arithmetic and
// returns the partial sum, not yet folded to 16 bits nor complemented. An odd trailing byte
// is padded with a zero low byte, as RFC 1071 §4.1 does. Partial sums chain: Sum(b2, Sum(b1, 0))
// equals Sum(b1‖b2) when len(b1) is even. Any uint32 is a valid initial value.
//
// The loop adds 64-bit big-endian words with end-around carry, 32 bytes per iteration; by
// RFC 1071 §2(B) that is the same one's-complement sum as adding 16-bit words.
func Sum(b []byte, initial uint32) uint32 {
	var acc, c, carries uint64
	acc = uint64(initial)
	for len(b) >= 32 {
		w0 := binary.BigEndian.Uint64(b)
		w1 := binary.BigEndian.Uint64(b[8:])
		w2 := binary.BigEndian.Uint64(b[16:])
		w3 := binary.BigEndian.Uint64(b[24:])
		acc, c = bits.Add64(acc, w0, 0)
		acc, c = bits.Add64(acc, w1, c)
		acc, c = bits.Add64(acc, w2, c)
		acc, c = bits.Add64(acc, w3, c)
		carries += c // at most one per 32 bytes; added back once after the loop
		b = b[32:]
	}
	// Without a carry in, a carry out leaves acc ≤ 2^64−2, so adding it back cannot overflow.
	acc, c = bits.Add64(acc, carries, 0)
	acc += c
	for len(b) >= 8 {
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b), 0)
		acc += c
		b = b[8:]
	}
	// At most 7 bytes remain. Word position does not matter to a one's-complement sum of
	// 16-bit words, only 16-bit alignment, so add them as a 32-bit, a 16-bit and a lone high
	// byte (RFC 1071 pads an odd last byte with a zero low byte).
	var tail uint64
	if len(b) >= 4 {
		tail = uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		tail += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		tail += uint64(b[0]) << 8
	}
	acc, c = bits.Add64(acc, tail, 0)
	acc += c
	// Fold 64 → 32 bits with end-around carry.
	s, c32 := bits.Add32(uint32(acc>>32), uint32(acc), 0)
	return s + c32
}

// Fold reduces a partial sum to 16 bits with end-around carries and returns the
// one's-complement sum (not complemented; Checksum and Transport complement it).
func Fold(sum uint32) uint16 {
	sum = sum>>16 + sum&0xFFFF
	sum = sum>>16 + sum&0xFFFF
	return uint16(sum)
}

// Checksum returns the RFC 1071 Internet checksum of b: the complement of the folded
// one's-complement sum. Computed over data that includes a correct checksum field it is 0.
func Checksum(b []byte) uint16 {
	return ^Fold(Sum(b, 0))
}

// Update returns the checksum after one 16-bit word covered by old changed from oldWord to
// newWord, using RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'). Unlike eqn. 2 it never produces
// the -0 value 0xFFFF from a valid checksum (RFC 1624 §3, §5 example: 0xDD2F with 0x5555 →
// 0x3285 gives 0x0000).
func Update(old uint16, oldWord, newWord uint16) uint16 {
	sum := uint32(^old) + uint32(^oldWord) + uint32(newWord)
	return ^Fold(sum)
}

// Protocol numbers for the pseudo-header (IANA "Assigned Internet Protocol Numbers").
const (
	ProtoICMP   uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoUDP    uint8 = 17
	ProtoICMPv6 uint8 = 58
)

// PseudoHeader returns the unfolded one's-complement sum of the TCP/UDP pseudo-header: RFC 793/768
// (source, destination, zero, protocol, 16-bit length) when both addresses are IPv4 (v4-mapped
// IPv6 addresses count as IPv4 only if both are), otherwise RFC 8200 §8.1 (16-byte source and
// destination, 32-bit upper-layer length, zeros, next header). length is the TCP/UDP header
// plus payload length in bytes. Pass the result as the initial value of Sum over the segment.
func PseudoHeader(src, dst netip.Addr, proto uint8, length int) uint32 {
	var acc uint64
	if src.Unmap().Is4() && dst.Unmap().Is4() {
		s, d := src.Unmap().As4(), dst.Unmap().As4()
		acc = uint64(binary.BigEndian.Uint32(s[:])) + uint64(binary.BigEndian.Uint32(d[:])) +
			uint64(proto) + uint64(uint16(length))
	} else {
		s, d := src.As16(), dst.As16()
		for i := 0; i < 16; i += 4 {
			acc += uint64(binary.BigEndian.Uint32(s[i:])) + uint64(binary.BigEndian.Uint32(d[i:]))
		}
		acc += uint64(uint32(length)) + uint64(proto)
	}
	// acc < 2^37: fold to 32 bits with end-around carry.
	acc = acc>>32 + acc&0xFFFF_FFFF
	acc = acc>>32 + acc&0xFFFF_FFFF
	return uint32(acc)
}

// Transport returns the TCP or UDP (or ICMPv6) checksum of segment (header and payload) sent
// from src to dst: the value to store in the checksum field after zeroing it. Computed over a
// segment whose checksum field is already filled in, it returns 0 when the checksum is right.
// UDP senders must transmit a computed 0 as 0xFFFF (RFC 768); Verify accounts for that.
func Transport(src, dst netip.Addr, proto uint8, segment []byte) uint16 {
	return ^Fold(Sum(segment, PseudoHeader(src, dst, proto, len(segment))))
}

// Verify reports whether the checksum in segment (a complete TCP, UDP or ICMPv6 header plus
// payload) is correct. A UDP checksum field of 0 over IPv4 means "not computed" (RFC 768) and
// verifies; over IPv6 it is invalid (RFC 8200 §8.1).
func Verify(src, dst netip.Addr, proto uint8, segment []byte) bool {
	if proto == ProtoUDP && len(segment) >= 8 && segment[6] == 0 && segment[7] == 0 {
		return src.Unmap().Is4() && dst.Unmap().Is4()
	}
	return Transport(src, dst, proto, segment) == 0
}
