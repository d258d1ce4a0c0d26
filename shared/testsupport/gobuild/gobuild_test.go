package gobuild

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

// fakeT records Fatalf instead of stopping the goroutine, so the failure path can be checked.
type fakeT struct {
	testing.TB
	failed bool
	msg    string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed = true
	f.msg = fmt.Sprintf(format, args...)
}

func writeModule(t *testing.T, main string) string {
	t.Helper()
	d := t.TempDir()
	os.WriteFile(filepath.Join(d, "go.mod"), []byte("module example.com/tool\n\ngo 1.26.0\n"), 0o644)
	os.WriteFile(filepath.Join(d, "main.go"), []byte(main), 0o644)
	return d
}

func TestBinaryBuildsOnceAndRuns(t *testing.T) {
	t.Setenv("GOWORK", "off")
	d := writeModule(t, "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n")
	p := Binary(t, d)
	if p2 := Binary(t, d); p2 != p {
		t.Errorf("second call built again: %s vs %s", p2, p)
	}
	out, err := exec.Command(p).Output()
	if err != nil || string(out) != "hello\n" {
		t.Fatalf("binary: %q, %v", out, err)
	}
}

// A package that does not compile fails the test (it does not skip it), on every call.
func TestBinaryBuildFailureFails(t *testing.T) {
	t.Setenv("GOWORK", "off")
	d := writeModule(t, "package main\n\nfunc main() {\n")
	for range 2 {
		ft := &fakeT{TB: t}
		Binary(ft, d)
		if !ft.failed || !strings.Contains(ft.msg, "go build") {
			t.Errorf("build failure: failed %v, message %q", ft.failed, ft.msg)
		}
	}
}
