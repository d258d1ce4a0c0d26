// Package timestamp converts between time.Time and the on-wire timestamp formats probekit speaks (NTP, truncated PTPv2, ptptest 32.32) and encodes the RFC 4656 Error Estimate.
package timestamp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Size is the wire size in bytes of every 64-bit timestamp format in this package.
const Size = 8

// ErrShort is returned by the byte decoders when fewer bytes than a timestamp needs are given.
var ErrShort = errors.New("timestamp: buffer too short")

// ErrNanoseconds is returned by PTPFromBytes when the nanoseconds field is not below 10^9.
var ErrNanoseconds = errors.New("timestamp: PTP nanoseconds field >= 1e9")

const (
	nsPerSec = 1_000_000_000
	// ntpUnixOffset is the number of seconds from the NTP prime epoch (1900-01-01) to the
	// Unix epoch (1970-01-01): 70 years including 17 leap days.
	ntpUnixOffset = 2_208_988_800
	// ntpEra is the length of one NTP era (2^32 s, about 136 years).
	ntpEra = 1 << 32
)

// fracFromNanos converts 0 <= ns < 1e9 to a 32-bit binary fraction of a second, rounded to
// nearest (ties away from zero). The result may be 2^32, meaning "carry one second".
func fracFromNanos(ns uint64) uint64 {
	return (ns<<32 + nsPerSec/2) / nsPerSec
}

// nanosFromFrac converts a 32-bit binary fraction to nanoseconds, rounded to nearest. The
// result may be 1e9 (fractions within half a nanosecond of the next second).
func nanosFromFrac(frac uint64) int64 {
	return int64((frac*nsPerSec + 1<<31) >> 32)
}

// NTP is an RFC 5905 64-bit NTP timestamp: 32 bits of seconds since the era epoch and 32 bits
// of binary fraction (resolution 2^-32 s, about 233 ps).
//
// The 32-bit seconds field is ambiguous across eras. This package resolves it with a pivot
// at the middle of era 0, as RFC 4330 §3 recommends: seconds values with the top bit set
// (>= 2^31) are era 0 and count from 1900-01-01, values with the top bit clear are era 1 and
// count from 2036-02-07T06:28:16Z. The window of representable times is therefore
// 1968-01-20T03:14:08Z (inclusive) to 2104-02-26T09:42:24Z (exclusive); times outside it
// wrap by whole eras.
//
// The value 0 is RFC 5905's "unknown time" sentinel: Time returns the zero time.Time for it
// and NTPFromTime returns 0 for the zero time.Time. The single instant
// 2036-02-07T06:28:16Z, which would also encode as 0, therefore decodes as unknown.
type NTP uint64

// ntpPivot is the first NTP seconds value that belongs to era 0 (top bit set).
const ntpPivot = 1 << 31

// NTPFromTime returns t as an NTP timestamp, rounding to the nearest 2^-32 s.
func NTPFromTime(t time.Time) NTP {
	if t.IsZero() {
		return 0
	}
	frac := fracFromNanos(uint64(t.Nanosecond()))
	sec := uint64(t.Unix() + ntpUnixOffset)
	sec += frac >> 32 // carry when rounding reached a full second
	return NTP(sec<<32 | frac&0xFFFF_FFFF)
}

// Seconds returns the 32-bit seconds field.
func (n NTP) Seconds() uint32 { return uint32(n >> 32) }

// Fraction returns the 32-bit fraction field in units of 2^-32 s.
func (n NTP) Fraction() uint32 { return uint32(n) }

// IsZero reports whether n is the "unknown time" value 0.
func (n NTP) IsZero() bool { return n == 0 }

// unix returns n as seconds and nanoseconds since the Unix epoch (nanoseconds rounded to
// nearest, in [0, 1e9]; a value of 1e9 is normalised by time.Unix).
func (n NTP) unix() (sec, nsec int64) {
	s := int64(n.Seconds())
	if s < ntpPivot {
		s += ntpEra
	}
	return s - ntpUnixOffset, nanosFromFrac(uint64(n.Fraction()))
}

// Time returns n as a UTC time.Time rounded to the nearest nanosecond, using the era pivot
// documented on NTP. The value 0 yields the zero time.Time.
func (n NTP) Time() time.Time {
	if n == 0 {
		return time.Time{}
	}
	sec, nsec := n.unix()
	return time.Unix(sec, nsec).UTC()
}

// String formats n as an RFC 3339 time with nanoseconds, or "unknown" for 0.
func (n NTP) String() string {
	if n == 0 {
		return "unknown"
	}
	return n.Time().Format(time.RFC3339Nano)
}

// AppendTo appends the 8-byte big-endian wire form of n to b.
func (n NTP) AppendTo(b []byte) []byte { return binary.BigEndian.AppendUint64(b, uint64(n)) }

// Put writes the 8-byte big-endian wire form of n to b, which must hold at least 8 bytes.
func (n NTP) Put(b []byte) { binary.BigEndian.PutUint64(b, uint64(n)) }

// NTPFromBytes decodes a big-endian NTP timestamp from the first 8 bytes of b.
func NTPFromBytes(b []byte) (NTP, error) {
	if len(b) < Size {
		return 0, fmt.Errorf("ntp timestamp: %w (%d < %d bytes)", ErrShort, len(b), Size)
	}
	return ReadNTP(b), nil
}

// ReadNTP decodes the first 8 bytes of b without a length check beyond Go's own bounds check;
// the caller has already checked the length.
func ReadNTP(b []byte) NTP { return NTP(binary.BigEndian.Uint64(b)) }

// PTP is an RFC 8186 truncated PTPv2 timestamp: 32 bits of seconds since the PTP epoch
// (1970-01-01) and 32 bits of nanoseconds (always < 10^9 when valid).
//
// Conversions apply no leap-second offset: the seconds count is taken in the same time scale
// as the time.Time (UTC for time.Now). A peer whose clock really runs on TAI is ahead by
// TAIMinusUTC; callers that need the strict PTP time scale add it themselves. Seconds wrap
// after 2106-02-07.
type PTP uint64

// TAIMinusUTC is the offset of TAI from UTC in force since 2017-01-01 (37 s).
const TAIMinusUTC = 37 * time.Second

// PTPFromTime returns t as a truncated PTP timestamp (exact to the nanosecond).
func PTPFromTime(t time.Time) PTP {
	return PTP(uint64(uint32(t.Unix()))<<32 | uint64(t.Nanosecond()))
}

// Seconds returns the 32-bit seconds field.
func (p PTP) Seconds() uint32 { return uint32(p >> 32) }

// Nanoseconds returns the 32-bit nanoseconds field.
func (p PTP) Nanoseconds() uint32 { return uint32(p) }

// Valid reports whether the nanoseconds field is below 10^9.
func (p PTP) Valid() bool { return p.Nanoseconds() < nsPerSec }

// Time returns p as a UTC time.Time. An out-of-range nanoseconds field is normalised into
// the seconds (time.Unix semantics).
func (p PTP) Time() time.Time {
	return time.Unix(int64(p.Seconds()), int64(p.Nanoseconds())).UTC()
}

// String formats p as an RFC 3339 time with nanoseconds.
func (p PTP) String() string { return p.Time().Format(time.RFC3339Nano) }

// AppendTo appends the 8-byte big-endian wire form of p to b.
func (p PTP) AppendTo(b []byte) []byte { return binary.BigEndian.AppendUint64(b, uint64(p)) }

// Put writes the 8-byte big-endian wire form of p to b, which must hold at least 8 bytes.
func (p PTP) Put(b []byte) { binary.BigEndian.PutUint64(b, uint64(p)) }

// PTPFromBytes decodes a big-endian truncated PTP timestamp from the first 8 bytes of b and
// rejects a nanoseconds field >= 10^9 with ErrNanoseconds.
func PTPFromBytes(b []byte) (PTP, error) {
	if len(b) < Size {
		return 0, fmt.Errorf("ptp timestamp: %w (%d < %d bytes)", ErrShort, len(b), Size)
	}
	p := ReadPTP(b)
	if !p.Valid() {
		return p, fmt.Errorf("ptp timestamp: %w (%d)", ErrNanoseconds, p.Nanoseconds())
	}
	return p, nil
}

// ReadPTP decodes the first 8 bytes of b without any check.
func ReadPTP(b []byte) PTP { return PTP(binary.BigEndian.Uint64(b)) }

// Fixed32 is the 32.32 fixed-point Unix time ptptest puts on the wire
// (int(time.time() * 2**32)): 32 bits of seconds since 1970-01-01 and 32 bits of binary
// fraction. For example 0x6666998080000000 is 1718000000.5 s. Seconds wrap after 2106-02-07.
type Fixed32 uint64

// Fixed32FromTime returns t as 32.32 fixed-point Unix time, rounding to the nearest 2^-32 s.
func Fixed32FromTime(t time.Time) Fixed32 {
	frac := fracFromNanos(uint64(t.Nanosecond()))
	sec := uint64(t.Unix()) + frac>>32
	return Fixed32(sec<<32 | frac&0xFFFF_FFFF)
}

// Seconds returns the 32-bit seconds field.
func (f Fixed32) Seconds() uint32 { return uint32(f >> 32) }

// Fraction returns the 32-bit fraction field in units of 2^-32 s.
func (f Fixed32) Fraction() uint32 { return uint32(f) }

// Time returns f as a UTC time.Time rounded to the nearest nanosecond.
func (f Fixed32) Time() time.Time {
	return time.Unix(int64(f.Seconds()), nanosFromFrac(uint64(f.Fraction()))).UTC()
}

// String formats f as an RFC 3339 time with nanoseconds.
func (f Fixed32) String() string { return f.Time().Format(time.RFC3339Nano) }

// AppendTo appends the 8-byte big-endian wire form of f to b.
func (f Fixed32) AppendTo(b []byte) []byte { return binary.BigEndian.AppendUint64(b, uint64(f)) }

// Put writes the 8-byte big-endian wire form of f to b, which must hold at least 8 bytes.
func (f Fixed32) Put(b []byte) { binary.BigEndian.PutUint64(b, uint64(f)) }

// Fixed32FromBytes decodes a big-endian 32.32 timestamp from the first 8 bytes of b.
func Fixed32FromBytes(b []byte) (Fixed32, error) {
	if len(b) < Size {
		return 0, fmt.Errorf("fixed32 timestamp: %w (%d < %d bytes)", ErrShort, len(b), Size)
	}
	return ReadFixed32(b), nil
}

// ReadFixed32 decodes the first 8 bytes of b without a length check.
func ReadFixed32(b []byte) Fixed32 { return Fixed32(binary.BigEndian.Uint64(b)) }
