// Command pkbench measures UDP reflectors against the machine's limit: a minimal
// recvmmsg/sendmmsg echo and a fixed-rate load generator on 127.0.0.1.
//
//	pkbench echo --listen 127.0.0.1:9000            the limit echo (prints "listening ADDR")
//	pkbench load --target 127.0.0.1:9000 --pid PID  one fixed-rate run: loss, RTT, residence, CPU
//	pkbench reflector --cmd 'bin/stampref --listen 127.0.0.1:{port}' --rate 20000 --duration 5s
//
// "reflector" starts the limit echo and the command (with {port} replaced by a free port) as
// separate processes, offers both the same load and reports, from one run: CPU time per
// reflected packet at the fixed rate (utime+stime from /proc/PID/stat), the highest reply
// rate with < 0.1 % loss, and T3 − T2 read from STAMP/TWAMP replies at 10 kpps, with the
// issue 4/5 targets as checks (--check turns a missed target into exit status 1). Without
// --cmd a second echo stands in for the reflector: the baseline of two identical programs.
// scripts/bench builds it as bin/pkbench for the scripts/bench.d hooks.
package main

import (
	"os"

	"github.com/probekit/probekit/shared/cliutil"
)

var version = "dev"

func main() {
	os.Exit(cliutil.Main(newApp(version), os.Args))
}
