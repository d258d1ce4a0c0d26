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
)

// Main runs app with args (os.Args) under a SignalContext and returns the exit code:
//
//	os.Exit(cliutil.Main(app, os.Args))
//
// Errors are printed as one line "<tool>: <error>" on stderr (a JSON log record with
// exit_code when the action logged with --log-format json). Exit codes: 0 success, 1 failure,
// 2 usage error (UsageError, flag parse errors, missing required flags), the code of a
// cli.ExitCoder, and 130/143 when the action returns an error after SIGINT/SIGTERM (an action
// that flushes its results and returns nil after a signal exits 0).
func Main(app *cli.App, args []string) int {
	ctx, cancel := SignalContext(context.Background())
	defer cancel()
	return Run(ctx, app, args)
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
	if err == nil {
		return ExitOK
	}
	code := ExitFailure
	var ue *UsageError
	var ec cli.ExitCoder
	var se *SignalError
	switch {
	case errors.As(err, &ue):
		code = ExitUsage
	case errors.As(err, &se):
		code = se.ExitCode()
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		if s, ok := Interrupted(ctx); ok {
			code = s.ExitCode()
			err = s
		}
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
