// Command spp measures the round-trip time between two points of a network path from the
// traffic seen at both (Synthetic Packet Pairs, a drop-in rebuild of CAIA SPP 0.3.x).
package main

import (
	"os"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/spp/internal/cmd"
)

var version = "dev"

func main() {
	os.Exit(cliutil.Main(cmd.NewApp(version), cmd.Getopt(os.Args)))
}
