package cliutil

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/probekit/probekit/shared/testsupport/syncbuf"
)

// The test binary doubles as a probekit tool: with CLIUTIL_HELPER set, TestMain runs helperApp
// through Main (real signals, real os.Exit) instead of the tests.
func TestMain(m *testing.M) {
	switch os.Getenv("CLIUTIL_HELPER") {
	case "1":
		os.Exit(Main(helperApp(), append([]string{"probe"}, os.Args[1:]...)))
	case "daemon":
		app := helperApp()
		SetDaemon(app)
		os.Exit(Main(app, append([]string{"probe"}, os.Args[1:]...)))
	case "octal":
		// An app with a urfave integer flag, for the PROBEKIT_LINT_CLI test.
		app := helperApp()
		app.Flags = append(app.Flags, &cli.Uint64Flag{Name: "seed"})
		os.Exit(Main(app, append([]string{"probe"}, os.Args[1:]...)))
	}
	os.Exit(m.Run())
}

// helperApp: "probe run" emits a record per tick until the context is cancelled, then flushes
// a summary and returns ctx's error (or nil with --clean; --complete marks the run complete
// after the first record, as a sender does at its first reply); "probe hang" ignores the
// context; "probe flood" writes 256 KiB JSON lines without end, ignoring the context.
func helperApp() *cli.App {
	app := newTestApp(&parsed{}, nil)
	app.Commands = append(app.Commands,
		&cli.Command{
			Name:  "run",
			Usage: "measure until interrupted",
			Flags: []cli.Flag{&cli.BoolFlag{Name: "clean"}, &cli.BoolFlag{Name: "complete"}},
			Action: func(c *cli.Context) error {
				e := NewEmitter(c.App.Writer, OutputFormat(c), "seq")
				e.AutoFlush = true
				fmt.Fprintln(c.App.ErrWriter, "ready")
				for i := 0; ; i++ {
					if i == 1 && c.Bool("complete") {
						MarkComplete(c.Context)
					}
					select {
					case <-c.Context.Done():
						e.Emit(-1) // the summary
						if err := e.Close(); err != nil {
							return err
						}
						if c.Bool("clean") {
							return nil
						}
						return fmt.Errorf("run: %w", context.Cause(c.Context))
					case <-time.After(5 * time.Millisecond):
						e.Emit(i)
					}
				}
			},
		},
		&cli.Command{
			Name:  "flood",
			Usage: "write long JSON lines, ignoring signals' context",
			Action: func(c *cli.Context) error {
				e := NewEmitter(c.App.Writer, FormatJSON, "seq", "fill")
				e.AutoFlush = true
				fill := strings.Repeat("x", 256<<10)
				fmt.Fprintln(c.App.ErrWriter, "ready")
				marked := false
				for i := 0; ; i++ {
					// Once the first signal has been handled, one short marker record says
					// so (the test sends the second only then: two SIGINTs close together
					// may reach the process as one).
					if !marked && c.Context.Err() != nil {
						marked = true
						if err := e.Emit(-1, ""); err != nil {
							return err
						}
					}
					if err := e.Emit(i, fill); err != nil {
						return err
					}
				}
			},
		},
		&cli.Command{
			Name:  "hang",
			Usage: "ignore signals' context",
			Action: func(c *cli.Context) error {
				fmt.Fprintln(c.App.ErrWriter, "ready")
				time.Sleep(time.Minute)
				return errors.New("not interrupted")
			},
		})
	return app
}

// startHelper starts the test binary as the helper tool and waits until it says "ready".
// The returned function gives the helper's remaining stderr once it has exited.
func startHelper(t *testing.T, args ...string) (*exec.Cmd, *syncbuf.Buffer, func() string) {
	t.Helper()
	return startHelperAs(t, "1", args...)
}

// startHelperAs is startHelper with CLIUTIL_HELPER=mode (1, daemon).
func startHelperAs(t *testing.T, mode string, args ...string) (*exec.Cmd, *syncbuf.Buffer, func() string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "CLIUTIL_HELPER="+mode)
	var stdout syncbuf.Buffer
	var stderr bytes.Buffer
	cmd.Stdout = &stdout
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	w := &waiter{done: make(chan struct{})}
	go func() { w.err = cmd.Wait(); close(w.done) }()
	waiters.Store(cmd, w)
	t.Cleanup(func() { cmd.Process.Kill(); <-w.done; waiters.Delete(cmd) })
	r := bufio.NewReader(pr)
	line, err := r.ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("helper said %q, %v", line, err)
	}
	done := make(chan struct{})
	go func() { stderr.ReadFrom(r); close(done) }()
	return cmd, &stdout, func() string { <-done; return stderr.String() }
}

// waiter holds the one cmd.Wait of a helper (exitCode and the cleanup both need its result).
type waiter struct {
	done chan struct{}
	err  error
}

var waiters sync.Map // *exec.Cmd -> *waiter

// Contains reports whether sub occurs in the buffer from byte from on.
func exitCode(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	v, _ := waiters.Load(cmd)
	w := v.(*waiter)
	select {
	case <-w.done:
		err := w.err
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(60 * time.Second): // hang guard
		t.Fatal("helper did not exit")
		return -1
	}
}

// The exit-code rule (README, man pages): a signal before the run completed exits 128+signal
// whether the action returns the cancellation or nil after flushing; after MarkComplete (a
// sender with replies) or in a daemon it exits as a finished run. Real processes, real signals.
func TestSignalFlushesResults(t *testing.T) {
	tests := []struct {
		mode string
		sig  syscall.Signal
		args []string
		code int
		err  string
	}{
		{"1", syscall.SIGINT, []string{"--json", "run"}, ExitSIGINT, "probe: run: interrupted by interrupt\n"},
		{"1", syscall.SIGTERM, []string{"--format", "csv", "run"}, ExitSIGTERM, "probe: run: interrupted by terminated\n"},
		{"1", syscall.SIGTERM, []string{"run", "--clean"}, ExitSIGTERM, ""},
		{"1", syscall.SIGINT, []string{"run", "--clean"}, ExitSIGINT, ""},
		{"1", syscall.SIGINT, []string{"--json", "run", "--complete"}, ExitOK, ""},
		{"1", syscall.SIGTERM, []string{"run", "--complete", "--clean"}, ExitOK, ""},
		{"daemon", syscall.SIGTERM, []string{"run", "--clean"}, ExitOK, ""},
		{"daemon", syscall.SIGINT, []string{"run"}, ExitOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.mode+" "+strings.Join(tt.args, " ")+" "+tt.sig.String(), func(t *testing.T) {
			cmd, stdout, stderr := startHelperAs(t, tt.mode, tt.args...)
			// Wait for records (not for a time): --complete marks the run after the first.
			for deadline := time.Now().Add(10 * time.Second); ; {
				out := bytes.Count(stdout.Bytes(), []byte("\n"))
				if out >= 3 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("no records from the helper")
				}
				time.Sleep(5 * time.Millisecond)
			}
			cmd.Process.Signal(tt.sig)
			if code := exitCode(t, cmd); code != tt.code {
				t.Errorf("exit code %d, want %d", code, tt.code)
			}
			if got := stderr(); got != tt.err {
				t.Errorf("stderr %q, want %q", got, tt.err)
			}
			lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
			last := lines[len(lines)-1]
			if last != `{"seq":-1}` && last != "-1" && last != "seq=-1" {
				t.Errorf("summary not flushed before exit; stdout ends %q", last)
			}
			if len(lines) < 2 {
				t.Errorf("no records before the summary: %q", stdout)
			}
		})
	}
}

func TestSignalStderrLine(t *testing.T) {
	cmd, _, stderr := startHelper(t, "run")
	cmd.Process.Signal(syscall.SIGINT)
	exitCode(t, cmd)
	if got := stderr(); got != "probe: run: interrupted by interrupt\n" {
		t.Errorf("stderr %q", got)
	}
}

func TestSecondSignalExitsHard(t *testing.T) {
	cmd, _, stderr := startHelper(t, "hang")
	start := time.Now()
	cmd.Process.Signal(syscall.SIGINT)
	time.Sleep(50 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	if code := exitCode(t, cmd); code != ExitSIGTERM {
		t.Errorf("exit code %d, want %d", code, ExitSIGTERM)
	}
	if d := time.Since(start); d > 30*time.Second { // hang guard: "hang" sleeps a minute
		t.Errorf("took %v to exit", d)
	}
	if got := stderr(); !strings.Contains(got, "again: exiting without waiting") {
		t.Errorf("stderr %q", got)
	}
}

func TestSignalContextCancel(t *testing.T) {
	ctx, cancel := SignalContext(context.Background())
	cancel()
	cancel() // idempotent
	if ctx.Err() == nil {
		t.Fatal("cancel did not cancel")
	}
	if _, ok := Interrupted(ctx); ok {
		t.Error("plain cancel reported as a signal")
	}
	// In-process: the first signal cancels with a SignalError and does not call exit.
	exited := make(chan int, 1)
	var msg bytes.Buffer
	ctx, cancel = signalContext(context.Background(), &msg, func(c int) { exited <- c })
	defer cancel()
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("SIGINT did not cancel the context")
	}
	se, ok := Interrupted(ctx)
	if !ok || se.Signal != syscall.SIGINT || se.ExitCode() != 130 {
		t.Errorf("cause %v", context.Cause(ctx))
	}
	var cleaned, unregistered atomic.Bool
	remove := OnForcedExit(func() { cleaned.Store(true) })
	defer remove()
	OnForcedExit(func() { unregistered.Store(true) })() // registered and removed again
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	select {
	case c := <-exited:
		if !cleaned.Load() || unregistered.Load() {
			t.Errorf("second signal: registered cleanup ran %v, removed one ran %v", cleaned.Load(), unregistered.Load())
		}
		if c != 130 || msg.String() != "interrupt again: exiting without waiting\n" {
			t.Errorf("second signal: exit code %d, message %q", c, msg.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("second SIGINT did not exit")
	}
}

// TestBashCompletion sources the generated script in a real bash and completes against the
// helper binary (urfave's --generate-bash-completion protocol).
func TestBashCompletion(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not installed")
	}
	dir := t.TempDir()
	wrapper := fmt.Sprintf("#!/bin/sh\nCLIUTIL_HELPER=1 exec %q \"$@\"\n", os.Args[0])
	if err := os.WriteFile(filepath.Join(dir, "probe"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "probe.bash")
	os.WriteFile(script, []byte(BashCompletion("probe")), 0o644)
	tests := []struct {
		words string
		want  []string
		not   []string
	}{
		{"probe --js", []string{"--json"}, []string{"--count"}},
		{"probe --c", []string{"--count"}, []string{"--json"}},
		{"probe s", []string{"send"}, []string{"docs", "run"}},
		{"probe send --r", []string{"--rate"}, nil},
		{"probe --format ", []string{"text", "json", "csv"}, []string{"--json", "send"}},
		{"probe --dscp a", []string{"af11", "af41"}, []string{"ef"}},
		{"probe send x ", nil, []string{"send", "--rate"}},
	}
	for _, tt := range tests {
		t.Run(tt.words, func(t *testing.T) {
			t.Parallel()
			completeInBash(t, dir, script, tt.words, tt.want, tt.not)
		})
	}
}

// completeInBash completes the command line words (the last one is the word under the cursor)
// with the generated bash function and checks the candidates.
func completeInBash(t *testing.T, dir, script, line string, want, not []string) {
	words := strings.Split(line, " ")
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = fmt.Sprintf("%q", w)
	}
	prog := fmt.Sprintf(`source %q; COMP_WORDS=(%s); COMP_CWORD=%d; _probekit_probe; printf '%%s\n' "${COMPREPLY[@]}"`,
		script, strings.Join(quoted, " "), len(words)-1)
	cmd := exec.Command("bash", "--norc", "-c", prog)
	cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}
	got := strings.Fields(string(out))
	for _, w := range want {
		if !contains(got, w) {
			t.Errorf("%q completes to %q, missing %q", line, got, w)
		}
	}
	for _, w := range not {
		if contains(got, w) {
			t.Errorf("%q completes to %q, should not offer %q", line, got, w)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestZshCompletion runs the generated zsh function with the completion system's _describe and
// _files replaced by stubs that print what they were given.
func TestZshCompletion(t *testing.T) {
	if _, err := exec.LookPath("zsh"); err != nil {
		t.Skip("zsh not installed")
	}
	dir := t.TempDir()
	wrapper := fmt.Sprintf("#!/bin/sh\nCLIUTIL_HELPER=1 exec %q \"$@\"\n", os.Args[0])
	os.WriteFile(filepath.Join(dir, "probe"), []byte(wrapper), 0o755)
	script := filepath.Join(dir, "_probe")
	os.WriteFile(script, []byte(ZshCompletion("probe")), 0o644)
	tests := []struct {
		line string
		want []string
	}{
		{"probe --js", []string{`--json:print results as JSON lines (same as --format json)`}},
		{"probe --format ", []string{"text", "json", "csv"}},
		{"probe send --ra", []string{"--rate"}},
		{"probe send x ", []string{"FILES"}},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			t.Parallel()
			words := strings.Split(tt.line, " ")
			quoted := make([]string, len(words))
			for i, w := range words {
				quoted[i] = fmt.Sprintf("%q", w)
			}
			prog := fmt.Sprintf(`compdef() { :; }
_describe() { print -l -- "${(@P)2}"; }
_files() { print FILES; }
source %q
words=(%s); CURRENT=%d
_probekit_probe`, script, strings.Join(quoted, " "), len(words))
			cmd := exec.Command("zsh", "-f", "-c", prog)
			cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			got := strings.Split(strings.TrimSpace(string(out)), "\n")
			for _, w := range tt.want {
				if !contains(got, w) {
					t.Errorf("%q completes to %q, missing %q", tt.line, got, w)
				}
			}
		})
	}
}

// TestFishCompletion asks fish itself (complete -C) what the generated script offers.
func TestFishCompletion(t *testing.T) {
	if _, err := exec.LookPath("fish"); err != nil {
		t.Skip("fish not installed")
	}
	code, script, stderr := runApp(t, newTestApp(&parsed{}, nil), "docs", "fish")
	if code != 0 {
		t.Fatalf("code %d: %s", code, stderr)
	}
	path := filepath.Join(t.TempDir(), "probe.fish")
	os.WriteFile(path, []byte(script), 0o644)
	tests := []struct {
		line string
		want []string
		not  []string
	}{
		{"probe --js", []string{"--json\tprint results as JSON lines (same as --format json)"}, nil},
		{"probe -", []string{"-c\tsend N packets", "-v\tprint every packet"}, nil},
		{"probe se", []string{"send\tsend test packets"}, []string{"docs"}},
		{"probe send --r", []string{"--rate"}, []string{"--count"}},
	}
	for _, tt := range tests {
		out, err := exec.Command("fish", "--no-config", "-c", fmt.Sprintf("source %q; complete -C%q", path, tt.line)).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", tt.line, err, out)
		}
		got := strings.Split(strings.TrimSpace(string(out)), "\n")
		for _, w := range tt.want {
			if !contains(got, w) {
				t.Errorf("%q completes to %q, missing %q", tt.line, got, w)
			}
		}
		for _, w := range tt.not {
			for _, g := range got {
				if strings.HasPrefix(g, w) {
					t.Errorf("%q completes to %q, should not offer %q", tt.line, got, w)
				}
			}
		}
	}
}

// A second SIGINT exits at once but never in the middle of a result line: the helper writes
// 256 KiB JSON lines (several pipe buffers each) without end, so without the output lock the
// exit would land inside a line nearly every time.
func TestSecondSignalWholeLines(t *testing.T) {
	for range 3 {
		cmd, stdout, stderr := startHelper(t, "flood")
		for deadline := time.Now().Add(60 * time.Second); stdout.Len() < 1<<20; {
			if time.Now().After(deadline) {
				t.Fatal("helper wrote no output")
			}
			time.Sleep(time.Millisecond)
		}
		from := stdout.Len()
		cmd.Process.Signal(syscall.SIGINT)
		for deadline := time.Now().Add(60 * time.Second); !stdout.Contains(max(from-(1<<20), 0), []byte(`{"seq":-1,"fill":""}`)); {
			if time.Now().After(deadline) {
				t.Fatal("helper did not notice the first SIGINT")
			}
			time.Sleep(time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGINT)
		if code := exitCode(t, cmd); code != ExitSIGINT {
			t.Errorf("exit code %d, want %d", code, ExitSIGINT)
		}
		if got := stderr(); !strings.Contains(got, "interrupt again: exiting without waiting") {
			t.Errorf("stderr %q", got)
		}
		out := stdout.Bytes()
		if len(out) == 0 || out[len(out)-1] != '\n' {
			t.Fatalf("output of %d bytes ends inside a line", len(out))
		}
		lines := bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n"))
		seq := 0
		for i, l := range lines {
			var rec struct {
				Seq  int    `json:"seq"`
				Fill string `json:"fill"`
			}
			err := json.Unmarshal(l, &rec)
			if err == nil && rec.Seq == -1 && rec.Fill == "" {
				continue // the marker
			}
			if err != nil || rec.Seq != seq || len(rec.Fill) != 256<<10 {
				t.Fatalf("line %d of %d (%d bytes): seq %d, want %d, %v", i, len(lines), len(l), rec.Seq, seq, err)
			}
			seq++
		}
	}
}

// PROBEKIT_LINT_CLI=1 makes Main lint the app instead of running it (scripts/cli-lint.sh).
func TestLintEnv(t *testing.T) {
	for _, tt := range []struct {
		mode, stdout, stderr string
		code                 int
	}{
		{"1", "probe: cli lint ok\n", "", 0},
		{"octal", "", "probe: cli lint: probe: --seed parses base 0 (\"010\" = 8); use cliutil.IntFlag or cliutil.UintFlag\n", 1},
	} {
		cmd := exec.Command(os.Args[0], "run")
		cmd.Env = append(os.Environ(), "CLIUTIL_HELPER="+tt.mode, LintEnv+"=1")
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tt.code || out.String() != tt.stdout || errOut.String() != tt.stderr {
			t.Errorf("%s: exit %d stdout %q stderr %q; want %d %q %q", tt.mode, code, out.String(), errOut.String(), tt.code, tt.stdout, tt.stderr)
		}
	}
}

func TestMarkCompleteOutsideRun(t *testing.T) {
	ctx := context.Background()
	MarkComplete(ctx) // no run state: a no-op
	if Completed(ctx) {
		t.Error("Completed without a run")
	}
}
