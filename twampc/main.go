// Command twampc is a TWAMP Control-Client and Session-Sender (RFC 5357) with twping-like
// flags and output, authenticated/encrypted/mixed modes, parallel sessions and TWAMP Light.
package main

import (
	"os"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/twampc/internal/cmd"
)

var version = "dev"

func main() { os.Exit(cliutil.Main(cmd.NewApp(version), os.Args)) }
