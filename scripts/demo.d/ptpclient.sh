#!/usr/bin/env bash
# ptpclient demo (PtP test, issue 12): ptpserver on 127.0.0.1 (with RFC 5780 STUN from 127.0.0.2)
# and three ptpclients on 127.0.0.3, .4 and .5 for 5 seconds. Each client discovers its NAT
# behaviour with STUN on its own socket (loopback: no NAT, endpoint-independent), finds the two
# others on the server's list, probes them twice a second and prints its final report: path,
# sent/received/lost, RTT min/avg/p50/p99/max and RFC 3550 jitter per peer. The server keeps
# the clients' reports (--store in a temporary directory) and serves the mesh web page (--web);
# while the clients run, the demo prints the page's URL and the ASCII matrix from
# /api/matrix.txt (issue 14).
set -euo pipefail
BIN=${BIN:-bin}
[ -x "$BIN/ptpserver" ] || { echo "ptpclient demo: $BIN/ptpserver is not built" >&2; exit 1; }
dir=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
port=$(( 20000 + RANDOM % 20000 ))
other=$(( port + 1 ))
web=$(( port + 2 ))
echo "### ptpserver -s 127.0.0.1 -p $port --other-address 127.0.0.2:$other --no-tui --store DIR/ptp.db --store-every 0 --web 127.0.0.1:$web"
"$BIN/ptpserver" -s 127.0.0.1 -p "$port" --other-address "127.0.0.2:$other" --no-tui --log-level warn \
  --store "$dir/ptp.db" --store-every 0 --web "127.0.0.1:$web" >"$dir/server" 2>&1 &
pids+=($!)
sleep 0.5
for i in 3 4 5; do
  "$BIN/ptpclient" -s 127.0.0.1 -p "$port" --bind "127.0.0.$i:0" --duration 10s --no-ui --log-level warn >"$dir/c$i" 2>&1 &
  pids+=($!)
done
echo "### 3 x ptpclient -s 127.0.0.1 -p $port --bind 127.0.0.N:0 --duration 10s"
# Each client reports to the server every 7 s: the matrix is complete after the second round.
sleep 8.5
echo
echo "### mesh web page: http://127.0.0.1:$web/ (while the clients run); its ASCII matrix:"
echo "### curl http://127.0.0.1:$web/api/matrix.txt"
curl -fsS "http://127.0.0.1:$web/api/matrix.txt" || { echo "web page: no matrix"; cat "$dir/server"; exit 1; }
fail=0
for i in 1 2 3; do wait "${pids[$i]}" || fail=1; done
echo
echo "### events of the client on 127.0.0.3"
sed -n '/^client /q;p' "$dir/c3"
echo
echo "### final report of the client on 127.0.0.3"
sed -n '/^client /,$p' "$dir/c3"
echo
echo "### the other two clients' peer rows"
grep -h -A3 '^Address' "$dir/c4" "$dir/c5" | grep -v '^--' || true
[ "$fail" = 0 ] || { echo "a client failed:"; cat "$dir"/c*; exit 1; }
grep -q ' direct ' "$dir/c3" || { echo "no direct path found"; exit 1; }
