package cliutil

import (
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"
)

// Shell completion protocol between the scripts from BashCompletion/ZshCompletion and Run: the
// script runs the command line typed so far, including the word being completed (possibly
// empty), followed by one of these markers; the binary prints one candidate per line (zsh:
// "candidate:description"). urfave/cli/v2's own --generate-bash-completion handling is not used:
// it panics on a partial flag in a subcommand when short-option handling is on.
const (
	bashCompleteMarker = "--generate-bash-completion"
	zshCompleteMarker  = "--generate-zsh-completion"
)

// standardValues are the completions of the standard flags' values.
var standardValues = map[string][]string{
	FlagLogLevel:  {"trace", "debug", "info", "warn", "error"},
	FlagLogFormat: {"text", "json"},
	FlagFormat:    {"text", "json", "csv"},
}

// completion handles a completion request; it reports false when args are not one.
func completion(app *cli.App, args []string, w io.Writer) bool {
	n := len(args)
	if n < 2 || (args[n-1] != bashCompleteMarker && args[n-1] != zshCompleteMarker) {
		return false
	}
	zsh := args[n-1] == zshCompleteMarker
	words := args[1 : n-1]
	cur := ""
	if len(words) > 0 {
		cur = words[len(words)-1]
		words = words[:len(words)-1]
	}
	app.Setup()
	flags, cmds := app.VisibleFlags(), visibleCommands(app.Commands)
	positional := false
	var prev cli.Flag
	for _, word := range words {
		if prev != nil {
			prev = nil
			continue
		}
		if word == "--" {
			positional = true
			continue
		}
		if strings.HasPrefix(word, "-") && len(word) > 1 && !positional {
			name, _, hasValue := strings.Cut(strings.TrimLeft(word, "-"), "=")
			if f := lookupFlag(flags, name); f != nil && takesValue(f) && !hasValue {
				prev = f
			}
			continue
		}
		if !positional {
			if c := findCommand(cmds, word); c != nil {
				flags, cmds = visibleFlags(c.Flags), visibleCommands(c.Subcommands)
				continue
			}
		}
		positional = true
		cmds = nil
	}
	out := func(name, desc string) {
		if zsh && desc != "" {
			fmt.Fprintf(w, "%s:%s\n", strings.ReplaceAll(name, ":", `\:`), desc)
		} else {
			fmt.Fprintln(w, name)
		}
	}
	switch {
	case prev != nil:
		for _, v := range flagValues(prev) {
			out(v, "")
		}
	case strings.HasPrefix(cur, "-"):
		for _, f := range flags {
			for _, name := range f.Names() {
				dash := "--"
				if len(name) == 1 {
					dash = "-"
				}
				out(dash+name, flagUsage(f))
			}
		}
	default:
		for _, c := range cmds {
			out(c.Name, c.Usage)
		}
	}
	return true
}

func visibleFlags(flags []cli.Flag) []cli.Flag {
	var out []cli.Flag
	for _, f := range flags {
		if vf, ok := f.(cli.VisibleFlag); ok && !vf.IsVisible() {
			continue
		}
		out = append(out, f)
	}
	return out
}

func lookupFlag(flags []cli.Flag, name string) cli.Flag {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

func takesValue(f cli.Flag) bool {
	df, ok := f.(cli.DocGenerationFlag)
	return ok && df.TakesValue()
}

func flagUsage(f cli.Flag) string {
	if df, ok := f.(cli.DocGenerationFlag); ok {
		return strings.ReplaceAll(df.GetUsage(), "`", "")
	}
	return ""
}

func flagValues(f cli.Flag) []string {
	if v, ok := standardValues[f.Names()[0]]; ok {
		return v
	}
	if gf, ok := f.(*cli.GenericFlag); ok {
		if iv, ok := gf.Value.(*IntValue); ok {
			return iv.names
		}
	}
	return nil
}
