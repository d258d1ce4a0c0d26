package main

import (
	"testing"
	"time"

	"github.com/probekit/probekit/shared/netlab"
)

func TestParseSchedule(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []netlab.Step
		ok   bool
	}{
		{"", nil, true},
		{"0s=10ms", []netlab.Step{{At: 0, Delay: 10 * time.Millisecond}}, true},
		{"1s=10ms,2.5s=30ms", []netlab.Step{{At: time.Second, Delay: 10 * time.Millisecond}, {At: 2500 * time.Millisecond, Delay: 30 * time.Millisecond}}, true},
		{"1s", nil, false},
		{"x=10ms", nil, false},
		{"1s=y", nil, false},
	} {
		got, err := parseSchedule(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("%q: err %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("%q: %v, want %v", tc.in, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%q: step %d = %v, want %v", tc.in, i, got[i], tc.want[i])
			}
		}
	}
}
