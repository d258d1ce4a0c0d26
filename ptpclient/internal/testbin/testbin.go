// Package testbin builds the ptpclient and ptpserver binaries for end-to-end and lab tests and
// parses their JSON output.
package testbin

import (
	"bufio"
	"encoding/json"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/probekit/probekit/ptpclient/internal/client"
	"github.com/probekit/probekit/shared/testsupport/gobuild"
)

// moduleRoot is the ptpclient module directory.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Build compiles the tool ("ptpclient" or "ptpserver") once per test process (gobuild); a
// build failure fails the test.
func Build(t testing.TB, tool string) string {
	t.Helper()
	return gobuild.Binary(t, filepath.Join(moduleRoot(), "..", tool))
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
