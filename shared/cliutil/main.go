package cliutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

// Main runs app with args (os.Args) under a SignalContext and returns the exit code:
//
//	os.Exit(cliutil.Main(app, os.Args))
//
// Errors are printed as one line "<tool>: <error>" on stderr (a JSON log record with
// exit_code when the action logged with --log-format json). Exit codes, one rule for every
// probekit tool (also in every man page, see ManPage):
//
//	0    success
//	1    failure, including a sender that got no reply at all
//	2    usage error (UsageError, flag parse errors, missing required flags)
//	130  stopped by SIGINT before the run completed (143: SIGTERM)
//
// A run stopped by a signal after MarkComplete (a sender with replies, like ping) or in a
// daemon (SetDaemon) exits as a finished run does: 0 when the action returns nil or the
// cancellation, 1 for another error. A cli.ExitCoder's code is used as is.
//
// With PROBEKIT_LINT_CLI=1 in the environment Main does not run the tool: it prints the
// problems Lint finds in app (one per line on stderr, exit 1) or "<tool>: cli lint ok" on
// stdout (exit 0). scripts/cli-lint.sh runs every built tool that way.
func Main(app *cli.App, args []string) int {
	if os.Getenv(LintEnv) == "1" {
		return lintMain(app)
	}
	if w := writerOrStdout(app.Writer); !isTerminal(w) {
		// Pipes and files (what scripts parse) get whole lines even on a second signal. A
		// terminal keeps its *os.File, which tools check to decide on a TUI; the Emitter
		// locks its own writes in any case.
		app.Writer = OutputWriter(w)
	}
	ctx, cancel := SignalContext(context.Background())
	defer cancel()
	return Run(ctx, app, args)
}

// LintEnv is the environment variable that makes Main lint the app instead of running it.
const LintEnv = "PROBEKIT_LINT_CLI"

func lintMain(app *cli.App) int {
	errs := Lint(app)
	w := errWriter(app)
	for _, err := range errs {
		fmt.Fprintf(w, "%s: cli lint: %v\n", app.Name, err)
	}
	if len(errs) > 0 {
		return ExitFailure
	}
	fmt.Fprintf(writerOrStdout(app.Writer), "%s: cli lint ok\n", app.Name)
	return ExitOK
}

// isTerminal reports whether w is a file on a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func writerOrStdout(w io.Writer) io.Writer {
	if w == nil {
		return os.Stdout
	}
	return w
}

// Run is Main with a caller-supplied context (tests run apps in-process with it).
func Run(ctx context.Context, app *cli.App, args []string) int {
	prepare(app)
	if len(args) == 0 {
		args = []string{app.Name}
	}
	if completion(app, args, app.Writer) {
		return ExitOK
	}
	args = ReorderArgs(app, args)
	ctx = context.WithValue(ctx, runStateKey{}, &runState{})
	err := app.RunContext(ctx, args)
	return report(ctx, app, err)
}

// RunCapture runs app in-process with args (without the program name) and returns the exit
// code and what it wrote on stdout and stderr: the helper for a tool's command-line tests.
func RunCapture(ctx context.Context, app *cli.App, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	app.Writer, app.ErrWriter = &out, &errOut
	code = Run(ctx, app, append([]string{app.Name}, args...))
	return code, out.String(), errOut.String()
}

func report(ctx context.Context, app *cli.App, err error) int {
	sig, interrupted := Interrupted(ctx)
	finished := Completed(ctx) || appState(app).daemon
	if err == nil {
		if interrupted && !finished {
			// Stopped before the run completed; what it printed is partial.
			return sig.ExitCode()
		}
		return ExitOK
	}
	code := ExitFailure
	var ue *UsageError
	var ec cli.ExitCoder
	var se *SignalError
	switch {
	case errors.As(err, &ue):
		code = ExitUsage
	case errors.As(err, &se) || (errors.Is(err, context.Canceled) && interrupted):
		if finished {
			return ExitOK // the cancellation after results: a finished run
		}
		if se == nil {
			se = sig
			err = sig
		}
		code = se.ExitCode()
	case errors.As(err, &ec):
		code = ec.ExitCode()
	}
	msg := strings.TrimSpace(err.Error())
	if msg != "" {
		w := errWriter(app)
		msg = strings.ReplaceAll(msg, "\n", "; ")
		if l := jsonLogger(app); l != nil && code != ExitUsage {
			// --log-format json (daemons under journald, log shippers): the last line is JSON too.
			l.WithField("exit_code", code).Error(msg)
		} else if code == ExitUsage {
			fmt.Fprintf(w, "%s: %s (see %s --help)\n", app.Name, msg, app.Name)
		} else {
			fmt.Fprintf(w, "%s: %s\n", app.Name, msg)
		}
	}
	if code == ExitOK {
		// An ExitCoder with code 0 and a message: printed, success.
		return ExitOK
	}
	return code
}

// ReorderArgs moves flags that follow positional arguments in front of them, level by level
// through subcommands, because urfave/cli/v2 stops parsing flags at the first positional
// argument ("tool host -c 5" would otherwise leave -c 5 as arguments). Everything after "--"
// stays positional; a shell-completion request is left untouched.
func ReorderArgs(app *cli.App, args []string) []string {
	if len(args) < 2 || app.SkipFlagParsing {
		return args
	}
	return append([]string{args[0]}, reorder(app.Flags, app.Commands, args[1:])...)
}

func reorder(flags []cli.Flag, commands []*cli.Command, args []string) []string {
	takesValue := map[string]bool{}
	known := map[string]bool{}
	for _, f := range flags {
		tv := false
		if df, ok := f.(cli.DocGenerationFlag); ok {
			tv = df.TakesValue()
		}
		for _, n := range f.Names() {
			known[n] = true
			takesValue[n] = tv
		}
	}
	var flagArgs, positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i:]...)
			break
		}
		if len(a) > 1 && a[0] == '-' {
			flagArgs = append(flagArgs, a)
			name := strings.TrimLeft(a, "-")
			if strings.Contains(name, "=") {
				continue
			}
			if !known[name] && a[1] != '-' && len(name) > 1 {
				// combined short options (-vc 5): the last one may take a value
				name = name[len(name)-1:]
			}
			if takesValue[name] && i+1 < len(args) {
				i++
				flagArgs = append(flagArgs, args[i])
			}
			continue
		}
		if len(positional) == 0 {
			if a == "help" || a == "h" {
				// urfave's help command takes its own arguments.
				positional = append(positional, args[i:]...)
				break
			}
			if cmd := findCommand(commands, a); cmd != nil {
				if cmd.SkipFlagParsing {
					return append(flagArgs, args[i:]...)
				}
				rest := reorder(cmd.Flags, cmd.Subcommands, args[i+1:])
				return append(append(flagArgs, a), rest...)
			}
		}
		positional = append(positional, a)
	}
	return append(flagArgs, positional...)
}

func findCommand(commands []*cli.Command, name string) *cli.Command {
	for _, c := range commands {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// jsonLogger returns the app's logger when the action created one with --log-format json.
func jsonLogger(app *cli.App) *logrus.Logger {
	st := appState(app)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.logger == nil {
		return nil
	}
	if _, ok := st.logger.Formatter.(*logrus.JSONFormatter); !ok {
		return nil
	}
	return st.logger
}

// errWriter returns where usage and error lines go.
func errWriter(app *cli.App) io.Writer {
	if app.ErrWriter != nil {
		return app.ErrWriter
	}
	return os.Stderr
}
