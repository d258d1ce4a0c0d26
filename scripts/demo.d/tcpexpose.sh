#!/usr/bin/env bash
# tcpexpose demo: the stateless responder and the full middlebox test catalogue on loopback,
# inside a private network namespace (so the managed nft tables and the crafted flows touch
# nothing else): a verdict per test and the original's Result line, then one crafted SYN with
# unknown options sent with `tcpexpose send`. Needs root (raw sockets, namespaces, nft).
set -euo pipefail
BIN=${BIN:-bin}
if [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null || ! command -v nft >/dev/null; then
  echo "tcpexpose demo: needs root, unshare and nft (raw sockets and RST suppression); skipped"
  exit 0
fi
BIN=$(cd "$BIN" && pwd)
exec unshare -n bash -s "$BIN" <<'INNER'
set -euo pipefail
BIN=$1
ip link set lo up
"$BIN/tcpexpose" responder --listen 127.0.0.1:34343 --manage-firewall --log-level warn &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
sleep 0.5
echo "$ tcpexpose test --manage-firewall 127.0.0.1:34343"
"$BIN/tcpexpose" test --manage-firewall --log-level warn 127.0.0.1:34343
echo
echo "$ tcpexpose send --manage-firewall --flags S --opts mss:1460,sackok,ts:1:0,ws:7,253:0x1234cafe 127.0.0.1:34343"
"$BIN/tcpexpose" send --manage-firewall --log-level warn --flags S --opts mss:1460,sackok,ts:1:0,ws:7,253:0x1234cafe 127.0.0.1:34343
INNER
