package timestamp

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// Seeds are the 14-byte sender headers' timestamp+EE bytes from the reference captures
// (testdata/README.md); the corpus files under testdata/fuzz hold the same plus edge cases.
var fuzzSeeds = [][]byte{
	{0xee, 0xae, 0x46, 0x49, 0xe6, 0x9e, 0x7f, 0xb2, 0x00, 0x01}, // owamp T1 + EE
	{0xee, 0xae, 0x47, 0x5f, 0x9b, 0xc2, 0xda, 0xdb, 0x80, 0x01}, // twamp-protocol T1 + EE
	{0xee, 0xae, 0x47, 0x1a, 0xdc, 0xde, 0xd3, 0xff, 0x3f, 0xff}, // twampy T1 + EE
	{0x66, 0x66, 0x99, 0x80, 0x80, 0x00, 0x00, 0x00},             // ptptest MYTS
	{},
	{0xff},
}

// decoded checks a decoder's result against the input: short input must give ErrShort, a
// full one must decode without error and re-encode to the same bytes. It reports whether
// the caller should go on checking the value.
func decoded(t *testing.T, b []byte, size int, err error, reencoded []byte) bool {
	t.Helper()
	if len(b) < size {
		if !errors.Is(err, ErrShort) {
			t.Fatalf("short input %x: err %v", b, err)
		}
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(reencoded, b[:size]) {
		t.Fatalf("re-encode %x, want %x", reencoded, b[:size])
	}
	return true
}

func FuzzNTP(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := NTPFromBytes(b)
		if !decoded(t, b, Size, err, n.AppendTo(nil)) {
			return
		}
		if n.Seconds() == 0 {
			return // the second holding the "unknown" sentinel
		}
		tm := n.Time()
		if tm.Before(windowStart) || !tm.Before(windowEnd.Add(time.Second)) {
			t.Fatalf("%#016x decodes to %v, outside the pivot window", uint64(n), tm)
		}
		back := NTPFromTime(tm)
		if d := int64(back) - int64(n); d < -3 || d > 3 {
			t.Fatalf("%#016x → %v → %#016x", uint64(n), tm, uint64(back))
		}
	})
}

func FuzzPTP(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Add([]byte{0x6b, 0x03, 0xc8, 0x9a, 0x33, 0x6c, 0xe7, 0x2f})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := PTPFromBytes(b)
		switch {
		case len(b) < Size:
			if !errors.Is(err, ErrShort) {
				t.Fatalf("short input %x: err %v", b, err)
			}
			return
		case !p.Valid():
			if !errors.Is(err, ErrNanoseconds) {
				t.Fatalf("invalid ns %d accepted", p.Nanoseconds())
			}
			return
		case err != nil:
			t.Fatal(err)
		}
		if got := PTPFromTime(p.Time()); got != p {
			t.Fatalf("%#016x → %v → %#016x", uint64(p), p.Time(), uint64(got))
		}
		if got := p.AppendTo(nil); !bytes.Equal(got, b[:Size]) {
			t.Fatalf("re-encode %x, want %x", got, b[:Size])
		}
	})
}

func FuzzFixed32(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := Fixed32FromBytes(b)
		if !decoded(t, b, Size, err, x.AppendTo(nil)) {
			return
		}
		if x.Seconds() == 0xFFFF_FFFF && x.Fraction() > 0xFFFF_FFFD {
			return // rounds up into 2^32 s, outside the format
		}
		back := Fixed32FromTime(x.Time())
		if d := int64(back) - int64(x); d < -3 || d > 3 {
			t.Fatalf("%#016x → %v → %#016x", uint64(x), x.Time(), uint64(back))
		}
	})
}

func FuzzErrorEstimate(f *testing.F) {
	for _, s := range fuzzSeeds {
		if len(s) >= 10 {
			f.Add(s[8:])
		}
	}
	f.Add([]byte{0x00, 0x00})
	f.Add([]byte{0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ErrorEstimateFromBytes(b)
		if !decoded(t, b, ErrorEstimateSize, err, e.AppendTo(nil)) {
			return
		}
		if !e.Valid() {
			return
		}
		// Re-encoding the decoded error never gives a smaller estimate and keeps the flags.
		re := NewErrorEstimate(e.S(), e.Z(), e.Duration())
		if re.Seconds() < e.Seconds() && e.Duration() < time.Duration(1<<63-1) || re.S() != e.S() || re.Z() != e.Z() {
			t.Fatalf("%v → %v → %v", e, e.Duration(), re)
		}
	})
}
