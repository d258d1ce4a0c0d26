package cliutil_test

import (
	"context"
	"fmt"
	"os"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/urfave/cli/v2"
)

// A tool's main.go: build the app, add flags, call into the tool's package, exit with Main's code.
func Example() {
	app := cliutil.NewApp("pinger", "measure round-trip time to HOST", "1.0.0")
	app.ArgsUsage = "HOST"
	app.Flags = append(app.Flags,
		cliutil.IntFlag("count", "send `N` probes", 3, 1, 1000),
		cliutil.DSCPFlag("dscp", "DSCP of probes: 0..63 or ef, af41, cs1 …", 0),
	)
	app.Action = func(c *cli.Context) error {
		if c.NArg() != 1 {
			return cliutil.Usagef("want one HOST, got %d arguments", c.NArg())
		}
		log := cliutil.Logger(c) // stderr, --log-level/--log-format
		out := cliutil.NewEmitter(c.App.Writer, cliutil.OutputFormat(c), "seq", "host", "dscp")
		defer out.Close()
		for i := int64(0); i < cliutil.Int(c, "count"); i++ {
			if err := c.Context.Err(); err != nil { // SIGINT: stop, flush what we have
				log.WithError(err).Info("stopping")
				break
			}
			out.Emit(i, c.Args().First(), cliutil.Int(c, "dscp"))
		}
		return nil
	}
	// main() would do: os.Exit(cliutil.Main(app, os.Args))
	code := cliutil.Run(context.Background(), app, []string{"pinger", "192.0.2.7", "--json", "-count", "2", "--dscp", "ef"})
	fmt.Fprintln(os.Stdout, "exit", code)
	// Output:
	// {"seq":0,"host":"192.0.2.7","dscp":46}
	// {"seq":1,"host":"192.0.2.7","dscp":46}
	// exit 0
}
