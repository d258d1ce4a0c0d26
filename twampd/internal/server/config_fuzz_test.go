package server

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/probekit/probekit/shared/cliutil"
)

// FuzzParsePortRange: cliutil.ParsePortRange, which parses twampd's --test-ports, never
// panics; a rejected range comes back zero; an accepted one is either "no range" or
// 1 ≤ Lo ≤ Hi, and its "lo-hi" form parses back to it.
func FuzzParsePortRange(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		r, err := cliutil.ParsePortRange(s)
		if err != nil {
			if r != (PortRange{}) {
				t.Fatalf("ParsePortRange(%q) failed (%v) but returned %+v", s, err, r)
			}
			return
		}
		if r == (PortRange{}) {
			if trimmed := strings.TrimSpace(s); trimmed != "" && trimmed != "0" {
				t.Fatalf("ParsePortRange(%q) = no range", s)
			}
			return
		}
		if r.Lo == 0 || r.Hi < r.Lo || r.Size() != int(r.Hi)-int(r.Lo)+1 {
			t.Fatalf("ParsePortRange(%q) = %+v (size %d)", s, r, r.Size())
		}
		canon := fmt.Sprintf("%d-%d", r.Lo, r.Hi)
		if r2, err := cliutil.ParsePortRange(canon); err != nil || r2 != r {
			t.Fatalf("ParsePortRange(%q) = %+v, round trip via %q = %+v, %v", s, r, canon, r2, err)
		}
	})
}

// formatLimits writes lf in the limits file syntax, one identity per line, sorted.
func formatLimits(lf LimitsFile) string {
	ids := make([]string, 0, len(lf))
	for id := range lf {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var b strings.Builder
	for _, id := range ids {
		l := lf[id]
		fmt.Fprintf(&b, "%s sessions=%d padding=%d", id, l.MaxSessions, l.MaxPadding)
		if l.Deny {
			b.WriteString(" deny")
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// FuzzParseLimits: ParseLimits never panics; a rejected file returns a nil map with the error
// (never a half-read file's limits); an accepted one has identities that are single
// non-comment fields, and re-formatting it gives a file that parses to the same limits.
func FuzzParseLimits(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		lf, err := ParseLimits(strings.NewReader(string(in)))
		if err != nil {
			if lf != nil {
				t.Fatalf("ParseLimits(%.200q) failed (%v) but returned %v", in, err, lf)
			}
			return
		}
		if lf == nil {
			t.Fatalf("ParseLimits(%.200q): nil map without error", in)
		}
		for id, l := range lf {
			if id == "" || strings.ContainsRune(id, '#') || len(strings.Fields(id)) != 1 || strings.Fields(id)[0] != id {
				t.Fatalf("ParseLimits(%.200q): identity %q", in, id)
			}
			if l.MaxSessions < 0 || uint64(l.MaxSessions) > 1<<32-1 {
				t.Fatalf("ParseLimits(%.200q): %q sessions=%d", in, id, l.MaxSessions)
			}
		}
		canon := formatLimits(lf)
		lf2, err := ParseLimits(strings.NewReader(canon))
		if err != nil || !reflect.DeepEqual(lf, lf2) {
			t.Fatalf("ParseLimits(%.200q) = %v, round trip via %q = %v, %v", in, lf, canon, lf2, err)
		}
		if again := formatLimits(lf2); again != canon {
			t.Fatalf("formatLimits not canonical: %q then %q", canon, again)
		}
	})
}

// TestParseLimitsLongLine is the regression for a line longer than the scanner's buffer:
// ParseLimits returned the limits read so far together with the error.
func TestParseLimitsLongLine(t *testing.T) {
	in := "open sessions=1\n" + strings.Repeat("x", 70000) + " sessions=2\n"
	lf, err := ParseLimits(strings.NewReader(in))
	if err == nil || lf != nil || !strings.Contains(err.Error(), "limits line 2") {
		t.Fatalf("ParseLimits(long line) = %v, %v; want nil and a line-2 error", lf, err)
	}
}
