// Command ptpserver is the PtP test (peer-to-peer UDP mesh tester) rendezvous server,
// wire-compatible with chrisy/ptptest.
package main

import (
	"os"

	_ "github.com/probekit/probekit/ptpserver/internal/analytics" // --store, --web: mesh analytics (issue 14)
	"github.com/probekit/probekit/ptpserver/internal/cmd"
	"github.com/probekit/probekit/shared/cliutil"
)

var version = "dev"

func main() {
	os.Exit(cliutil.Main(cmd.NewApp(version), os.Args))
}
