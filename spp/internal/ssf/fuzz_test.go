package ssf

import (
	"testing"
)

// FuzzDecode feeds arbitrary datagrams to the master's frame decoder. The corpus in
// testdata/fuzz/FuzzDecode holds frames encoded (-l 0..4) from the MON packets of the
// golden udpecho capture. A frame that decodes must re-encode to entries that decode to
// the same values (times on the granule grid are fixed points of the reconstruction).
func FuzzDecode(f *testing.F) {
	e := NewEncoder(2, 100)
	e.Add(0xdeadbeef, 0, 1795410105_102990)
	e.Add(0x01020304, 1, 1795410105_122737)
	f.Add(e.Frame(), uint16(100))
	f.Add(Heartbeat(nil, 1795410105_000000), uint16(100))
	f.Fuzz(func(t *testing.T, b []byte, g uint16) {
		gran := int64(g%5000) + 1
		ents, h, err := Decode(b, gran, nil)
		if err != nil || len(ents) == 0 {
			return
		}
		l := int(h.PT)
		if h.PT == PTAbsolute {
			l = 0
		}
		enc := NewEncoder(l, gran)
		var back []Entry
		for _, en := range ents {
			if en.Time < 0 || en.Time/1e6 > 1<<32-1 {
				return
			}
			if !enc.Fits(en.Time) {
				back, _, err = Decode(enc.Frame(), gran, back)
				if err != nil {
					t.Fatalf("re-decode: %v", err)
				}
				enc.Reset()
			}
			enc.Add(en.Hash, en.Dir, en.Time)
		}
		back, _, err = Decode(enc.Frame(), gran, back)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		for i := range ents {
			if back[i].Hash != ents[i].Hash || back[i].Dir != ents[i].Dir || back[i].Time != ents[i].Time {
				t.Fatalf("entry %d: %+v != %+v", i, back[i], ents[i])
			}
		}
	})
}
