package cliutil

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// parsed is what the test app's action saw.
type parsed struct {
	count   int64
	dscp    int64
	port    int64
	verbose bool
	format  Format
	args    []string
	rate    string
}

// newTestApp builds the app used across tests: a client-like root with HOST arguments and a
// "send" subcommand. ret is what the root action returns.
func newTestApp(got *parsed, ret error) *cli.App {
	app := NewApp("probe", "measure a test path", "1.2.3")
	app.ArgsUsage = "HOST..."
	app.Flags = append(app.Flags,
		IntFlag("count", "send `N` packets", 10, 1, 1000000, "c"),
		DSCPFlag("dscp", "DSCP of test packets (0..63 or a name)", 0),
		PortFlag("port", "server `PORT`", 862, false),
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "print every packet"},
		&cli.StringFlag{Name: "peer", Usage: "peer `ADDR`", Required: true},
	)
	app.Action = func(c *cli.Context) error {
		got.count = Int(c, "count")
		got.dscp = Int(c, "dscp")
		got.port = Int(c, "port")
		got.verbose = c.Bool("verbose")
		got.format = OutputFormat(c)
		got.args = c.Args().Slice()
		return ret
	}
	app.Commands = append(app.Commands, &cli.Command{
		Name:  "send",
		Usage: "send test packets",
		Flags: []cli.Flag{&cli.StringFlag{Name: "rate", Value: "1"}},
		Action: func(c *cli.Context) error {
			got.rate = c.String("rate")
			got.args = c.Args().Slice()
			got.format = OutputFormat(c)
			return ret
		},
	})
	return app
}

func runApp(t *testing.T, app *cli.App, args ...string) (int, string, string) {
	t.Helper()
	return RunCapture(context.Background(), app, args...)
}

func TestRunFlagsAndExitCodes(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		ret     error
		code    int
		want    *parsed // checked when non-nil
		stderr  string  // substring of the single stderr line (when code != 0)
		stdout  string  // exact stdout when non-empty
		noHelp  bool
		exitMsg bool
	}{
		{name: "defaults", args: []string{"--peer", "a", "h1"}, want: &parsed{count: 10, port: 862, format: FormatText, args: []string{"h1"}}},
		{name: "flags after argument", args: []string{"h1", "--count", "5", "--peer", "a", "h2"}, want: &parsed{count: 5, port: 862, format: FormatText, args: []string{"h1", "h2"}}},
		{name: "short alias after argument", args: []string{"h1", "-c", "7", "--peer=a"}, want: &parsed{count: 7, port: 862, format: FormatText, args: []string{"h1"}}},
		{name: "combined short options", args: []string{"--peer", "a", "-vc", "3", "h1"}, want: &parsed{count: 3, port: 862, verbose: true, format: FormatText, args: []string{"h1"}}},
		{name: "combined short after argument", args: []string{"h1", "-vc", "3", "--peer", "a"}, want: &parsed{count: 3, port: 862, verbose: true, format: FormatText, args: []string{"h1"}}},
		{name: "dscp leading zero is decimal", args: []string{"--peer", "a", "--dscp", "010"}, want: &parsed{count: 10, dscp: 10, port: 862, format: FormatText, args: []string{}}},
		{name: "dscp name", args: []string{"--peer", "a", "--dscp", "EF"}, want: &parsed{count: 10, dscp: 46, port: 862, format: FormatText, args: []string{}}},
		{name: "double dash keeps dash args", args: []string{"--peer", "a", "--", "-x", "--count"}, want: &parsed{count: 10, port: 862, format: FormatText, args: []string{"-x", "--count"}}},
		{name: "json shorthand", args: []string{"--peer", "a", "--json"}, want: &parsed{count: 10, port: 862, format: FormatJSON, args: []string{}}},
		{name: "format csv", args: []string{"--peer", "a", "--format", "csv"}, want: &parsed{count: 10, port: 862, format: FormatCSV, args: []string{}}},
		{name: "json with format json", args: []string{"--peer", "a", "--json", "--format=json"}, want: &parsed{count: 10, port: 862, format: FormatJSON, args: []string{}}},
		{name: "dscp hex rejected", args: []string{"--peer", "a", "--dscp", "0x2e"}, code: 2, stderr: `invalid value "0x2e" for flag --dscp`},
		{name: "dscp too big", args: []string{"--peer", "a", "--dscp", "64"}, code: 2, stderr: "out of range [0, 63]"},
		{name: "port zero", args: []string{"--peer", "a", "--port", "0"}, code: 2, stderr: "out of range [1, 65535]"},
		{name: "port too big", args: []string{"--peer", "a", "--port", "99999"}, code: 2, stderr: "out of range"},
		{name: "count not a number", args: []string{"--peer", "a", "-c", "ten"}, code: 2, stderr: `"ten" is not a decimal integer`},
		{name: "unknown flag", args: []string{"--peer", "a", "--nope"}, code: 2, stderr: "flag provided but not defined: --nope"},
		{name: "unknown flag after argument", args: []string{"h1", "--nope"}, code: 2, stderr: "flag provided but not defined: --nope"},
		{name: "missing required flag", args: []string{"h1"}, code: 2, stderr: "missing required flag --peer"},
		{name: "bad log level", args: []string{"--peer", "a", "--log-level", "loud"}, code: 2, stderr: `--log-level: unknown level "loud"`},
		{name: "bad log format", args: []string{"--peer", "a", "--log-format", "xml"}, code: 2, stderr: `--log-format: unknown format "xml"`},
		{name: "bad output format", args: []string{"--peer", "a", "--format", "xml"}, code: 2, stderr: `--format: unknown format "xml"`},
		{name: "json conflicts with csv", args: []string{"--peer", "a", "--json", "--format", "csv"}, code: 2, stderr: "--json conflicts with --format csv"},
		{name: "version", args: []string{"--version"}, stdout: "probe 1.2.3\n"},
		{name: "runtime error", args: []string{"--peer", "a"}, ret: errors.New("read greeting: connection refused"), code: 1, stderr: "probe: read greeting: connection refused\n"},
		{name: "usage error from action", args: []string{"--peer", "a"}, ret: Usagef("need at least one HOST"), code: 2, stderr: "probe: need at least one HOST (see probe --help)\n"},
		{name: "wrapped usage error", args: []string{"--peer", "a"}, ret: fmt.Errorf("config: %w", Usagef("bad --x")), code: 2, stderr: "config: bad --x"},
		{name: "exit coder keeps its code and does not exit", args: []string{"--peer", "a"}, ret: cli.Exit("partial results", 3), code: 3, stderr: "probe: partial results\n"},
		{name: "multi-line error printed on one line", args: []string{"--peer", "a"}, ret: errors.New("a\nb"), code: 1, stderr: "probe: a; b\n"},
		{name: "subcommand", args: []string{"send", "--rate", "5", "x"}, want: &parsed{rate: "5", format: FormatText, args: []string{"x"}}},
		{name: "subcommand flag after argument", args: []string{"send", "x", "--rate", "5"}, want: &parsed{rate: "5", format: FormatText, args: []string{"x"}}},
		{name: "root flags before subcommand", args: []string{"--json", "send", "x"}, want: &parsed{rate: "1", format: FormatJSON, args: []string{"x"}}},
		{name: "subcommand unknown flag", args: []string{"send", "--bogus"}, code: 2, stderr: "flag provided but not defined: --bogus"},
		{name: "subcommand bad value", args: []string{"--format", "yaml", "send"}, code: 2, stderr: `unknown format "yaml"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := &parsed{}
			code, stdout, stderr := runApp(t, newTestApp(got, tt.ret), tt.args...)
			if code != tt.code {
				t.Fatalf("exit code %d, want %d (stdout %q, stderr %q)", code, tt.code, stdout, stderr)
			}
			if tt.want != nil && fmt.Sprint(*got) != fmt.Sprint(*tt.want) {
				t.Errorf("parsed %+v, want %+v", *got, *tt.want)
			}
			if tt.stdout != "" && stdout != tt.stdout {
				t.Errorf("stdout %q, want %q", stdout, tt.stdout)
			}
			if tt.code == 0 {
				if stderr != "" {
					t.Errorf("stderr %q on success", stderr)
				}
				return
			}
			if stdout != "" {
				t.Errorf("stdout %q on error; errors go to stderr only", stdout)
			}
			if strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
				t.Errorf("stderr %q: want exactly one line", stderr)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.stderr)
			}
			if !strings.HasPrefix(stderr, "probe: ") {
				t.Errorf("stderr %q does not start with the tool name", stderr)
			}
		})
	}
}

func TestHelpGoesToStdout(t *testing.T) {
	code, stdout, stderr := runApp(t, newTestApp(&parsed{}, nil), "--help")
	if code != 0 || stderr != "" {
		t.Fatalf("code %d stderr %q", code, stderr)
	}
	for _, want := range []string{"probe - measure a test path", "--count N, -c N", "(default: 862)", "--log-format FORMAT", "send"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("help lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "docs") {
		t.Errorf("help lists the hidden docs command:\n%s", stdout)
	}
}

func TestNoHelpCommandWithoutSubcommands(t *testing.T) {
	app := NewApp("solo", "one job", "1.0.0")
	var args []string
	app.Action = func(c *cli.Context) error { args = c.Args().Slice(); return nil }
	code, stdout, _ := runApp(t, app, "--help")
	if code != 0 || strings.Contains(stdout, "COMMANDS") {
		t.Errorf("code %d, help lists commands for a tool without any:\n%s", code, stdout)
	}
	// "help" is then an ordinary argument (a host may be called that).
	if code, _, _ := runApp(t, app, "help"); code != 0 || len(args) != 1 || args[0] != "help" {
		t.Errorf("code %d args %q", code, args)
	}
}

func TestRequiredRootFlagDoesNotBlockSubcommand(t *testing.T) {
	got := &parsed{}
	code, _, stderr := runApp(t, newTestApp(got, nil), "send", "--rate", "2")
	if code != 0 || got.rate != "2" {
		t.Fatalf("code %d rate %q stderr %q", code, got.rate, stderr)
	}
}

func TestInterruptedExitCode(t *testing.T) {
	app := NewApp("probe", "x", "1")
	app.Action = func(c *cli.Context) error {
		<-c.Context.Done()
		return fmt.Errorf("run: %w", c.Context.Err())
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(&SignalError{Signal: syscall.SIGTERM})
	var stderr bytes.Buffer
	app.ErrWriter = &stderr
	if code := Run(ctx, app, []string{"probe"}); code != ExitSIGTERM {
		t.Errorf("code %d, want %d", code, ExitSIGTERM)
	}
	if got := stderr.String(); got != "probe: interrupted by terminated\n" {
		t.Errorf("stderr %q", got)
	}
	// A tool that flushes partial results and returns nil after the signal: still stopped
	// before completion, 143.
	app.Action = func(c *cli.Context) error { <-c.Context.Done(); return nil }
	if code := Run(ctx, app, []string{"probe"}); code != ExitSIGTERM {
		t.Errorf("code %d, want %d", code, ExitSIGTERM)
	}
	// After MarkComplete (a sender with replies) the signal ends a finished run: nil or the
	// cancellation exit 0, another error 1.
	for _, tt := range []struct {
		ret  error
		code int
	}{{nil, ExitOK}, {context.Canceled, ExitOK}, {errors.New("peer gone"), ExitFailure}} {
		app := NewApp("probe", "x", "1")
		app.Action = func(c *cli.Context) error { MarkComplete(c.Context); <-c.Context.Done(); return tt.ret }
		if code := Run(ctx, app, []string{"probe"}); code != tt.code {
			t.Errorf("complete, returns %v: code %d, want %d", tt.ret, code, tt.code)
		}
	}
	// A daemon stops on a signal as its normal end.
	d := NewApp("probe", "x", "1")
	SetDaemon(d)
	d.Action = func(c *cli.Context) error { <-c.Context.Done(); return c.Context.Err() }
	if code := Run(ctx, d, []string{"probe"}); code != ExitOK {
		t.Errorf("daemon: code %d, want 0", code)
	}
	// No signal: a plain cancellation error is a failure.
	plain, cancelPlain := context.WithCancel(context.Background())
	cancelPlain()
	app.Action = func(c *cli.Context) error { <-c.Context.Done(); return c.Context.Err() }
	if code := Run(plain, app, []string{"probe"}); code != ExitFailure {
		t.Errorf("cancelled without a signal: code %d, want 1", code)
	}
}

func TestLoggerJSON(t *testing.T) {
	app := NewApp("probe", "x", "1")
	app.Action = func(c *cli.Context) error {
		l := Logger(c)
		if l != Logger(c) {
			t.Error("Logger returns a new logger on each call")
		}
		l.WithField("peer", "192.0.2.1:862").Info("session <started>")
		l.Debug("hidden at info")
		return nil
	}
	before := time.Now()
	code, stdout, stderr := runApp(t, app, "--log-format", "json")
	if code != 0 || stdout != "" {
		t.Fatalf("code %d stdout %q", code, stdout)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if len(lines) != 1 {
		t.Fatalf("want 1 log line, got %q", stderr)
	}
	var rec map[string]string
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["msg"] != "session <started>" || rec["level"] != "info" || rec["peer"] != "192.0.2.1:862" {
		t.Errorf("record %v", rec)
	}
	ts, err := time.Parse(time.RFC3339Nano, rec["ts"])
	if err != nil || ts.Before(before.Add(-time.Second)) || ts.After(time.Now().Add(time.Second)) {
		t.Errorf("ts %q: %v", rec["ts"], err)
	}
}

func TestLoggerLevelAndText(t *testing.T) {
	app := NewApp("probe", "x", "1")
	app.Action = func(c *cli.Context) error {
		Logger(c).Info("not shown")
		Logger(c).Warn("shown")
		return nil
	}
	_, _, stderr := runApp(t, app, "--log-level", "warn")
	if strings.Contains(stderr, "not shown") || !strings.Contains(stderr, "level=warning msg=shown") {
		t.Errorf("stderr %q", stderr)
	}
}

func TestLint(t *testing.T) {
	app := NewApp("probe", "x", "1")
	if errs := Lint(app); len(errs) != 0 {
		t.Errorf("NewApp itself fails Lint: %v", errs)
	}
	app.Flags = append(app.Flags,
		&cli.IntFlag{Name: "dscp"},
		&cli.BoolFlag{Name: "stun", Value: true},
		&cli.StringFlag{Name: "json"},
	)
	app.Commands = append(app.Commands, &cli.Command{Name: "x", Flags: []cli.Flag{&cli.UintFlag{Name: "n"}}})
	errs := Lint(app)
	want := []string{"--dscp parses base 0", "--stun defaults to true", "flag -json defined twice", "probe x: command has no Usage", "probe x: --n parses base 0"}
	if len(errs) != len(want) {
		t.Fatalf("got %d findings %v, want %d", len(errs), errs, len(want))
	}
	for i, w := range want {
		if !strings.Contains(errs[i].Error(), w) {
			t.Errorf("finding %d = %q, want %q", i, errs[i], w)
		}
	}
}

func TestReorderArgs(t *testing.T) {
	app := newTestApp(&parsed{}, nil)
	tests := []struct{ in, want string }{
		{"probe h1 -c 5", "probe -c 5 h1"},
		{"probe h1 --count=5 h2", "probe --count=5 h1 h2"},
		{"probe h1 -v h2", "probe -v h1 h2"},
		{"probe h1 -- -c 5", "probe h1 -- -c 5"},
		{"probe send x --rate 3", "probe send --rate 3 x"},
		{"probe --json send x --rate 3", "probe --json send --rate 3 x"},
		{"probe help send", "probe help send"},
		{"probe - -c 1", "probe -c 1 -"},
	}
	for _, tt := range tests {
		got := strings.Join(ReorderArgs(app, strings.Fields(tt.in)), " ")
		if got != tt.want {
			t.Errorf("ReorderArgs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestErrorAsJSONLogLine(t *testing.T) {
	app := NewApp("probe", "x", "1")
	app.Action = func(c *cli.Context) error {
		Logger(c).Info("starting")
		return errors.New("listen udp :862: permission denied")
	}
	code, stdout, stderr := runApp(t, app, "--log-format", "json")
	if code != 1 || stdout != "" {
		t.Fatalf("code %d stdout %q", code, stdout)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if len(lines) != 2 {
		t.Fatalf("stderr %q", stderr)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &rec); err != nil {
		t.Fatalf("last line %q: %v", lines[1], err)
	}
	if rec["level"] != "error" || rec["msg"] != "listen udp :862: permission denied" || rec["exit_code"] != 1.0 {
		t.Errorf("record %v", rec)
	}
	// Usage errors stay plain: they happen before any logging is set up.
	code, _, stderr = runApp(t, NewApp("probe", "x", "1"), "--log-format", "json", "--nope")
	if code != 2 || !strings.HasPrefix(stderr, "probe: flag provided but not defined: --nope") {
		t.Errorf("code %d stderr %q", code, stderr)
	}
}
