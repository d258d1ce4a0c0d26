// Package cliutil builds the urfave/cli/v2 application every probekit binary runs: standard flags,
// logging, output formats, signal handling, exit codes and the documentation used by packaging.
package cliutil

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"
)

// Names of the standard flags every probekit binary has. Use these constants rather than string
// literals: c.String("log-levle") silently returns "" in urfave/cli/v2.
const (
	FlagLogLevel  = "log-level"
	FlagLogFormat = "log-format"
	FlagJSON      = "json"
	FlagFormat    = "format"
	FlagVersion   = "version"
)

// Exit codes returned by Main and Run.
const (
	ExitOK      = 0   // success
	ExitFailure = 1   // the tool ran and failed (network error, bad peer, I/O error …)
	ExitUsage   = 2   // the command line was wrong (unknown flag, bad value, missing argument)
	ExitSIGINT  = 130 // stopped by SIGINT before the run completed (see MarkComplete)
	ExitSIGTERM = 143 // stopped by SIGTERM before the run completed
)

const (
	metadataKey  = "probekit.cliutil" // App.Metadata key of cliutil's per-app state
	logTimestamp = time.RFC3339Nano
)

func init() {
	// urfave's default version flag also claims -v, which tools need for "verbose" and which the
	// originals use; keep only the long form.
	cli.VersionFlag = &cli.BoolFlag{Name: FlagVersion, Usage: "print the version and exit", DisableDefaultText: true}
	cli.VersionPrinter = func(c *cli.Context) {
		fmt.Fprintf(c.App.Writer, "%s %s\n", c.App.Name, c.App.Version)
	}
}

// state is what cliutil keeps per application (in App.Metadata).
type state struct {
	mu         sync.Mutex
	logger     *logrus.Logger
	manSection int
	daemon     bool
	prepared   bool
}

func appState(app *cli.App) *state {
	if app.Metadata == nil {
		app.Metadata = map[string]interface{}{}
	}
	if s, ok := app.Metadata[metadataKey].(*state); ok {
		return s
	}
	s := &state{manSection: 1}
	app.Metadata[metadataKey] = s
	return s
}

// NewApp returns an application with the standard probekit flags (--log-level, --log-format,
// --json, --format, --version), combined short options, usage errors that exit 2 with one line on
// stderr, no os.Exit inside Run, and the hidden "docs" subcommand used by packaging. Add the
// tool's flags with append(app.Flags, …), set app.Action, then call Main.
//
// urfave/cli/v2 traps this package takes care of: flags after positional arguments are not
// parsed (Main reorders the command line, so "tool host -c 5" works like "tool -c 5 host"); a
// usage error dumps the help on stdout (here: one line on stderr, exit 2); cli.Exit calls
// os.Exit inside Run (here: Main returns the code and defers run); Required flags print help and
// block subcommands (here: checked before the action, one line); IntFlag parses "010" as 8 (use
// IntFlag, PortFlag, DSCPFlag from this package: base 10 with a range). Not changed:
// StringSliceFlag splits every value on commas ("--peer a,b --peer c" gives a, b, c), and
// "--bool false" leaves "false" as an argument (use "--bool=false"; Lint rejects default-true
// bools).
func NewApp(name, usage, version string) *cli.App {
	if version == "" {
		version = "dev"
	}
	app := &cli.App{
		Name:                   name,
		HelpName:               name,
		Usage:                  usage,
		Version:                version,
		UseShortOptionHandling: true,
		Writer:                 os.Stdout,
		ErrWriter:              os.Stderr,
		Flags:                  StandardFlags(),
		OnUsageError:           onUsageError,
		ExitErrHandler:         func(*cli.Context, error) {},
		Commands:               []*cli.Command{docsCommand()},
	}
	appState(app)
	return app
}

// StandardFlags returns fresh copies of the standard flags (NewApp already adds them).
func StandardFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: FlagLogLevel, Value: "info", Usage: "log `LEVEL` on stderr: trace, debug, info, warn, error"},
		&cli.StringFlag{Name: FlagLogFormat, Value: "text", Usage: "log `FORMAT` on stderr: text or json"},
		&cli.BoolFlag{Name: FlagJSON, Usage: "print results as JSON lines (same as --format json)", DisableDefaultText: true},
		&cli.StringFlag{Name: FlagFormat, Value: "text", Usage: "result `FORMAT` on stdout: text, json or csv"},
	}
}

// Validate checks the standard flags; Run installs it in front of the app's own Before hook.
func Validate(c *cli.Context) error {
	if _, err := logrus.ParseLevel(c.String(FlagLogLevel)); err != nil {
		return Usagef("--%s: unknown level %q (trace, debug, info, warn, error)", FlagLogLevel, c.String(FlagLogLevel))
	}
	switch f := c.String(FlagLogFormat); f {
	case "text", "json":
	default:
		return Usagef("--%s: unknown format %q (text or json)", FlagLogFormat, f)
	}
	f, err := ParseFormat(c.String(FlagFormat))
	if err != nil {
		return &UsageError{Err: fmt.Errorf("--%s: %w", FlagFormat, err)}
	}
	if c.Bool(FlagJSON) && c.IsSet(FlagFormat) && f != FormatJSON {
		return Usagef("--%s conflicts with --%s %s", FlagJSON, FlagFormat, f)
	}
	return nil
}

// Chain returns a Before/After hook running each non-nil hook in order, stopping at the first error.
func Chain(hooks ...cli.BeforeFunc) cli.BeforeFunc {
	return func(c *cli.Context) error {
		for _, h := range hooks {
			if h == nil {
				continue
			}
			if err := h(c); err != nil {
				return err
			}
		}
		return nil
	}
}

// Logger returns the process logger configured by --log-level and --log-format, writing to the
// app's ErrWriter (stderr). It is created once per app; pass it down to libraries.
func Logger(c *cli.Context) *logrus.Logger {
	s := appState(c.App)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.logger != nil {
		return s.logger
	}
	l := logrus.New()
	var out io.Writer = os.Stderr
	if c.App.ErrWriter != nil {
		out = c.App.ErrWriter
	}
	l.SetOutput(out)
	level, err := logrus.ParseLevel(c.String(FlagLogLevel))
	if err != nil {
		level = logrus.InfoLevel
	}
	l.SetLevel(level)
	if c.String(FlagLogFormat) == "json" {
		l.SetFormatter(&logrus.JSONFormatter{
			TimestampFormat:   logTimestamp,
			DisableHTMLEscape: true,
			FieldMap:          logrus.FieldMap{logrus.FieldKeyTime: "ts"},
		})
	} else {
		l.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, TimestampFormat: logTimestamp})
	}
	s.logger = l
	return l
}

// OutputFormat returns the result format chosen with --format or --json (text by default).
func OutputFormat(c *cli.Context) Format {
	if c.Bool(FlagJSON) {
		return FormatJSON
	}
	f, err := ParseFormat(c.String(FlagFormat))
	if err != nil {
		return FormatText
	}
	return f
}

// UsageError is a command-line mistake; Main prints it on one line and exits 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError with a formatted message (supports %w).
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// RequireFlags returns a UsageError naming the first of the flags that was not given. Use it in
// an Action instead of Required: true (which prints the whole help to stdout and, on the root,
// blocks every subcommand).
func RequireFlags(c *cli.Context, names ...string) error {
	for _, n := range names {
		if !c.IsSet(n) {
			return Usagef("missing required flag --%s", n)
		}
	}
	return nil
}

func onUsageError(_ *cli.Context, err error, _ bool) error {
	var ue *UsageError
	if errors.As(err, &ue) {
		return err
	}
	msg := err.Error()
	// The flag package says "-port"; users type --port.
	msg = strings.Replace(msg, "provided but not defined: -", "provided but not defined: --", 1)
	msg = strings.Replace(msg, " for flag -", " for flag --", 1)
	return &UsageError{Err: errors.New(msg)}
}

// prepare (run once per app by Run) makes an application built by hand or modified after NewApp safe to run: usage errors
// on every subcommand, no os.Exit inside Run, Required flags checked by cliutil (one line, exit 2,
// not blocking subcommands), and no "help" command listed when the tool has no other commands.
func prepare(app *cli.App) {
	s := appState(app)
	app.ExitErrHandler = func(*cli.Context, error) {}
	app.OnUsageError = onUsageError
	app.UseShortOptionHandling = true
	app.EnableBashCompletion = false // Run answers completion requests itself (complete.go)
	if app.Command(docsCommandName) == nil {
		app.Commands = append(app.Commands, docsCommand())
	}
	visible := 0
	for _, c := range app.Commands {
		if !c.Hidden && c.Name != "help" {
			visible++
		}
	}
	if visible == 0 {
		app.HideHelpCommand = true
	}
	if s.prepared {
		return
	}
	s.prepared = true
	app.Before = Chain(Validate, app.Before)
	app.Action = requireWrap(app.Flags, app.Action)
	for _, c := range app.Commands {
		prepareCommand(c)
	}
}

func prepareCommand(c *cli.Command) {
	c.OnUsageError = onUsageError
	c.Action = requireWrap(c.Flags, c.Action)
	for _, sc := range c.Subcommands {
		prepareCommand(sc)
	}
}

// requireWrap turns off urfave's Required handling on flags and checks them before action runs.
func requireWrap(flags []cli.Flag, action cli.ActionFunc) cli.ActionFunc {
	var required []string
	for _, f := range flags {
		rf, ok := f.(cli.RequiredFlag)
		if !ok || !rf.IsRequired() {
			continue
		}
		v := reflect.ValueOf(f)
		if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
			continue
		}
		field := v.Elem().FieldByName("Required")
		if !field.IsValid() || !field.CanSet() || field.Kind() != reflect.Bool {
			continue
		}
		field.SetBool(false)
		required = append(required, f.Names()[0])
	}
	if len(required) == 0 || action == nil {
		return action
	}
	return func(c *cli.Context) error {
		if err := RequireFlags(c, required...); err != nil {
			return err
		}
		return action(c)
	}
}
