package twampctl

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"hash"
)

// PBKDF2SHA1 derives keyLen octets from password and salt with iter iterations of
// HMAC-SHA1 (RFC 8018 §5.2), the KDF RFC 4656 §6.10 prescribes for TWAMP/OWAMP.
func PBKDF2SHA1(password, salt []byte, iter, keyLen int) []byte {
	prf := hmac.New(sha1.New, password)
	hLen := prf.Size()
	blocks := (keyLen + hLen - 1) / hLen
	out := make([]byte, 0, blocks*hLen)
	var idx [4]byte
	u := make([]byte, hLen)
	t := make([]byte, hLen)
	for i := 1; i <= blocks; i++ {
		prf.Reset()
		prf.Write(salt)
		binary.BigEndian.PutUint32(idx[:], uint32(i))
		prf.Write(idx[:])
		u = prf.Sum(u[:0])
		copy(t, u)
		for n := 2; n <= iter; n++ {
			prf.Reset()
			prf.Write(u)
			u = prf.Sum(u[:0])
			for j := range t {
				t[j] ^= u[j]
			}
		}
		out = append(out, t...)
	}
	return out[:keyLen]
}

// KDFKey derives the 16-octet token key from the shared secret, the greeting's Salt and Count.
func KDFKey(secret []byte, salt [16]byte, count uint32) [16]byte {
	return [16]byte(PBKDF2SHA1(secret, salt[:], int(count), 16))
}

// SessionKeys are the per-control-connection keys chosen by the client and carried in Token.
type SessionKeys struct {
	AES  [16]byte
	HMAC [32]byte
}

// cbcEncrypt encrypts src (multiple of 16) into dst with CBC from iv, returning the last
// ciphertext block (the next IV).
func cbcEncrypt(b cipher.Block, iv [16]byte, dst, src []byte) [16]byte {
	for i := 0; i+16 <= len(src); i += 16 {
		for j := 0; j < 16; j++ {
			iv[j] ^= src[i+j]
		}
		b.Encrypt(dst[i:i+16], iv[:])
		copy(iv[:], dst[i:i+16])
	}
	return iv
}

// cbcDecrypt decrypts src (multiple of 16) into dst with CBC from iv, returning the last
// ciphertext block (the next IV). dst and src may be the same slice.
func cbcDecrypt(b cipher.Block, iv [16]byte, dst, src []byte) [16]byte {
	var c [16]byte
	for i := 0; i+16 <= len(src); i += 16 {
		copy(c[:], src[i:i+16])
		b.Decrypt(dst[i:i+16], c[:])
		for j := 0; j < 16; j++ {
			dst[i+j] ^= iv[j]
		}
		iv = c
	}
	return iv
}

// EncryptToken builds the Set-Up-Response Token: AES-128-CBC (IV 0, key kdfKey) over
// Challenge ‖ AES session key ‖ HMAC session key.
func EncryptToken(kdfKey [16]byte, challenge [16]byte, k SessionKeys) [64]byte {
	var plain, tok [64]byte
	copy(plain[:16], challenge[:])
	copy(plain[16:32], k.AES[:])
	copy(plain[32:], k.HMAC[:])
	blk, _ := aes.NewCipher(kdfKey[:]) // 16-octet key cannot fail
	cbcEncrypt(blk, [16]byte{}, tok[:], plain[:])
	return tok
}

// DecryptToken recovers the session keys from Token and checks the embedded challenge
// against the greeting's (constant time). ErrChallenge means the secrets differ.
func DecryptToken(kdfKey [16]byte, challenge [16]byte, token [64]byte) (SessionKeys, error) {
	var plain [64]byte
	blk, _ := aes.NewCipher(kdfKey[:])
	cbcDecrypt(blk, [16]byte{}, plain[:], token[:])
	if subtle.ConstantTimeCompare(plain[:16], challenge[:]) != 1 {
		return SessionKeys{}, ErrChallenge
	}
	var k SessionKeys
	copy(k.AES[:], plain[16:32])
	copy(k.HMAC[:], plain[32:])
	return k, nil
}

// Stream is one direction of a secured control connection: an AES-CBC stream that chains
// across messages, plus the running HMAC-SHA1 over plaintext since the previous HMAC field.
// The zero-key open-mode Stream passes bytes through and leaves HMAC fields zero.
type Stream struct {
	secure bool
	blk    cipher.Block
	iv     [16]byte
	mac    hash.Hash
}

// NewOpenStream returns a pass-through stream for unauthenticated mode.
func NewOpenStream() *Stream { return &Stream{} }

// NewSecureStream returns the stream for one direction with its starting IV
// (Client-IV for client → server, Server-IV for server → client).
func NewSecureStream(k SessionKeys, iv [16]byte) *Stream {
	blk, _ := aes.NewCipher(k.AES[:])
	return &Stream{secure: true, blk: blk, iv: iv, mac: hmac.New(sha1.New, k.HMAC[:])}
}

// Secure reports whether the stream encrypts.
func (s *Stream) Secure() bool { return s.secure }

// Encrypt feeds plaintext p (multiple of 16 octets) into the HMAC and encrypts it in place.
func (s *Stream) Encrypt(p []byte) error {
	if !s.secure {
		return nil
	}
	if len(p)%16 != 0 {
		return fmt.Errorf("%w: %d octets is not a whole number of AES blocks", ErrLength, len(p))
	}
	s.mac.Write(p)
	s.iv = cbcEncrypt(s.blk, s.iv, p, p)
	return nil
}

// SealHMAC writes the truncated HMAC of everything encrypted since the last HMAC into
// h, encrypts it in place and restarts the HMAC. Open mode: h is zeroed (MBZ).
func (s *Stream) SealHMAC(h []byte) {
	if !s.secure {
		clear(h[:HMACLen])
		return
	}
	var sum [sha1.Size]byte
	copy(h[:HMACLen], s.mac.Sum(sum[:0]))
	s.mac.Reset()
	s.iv = cbcEncrypt(s.blk, s.iv, h[:HMACLen], h[:HMACLen])
}

// Decrypt decrypts p (multiple of 16 octets) in place and feeds the plaintext to the HMAC.
func (s *Stream) Decrypt(p []byte) error {
	if !s.secure {
		return nil
	}
	if len(p)%16 != 0 {
		return fmt.Errorf("%w: %d octets is not a whole number of AES blocks", ErrLength, len(p))
	}
	s.iv = cbcDecrypt(s.blk, s.iv, p, p)
	s.mac.Write(p)
	return nil
}

// OpenHMAC decrypts the 16-octet HMAC field h in place and checks it against the HMAC of
// everything decrypted since the last HMAC (constant time), then restarts the HMAC.
// Open mode: the field is MBZ and ignored.
func (s *Stream) OpenHMAC(h []byte) error {
	if !s.secure {
		return nil
	}
	s.iv = cbcDecrypt(s.blk, s.iv, h[:HMACLen], h[:HMACLen])
	var sum [sha1.Size]byte
	want := s.mac.Sum(sum[:0])[:HMACLen]
	s.mac.Reset()
	if subtle.ConstantTimeCompare(want, h[:HMACLen]) != 1 {
		return ErrHMAC
	}
	return nil
}

// Seal encrypts a whole message whose last 16 octets are its HMAC field.
func (s *Stream) Seal(msg []byte) error {
	if len(msg) < HMACLen {
		return fmt.Errorf("%w: message shorter than its HMAC", ErrLength)
	}
	n := len(msg) - HMACLen
	if err := s.Encrypt(msg[:n]); err != nil {
		return err
	}
	s.SealHMAC(msg[n:])
	return nil
}

// Open decrypts and authenticates a whole message whose last 16 octets are its HMAC field.
func (s *Stream) Open(msg []byte) error {
	if len(msg) < HMACLen {
		return fmt.Errorf("%w: message shorter than its HMAC", ErrLength)
	}
	n := len(msg) - HMACLen
	if err := s.Decrypt(msg[:n]); err != nil {
		return err
	}
	return s.OpenHMAC(msg[n:])
}
