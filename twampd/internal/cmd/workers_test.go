package cmd

import (
	"testing"

	"github.com/probekit/probekit/shared/cliutil"
)

func TestWorkersStrictSizeFlags(t *testing.T) {
	cfg, code, _ := parse(t, "--light")
	if code != 0 || cfg.Workers != 1 || cfg.StrictSize {
		t.Fatalf("defaults: exit %d workers %d strict %v", code, cfg.Workers, cfg.StrictSize)
	}
	cfg, code, _ = parse(t, "--light", "--workers", "2", "--strict-size")
	if code != 0 || cfg.Workers != 2 || !cfg.StrictSize {
		t.Errorf("exit %d workers %d strict %v", code, cfg.Workers, cfg.StrictSize)
	}
	for _, bad := range [][]string{{"--workers", "0"}, {"--workers", "65"}} {
		if _, code, _ := parse(t, bad...); code != cliutil.ExitUsage {
			t.Errorf("%v: exit %d, want 2", bad, code)
		}
	}
}
