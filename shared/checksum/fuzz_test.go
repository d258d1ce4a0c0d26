package checksum

import (
	"encoding/binary"
	"testing"
)

// The checksum functions read untrusted packet bytes; these targets check that the fast paths
// agree with the textbook references for any input. Seeds: testdata/fuzz (real packets).

func FuzzChecksum(f *testing.F) {
	f.Add([]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}, uint32(0))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint32(0xffffffff))
	f.Fuzz(func(t *testing.T, b []byte, initial uint32) {
		want := refSum(b)
		// refSum has no initial value: fold it in the same end-around way.
		s := uint32(want) + initial>>16 + initial&0xFFFF
		for s>>16 != 0 {
			s = s&0xFFFF + s>>16
		}
		if got := Fold(Sum(b, initial)); got != uint16(s) {
			t.Fatalf("Fold(Sum(%x, %#x)) = %#04x, want %#04x", b, initial, got, s)
		}
		if Checksum(b) != ^want {
			t.Fatalf("Checksum(%x) = %#04x, want %#04x", b, Checksum(b), ^want)
		}
	})
}

func FuzzUpdate(f *testing.F) {
	f.Add([]byte{0x45, 0x00, 0x00, 0x80, 0x63, 0xfb, 0x40, 0x00, 0x40, 0x11, 0xbe, 0xe2, 0x0a, 0x47, 0x01, 0x01,
		0x0a, 0x47, 0x02, 0x01}, uint8(4), uint16(0x3f11))
	f.Fuzz(func(t *testing.T, b []byte, word uint8, newWord uint16) {
		if len(b) < 4 || len(b)%2 != 0 {
			return
		}
		i := 2 * (int(word) % (len(b) / 2))
		if i == 0 {
			i = 2
		}
		// Keep one covered word non-zero: RFC 1624 eqn. 3 and full recomputation differ only
		// for all-zero data (+0 vs -0), see TestUpdate.
		b = append([]byte{0x00, 0x01}, b...)
		i += 2
		cs := Checksum(b)
		old := binary.BigEndian.Uint16(b[i:])
		binary.BigEndian.PutUint16(b[i:], newWord)
		if got, want := Update(cs, old, newWord), Checksum(b); got != want {
			t.Fatalf("Update = %#04x, recomputed %#04x", got, want)
		}
	})
}

func FuzzSPPHash(f *testing.F) {
	f.Add([]byte("123456789"))
	f.Add([]byte{0x0a, 0x47, 0x01, 0x01, 0x0a, 0x47, 0x02, 0x01, 0x11, 0x63, 0xfb, 0xa4, 0xcc, 0x00, 0x07})
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := SPPHash(b), bitwiseCRC(0, b); got != want {
			t.Fatalf("SPPHash(%x) = %#08x, bitwise %#08x", b, got, want)
		}
	})
}
