package netlab

import (
	"testing"
)

func TestParseMiddleboxMode(t *testing.T) {
	for _, n := range MiddleboxModeNames() {
		m, err := ParseMiddleboxMode(n)
		if err != nil || m.String() != n {
			t.Errorf("%s: %v %v", n, m, err)
		}
	}
	if _, err := ParseMiddleboxMode("firewall"); err == nil {
		t.Error("accepted an unknown mode")
	}
}
