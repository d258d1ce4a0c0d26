package timestamp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// Golden NTP timestamps taken from the reference captures (testdata/README.md names the
// frames). The expected times were computed with exact rational arithmetic:
// unix = seconds − 2208988800, ns = round(fraction × 10^9 / 2^32).
func TestNTPGolden(t *testing.T) {
	tests := []struct {
		name string
		hex  string
		want string
	}{
		// twamp-owamp-open.pcap frame 1 (twping T1, gettimeofday µs): captured at 1795409865.900989.
		{"owamp sender T1", "eeae4649e69e7fb2", "2026-11-23T04:57:45.900856Z"},
		// twamp-twamp-protocol-client-vs-owamp.pcap frame 1: captured at 1795410143.608468.
		{"twamp-protocol T1", "eeae475f9bc2dadb", "2026-11-23T05:02:23.608442Z"},
		// twamp-light-twampy.pcap frame 1 (Python float time): captured at 1795410074.862873.
		{"twampy T1", "eeae471adcded3ff", "2026-11-23T05:01:14.862775087Z"},
		// Era boundaries of the pivot.
		{"first second of window (era 0, top bit set)", "8000000000000000", "1968-01-20T03:14:08Z"},
		{"Unix epoch", "83aa7e8000000000", "1970-01-01T00:00:00Z"},
		{"last second of era 0", "ffffffff00000000", "2036-02-07T06:28:15Z"},
		{"first fraction of era 1", "0000000000000001", "2036-02-07T06:28:16Z"},
		{"one second into era 1", "0000000100000000", "2036-02-07T06:28:17Z"},
		{"last second of window (era 1)", "7fffffff00000000", "2104-02-26T09:42:23Z"},
		// Rounding: 2^31 is exactly half a second; 0xFFFFFFFF rounds up to the next second.
		{"half second", "83aa7e8080000000", "1970-01-01T00:00:00.5Z"},
		{"fraction rounds to next second", "83aa7e80ffffffff", "1970-01-01T00:00:01Z"},
		{"one unit = 0.23 ns rounds to 0", "83aa7e8000000001", "1970-01-01T00:00:00Z"},
		{"three units = 0.70 ns rounds to 1", "83aa7e8000000003", "1970-01-01T00:00:00.000000001Z"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := hex.DecodeString(tc.hex)
			n, err := NTPFromBytes(b)
			if err != nil {
				t.Fatal(err)
			}
			if got := n.Time(); !got.Equal(mustTime(t, tc.want)) {
				t.Errorf("Time() = %s, want %s", got.Format(time.RFC3339Nano), tc.want)
			}
			if got := n.AppendTo(nil); !bytes.Equal(got, b) {
				t.Errorf("AppendTo = %x, want %s", got, tc.hex)
			}
		})
	}
}

func TestNTPFromTimeGolden(t *testing.T) {
	tests := []struct {
		time string
		want NTP
	}{
		{"1970-01-01T00:00:00Z", 0x83aa7e80_00000000},
		{"1970-01-01T00:00:00.5Z", 0x83aa7e80_80000000},
		// 0.25 s = 2^30 exactly; 1 ns = 4.294967296 units rounds to 4.
		{"1970-01-01T00:00:00.25Z", 0x83aa7e80_40000000},
		{"1970-01-01T00:00:00.000000001Z", 0x83aa7e80_00000004},
		// 999999999 ns = 4294967291.70 units → 4294967292 = 0xfffffffc.
		{"1970-01-01T00:00:00.999999999Z", 0x83aa7e80_fffffffc},
		{"2026-11-23T04:57:45.900856Z", 0xeeae4649_e69e7fb2},
		{"1968-01-20T03:14:08Z", 0x80000000_00000000},
		{"2036-02-07T06:28:17Z", 0x00000001_00000000},
		{"2104-02-26T09:42:23Z", 0x7fffffff_00000000},
		// RFC 5905 "unknown" sentinel.
		{"0001-01-01T00:00:00Z", 0},
	}
	for _, tc := range tests {
		if got := NTPFromTime(mustTime(t, tc.time)); got != tc.want {
			t.Errorf("NTPFromTime(%s) = %#016x, want %#016x", tc.time, uint64(got), uint64(tc.want))
		}
	}
}

func TestNTPZeroIsUnknown(t *testing.T) {
	if !NTP(0).Time().IsZero() || !NTP(0).IsZero() || NTP(0).String() != "unknown" {
		t.Errorf("NTP(0) = %v, want zero time", NTP(0).Time())
	}
	if NTP(1).IsZero() {
		t.Error("NTP(1).IsZero() = true")
	}
}

var (
	windowStart = time.Date(1968, 1, 20, 3, 14, 8, 0, time.UTC)
	windowEnd   = time.Date(2104, 2, 26, 9, 42, 24, 0, time.UTC)
	era1Start   = time.Date(2036, 2, 7, 6, 28, 16, 0, time.UTC)
)

// checkNTPRoundTrip asserts the round trip time → NTP → time is exact: NTP resolution is
// 2^-32 s ≈ 0.23 ns, so both roundings together err by < 0.5 ns.
func checkNTPRoundTrip(t *testing.T, tm time.Time) {
	t.Helper()
	if tm.Before(windowStart) || !tm.Before(windowEnd) || tm.Equal(era1Start) {
		return
	}
	n := NTPFromTime(tm)
	got := n.Time()
	if d := got.Sub(tm); d != 0 {
		t.Fatalf("round trip %s → %#016x → %s (off by %v)", tm.Format(time.RFC3339Nano), uint64(n),
			got.Format(time.RFC3339Nano), d)
	}
}

func TestNTPRoundTripProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	span := windowEnd.Sub(windowStart) // fits in int64 ns (136 years < 292 years)
	for range 50000 {
		checkNTPRoundTrip(t, windowStart.Add(time.Duration(r.Int64N(int64(span)))))
	}
	// Every nanosecond value in the first and last 50 µs of a second.
	base := time.Date(2026, 11, 23, 5, 0, 0, 0, time.UTC)
	for ns := range 50_000 {
		checkNTPRoundTrip(t, base.Add(time.Duration(ns)))
		checkNTPRoundTrip(t, base.Add(time.Second-time.Duration(ns)-1))
	}
	checkNTPRoundTrip(t, windowStart)
	checkNTPRoundTrip(t, windowEnd.Add(-1))
	checkNTPRoundTrip(t, era1Start.Add(-1))
	checkNTPRoundTrip(t, era1Start.Add(1))
}

// NTP → time → NTP loses at most the nanosecond rounding: |Δ| ≤ 0.5 ns ≈ 2.15 units, plus the
// re-rounding of half a unit, so within 3 units.
func TestNTPReverseRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 50000 {
		n := NTP(r.Uint64())
		if n>>32 == 0 {
			continue // era-1 second 0 holds the unknown sentinel 0
		}
		back := NTPFromTime(n.Time())
		d := int64(back) - int64(n)
		if d < -3 || d > 3 {
			t.Fatalf("%#016x → %s → %#016x (Δ %d units)", uint64(n), n.Time().Format(time.RFC3339Nano), uint64(back), d)
		}
	}
}

func TestPTP(t *testing.T) {
	tm := mustTime(t, "2026-11-23T05:01:14.862775087Z")
	p := PTPFromTime(tm)
	if p.Seconds() != 1795410074 || p.Nanoseconds() != 862775087 {
		t.Fatalf("PTPFromTime = %d.%09d", p.Seconds(), p.Nanoseconds())
	}
	want, _ := hex.DecodeString("6b03c89a336ce72f")
	if got := p.AppendTo(nil); !bytes.Equal(got, want) {
		t.Fatalf("AppendTo = %x, want %x", got, want)
	}
	q, err := PTPFromBytes(want)
	if err != nil || q != p || !q.Time().Equal(tm) {
		t.Fatalf("PTPFromBytes = %v, %v", q, err)
	}
	// Nanoseconds ≥ 1e9 is not a valid truncated PTP timestamp.
	bad, _ := hex.DecodeString("000000003b9aca00")
	if _, err := PTPFromBytes(bad); !errors.Is(err, ErrNanoseconds) {
		t.Errorf("PTPFromBytes(ns=1e9) err = %v, want ErrNanoseconds", err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	for range 20000 {
		tm := time.Unix(r.Int64N(1<<32), r.Int64N(1e9)).UTC()
		if got := PTPFromTime(tm).Time(); !got.Equal(tm) {
			t.Fatalf("PTP round trip %v → %v", tm, got)
		}
	}
}

func TestFixed32(t *testing.T) {
	// /work/shared/data/ptp/README.md: MYTS 0x6666998080000000 = 1718000000.5 s.
	const myts Fixed32 = 0x6666998080000000
	want := time.Unix(1718000000, 500_000_000).UTC()
	if got := myts.Time(); !got.Equal(want) {
		t.Errorf("Time() = %v, want %v", got, want)
	}
	if got := Fixed32FromTime(want); got != myts {
		t.Errorf("Fixed32FromTime = %#x, want %#x", uint64(got), uint64(myts))
	}
	b, _ := hex.DecodeString("6666998080000000")
	if f, err := Fixed32FromBytes(b); err != nil || f != myts {
		t.Errorf("Fixed32FromBytes = %#x, %v", uint64(f), err)
	}
	if got := myts.AppendTo([]byte{0xAA}); !bytes.Equal(got, append([]byte{0xAA}, b...)) {
		t.Errorf("AppendTo = %x", got)
	}
	r := rand.New(rand.NewPCG(7, 8))
	for range 20000 {
		tm := time.Unix(r.Int64N(1<<32), r.Int64N(1e9)).UTC()
		if got := Fixed32FromTime(tm).Time(); !got.Equal(tm) {
			t.Fatalf("Fixed32 round trip %v → %v", tm, got)
		}
	}
}

func TestShortBuffers(t *testing.T) {
	for n := range 8 {
		b := make([]byte, n)
		if _, err := NTPFromBytes(b); !errors.Is(err, ErrShort) {
			t.Errorf("NTPFromBytes(%d bytes) err = %v", n, err)
		}
		if _, err := PTPFromBytes(b); !errors.Is(err, ErrShort) {
			t.Errorf("PTPFromBytes(%d bytes) err = %v", n, err)
		}
		if _, err := Fixed32FromBytes(b); !errors.Is(err, ErrShort) {
			t.Errorf("Fixed32FromBytes(%d bytes) err = %v", n, err)
		}
		if _, err := ErrorEstimateFromBytes(b); n < 2 && !errors.Is(err, ErrShort) {
			t.Errorf("ErrorEstimateFromBytes(%d bytes) err = %v", n, err)
		}
	}
}

func TestPut(t *testing.T) {
	b := make([]byte, 10)
	NTP(0x0102030405060708).Put(b)
	PTP(0x1112131415161718).Put(b[1:])
	Fixed32(0x2122232425262728).Put(b[2:])
	ErrorEstimate(0x3132).Put(b[8:])
	want, _ := hex.DecodeString("01112122232425263132")
	if !bytes.Equal(b, want) {
		t.Errorf("Put = %x, want %x", b, want)
	}
}

func TestZeroAllocs(t *testing.T) {
	buf := make([]byte, 0, 64)
	src := []byte{0xee, 0xae, 0x46, 0x49, 0xe6, 0x9e, 0x7f, 0xb2, 0x00, 0x01}
	tm := time.Now()
	allocs := testing.AllocsPerRun(100, func() {
		b := NTPFromTime(tm).AppendTo(buf[:0])
		b = PTPFromTime(tm).AppendTo(b)
		b = Fixed32FromTime(tm).AppendTo(b)
		b = NewErrorEstimate(false, false, time.Millisecond).AppendTo(b)
		n, _ := NTPFromBytes(src)
		e, _ := ErrorEstimateFromBytes(src[8:])
		_ = n.Time()
		_ = e.Seconds()
		_ = b
	})
	if allocs != 0 {
		t.Errorf("append/parse allocates %v times per run, want 0", allocs)
	}
}

func TestSource(t *testing.T) {
	for s, want := range map[Source]string{SourceNone: "none", SourceUser: "user", SourceKernel: "kernel",
		SourceHardware: "hardware", Source(9): "source(9)"} {
		if got := s.String(); got != want {
			t.Errorf("Source(%d).String() = %q, want %q", s, got, want)
		}
		txt, err := s.MarshalText()
		if s == 9 {
			if err == nil {
				t.Errorf("MarshalText(9) succeeded")
			}
			continue
		}
		var back Source
		if err != nil || back.UnmarshalText(txt) != nil || back != s {
			t.Errorf("text round trip of %v: %q, %v → %v", s, txt, err, back)
		}
	}
	var s Source
	if err := s.UnmarshalText([]byte("gps")); err == nil {
		t.Error("UnmarshalText(gps) succeeded")
	}
}
