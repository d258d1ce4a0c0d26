package twampctl

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"fmt"
	"hash"
)

// TWAMP-Test authenticated/encrypted packet sizes (RFC 5357 §4.1.2, §4.2.1; reflector
// packets are 112 octets on the wire in every real peer, see reference §4).
const (
	TestSenderAuthLen    = 48  // Seq · MBZ · Timestamp · EE · MBZ · HMAC
	TestReflectorAuthLen = 112 // through the HMAC at offset 96
	testSenderHMACOff    = 32
	testReflectorHMACOff = 96
)

// TestCrypto protects TWAMP-Test packets of one session in authenticated or encrypted mode
// (RFC 4656 §4.1.2 as used by RFC 5357). Not safe for concurrent use: give each goroutine
// its own (Clone).
type TestCrypto struct {
	mode    Mode // ModeAuthenticated or ModeEncrypted
	blk     cipher.Block
	hmacKey [32]byte
	mac     hash.Hash
	sum     [sha1.Size]byte
}

// NewTestCrypto derives the per-session test keys from the session's SID and the control
// connection's session keys: AES key = AES-ECB(SID, AES session key); HMAC key =
// AES-CBC(SID, IV 0, HMAC session key). mode must be authenticated or encrypted.
func NewTestCrypto(mode Mode, sid [16]byte, k SessionKeys) (*TestCrypto, error) {
	if mode != ModeAuthenticated && mode != ModeEncrypted {
		return nil, fmt.Errorf("%w: test crypto needs authenticated or encrypted mode, got %s", ErrMode, mode)
	}
	sidBlk, _ := aes.NewCipher(sid[:])
	var aesKey [16]byte
	sidBlk.Encrypt(aesKey[:], k.AES[:])
	t := &TestCrypto{mode: mode}
	cbcEncrypt(sidBlk, [16]byte{}, t.hmacKey[:], k.HMAC[:])
	t.blk, _ = aes.NewCipher(aesKey[:])
	t.mac = hmac.New(sha1.New, t.hmacKey[:])
	return t, nil
}

// Clone returns an independent TestCrypto with the same keys.
func (t *TestCrypto) Clone() *TestCrypto {
	c := &TestCrypto{mode: t.mode, blk: t.blk, hmacKey: t.hmacKey}
	c.mac = hmac.New(sha1.New, c.hmacKey[:])
	return c
}

// span is the protected prefix: authenticated mode covers the first block only.
func (t *TestCrypto) span(full int) int {
	if t.mode == ModeAuthenticated {
		return 16
	}
	return full
}

func (t *TestCrypto) hmacOf(p []byte) []byte {
	t.mac.Reset()
	t.mac.Write(p)
	return t.mac.Sum(t.sum[:0])[:HMACLen]
}

func (t *TestCrypto) seal(pkt []byte, hmacOff int) error {
	if len(pkt) < hmacOff+HMACLen {
		return fmt.Errorf("%w: protected test packet needs %d octets, got %d", ErrLength, hmacOff+HMACLen, len(pkt))
	}
	n := t.span(hmacOff)
	copy(pkt[hmacOff:hmacOff+HMACLen], t.hmacOf(pkt[:n]))
	if t.mode == ModeAuthenticated {
		t.blk.Encrypt(pkt[:16], pkt[:16])
	} else {
		cbcEncrypt(t.blk, [16]byte{}, pkt[:n], pkt[:n])
	}
	return nil
}

func (t *TestCrypto) open(pkt []byte, hmacOff int) error {
	if len(pkt) < hmacOff+HMACLen {
		return fmt.Errorf("%w: protected test packet needs %d octets, got %d", ErrLength, hmacOff+HMACLen, len(pkt))
	}
	n := t.span(hmacOff)
	if t.mode == ModeAuthenticated {
		t.blk.Decrypt(pkt[:16], pkt[:16])
	} else {
		cbcDecrypt(t.blk, [16]byte{}, pkt[:n], pkt[:n])
	}
	if subtle.ConstantTimeCompare(t.hmacOf(pkt[:n]), pkt[hmacOff:hmacOff+HMACLen]) != 1 {
		return ErrHMAC
	}
	return nil
}

// SealSender fills the HMAC of a plaintext Session-Sender packet (≥ 48 octets) and
// encrypts it in place; padding beyond the HMAC stays clear.
func (t *TestCrypto) SealSender(pkt []byte) error { return t.seal(pkt, testSenderHMACOff) }

// OpenSender decrypts a Session-Sender packet in place and verifies its HMAC.
func (t *TestCrypto) OpenSender(pkt []byte) error { return t.open(pkt, testSenderHMACOff) }

// SealReflector fills the HMAC of a plaintext Session-Reflector packet (≥ 112 octets) and
// encrypts it in place.
func (t *TestCrypto) SealReflector(pkt []byte) error { return t.seal(pkt, testReflectorHMACOff) }

// OpenReflector decrypts a Session-Reflector packet in place and verifies its HMAC.
func (t *TestCrypto) OpenReflector(pkt []byte) error { return t.open(pkt, testReflectorHMACOff) }
