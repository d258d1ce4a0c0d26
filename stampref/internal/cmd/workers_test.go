package cmd

import (
	"testing"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/shared/reflector"
)

// --workers, --strict-size and the bounded --max-sessions map onto the server and reflector
// configuration; there is no unlimited table.
func TestWorkersStrictSizeFlags(t *testing.T) {
	cfg, code := parse(t)
	if code != 0 || cfg.Workers != 1 || cfg.Reflector.StrictSize || cfg.Reflector.MaxSessions != reflector.DefaultMaxSessions {
		t.Fatalf("defaults: code %d workers %d strict %v max %d", code, cfg.Workers, cfg.Reflector.StrictSize, cfg.Reflector.MaxSessions)
	}
	cfg, code = parse(t, "--workers", "4", "--strict-size", "--max-sessions", "100")
	if code != 0 || cfg.Workers != 4 || !cfg.Reflector.StrictSize || cfg.Reflector.MaxSessions != 100 {
		t.Errorf("code %d workers %d strict %v max %d", code, cfg.Workers, cfg.Reflector.StrictSize, cfg.Reflector.MaxSessions)
	}
	for _, bad := range [][]string{{"--workers", "0"}, {"--workers", "65"}, {"--max-sessions", "0"}} {
		if _, code := parse(t, bad...); code != cliutil.ExitUsage {
			t.Errorf("%v: exit %d, want 2", bad, code)
		}
	}
}
