// Command ptpclient is the PtP test (peer-to-peer UDP mesh tester) client: it registers with a
// ptpserver, probes every peer, learns direct paths through NATs and reports RTT, jitter, loss,
// the path and why a peer is not reached directly.
package main

import (
	"os"

	"github.com/probekit/probekit/ptpclient/internal/cmd"
	"github.com/probekit/probekit/shared/cliutil"
)

var version = "dev"

func main() { os.Exit(cliutil.Main(cmd.NewApp(version), os.Args)) }
