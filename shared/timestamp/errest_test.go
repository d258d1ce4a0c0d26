package timestamp

import (
	"math"
	"math/big"
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

// Error Estimates seen in the reference captures (testdata/README.md) and RFC arithmetic.
func TestErrorEstimateFields(t *testing.T) {
	tests := []struct {
		name      string
		ee        ErrorEstimate
		s, z      bool
		scale     uint8
		mult      uint8
		seconds   float64
		valid     bool
		formatted string
	}{
		// owamp twping/twampd unsynchronised: S=0 Scale 0 Multiplier 1 = 2^-32 s.
		{"owamp unsynced", 0x0001, false, false, 0, 1, 1.0 / (1 << 32), true, "S=0 Z=0 scale=0 mult=1 (1ns)"},
		// twamp-protocol client: 0x8001, S=1.
		{"twamp-protocol synced", 0x8001, true, false, 0, 1, 1.0 / (1 << 32), true, "S=1 Z=0 scale=0 mult=1 (1ns)"},
		// twampy: 0x3FFF = Scale 63, Multiplier 255 = 255 × 2^31 s, the largest estimate.
		{"twampy max", 0x3FFF, false, false, 63, 255, 255 * (1 << 31), true, "S=0 Z=0 scale=63 mult=255 (2562047h47m16.854775807s)"},
		// stamp-suite probe frame 9: multiplier 0 is invalid.
		{"zero multiplier", 0x0000, false, false, 0, 0, 0, false, "S=0 Z=0 scale=0 mult=0 (0s)"},
		// Z=1 (RFC 8186 PTP), Scale 32, Multiplier 3 = 3 s.
		{"ptp 3s", 0x6003, false, true, 32, 3, 3, true, "S=0 Z=1 scale=32 mult=3 (3s)"},
		// Scale 22, Multiplier 1 = 2^-10 s = 976.5625 µs.
		{"s z 2^-10", 0xD601, true, true, 22, 1, 1.0 / 1024, true, "S=1 Z=1 scale=22 mult=1 (976.563µs)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.ee
			if e.S() != tc.s || e.Z() != tc.z || e.Scale() != tc.scale || e.Multiplier() != tc.mult {
				t.Errorf("fields = S %v Z %v scale %d mult %d", e.S(), e.Z(), e.Scale(), e.Multiplier())
			}
			if e.Seconds() != tc.seconds {
				t.Errorf("Seconds() = %g, want %g", e.Seconds(), tc.seconds)
			}
			if e.Valid() != tc.valid {
				t.Errorf("Valid() = %v", e.Valid())
			}
			if got := MakeErrorEstimate(tc.s, tc.z, tc.scale, tc.mult); got != e {
				t.Errorf("MakeErrorEstimate = %#04x, want %#04x", uint16(got), uint16(e))
			}
			b := e.AppendTo(nil)
			back, err := ErrorEstimateFromBytes(b)
			if err != nil || back != e || len(b) != 2 || b[0] != byte(e>>8) || b[1] != byte(e) {
				t.Errorf("bytes %x → %#04x, %v", b, uint16(back), err)
			}
			if e.String() != tc.formatted {
				t.Errorf("String() = %q, want %q", e.String(), tc.formatted)
			}
		})
	}
}

func TestNewErrorEstimateTable(t *testing.T) {
	tests := []struct {
		err   time.Duration
		scale uint8
		mult  uint8
		// value = mult × 2^(scale−32) s, written out.
		why string
	}{
		{0, 0, 1, "≤ 0 → smallest non-zero estimate, never multiplier 0"},
		{-time.Second, 0, 1, "negative → smallest non-zero estimate"},
		{1, 0, 5, "1 ns × 2^32 / 1e9 = 4.29 → 5 × 2^-32 s = 1.164 ns"},
		{59, 0, 254, "59 ns = 253.4 units of 2^-32 → 254"},
		{60, 1, 129, "60 ns = 257.7 units of 2^-32 (> 255) → 128.8 units of 2^-31 → 129"},
		{time.Microsecond, 5, 135, "1 µs = 4294.97 × 2^-32 = 134.2 × 2^-27 → 135 × 2^-27 = 1.0058 µs"},
		{time.Millisecond, 15, 132, "1 ms = 131.07 × 2^-17 → 132 × 2^-17 = 1.00708 ms"},
		{time.Second, 25, 128, "1 s = 128 × 2^-7 exactly"},
		{time.Second + 1, 25, 129, "just over 1 s → next multiplier"},
		{2 * time.Second, 26, 128, "2 s = 128 × 2^-6 exactly"},
		{time.Duration(math.MaxInt64), 58, 138, "9223372036.85 s = 137.44 × 2^26 → 138"},
	}
	for _, tc := range tests {
		for _, synced := range []bool{false, true} {
			e := NewErrorEstimate(synced, !synced, tc.err)
			if e.Scale() != tc.scale || e.Multiplier() != tc.mult || e.S() != synced || e.Z() == synced {
				t.Errorf("NewErrorEstimate(%v, %v) = %v, want scale %d mult %d (%s)", synced, tc.err, e, tc.scale,
					tc.mult, tc.why)
			}
		}
	}
}

// allEncodings returns every valid (scale, multiplier) value as an exact rational number of
// seconds, sorted ascending, for a brute-force check of NewErrorEstimate.
type encoding struct {
	value *big.Rat
	ee    ErrorEstimate
}

func allEncodings() []encoding {
	var out []encoding
	for s := 0; s <= 63; s++ {
		for m := 1; m <= 255; m++ {
			v := new(big.Rat).SetInt64(int64(m))
			p := new(big.Rat).SetFrac(new(big.Int).Lsh(big.NewInt(1), uint(s)), new(big.Int).Lsh(big.NewInt(1), 32))
			out = append(out, encoding{v.Mul(v, p), MakeErrorEstimate(false, false, uint8(s), uint8(m))})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].value.Cmp(out[j].value) < 0 })
	return out
}

func TestNewErrorEstimateIsSmallestAtLeastErr(t *testing.T) {
	encs := allEncodings()
	r := rand.New(rand.NewPCG(9, 10))
	check := func(d time.Duration) {
		errSec := new(big.Rat).SetFrac(big.NewInt(int64(d)), big.NewInt(1e9))
		i := sort.Search(len(encs), func(i int) bool { return encs[i].value.Cmp(errSec) >= 0 })
		want := encs[i].value
		got := NewErrorEstimate(false, false, d)
		gotVal := new(big.Rat).SetFloat64(got.Seconds())
		if gotVal.Cmp(want) != 0 || got.Multiplier() == 0 {
			t.Fatalf("NewErrorEstimate(%v) = %v = %s s, want %s s (%v)", d, got, gotVal.FloatString(12),
				want.FloatString(12), encs[i].ee)
		}
	}
	for range 20000 {
		// Log-uniform over 1 ns .. 2^63 ns so every scale is exercised.
		d := time.Duration(r.Uint64N(uint64(1)<<r.IntN(63)) + 1)
		check(d)
	}
	for d := time.Duration(1); d < 5000; d++ {
		check(d)
	}
}

func TestErrorEstimateDuration(t *testing.T) {
	if got := MakeErrorEstimate(false, false, 0, 1).Duration(); got != 1 {
		t.Errorf("2^-32 s Duration = %v, want 1ns (rounded up)", got)
	}
	if got := MakeErrorEstimate(false, false, 32, 3).Duration(); got != 3*time.Second {
		t.Errorf("Duration = %v, want 3s", got)
	}
	if got := ErrorEstimate(0x3FFF).Duration(); got != time.Duration(math.MaxInt64) {
		t.Errorf("max Duration = %v, want saturation", got)
	}
}
