package engine

import (
	"encoding/binary"
	"testing"
)

// FuzzEngine feeds arbitrary instance sequences (any point, direction, ID and timestamp,
// including time going backwards, huge gaps and negative offsets) to the engine: it must
// never panic, and every pair it emits obeys the pairing rule's invariant in.mon > out.mon.
// Each 11-byte chunk is one instance: flags (point, direction), 2-byte ID, 8-byte time.
func FuzzEngine(f *testing.F) {
	ref, mon, _ := echo(20, 3000, 1000, 50, 1000, 0)
	var seed []byte
	for i := range ref {
		for _, in := range []inst{ref[i], mon[i]} {
			seed = append(seed, byte(in.p)|byte(in.d)<<1)
			seed = binary.BigEndian.AppendUint16(seed, uint16(in.id))
			seed = binary.BigEndian.AppendUint64(seed, uint64(in.ts))
		}
	}
	f.Add(seed, int8(0), uint8(60), uint16(100))
	f.Add(seed[:len(seed)/2], int8(-3), uint8(0), uint16(2))
	f.Fuzz(func(t *testing.T, data []byte, offset int8, window uint8, search uint16) {
		e := New(Config{Offset: int64(offset), Window: int64(window), MaxSearch: int(search)}, func(p Pair) {
			if !(p.Out.Mon < p.In.Mon) {
				t.Fatalf("pair %+v: IN left MON before OUT arrived", p)
			}
		})
		e.compactAt = 4
		for ; len(data) >= 11; data = data[11:] {
			e.Add(Point(data[0]&1), Dir(data[0]>>1&1), uint32(binary.BigEndian.Uint16(data[1:])), int64(binary.BigEndian.Uint64(data[3:])))
		}
		e.Close(Ref)
		e.Close(Mon)
	})
}
