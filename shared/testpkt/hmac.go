package testpkt

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"hash"
)

// ErrHMAC means an HMAC did not verify.
var ErrHMAC = errors.New("testpkt: HMAC verification failed")

// Signer computes and verifies STAMP HMAC-SHA-256/128 values (RFC 8762 §4.4, B-18) under one
// key without allocating. A Signer is not safe for concurrent use; give each goroutine its own
// (see Clone).
type Signer struct {
	key []byte
	h   hash.Hash
	sum [sha256.Size]byte
}

// NewSigner returns a Signer for key. The key is copied. RFC 8762 leaves key management out of
// scope; keys are raw octets (reference/stamp.md §5.5).
func NewSigner(key []byte) *Signer {
	k := append([]byte(nil), key...)
	return &Signer{key: k, h: hmac.New(sha256.New, k)}
}

// Clone returns an independent Signer with the same key.
func (s *Signer) Clone() *Signer { return NewSigner(s.key) }

// Key returns a copy of the key.
func (s *Signer) Key() []byte { return append([]byte(nil), s.key...) }

// sum16 returns the truncated HMAC of the concatenation of parts.
func (s *Signer) sum16(a, b []byte) [HMACLen]byte {
	s.h.Reset()
	s.h.Write(a)
	if len(b) > 0 {
		s.h.Write(b)
	}
	full := s.h.Sum(s.sum[:0])
	var out [HMACLen]byte
	copy(out[:], full)
	return out
}

// Sum returns HMAC-SHA-256 over data truncated to 16 octets.
func (s *Signer) Sum(data []byte) [HMACLen]byte { return s.sum16(data, nil) }

// Sign computes the base HMAC of an authenticated STAMP packet (either direction) over its
// first 96 octets and writes it at offset 96. pkt must hold at least 112 octets.
func (s *Signer) Sign(pkt []byte) {
	mac := s.sum16(pkt[:HMACCoverage], nil)
	copy(pkt[offAuthHMAC:offAuthHMAC+HMACLen], mac[:])
}

// Verify checks the base HMAC of an authenticated STAMP packet in constant time. Packets
// shorter than 112 octets fail.
func (s *Signer) Verify(pkt []byte) bool {
	if len(pkt) < AuthBaseLen {
		return false
	}
	mac := s.sum16(pkt[:HMACCoverage], nil)
	return subtle.ConstantTimeCompare(mac[:], pkt[offAuthHMAC:offAuthHMAC+HMACLen]) == 1
}

// TLVSum returns the HMAC TLV value for a packet (RFC 8972 §4.8): HMAC-SHA-256/128 over the
// packet's Sequence Number (its first 4 octets) followed by all TLVs before the HMAC TLV.
// base is the packet's base length (44 or 112) and hmacTLVOff the offset of the HMAC TLV's
// header in pkt.
func (s *Signer) TLVSum(pkt []byte, base, hmacTLVOff int) [HMACLen]byte {
	return s.sum16(pkt[:4], pkt[base:hmacTLVOff])
}

// VerifyTLV checks an HMAC TLV value in constant time (see TLVSum).
func (s *Signer) VerifyTLV(pkt []byte, base, hmacTLVOff int, value []byte) bool {
	if len(value) != HMACLen || hmacTLVOff < base || hmacTLVOff > len(pkt) || len(pkt) < 4 {
		return false
	}
	mac := s.TLVSum(pkt, base, hmacTLVOff)
	return subtle.ConstantTimeCompare(mac[:], value) == 1
}
