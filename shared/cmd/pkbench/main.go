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
//
//	pkbench scale --workers 2 --flows 8 --rate 40000
//
// "scale" runs shared/reflector itself (pkbench serve) as 1 worker, N workers on N
// SO_REUSEPORT sockets and N workers on one socket, and compares packets per CPU-second
// (issue 10: N × that of N workers / that of 1 worker ≥ 1.7 for N = 2) and residence p50.
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
