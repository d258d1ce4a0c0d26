// Package gobuild builds probekit commands for end-to-end tests: once per test process, static
// (CGO_ENABLED=0, as released), and a build failure FAILS the test (never skips it: a test that
// skips because the binary it needs does not build hides exactly the breakage it exists for).
// Test-only.
package gobuild

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	mu    sync.Mutex
	dir   string
	built = map[string]*result{}
)

type result struct {
	once sync.Once
	path string
	err  error
}

// Binary builds the main package in directory pkgDir (relative to the test's working
// directory, e.g. "../../../twampd", or absolute) and returns the binary's path. It is built
// once per test process; every later call returns the same path, or fails the same way.
// Call Cleanup from TestMain to remove the binaries.
func Binary(t testing.TB, pkgDir string) string {
	t.Helper()
	abs, err := filepath.Abs(pkgDir)
	if err != nil {
		t.Fatalf("gobuild: %v", err)
	}
	mu.Lock()
	r, ok := built[abs]
	if !ok {
		r = &result{}
		built[abs] = r
	}
	if dir == "" && err == nil {
		dir, err = os.MkdirTemp("", "probekit-testbin-")
	}
	d := dir
	mu.Unlock()
	if err != nil {
		t.Fatalf("gobuild: %v", err)
	}
	r.once.Do(func() {
		out := filepath.Join(d, fmt.Sprintf("%s-%d", filepath.Base(abs), len(built)))
		cmd := exec.Command("go", "build", "-o", out, ".")
		cmd.Dir = abs
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			r.err = fmt.Errorf("go build in %s: %v\n%s", pkgDir, err, b)
			return
		}
		r.path = out
	})
	if r.err != nil {
		t.Fatalf("gobuild: %v", r.err)
	}
	return r.path
}

// Cleanup removes the binaries built so far (call it from TestMain after m.Run).
func Cleanup() {
	mu.Lock()
	defer mu.Unlock()
	if dir != "" {
		os.RemoveAll(dir)
		dir = ""
		built = map[string]*result{}
	}
}
