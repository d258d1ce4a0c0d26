#!/usr/bin/env bash
# ptpserver demo (PtP test, issue 12): the server on loopback with two clients speaking the
# original ptptest protocol v2, byte for byte as the Python client sends it (golden vectors of
# shared/data/ptp: the first beacon with its json.dumps META, then SHUTDOWN). Each client is one
# UDP socket of this shell (bash /dev/udp), so the server sees two addresses: it lists each to
# the other, answers their timestamps, answers a STUN Binding request on the same port, drops the
# client that shuts down and prints its per-client summary on SIGTERM. ptpclient's demo runs
# the server with real clients.
set -euo pipefail
BIN=${BIN:-bin}
port=$(( 20000 + RANDOM % 20000 ))
out=$(mktemp)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -f "$out"' EXIT
# One datagram per packet: printf may write in pieces, dd (fullblock) writes it in one go.
pkt() { printf '%b' "$(sed 's/../\\x&/g' <<<"$1")" | dd bs=2048 iflag=fullblock status=none; }
# Client A: c2s_register_first (UUID 0f1e…, PTPADDR 10.0.1.2:40000); client B: the same beacon
# with UUID b0b1…; A's SHUTDOWN: c2s_shutdown.
A=0102030203060000000004120f1e2d3c4b5a69788796a5b4c3d2e1f020080a0001029c40080a666699808000000023947b223139322e302e322e312d3233343536223a207b2273696e223a205b223139322e302e322e31222c2032333435365d2c20226e616d65223a20223139322e302e322e31222c20227473223a20313731383030303030302e32352c20227374617473223a207b2273656e74223a20302c202272637664223a20302c202261636b64223a20302c2022727474223a20307d7d7dc7e3
B=010203020306000000000412b0b1b2b3b4b5b6b7b8b9babbbcbdbebf20080a0001029c40080a666699808000000023947b223139322e302e322e312d3233343536223a207b2273696e223a205b223139322e302e322e31222c2032333435365d2c20226e616d65223a20223139322e302e322e31222c20227473223a20313731383030303030302e32352c20227374617473223a207b2273656e74223a20302c202272637664223a20302c202261636b64223a20302c2022727474223a20307d7d7dce59
A_SHUTDOWN=0102030203060000000804120f1e2d3c4b5a69788796a5b4c3d2e1f020080a0001029c402d030123047b7db9b3
STUN_BINDING=000100002112a442b7e7a701bc34d686fa87dfae

echo "### ptpserver -s 127.0.0.1 -p $port --no-tui"
"$BIN/ptpserver" -s 127.0.0.1 -p "$port" --no-tui --log-level warn >"$out" &
pid=$!
exec 3<>"/dev/udp/127.0.0.1/$port" 4<>"/dev/udp/127.0.0.1/$port"
echo "### client A and client B send their first beacon (protocol v2)"
# A repeats its beacon until the server answers (it may still be starting).
for i in $(seq 50); do
  pkt "$A" >&3
  if read -r -t 0.2 -N 1 _ <&3; then break; fi
  [ "$i" -lt 50 ] || { echo "ptpserver does not answer" >&2; exit 1; }
done
pkt "$B" >&4
sleep 1.5
echo "### client A asks for its public address (STUN Binding on the same port)"
pkt "$STUN_BINDING" >&3
sleep 0.5
echo "### client A sends SHUTDOWN"
pkt "$A_SHUTDOWN" >&3
sleep 1.5
exec 3>&- 4>&-
kill -TERM "$pid"
wait "$pid"
pid=
cat "$out"
grep -q ' leave .* (shutdown)' "$out"
grep -q 'stun 1' "$out"
