package client

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzParseSchedule: ParseSchedule never panics; an accepted -i value has a non-negative
// interval that is exactly what the duration or seconds syntax says (seconds only within
// 0…3600, never NaN), and the schedule re-formatted as a Go duration (plus "e" when
// exponential) parses back to itself.
func FuzzParseSchedule(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := ParseSchedule(s)
		if err != nil {
			return
		}
		if sc.Interval < 0 {
			t.Fatalf("ParseSchedule(%q) = %+v: negative interval", s, sc)
		}
		num := s
		switch {
		case strings.HasSuffix(s, "e"):
			num = strings.TrimSuffix(s, "e")
			if !sc.Poisson {
				t.Fatalf("ParseSchedule(%q): suffix e but periodic", s)
			}
		case strings.HasSuffix(s, "f"):
			num = strings.TrimSuffix(s, "f")
			fallthrough
		default:
			if sc.Poisson {
				t.Fatalf("ParseSchedule(%q): exponential without suffix e", s)
			}
		}
		if d, err := time.ParseDuration(num); err == nil {
			if d != sc.Interval {
				t.Fatalf("ParseSchedule(%q) = %v, the duration says %v", s, sc.Interval, d)
			}
		} else {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil || math.IsNaN(v) || v < 0 || v > 3600 {
				t.Fatalf("ParseSchedule(%q) = %+v, but %q is not seconds within 0…3600 (%v, %v)", s, sc, num, v, err)
			}
			if want := time.Duration(v * float64(time.Second)); sc.Interval != want {
				t.Fatalf("ParseSchedule(%q) = %v, want %v", s, sc.Interval, want)
			}
		}
		canon := sc.Interval.String()
		if sc.Poisson {
			canon += "e"
		}
		if sc2, err := ParseSchedule(canon); err != nil || sc2 != sc {
			t.Fatalf("ParseSchedule(%q) = %+v, round trip via %q = %+v, %v", s, sc, canon, sc2, err)
		}
	})
}

// FuzzParseUnit: ParseUnit never panics; it accepts only "", n, u, m and s, rejects with a
// zero Unit, and an accepted unit's letter parses back to it and has a printable name.
func FuzzParseUnit(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseUnit(s)
		if err != nil {
			if u != 0 {
				t.Fatalf("ParseUnit(%q) failed (%v) but returned %q", s, err, u)
			}
			return
		}
		switch s {
		case "", "n", "u", "m", "s":
		default:
			t.Fatalf("ParseUnit(%q) accepted as %q", s, u)
		}
		if s == "" && u != 'm' {
			t.Fatalf("default unit %q, want m", u)
		}
		u2, err := ParseUnit(string(rune(u)))
		if err != nil || u2 != u {
			t.Fatalf("ParseUnit(%q) = %q, round trip = %q, %v", s, u, u2, err)
		}
		if name, want := u.String(), map[Unit]string{'n': "ns", 'u': "us", 'm': "ms", 's': "s"}[u]; name != want {
			t.Fatalf("ParseUnit(%q) = %q named %q, want %q", s, u, name, want)
		}
		if u.format(1500*time.Microsecond) == "" {
			t.Fatalf("unit %q formats nothing", u)
		}
	})
}
