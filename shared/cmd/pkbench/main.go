// Command pkbench measures UDP reflectors against the machine's limit: a minimal
// recvmmsg/sendmmsg echo and a fixed-rate load generator on 127.0.0.1.
package main

import (
	"os"

	"github.com/probekit/probekit/shared/cliutil"
)

var version = "dev"

func main() {
	os.Exit(cliutil.Main(newApp(version), os.Args))
}
