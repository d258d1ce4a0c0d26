package timestamp

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"time"
)

// ErrorEstimate is the RFC 4656 §4.1.2 Error Estimate carried next to OWAMP, TWAMP and STAMP
// timestamps:
//
//	 0                   1
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|S|Z|   Scale   |   Multiplier  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// S is set when the clock is synchronised to UTC by an external source, Z (RFC 8186) is set
// when the timestamp next to it is in truncated PTPv2 format rather than NTP, and the error is
// Multiplier × 2^(Scale−32) seconds. A Multiplier of 0 is invalid (receivers should discard
// such packets).
type ErrorEstimate uint16

// ErrorEstimateSize is the wire size of an ErrorEstimate in bytes.
const ErrorEstimateSize = 2

const (
	eeS          = 1 << 15
	eeZ          = 1 << 14
	eeScaleShift = 8
	eeScaleMask  = 0x3F
	maxScale     = eeScaleMask
	maxMult      = 0xFF
)

// MaxErrorSeconds is the largest error, in seconds, an Error Estimate can express: 255 × 2^31.
const MaxErrorSeconds = 255 * (1 << 31)

// S reports whether the S (synchronised) bit is set.
func (e ErrorEstimate) S() bool { return e&eeS != 0 }

// Z reports whether the Z bit is set (RFC 8186: the timestamp is truncated PTPv2, not NTP).
func (e ErrorEstimate) Z() bool { return e&eeZ != 0 }

// Scale returns the 6-bit Scale field.
func (e ErrorEstimate) Scale() uint8 { return uint8(e>>eeScaleShift) & eeScaleMask }

// Multiplier returns the 8-bit Multiplier field.
func (e ErrorEstimate) Multiplier() uint8 { return uint8(e) }

// Valid reports whether the Multiplier is non-zero, as RFC 4656 requires.
func (e ErrorEstimate) Valid() bool { return e.Multiplier() != 0 }

// Seconds returns the estimated error, Multiplier × 2^(Scale−32) seconds. The result is exact
// (a float64 holds every value the 14 bits can express).
func (e ErrorEstimate) Seconds() float64 {
	return math.Ldexp(float64(e.Multiplier()), int(e.Scale())-32)
}

// Duration returns the estimated error rounded up to the next nanosecond, saturating at the
// largest time.Duration.
func (e ErrorEstimate) Duration() time.Duration {
	s := e.Seconds()
	ns := math.Ceil(s * 1e9)
	if ns >= math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(ns)
}

// String formats e like "S=1 Z=0 scale=24 mult=1 (3.90625ms)"; the duration is Duration().
func (e ErrorEstimate) String() string {
	b2i := func(b bool) int {
		if b {
			return 1
		}
		return 0
	}
	return fmt.Sprintf("S=%d Z=%d scale=%d mult=%d (%v)", b2i(e.S()), b2i(e.Z()), e.Scale(),
		e.Multiplier(), e.Duration())
}

// MakeErrorEstimate assembles an Error Estimate from its fields; scale is truncated to 6 bits.
func MakeErrorEstimate(synced, z bool, scale, multiplier uint8) ErrorEstimate {
	e := ErrorEstimate(scale&eeScaleMask)<<eeScaleShift | ErrorEstimate(multiplier)
	if synced {
		e |= eeS
	}
	if z {
		e |= eeZ
	}
	return e
}

// NewErrorEstimate returns the Error Estimate for a clock whose estimated error is err: the
// smallest encodable value Multiplier × 2^(Scale−32) s that is ≥ err, so the estimate never
// understates the error. The Multiplier is never 0: an error ≤ 0 encodes as the smallest
// non-zero estimate (Scale 0, Multiplier 1 = 2^-32 s). Errors beyond MaxErrorSeconds cannot
// occur for a time.Duration.
func NewErrorEstimate(synced, z bool, err time.Duration) ErrorEstimate {
	scale, mult := encodeError(err)
	return MakeErrorEstimate(synced, z, scale, mult)
}

// encodeError finds the smallest scale at which ceil(err / 2^(scale-32) s) fits in 8 bits.
// The smallest such scale also gives the smallest encodable value ≥ err, because
// 2·ceil(x) ≥ ceil(2x) means a coarser step never rounds up less.
func encodeError(err time.Duration) (scale, mult uint8) {
	if err <= 0 {
		return 0, 1
	}
	// N = err_ns × 2^32 as a 128-bit number (hi, lo); the multiplier at scale s is
	// ceil(N / (1e9 × 2^s)) = ceil(ceil(N / 2^s) / 1e9).
	ns := uint64(err)
	hi, lo := ns>>32, ns<<32
	for s := 0; s <= maxScale; s++ {
		// q = ceil(N / 2^s)
		qhi, qlo := hi, lo
		if s > 0 {
			rem := lo & (1<<s - 1)
			qlo = lo>>s | hi<<(64-s)
			qhi = hi >> s
			if rem != 0 {
				var c uint64
				qlo, c = bits.Add64(qlo, 1, 0)
				qhi += c
			}
		}
		if qhi >= nsPerSec {
			continue // quotient would not fit in 64 bits, let alone 8
		}
		m, r := bits.Div64(qhi, qlo, nsPerSec)
		if r != 0 {
			m++
		}
		if m <= maxMult {
			return uint8(s), uint8(m)
		}
	}
	return maxScale, maxMult // unreachable for any time.Duration
}

// AppendTo appends the 2-byte big-endian wire form of e to b.
func (e ErrorEstimate) AppendTo(b []byte) []byte { return binary.BigEndian.AppendUint16(b, uint16(e)) }

// Put writes the 2-byte big-endian wire form of e to b, which must hold at least 2 bytes.
func (e ErrorEstimate) Put(b []byte) { binary.BigEndian.PutUint16(b, uint16(e)) }

// ErrorEstimateFromBytes decodes a big-endian Error Estimate from the first 2 bytes of b. It
// checks only the length: a zero Multiplier is returned as is (see Valid), because reflectors
// must copy the sender's estimate unchanged.
func ErrorEstimateFromBytes(b []byte) (ErrorEstimate, error) {
	if len(b) < ErrorEstimateSize {
		return 0, fmt.Errorf("error estimate: %w (%d < %d bytes)", ErrShort, len(b), ErrorEstimateSize)
	}
	return ReadErrorEstimate(b), nil
}

// ReadErrorEstimate decodes the first 2 bytes of b without a length check.
func ReadErrorEstimate(b []byte) ErrorEstimate { return ErrorEstimate(binary.BigEndian.Uint16(b)) }
