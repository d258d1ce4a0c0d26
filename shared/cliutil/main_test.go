package cliutil

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// The test binary doubles as a probekit tool: with CLIUTIL_HELPER set, TestMain runs helperApp
// through Main (real signals, real os.Exit) instead of the tests.
func TestMain(m *testing.M) {
	if os.Getenv("CLIUTIL_HELPER") == "1" {
		os.Exit(Main(helperApp(), append([]string{"probe"}, os.Args[1:]...)))
	}
	os.Exit(m.Run())
}

// helperApp: "probe run" emits a record per tick until the context is cancelled, then flushes
// a summary and returns ctx's error (or nil with --clean); "probe hang" ignores the context.
func helperApp() *cli.App {
	app := newTestApp(&parsed{}, nil)
	app.Commands = append(app.Commands,
		&cli.Command{
			Name:  "run",
			Usage: "measure until interrupted",
			Flags: []cli.Flag{&cli.BoolFlag{Name: "clean"}},
			Action: func(c *cli.Context) error {
				e := NewEmitter(c.App.Writer, OutputFormat(c), "seq")
				e.AutoFlush = true
				fmt.Fprintln(c.App.ErrWriter, "ready")
				for i := 0; ; i++ {
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
func startHelper(t *testing.T, args ...string) (*exec.Cmd, *bytes.Buffer, func() string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "CLIUTIL_HELPER=1")
	var stdout, stderr bytes.Buffer
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
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	r := bufio.NewReader(pr)
	line, err := r.ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("helper said %q, %v", line, err)
	}
	done := make(chan struct{})
	go func() { stderr.ReadFrom(r); close(done) }()
	return cmd, &stdout, func() string { <-done; return stderr.String() }
}

func exitCode(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(10 * time.Second):
		t.Fatal("helper did not exit")
		return -1
	}
}

func TestSignalFlushesResults(t *testing.T) {
	tests := []struct {
		sig  syscall.Signal
		args []string
		code int
		err  string
	}{
		{syscall.SIGINT, []string{"--json", "run"}, ExitSIGINT, "probe: run: interrupted by interrupt\n"},
		{syscall.SIGTERM, []string{"--format", "csv", "run"}, ExitSIGTERM, "probe: run: interrupted by terminated\n"},
		{syscall.SIGTERM, []string{"run", "--clean"}, ExitOK, ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			cmd, stdout, _ := startHelper(t, tt.args...)
			time.Sleep(30 * time.Millisecond)
			cmd.Process.Signal(tt.sig)
			if code := exitCode(t, cmd); code != tt.code {
				t.Errorf("exit code %d, want %d", code, tt.code)
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
	if d := time.Since(start); d > 5*time.Second {
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
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	select {
	case c := <-exited:
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
