package netlab

import (
	"strings"
	"testing"
)

func TestSelftestMiddlebox(t *testing.T) {
	SkipUnlessAvailable(t)
	var out strings.Builder
	_, failed := Selftest(SelftestConfig{Out: &out, Only: "middlebox/"})
	t.Log("\n" + out.String())
	if failed > 0 {
		t.Fatalf("%d checks failed", failed)
	}
}

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
