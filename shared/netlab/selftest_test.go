package netlab

import (
	"strings"
	"testing"
)

// runSelftest runs the self-test checks whose names contain only, logging their lines.
func runSelftest(t *testing.T, only string) {
	t.Helper()
	SkipUnlessAvailable(t)
	var out strings.Builder
	_, failed := Selftest(SelftestConfig{Out: &out, Only: only})
	t.Log("\n" + out.String())
	if failed > 0 {
		t.Fatalf("%d checks failed", failed)
	}
}

func TestSelftestPath(t *testing.T)      { runSelftest(t, "path/") }
func TestSelftestNAT(t *testing.T)       { runSelftest(t, "nat/") }
func TestSelftestMiddlebox(t *testing.T) { runSelftest(t, "middlebox/") }
