#!/usr/bin/env bash
# ptp.sh (issues 12 and 14): the PtP test figures.
#  Server part (ptpserver):
#  1. go test -bench: decoding a probe (shared/ptp), a v3 beacon with NATINFO and 9 REACH through
#     the server's receive path, relaying (allocations per packet must be 0);
#  2. ptpload mesh: 10,000 simulated v3 clients in 1,000 meshes of 10 on the original timers
#     (beacon every 7 s with NATINFO + a REACH per peer, each list's MYTS answered), 1 % of them
#     joining or leaving per minute, against bin/ptpserver on 127.0.0.1: server CPU (utime+stime
#     from /proc over the window; target < 10 % of one core), peak RSS (target < 200 MB), and the
#     shortest gap between two list rounds to one client by the rounds' own MYTS (coalescing:
#     target ≥ 1 s);
#  3. ptpload relay: RELAYTO packets between 4 client pairs through bin/ptpserver at a paced
#     60,000/s and 120,000/s: delivered relayed packets/s (target ≥ 50,000) and server CPU.
# Everything runs on 127.0.0.1 and is bounded in time (PTP_WINDOW, default 60 s for the mesh run).
set -euo pipefail
BIN=${BIN:-bin}
mkdir -p "$BIN"
CGO_ENABLED=0 go build -C ptpserver -trimpath -o "$(cd "$BIN" && pwd)/ptpserver" .
CGO_ENABLED=0 go build -C ptpserver -trimpath -o "$(cd "$BIN" && pwd)/ptpload" ./internal/ptpload

echo "--- codec and server hot paths (go test -bench)"
(cd shared && go test -run '^$' -bench 'BenchmarkDecodeProbe|BenchmarkEncodeReply' -benchmem -benchtime "${BENCHTIME:-1s}" ./ptp) | grep -E '^Benchmark'
(cd ptpserver && go test -run '^$' -bench 'BenchmarkRelay$|BenchmarkBeacon$' -benchmem -benchtime "${BENCHTIME:-1s}" ./internal/server) | grep -E '^Benchmark'

pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null' EXIT
start_server() { # extra flags…
  port=$(( 20000 + RANDOM % 20000 ))
  "$BIN/ptpserver" -s 127.0.0.1 -p "$port" --no-tui --log-level warn "$@" >/dev/null &
  pid=$!
  sleep 0.5
}
stop_server() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

echo
echo "--- ptpserver with 10,000 v3 clients in 1,000 meshes of 10 (window ${PTP_WINDOW:-60s})"
echo "    ptpload -mode mesh -clients 10000 -mesh-size 10 -churn 100 -warmup 15s -window ${PTP_WINDOW:-60s}"
start_server
"$BIN/ptpload" -mode mesh -server "127.0.0.1:$port" -pid "$pid" -clients 10000 -mesh-size 10 -churn 100 \
  -warmup 15s -window "${PTP_WINDOW:-60s}"
stop_server

for rate in 60000 120000; do
  echo
  echo "--- ptpserver relaying: 4 pairs, $rate RELAYTO packets/s offered"
  echo "    ptpserver --relay-rate 1000000 --relay-burst 1000000; ptpload -mode relay -pairs 4 -rate $rate -warmup 2s -window 5s"
  start_server --relay-rate 1000000 --relay-burst 1000000
  "$BIN/ptpload" -mode relay -server "127.0.0.1:$port" -pid "$pid" -pairs 4 -rate "$rate" -warmup 2s -window 5s
  stop_server
done
