#!/usr/bin/env bash
# stampsend demo (STAMP, issue 4): start stampref on loopback, then measure 1,000 packets with
# Timestamp Information, Class of Service and Follow-Up Telemetry TLVs, an authenticated run
# against a second reflector, and show the reflector's monitoring counters.
set -euo pipefail
BIN=${BIN:-bin}
dir=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
port=$(( 20000 + RANDOM % 20000 ))
mon=$(( port + 2 ))
printf 'probekit-demo-key\n' >"$dir/key"
chmod 600 "$dir/key" # key files other accounts can read are refused
"$BIN/stampref" --listen "127.0.0.1:$port" --monitor "127.0.0.1:$mon" --log-level warn &
pids+=($!)
"$BIN/stampref" --listen "127.0.0.1:$((port + 1))" --auth --key-file "$dir/key" --no-monitor --log-level warn &
pids+=($!)
sleep 0.5
echo "### stampsend -c 1000 -i 1ms -q --tlv time --tlv cos:dscp=ef --tlv followup 127.0.0.1:$port"
"$BIN/stampsend" --log-level warn -c 1000 -i 1ms -q --tlv time --tlv cos:dscp=ef --tlv followup "127.0.0.1:$port"
echo
echo "### stampsend -c 5 -i 100ms --key-file KEY 127.0.0.1:$((port + 1))   (authenticated, HMAC-SHA-256/128)"
"$BIN/stampsend" --log-level warn -c 5 -i 100ms --key-file "$dir/key" "127.0.0.1:$((port + 1))"
echo
echo "### stampref monitoring: GET http://127.0.0.1:$mon/metrics (excerpt)"
exec 3<>"/dev/tcp/127.0.0.1/$mon"
printf 'GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
grep -E '^stampref_(received|reflected)_packets_total|^stampref_sessions|residence_seconds_(sum|count)' <&3 || true
exec 3>&-
