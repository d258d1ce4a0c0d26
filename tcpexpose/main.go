// Command tcpexpose crafts TCP segments and tests what middleboxes on a path do to TCP
// extensions (TCPExposure): `tcpexpose test` runs the test catalogue against a responder,
// `tcpexpose responder` is the stateless responder, `tcpexpose send` sends crafted segments.
package main

import (
	"os"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/tcpexpose/internal/cmd"
)

var version = "dev"

func main() { os.Exit(cliutil.Main(cmd.NewApp(version), os.Args)) }
