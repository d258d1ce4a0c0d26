package store

import (
	"encoding/binary"
	"errors"
)

// entry is one reporter's report about one peer as the store keeps it.
type entry struct {
	pair, ts, reason                               int64 // ts: unix ms
	path                                           Path
	sent, received, lost                           uint32
	dSent, dLost                                   int64
	rttMin, rttAvg, rttP50, rttP99, rttMax, jitter uint32
}

var errEntries = errors.New("store: corrupt entries blob")

// appendEntry packs e as uvarints, its time relative to base (e.ts ≥ base).
func appendEntry(b []byte, e *entry, base int64) []byte {
	for _, v := range [...]uint64{uint64(e.pair), uint64(e.ts - base), uint64(e.path), uint64(e.reason),
		uint64(e.sent), uint64(e.received), uint64(e.lost), uint64(e.dSent), uint64(e.dLost), uint64(e.rttMin),
		uint64(e.rttAvg), uint64(e.rttP50), uint64(e.rttP99), uint64(e.rttMax), uint64(e.jitter)} {
		b = binary.AppendUvarint(b, v)
	}
	return b
}

// decodeEntries unpacks a blob written by appendEntry; fn sees each entry (reused between calls).
func decodeEntries(b []byte, base int64, fn func(*entry)) error {
	var v [15]uint64
	var e entry
	for len(b) > 0 {
		for i := range v {
			x, n := binary.Uvarint(b)
			if n <= 0 {
				return errEntries
			}
			v[i], b = x, b[n:]
		}
		if v[2] > 255 {
			return errEntries
		}
		for _, i := range [...]int{4, 5, 6, 9, 10, 11, 12, 13, 14} {
			if v[i] > 1<<32-1 {
				return errEntries
			}
		}
		if v[0] > 1<<62 || v[1] > 1<<62 || v[3] > 1<<62 || v[7] > 1<<62 || v[8] > 1<<62 {
			return errEntries
		}
		e = entry{pair: int64(v[0]), ts: base + int64(v[1]), path: Path(v[2]), reason: int64(v[3]),
			sent: uint32(v[4]), received: uint32(v[5]), lost: uint32(v[6]), dSent: int64(v[7]), dLost: int64(v[8]),
			rttMin: uint32(v[9]), rttAvg: uint32(v[10]), rttP50: uint32(v[11]), rttP99: uint32(v[12]),
			rttMax: uint32(v[13]), jitter: uint32(v[14])}
		fn(&e)
	}
	return nil
}
