#!/usr/bin/env bash
# stampref demo (STAMP, issue 4): a reflector that answers provisioned sessions only. A session
# (sender address and port, SSID, its own HMAC key) is provisioned through the localhost API,
# then measured with stampsend in authenticated mode; an unprovisioned sender gets no reply.
# Finally GET /sessions and /stats show the reflector's view.
set -euo pipefail
BIN=${BIN:-bin}
dir=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
port=$(( 20000 + RANDOM % 20000 ))
mon=$(( port + 1 ))
sport=$(( port + 2 ))
http() { # METHOD PATH [BODY]: a minimal HTTP/1.0 client on the monitoring port
  local body=${3:-}
  exec 3<>"/dev/tcp/127.0.0.1/$mon"
  printf '%s %s HTTP/1.0\r\nHost: localhost\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' \
    "$1" "$2" "$(cat "$dir/token")" "${#body}" "$body" >&3
  sed '1,/^\r$/d' <&3
  exec 3>&-
}
# POST/DELETE need the API token (a private file); without one the API is read-only.
(umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/token")
"$BIN/stampref" --listen "127.0.0.1:$port" --monitor "127.0.0.1:$mon" --monitor-token-file "$dir/token" --auth --provisioned-only --log-level warn &
pids+=($!)
sleep 0.5
echo "### POST /sessions {peer 127.0.0.1:$sport, ssid 7, own key}"
http POST /sessions "{\"peer\": \"127.0.0.1:$sport\", \"ssid\": 7, \"key\": \"session-seven-key\"}"
printf 'session-seven-key\n' >"$dir/key"
chmod 600 "$dir/key" # key files other accounts can read are refused
echo
echo "### stampsend -c 500 -i 2ms -q --ssid 7 --source 127.0.0.1:$sport --key-file KEY 127.0.0.1:$port"
"$BIN/stampsend" --log-level warn -c 500 -i 2ms -q --ssid 7 --source "127.0.0.1:$sport" --key-file "$dir/key" "127.0.0.1:$port"
echo
echo "### the same sender from another port (not provisioned): no reply expected"
if "$BIN/stampsend" --log-level warn -c 3 -i 10ms -W 300ms -q --ssid 7 --key-file "$dir/key" "127.0.0.1:$port" 2>&1; then
  echo "unexpected: an unprovisioned session was answered" >&2
  exit 1
fi
echo
echo "### GET /sessions"
http GET /sessions
echo "### GET /stats"
http GET /stats | grep -E '"(received|reflected|unknown_session|sessions)"'
