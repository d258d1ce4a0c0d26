#!/usr/bin/env bash
# tcpexpose bench: (1) the responder's per-segment work (decode + reply, 0 allocs) as a Go
# benchmark; (2) the responder answering a SYN flood on loopback end to end (AF_PACKET ring in,
# raw socket out) for a fixed time, replies counted on the wire (target ≥ 100,000 segments/s);
# (3) the full test catalogue against the responder on loopback (target < 10 s). (2) and (3)
# run in a private network namespace and need root.
set -euo pipefail
BIN=${BIN:-bin}
mkdir -p "$BIN"
CGO_ENABLED=0 go build -trimpath -o "$BIN/tcpexpose" ./tcpexpose
echo "--- responder per-segment work (go test -bench Reply)"
(cd tcpexpose && go test -run '^$' -bench 'Reply$' -benchmem -benchtime "${BENCHTIME:-1s}" ./internal/responder)
if [ "$(id -u)" != 0 ]; then
  echo "tcpexpose bench: the loopback runs need root; skipped"
  exit 0
fi
echo
for rate in 100000 130000; do
  echo "--- responder on loopback: SYN flood offered at $rate/s, answered per second (go test -bench ResponderLoopback)"
  (cd tcpexpose && TCPEXPOSE_BENCH_RATE=$rate go test -run '^$' -bench 'ResponderLoopback' -benchtime "${BENCH_COUNT:-300000}x" ./internal/responder)
done
echo
echo "--- full catalogue against the responder on loopback"
BINABS=$(cd "$BIN" && pwd)
unshare -n bash -s "$BINABS" <<'INNER'
set -euo pipefail
BIN=$1
ip link set lo up
"$BIN/tcpexpose" responder --listen 127.0.0.1:34343 --manage-firewall --log-level warn &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
sleep 0.5
for i in 1 2 3; do
  start=$(date +%s.%N)
  "$BIN/tcpexpose" test --manage-firewall --log-level warn 127.0.0.1:34343 | tail -1 | cut -c1-60
  end=$(date +%s.%N)
  echo "run $i: full catalogue in $(echo "$end - $start" | bc) s (target < 10 s)"
done
INNER
