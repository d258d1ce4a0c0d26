// Package daemontest is test support for e2e and abuse tests of probekit's daemons: it runs
// a binary (built with shared/testsupport/gobuild) with JSON logs, waits for log records,
// and reads the process's resident memory. Test-only.
package daemontest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Record is one JSON log line.
type Record map[string]any

// Str returns a field as a string ("" when absent).
func (r Record) Str(k string) string {
	v, _ := r[k].(string)
	return v
}

// Daemon is a running binary whose stderr is parsed as JSON log lines.
type Daemon struct {
	t    testing.TB
	cmd  *exec.Cmd
	done chan struct{}
	err  error

	mu      sync.Mutex
	records []Record
	raw     []string
	changed chan struct{}
}

// Start runs bin with args (add --log-format json for Wait to see records) and stops it
// with SIGTERM at the end of the test; a daemon still running then must exit 0 (the exit
// rule: SIGTERM is a daemon's normal end), or the test fails.
func Start(t testing.TB, bin string, args ...string) *Daemon {
	t.Helper()
	d := &Daemon{t: t, cmd: exec.Command(bin, args...), done: make(chan struct{}), changed: make(chan struct{})}
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			var r Record
			_ = json.Unmarshal([]byte(line), &r)
			d.mu.Lock()
			d.raw = append(d.raw, line)
			if r != nil {
				d.records = append(d.records, r)
			}
			close(d.changed)
			d.changed = make(chan struct{})
			d.mu.Unlock()
		}
		d.err = d.cmd.Wait()
		close(d.done)
		d.mu.Lock()
		close(d.changed)
		d.changed = make(chan struct{})
		d.mu.Unlock()
	}()
	t.Cleanup(func() {
		if !d.Alive() {
			return // ended during the test, which judged that itself
		}
		if err := d.Stop(); err != nil {
			t.Errorf("%s after SIGTERM: %v, want exit 0", filepath.Base(bin), err)
		}
	})
	return d
}

// Pid is the process id.
func (d *Daemon) Pid() int { return d.cmd.Process.Pid }

// Alive reports whether the process is still running.
func (d *Daemon) Alive() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// Wait returns the first log record for which match is true, waiting up to timeout; it
// fails the test if none comes or the process exits first.
func (d *Daemon) Wait(timeout time.Duration, what string, match func(Record) bool) Record {
	d.t.Helper()
	deadline := time.After(timeout)
	for {
		d.mu.Lock()
		for _, r := range d.records {
			if match(r) {
				d.mu.Unlock()
				return r
			}
		}
		ch := d.changed
		d.mu.Unlock()
		select {
		case <-ch:
		case <-d.done:
			if !d.hasMatch(match) {
				d.t.Fatalf("%s: process exited (%v) before: %s\n%s", filepath.Base(d.cmd.Path), d.err, what, d.Stderr())
			}
		case <-deadline:
			d.t.Fatalf("%s: no log record %s within %v\n%s", filepath.Base(d.cmd.Path), what, timeout, d.Stderr())
		}
	}
}

func (d *Daemon) hasMatch(match func(Record) bool) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range d.records {
		if match(r) {
			return true
		}
	}
	return false
}

// WaitMsg waits for a record whose "msg" contains substr.
func (d *Daemon) WaitMsg(timeout time.Duration, substr string) Record {
	d.t.Helper()
	return d.Wait(timeout, fmt.Sprintf("msg containing %q", substr), func(r Record) bool { return strings.Contains(r.Str("msg"), substr) })
}

// Count returns how many records have a "msg" containing substr.
func (d *Daemon) Count(substr string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, r := range d.records {
		if strings.Contains(r.Str("msg"), substr) {
			n++
		}
	}
	return n
}

// Stderr returns everything the process wrote on stderr so far.
func (d *Daemon) Stderr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.raw, "\n")
}

// RSS returns the process's resident set size in bytes (VmRSS of /proc/PID/status).
func (d *Daemon) RSS() int64 {
	d.t.Helper()
	n, err := RSS(d.Pid())
	if err != nil {
		d.t.Fatal(err)
	}
	return n
}

// RSS reads VmRSS of a process in bytes.
func RSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := strings.Fields(string(rest))
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// Stop sends SIGTERM and waits (SIGKILL after 10 s). It returns the exit error.
func (d *Daemon) Stop() error {
	if d.Alive() {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(10 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.done
		}
	}
	return d.err
}

// Run runs bin to completion (bounded by timeout) and returns its exit code and output.
func Run(t testing.TB, timeout time.Duration, bin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), o.String(), e.String()
	}
	if err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	return 0, o.String(), e.String()
}

// WriteFile writes a file with mode (after umask) for key and token file tests.
func WriteFile(t testing.TB, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// Scrape fetches a Prometheus text exposition from url (…/metrics) and returns its samples
// as name{labels} → value.
func Scrape(t testing.TB, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.LastIndexByte(line, ' '); i > 0 && !strings.HasPrefix(line, "#") {
			if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
				out[line[:i]] = v
			}
		}
	}
	return out
}
