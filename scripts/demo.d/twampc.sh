#!/usr/bin/env bash
# twampc demo: start twampd on loopback with all four security modes and a pass-phrase file
# in owamp's format, then measure 200 packets per mode (encrypted shown with two parallel
# sessions), TWAMP Light against twampd --light, RFC 6038 reflect octets with the symmetrical
# size format, and twping-style raw (-R) lines.
set -euo pipefail
BIN=${BIN:-bin}
dir=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
printf 'demo\t%s\n' "$(printf 'probekit-demo' | od -An -tx1 | tr -d ' \n')" >"$dir/keys"
chmod 600 "$dir/keys" # key files other accounts can read are refused
port=$(( 20000 + RANDOM % 20000 ))
"$BIN/twampd" --listen "127.0.0.1:$port" --auth-modes OAEM --key-file "$dir/keys" --metrics= --log-level warn &
pids+=($!)
"$BIN/twampd" --light --listen "127.0.0.1:$((port + 1))" --metrics= --log-level warn &
pids+=($!)
sleep 0.5
for m in O A M; do
  echo "### twampc -A $m -c 200 -i 1ms 127.0.0.1:$port"
  "$BIN/twampc" --log-level warn -A "$m" -u demo -k "$dir/keys" -c 200 -i 1ms "127.0.0.1:$port"
done
echo "### twampc -A E --sessions 2 -c 200 -i 1ms 127.0.0.1:$port"
"$BIN/twampc" --log-level warn -A E -u demo -k "$dir/keys" --sessions 2 -c 200 -i 1ms "127.0.0.1:$port"
echo "### twampc --light -c 200 -i 1ms 127.0.0.1:$((port + 1))"
"$BIN/twampc" --log-level warn --light -c 200 -i 1ms "127.0.0.1:$((port + 1))"
echo "### twampc -A E --reflect-octets beef --reflect-padding 16 --symmetric -c 200 -i 1ms 127.0.0.1:$port (RFC 6038)"
"$BIN/twampc" --log-level warn -A E -u demo -k "$dir/keys" --reflect-octets beef --reflect-padding 16 --symmetric -c 200 -i 1ms "127.0.0.1:$port"
echo "### twampc -R -c 3 -i 10ms 127.0.0.1:$port (twping raw lines)"
"$BIN/twampc" --log-level warn -R -c 3 -i 10ms "127.0.0.1:$port"
