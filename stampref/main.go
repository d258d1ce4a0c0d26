// Command stampref is a STAMP Session-Reflector (RFC 8762, RFC 8972).
package main

import (
	"os"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/stampref/internal/cmd"
)

var version = "dev"

func main() {
	os.Exit(cliutil.Main(cmd.NewApp(version), os.Args))
}
