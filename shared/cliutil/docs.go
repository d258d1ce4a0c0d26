package cliutil

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

const docsCommandName = "docs"

// SetManSection sets the manual section of the app's man page: 1 (default) for user commands,
// 8 for daemons (twampd, stampref, ptpserver). Section 8 also makes the app a daemon (SetDaemon).
func SetManSection(app *cli.App, section int) {
	s := appState(app)
	s.manSection = section
	s.daemon = section == 8
}

// SetDaemon marks app as a daemon: man page section 8, and SIGTERM/SIGINT are its normal
// end (exit 0 when the action then returns nil or the cancellation; systemd counts exit 143
// as a failure).
func SetDaemon(app *cli.App) { SetManSection(app, 8) }

// docsCommand is the hidden "docs" subcommand packaging runs on the built binary:
// "<tool> docs man [--section N]|bash|zsh|fish" writes the document to stdout.
func docsCommand() *cli.Command {
	return &cli.Command{
		Name:            docsCommandName,
		Usage:           "print the man page or a shell completion script (used by packaging)",
		ArgsUsage:       "man|bash|zsh|fish",
		Hidden:          true,
		HideHelpCommand: true,
		Flags: []cli.Flag{
			IntFlag("section", "manual `SECTION` (0: the app's own, 1 for commands, 8 for daemons)", 0, 0, 9),
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return Usagef("docs: want one of man, bash, zsh, fish")
			}
			app := c.App
			var (
				doc string
				err error
			)
			switch c.Args().First() {
			case "man":
				section := appState(app).manSection
				if s := Int(c, "section"); s != 0 {
					section = int(s)
				}
				doc, err = ManPage(app, section)
			case "bash":
				doc = BashCompletion(app.Name)
			case "zsh":
				doc = ZshCompletion(app.Name)
			case "fish":
				doc, err = FishCompletion(app)
			default:
				return Usagef("docs: unknown document %q (man, bash, zsh, fish)", c.Args().First())
			}
			if err != nil {
				return fmt.Errorf("docs: %w", err)
			}
			_, err = fmt.Fprint(c.App.Writer, doc)
			return err
		},
	}
}

// ManPage renders the app's man page (roff) in the given section: NAME, SYNOPSIS, DESCRIPTION,
// OPTIONS, COMMANDS (visible ones), EXIT STATUS. The output has no date, so packages built from
// the same source are identical.
func ManPage(app *cli.App, section int) (string, error) {
	app.Setup()
	var b strings.Builder
	fmt.Fprintf(&b, ".TH %s %d \"\" %s \"probekit\"\n", roffArg(strings.ToUpper(app.Name)), section, roffArg(app.Name+" "+app.Version))
	b.WriteString(".SH NAME\n")
	fmt.Fprintf(&b, "%s \\- %s\n", roffText(app.Name), roffText(app.Usage))
	b.WriteString(".SH SYNOPSIS\n")
	cmds := visibleCommands(app.Commands)
	if app.UsageText != "" {
		// The tool's own synopsis, one line per form.
		for i, l := range strings.Split(strings.TrimSpace(app.UsageText), "\n") {
			if i > 0 {
				b.WriteString(".br\n")
			}
			b.WriteString(roffText(strings.TrimSpace(l)) + "\n")
		}
	} else {
		fmt.Fprintf(&b, ".B %s\n", roffText(app.Name))
		b.WriteString("[\\fIOPTIONS\\fR]")
		if app.ArgsUsage != "" {
			fmt.Fprintf(&b, " \\fI%s\\fR", roffText(app.ArgsUsage))
		}
		b.WriteString("\n")
		if len(cmds) > 0 {
			b.WriteString(".br\n")
			fmt.Fprintf(&b, ".B %s\n", roffText(app.Name))
			b.WriteString("[\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fICOMMAND OPTIONS\\fR] [\\fIARGUMENTS\\fR]\n")
		}
	}
	if app.Description != "" {
		b.WriteString(".SH DESCRIPTION\n")
		roffParagraphs(&b, app.Description)
	}
	b.WriteString(".SH OPTIONS\n")
	b.WriteString("Options go before or after arguments; everything after \\fB\\-\\-\\fR is an argument.\n")
	roffFlags(&b, app.VisibleFlags())
	if len(cmds) > 0 {
		b.WriteString(".SH COMMANDS\n")
		for _, c := range cmds {
			roffCommand(&b, c, "")
		}
	}
	b.WriteString(`.SH EXIT STATUS
The same rule holds for every probekit tool.
.TP
.B 0
success
.TP
.B 1
failure (network, peer or I/O error; a sender that got no reply at all)
.TP
.B 2
usage error (unknown option, bad value, missing argument)
.TP
.B 130, 143
stopped by SIGINT or SIGTERM before the run completed.
A sender stopped after replies came back exits as a finished run does (0, or 1 for an error), like ping;
a daemon stopped by SIGINT or SIGTERM exits 0.
The first signal stops the measurement and prints the results so far; a second one exits at once,
after the output line being written is complete.
.SH NOTES
Logs and errors go to standard error (\fB\-\-log\-format json\fR for structured logs); results go to
standard output (\fB\-\-format text|json|csv\fR).
`)
	return b.String(), nil
}

func visibleCommands(cmds []*cli.Command) []*cli.Command {
	var out []*cli.Command
	for _, c := range cmds {
		if !c.Hidden && c.Name != "help" {
			out = append(out, c)
		}
	}
	return out
}

func roffCommand(b *strings.Builder, c *cli.Command, parent string) {
	name := strings.TrimSpace(parent + " " + c.Name)
	b.WriteString(".TP\n")
	fmt.Fprintf(b, "\\fB%s\\fR", roffText(name))
	if c.ArgsUsage != "" {
		fmt.Fprintf(b, " \\fI%s\\fR", roffText(c.ArgsUsage))
	}
	b.WriteString("\n")
	b.WriteString(roffText(c.Usage) + "\n")
	if c.Description != "" {
		b.WriteString(".IP\n")
		roffParagraphs(b, c.Description)
	}
	var flags []cli.Flag
	for _, f := range c.Flags {
		if vf, ok := f.(cli.VisibleFlag); ok && !vf.IsVisible() {
			continue
		}
		flags = append(flags, f)
	}
	if len(flags) > 0 {
		b.WriteString(".RS\n")
		roffFlags(b, flags)
		b.WriteString(".RE\n")
	}
	for _, sc := range visibleCommands(c.Subcommands) {
		roffCommand(b, sc, name)
	}
}

// roffFlags writes each flag as a tagged paragraph using the same text as --help.
func roffFlags(b *strings.Builder, flags []cli.Flag) {
	for _, f := range flags {
		head, usage, _ := strings.Cut(cli.FlagStringer(f), "\t")
		usage = strings.TrimSuffix(usage, " (default: false)")
		b.WriteString(".TP\n")
		var parts []string
		for _, alt := range strings.Split(head, ", ") {
			name, arg, hasArg := strings.Cut(alt, " ")
			p := "\\fB" + roffText(name) + "\\fR"
			if hasArg {
				p += " \\fI" + roffText(arg) + "\\fR"
			}
			parts = append(parts, p)
		}
		b.WriteString(strings.Join(parts, ", ") + "\n")
		b.WriteString(roffText(usage) + "\n")
	}
}

func roffParagraphs(b *strings.Builder, text string) {
	for i, p := range strings.Split(strings.TrimSpace(text), "\n\n") {
		if i > 0 {
			b.WriteString(".PP\n")
		}
		b.WriteString(roffText(strings.TrimSpace(p)) + "\n")
	}
}

// roffText escapes text for a roff body line: backslashes, hyphens (so they copy-paste as
// ASCII) and control characters at the start of lines.
func roffText(s string) string {
	s = strings.ReplaceAll(s, "\\", "\\e")
	s = strings.ReplaceAll(s, "-", "\\-")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
			lines[i] = "\\&" + l
		}
	}
	return strings.Join(lines, "\n")
}

func roffArg(s string) string {
	return `"` + strings.ReplaceAll(roffText(s), `"`, `\(dq`) + `"`
}

// FishCompletion renders a fish completion script: options of the app and of each visible
// command, and the command names.
func FishCompletion(app *cli.App) (string, error) {
	app.Setup()
	var b strings.Builder
	fmt.Fprintf(&b, "# fish completion for %s (generated by \"%s docs fish\")\n", app.Name, app.Name)
	cmds := visibleCommands(app.Commands)
	cond := ""
	if len(cmds) > 0 {
		cond = " -n __fish_use_subcommand"
	}
	fishFlags(&b, app.Name, cond, app.VisibleFlags())
	for _, c := range cmds {
		fmt.Fprintf(&b, "complete -c %s -f%s -a %s -d %s\n", app.Name, cond, fishQuote(c.Name), fishQuote(c.Usage))
		var flags []cli.Flag
		for _, f := range c.Flags {
			if vf, ok := f.(cli.VisibleFlag); ok && !vf.IsVisible() {
				continue
			}
			flags = append(flags, f)
		}
		fishFlags(&b, app.Name, " -n "+fishQuote("__fish_seen_subcommand_from "+strings.Join(c.Names(), " ")), flags)
	}
	return b.String(), nil
}

func fishFlags(b *strings.Builder, tool, cond string, flags []cli.Flag) {
	for _, f := range flags {
		fmt.Fprintf(b, "complete -c %s%s", tool, cond)
		for _, n := range f.Names() {
			if len(n) == 1 {
				fmt.Fprintf(b, " -s %s", n)
			} else {
				fmt.Fprintf(b, " -l %s", n)
			}
		}
		if df, ok := f.(cli.DocGenerationFlag); ok {
			if df.TakesValue() {
				b.WriteString(" -r")
			}
			if u := strings.ReplaceAll(df.GetUsage(), "`", ""); u != "" {
				fmt.Fprintf(b, " -d %s", fishQuote(u))
			}
		}
		b.WriteString("\n")
	}
}

func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// BashCompletion returns a bash completion script for tool; the binary itself answers (see
// complete.go): options after "-", values of enumerated options, subcommands.
func BashCompletion(tool string) string {
	fn := "_probekit_" + shellIdent(tool)
	return strings.NewReplacer("@FN@", fn, "@TOOL@", tool).Replace(`# bash completion for @TOOL@ (generated by "@TOOL@ docs bash")
@FN@() {
	local cur="${COMP_WORDS[COMP_CWORD]}" IFS=$'\n'
	COMPREPLY=($(compgen -W "$("${COMP_WORDS[@]:0:COMP_CWORD}" "$cur" --generate-bash-completion 2>/dev/null)" -- "$cur"))
}
complete -o bashdefault -o default -F @FN@ @TOOL@
`)
}

// ZshCompletion returns a zsh completion script (#compdef) for tool, answered by the binary like
// BashCompletion but with descriptions.
func ZshCompletion(tool string) string {
	fn := "_probekit_" + shellIdent(tool)
	return strings.NewReplacer("@FN@", fn, "@TOOL@", tool).Replace(`#compdef @TOOL@
# zsh completion for @TOOL@ (generated by "@TOOL@ docs zsh")
@FN@() {
	local -a opts
	opts=("${(@f)$("${(@)words[1,CURRENT]}" --generate-zsh-completion 2>/dev/null)}")
	if [[ -n "${opts[1]}" ]]; then
		_describe 'values' opts
	else
		_files
	fi
}
if [[ "${funcstack[1]}" == "_@TOOL@" ]]; then
	@FN@ "$@"
else
	compdef @FN@ @TOOL@
fi
`)
}

func shellIdent(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, s)
}
