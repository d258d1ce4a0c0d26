package cliutil

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// Lint reports urfave/cli/v2 traps in an application's flags; call it from a tool's tests
// (if errs := cliutil.Lint(app); len(errs) > 0 { t.Fatal(errs) }); `make test` also runs it on
// every built tool through Main's PROBEKIT_LINT_CLI=1 entry point (scripts/cli-lint.sh). It finds:
//   - cli.IntFlag, Int64Flag, UintFlag, Uint64Flag and their slices (base-0 parsing: "010" is 8);
//     use IntFlag, UintFlag, PortFlag, DSCPFlag or PortRangeFlag from this package;
//   - BoolFlag with Value true (cannot be turned off with "--x false"); use a --no-x flag;
//   - a flag name defined twice in one command (urfave panics at run time);
//   - a command without Usage (empty line in help and man page).
func Lint(app *cli.App) []error {
	var errs []error
	errs = append(errs, lintFlags(app.Name, app.Flags)...)
	for _, c := range app.Commands {
		errs = append(errs, lintCommand(app.Name, c)...)
	}
	return errs
}

func lintCommand(path string, c *cli.Command) []error {
	path += " " + c.Name
	var errs []error
	if c.Usage == "" && !c.Hidden {
		errs = append(errs, fmt.Errorf("%s: command has no Usage", path))
	}
	errs = append(errs, lintFlags(path, c.Flags)...)
	for _, sc := range c.Subcommands {
		errs = append(errs, lintCommand(path, sc)...)
	}
	return errs
}

func lintFlags(path string, flags []cli.Flag) []error {
	var errs []error
	seen := map[string]bool{}
	for _, f := range flags {
		name := f.Names()[0]
		for _, n := range f.Names() {
			if seen[n] {
				errs = append(errs, fmt.Errorf("%s: flag -%s defined twice", path, n))
			}
			seen[n] = true
		}
		switch ff := f.(type) {
		case *cli.IntFlag, *cli.Int64Flag, *cli.UintFlag, *cli.Uint64Flag,
			*cli.IntSliceFlag, *cli.Int64SliceFlag, *cli.UintSliceFlag, *cli.Uint64SliceFlag:
			errs = append(errs, fmt.Errorf("%s: --%s parses base 0 (\"010\" = 8); use cliutil.IntFlag or cliutil.UintFlag", path, name))
		case *cli.BoolFlag:
			if ff.Value {
				errs = append(errs, fmt.Errorf("%s: --%s defaults to true and \"--%s false\" does not turn it off; add a --no-%s flag instead", path, name, name, name))
			}
		}
	}
	return errs
}
