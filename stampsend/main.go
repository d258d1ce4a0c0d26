// Command stampsend is a STAMP Session-Sender (RFC 8762, RFC 8972) that measures round-trip
// time, loss, jitter and one-way delay against any STAMP or TWAMP-Light reflector.
package main

import (
	"os"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/stampsend/internal/cmd"
)

var version = "dev"

func main() {
	os.Exit(cliutil.Main(cmd.NewApp(version), os.Args))
}
