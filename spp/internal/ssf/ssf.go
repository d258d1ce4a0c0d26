// Package ssf encodes and decodes SPP Sample Frames, the UDP messages a slave sends to the
// master with the packet ID, direction and timestamp of every target packet it captured.
//
// Byte order: the C original copies host-order integers into the frame, so its frames are
// little-endian on the x86 hosts it ran on. This package fixes that order on every host:
// the header seconds/microseconds and each entry's hash are little-endian, the 1–4 byte
// direction+offset field is big-endian, exactly as an x86-64 C slave emits them (spp.md §7).
//
//	offset size content
//	0      1    0x03: version 3 in bits 0–1, padding/extension/CSRC count 0
//	1      1    bit 0 marker; bits 1–7 payload type = timestamp length (1–4), 0 = heartbeat,
//	            8 = probekit absolute timestamps (-l 0)
//	2      2    sequence (always 0)
//	4      4    seconds of the first entry (send time of a heartbeat), uint32 LE
//	8      4    microseconds of the first entry, uint32 LE
//	12     n×k  entries
//
// A relative entry (k = 4+l) is the hash (uint32 LE) and l bytes big-endian whose top bit is
// the direction (1 = OUT, REF→MON) and whose other bits are the offset from the previous
// entry in units of the granularity g (first entry 0). The receiver rebuilds the time as
// floor(t/g)·g + (t0 mod g), within one granule of the truth.
//
// The absolute entry (payload type 8, k = 12) is a probekit extension for -l 0, which the
// original master cannot read: hash (uint32 LE), seconds (uint32 LE) and
// direction<<31 | microseconds (uint32 LE), exact to the microsecond.
package ssf

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/probekit/probekit/spp/internal/engine"
)

// Wire constants.
const (
	Version     = 3
	HeaderLen   = 12
	DefaultPort = 9822
	// FlushLen is the buffered frame size above which the slave sends (the original's 1388).
	FlushLen = 1388
	// MaxFrameLen bounds a frame: FlushLen plus one entry of the largest kind.
	MaxFrameLen = FlushLen + absEntryLen
	// PTHeartbeat is the payload type of an empty frame.
	PTHeartbeat = 0
	// PTAbsolute is the payload type of frames with absolute timestamps (-l 0).
	PTAbsolute = 8

	absEntryLen = 12
)

// Errors of the decoder.
var (
	ErrShort       = errors.New("ssf: frame shorter than its header")
	ErrVersion     = errors.New("ssf: not a version 3 sample frame")
	ErrPayloadType = errors.New("ssf: unknown payload type")
	ErrLength      = errors.New("ssf: frame length is not a whole number of entries")
	ErrTime        = errors.New("ssf: microseconds out of range")
)

// MaxOffsetUnits is the largest offset, in granules, an l-byte field can carry.
func MaxOffsetUnits(l int) int64 { return int64(1)<<(8*l-1) - 1 }

// Header is the fixed 12-byte frame header.
type Header struct {
	PT     uint8 // payload type: timestamp length 1–4, PTHeartbeat or PTAbsolute
	Marker bool
	Seq    uint16
	Sec    uint32
	Usec   uint32
}

// AppendTo appends the header's wire form.
func (h Header) AppendTo(b []byte) []byte {
	m := h.PT << 1
	if h.Marker {
		m |= 1
	}
	b = append(b, Version, m)
	b = binary.LittleEndian.AppendUint16(b, h.Seq)
	b = binary.LittleEndian.AppendUint32(b, h.Sec)
	return binary.LittleEndian.AppendUint32(b, h.Usec)
}

// UnmarshalBinary decodes and checks the header at the start of b.
func (h *Header) UnmarshalBinary(b []byte) error {
	if len(b) < HeaderLen {
		return fmt.Errorf("%w: %d bytes", ErrShort, len(b))
	}
	if b[0] != Version {
		return fmt.Errorf("%w: first byte %#02x", ErrVersion, b[0])
	}
	h.PT = b[1] >> 1
	h.Marker = b[1]&1 != 0
	h.Seq = binary.LittleEndian.Uint16(b[2:])
	h.Sec = binary.LittleEndian.Uint32(b[4:])
	h.Usec = binary.LittleEndian.Uint32(b[8:])
	return nil
}

// EntryLen returns the size of one entry for a payload type, or 0 if the type carries none.
func EntryLen(pt uint8) int {
	switch {
	case pt >= 1 && pt <= 4:
		return 4 + int(pt)
	case pt == PTAbsolute:
		return absEntryLen
	}
	return 0
}

// Entry is one captured target packet.
type Entry struct {
	Hash uint32
	Dir  engine.Dir
	Time int64 // µs since the Unix epoch on the slave's clock
}

// Decode checks frame b and appends its entries to dst, rebuilding relative timestamps with
// granularity gran µs (the slave's -g). Heartbeats decode to no entries.
func Decode(b []byte, gran int64, dst []Entry) ([]Entry, Header, error) {
	var h Header
	if err := h.UnmarshalBinary(b); err != nil {
		return dst, h, err
	}
	if h.Usec >= 1e6 {
		return dst, h, fmt.Errorf("%w: header %d", ErrTime, h.Usec)
	}
	body := b[HeaderLen:]
	if h.PT == PTHeartbeat {
		if len(body) != 0 {
			return dst, h, fmt.Errorf("%w: heartbeat with %d bytes of entries", ErrLength, len(body))
		}
		return dst, h, nil
	}
	k := EntryLen(h.PT)
	if k == 0 {
		return dst, h, fmt.Errorf("%w: %d", ErrPayloadType, h.PT)
	}
	if len(body)%k != 0 || len(body) == 0 {
		return dst, h, fmt.Errorf("%w: %d bytes of %d-byte entries", ErrLength, len(body), k)
	}
	if h.PT == PTAbsolute {
		for ; len(body) > 0; body = body[k:] {
			du := binary.LittleEndian.Uint32(body[8:])
			us := du &^ (1 << 31)
			if us >= 1e6 {
				return dst, h, fmt.Errorf("%w: entry %d", ErrTime, us)
			}
			dst = append(dst, Entry{
				Hash: binary.LittleEndian.Uint32(body),
				Dir:  dirOf(du>>31 != 0),
				Time: int64(binary.LittleEndian.Uint32(body[4:]))*1e6 + int64(us),
			})
		}
		return dst, h, nil
	}
	if gran <= 0 {
		gran = 1
	}
	t0 := int64(h.Sec)*1e6 + int64(h.Usec)
	units := t0 / gran
	rem := t0 % gran
	l := int(h.PT)
	top := uint32(1) << (8*l - 1)
	for ; len(body) > 0; body = body[k:] {
		var v uint32
		for _, c := range body[4 : 4+l] {
			v = v<<8 | uint32(c)
		}
		units += int64(v &^ top)
		dst = append(dst, Entry{
			Hash: binary.LittleEndian.Uint32(body),
			Dir:  dirOf(v&top != 0),
			Time: units*gran + rem,
		})
	}
	return dst, h, nil
}

func dirOf(out bool) engine.Dir {
	if out {
		return engine.Out
	}
	return engine.In
}

// Encoder builds frames entry by entry into one reused buffer.
type Encoder struct {
	tsLen int   // 1..4, or 0 for absolute timestamps
	gran  int64 // µs per unit
	buf   []byte
	n     int
	prev  int64 // units of the previous entry
	max   int64
}

// NewEncoder returns an encoder for timestamp length tsLen (0 = absolute) and granularity
// gran µs.
func NewEncoder(tsLen int, gran int64) *Encoder {
	if gran <= 0 {
		gran = 1
	}
	e := &Encoder{tsLen: tsLen, gran: gran, buf: make([]byte, 0, MaxFrameLen)}
	if tsLen > 0 {
		e.max = MaxOffsetUnits(tsLen)
	}
	return e
}

// Len is the size of the frame built so far (0 when empty).
func (e *Encoder) Len() int { return len(e.buf) }

// Entries is the number of entries in the current frame.
func (e *Encoder) Entries() int { return e.n }

// Fits reports whether an entry at time ts (µs) can join the current frame: its offset from
// the previous entry must be representable (and not negative).
func (e *Encoder) Fits(ts int64) bool {
	if e.n == 0 || e.tsLen == 0 {
		return true
	}
	d := ts/e.gran - e.prev
	return d >= 0 && d <= e.max
}

// Add appends an entry; the caller checked Fits (an entry that does not fit is clamped).
func (e *Encoder) Add(hash uint32, dir engine.Dir, ts int64) {
	if e.n == 0 {
		pt := uint8(e.tsLen)
		if e.tsLen == 0 {
			pt = PTAbsolute
		}
		e.buf = Header{PT: pt, Sec: uint32(ts / 1e6), Usec: uint32(ts % 1e6)}.AppendTo(e.buf[:0])
		e.prev = ts / e.gran
	}
	e.n++
	e.buf = binary.LittleEndian.AppendUint32(e.buf, hash)
	if e.tsLen == 0 {
		du := uint32(ts % 1e6)
		if dir == engine.Out {
			du |= 1 << 31
		}
		e.buf = binary.LittleEndian.AppendUint32(e.buf, uint32(ts/1e6))
		e.buf = binary.LittleEndian.AppendUint32(e.buf, du)
		return
	}
	u := ts / e.gran
	d := min(max(u-e.prev, 0), e.max)
	e.prev = u
	v := uint32(d)
	if dir == engine.Out {
		v |= 1 << (8*e.tsLen - 1)
	}
	for i := e.tsLen - 1; i >= 0; i-- {
		e.buf = append(e.buf, byte(v>>(8*i)))
	}
}

// Frame returns the current frame's bytes (valid until the next Add or Reset).
func (e *Encoder) Frame() []byte { return e.buf }

// Reset starts a new frame.
func (e *Encoder) Reset() {
	e.buf = e.buf[:0]
	e.n = 0
}

// Heartbeat returns an empty frame stamped with time now (µs), appended to b.
func Heartbeat(b []byte, now int64) []byte {
	return Header{PT: PTHeartbeat, Sec: uint32(now / 1e6), Usec: uint32(now % 1e6)}.AppendTo(b)
}
