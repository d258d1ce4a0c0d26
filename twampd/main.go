// Command twampd is a TWAMP Server and Session-Reflector (RFC 5357) with authenticated,
// encrypted and mixed modes, RFC 5938 individual session control and a TWAMP Light mode.
package main

import (
	"os"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/twampd/internal/cmd"
)

var version = "dev"

func main() { os.Exit(cliutil.Main(cmd.NewApp(version), os.Args)) }
