// Package testbin builds the ptpclient and ptpserver binaries for end-to-end and lab tests and
// parses their JSON output.
package testbin

import (
	"bufio"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/probekit/probekit/ptpclient/internal/client"
)

var (
	mu    sync.Mutex
	built = map[string]string{}
)

// moduleRoot is the ptpclient module directory.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Build compiles the tool ("ptpclient" or "ptpserver") once per test binary and fails the test
// when the build fails.
func Build(t testing.TB, tool string) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if b, ok := built[tool]; ok {
		return b
	}
	dir := filepath.Join(moduleRoot(), "..", tool)
	out := filepath.Join(buildDir(t), tool)
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", tool, err, b)
	}
	built[tool] = out
	return out
}

var (
	dirOnce sync.Once
	dir     string
)

func buildDir(t testing.TB) string {
	dirOnce.Do(func() {
		// Not t.TempDir: the binaries are shared by every test of the package.
		d, err := mkdtemp()
		if err != nil {
			t.Fatal(err)
		}
		dir = d
	})
	return dir
}

// Summary finds the last {"type":"summary"} line of a client's JSON output.
func Summary(t testing.TB, out string) client.Summary {
	t.Helper()
	var s client.Summary
	found := false
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, `{"type":"summary"`) {
			continue
		}
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("summary line: %v\n%s", err, line)
		}
		found = true
	}
	if !found {
		t.Fatalf("no summary in output:\n%s", out)
	}
	return s
}

// Peer returns the row of the peer with the given UUID, or nil.
func Peer(s client.Summary, uuid string) *client.PeerReport {
	for i := range s.Peers {
		if s.Peers[i].UUID == uuid {
			return &s.Peers[i]
		}
	}
	return nil
}
