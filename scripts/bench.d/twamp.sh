#!/usr/bin/env bash
# twamp.sh: (1) twampd's Session-Reflector (TWAMP Light socket, the same shared reflector path
# the control-negotiated sessions use) against the limit echo in one run: CPU per reflected
# packet, max loss-free rate, T3−T2 at 10 kpps (targets of issue 5: ≤ 1.3× CPU, ≥ 0.95× rate,
# p50 ≤ 5 µs, p99 ≤ 50 µs), also with --busy-poll 200us (unpinned, and pinned away from the
# generator against a polling limit echo, as stamp.sh does for stampref); (2) twampc sustaining 100 kpps in one session against twampd on
# loopback through TWAMP-Control, reporting false loss (target < 0.01 %).
set -euo pipefail
BIN=${BIN:-bin}
mkdir -p "$BIN"
CGO_ENABLED=0 go build -trimpath -o "$BIN/twampd" ./twampd
CGO_ENABLED=0 go build -trimpath -o "$BIN/twampc" ./twampc
"${PKBENCH:-bin/pkbench}" --log-level warn reflector --name twampd-light --size 41 \
  --cmd "$BIN/twampd --light --listen 127.0.0.1:{port} --metrics= --log-level warn" \
  --rate 20000 --duration "${BENCH_DURATION:-5s}" --repeat "${BENCH_REPEAT:-3}" \
  --residence-duration 2s --search-duration 1s

echo
echo "--- issue 10: default twampd --light residence at 10 kpps and 100 pps vs the stamping limit echo (one run)"
"${PKBENCH:-bin/pkbench}" --log-level warn reflector --name twampd-light-default --size 41 --limit-stamps \
  --cmd "$BIN/twampd --light --listen 127.0.0.1:{port} --metrics= --log-level warn" \
  --rate 20000 --duration "${BENCH_DURATION:-5s}" --repeat 1 --no-search \
  --residence-rate 10000 --residence-duration 6s --residence-also 100 --residence-slices 6

echo
echo "--- twampd --light --busy-poll 200us vs the limit echo (residence with polling instead of wake-ups)"
"${PKBENCH:-bin/pkbench}" --log-level warn reflector --name twampd-light-busy-poll --size 41 \
  --cmd "$BIN/twampd --light --listen 127.0.0.1:{port} --metrics= --log-level warn --busy-poll 200us" \
  --rate 20000 --duration "${BENCH_DURATION:-5s}" --repeat 1 --no-search \
  --residence-rate 10000 --residence-duration 3s

echo
echo "--- twampd --light --busy-poll 200us, pinned: generator on one CPU, limit echo (also polling) and twampd on the other"
"${PKBENCH:-bin/pkbench}" --log-level warn reflector --name twampd-light-busy-poll-pinned --size 41 --pin \
  --limit-stamps --limit-busy-poll 200us \
  --cmd "$BIN/twampd --light --listen 127.0.0.1:{port} --metrics= --log-level warn --busy-poll 200us" \
  --rate 20000 --duration "${BENCH_DURATION:-5s}" --repeat 1 --no-search \
  --residence-rate 10000 --residence-duration "${BENCH_RESIDENCE:-10s}"

echo
echo "--- twampc 100 kpps, one session, twampd on loopback (TWAMP-Control, open mode)"
port=$(( 20000 + RANDOM % 20000 ))
"$BIN/twampd" --listen "127.0.0.1:$port" --metrics= --log-level warn &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
sleep 0.5
count=${TWAMP_BENCH_COUNT:-500000}
start=$(date +%s.%N)
out=$("$BIN/twampc" --log-level warn --json -c "$count" -i 10usf -L 2s "127.0.0.1:$port" | tail -1)
end=$(date +%s.%N)
python3 - "$out" "$count" <<'PY'
import json, sys
s = json.loads(sys.argv[1]); n = int(sys.argv[2])
span = (s["last"], s["first"])
from datetime import datetime
def t(x): return datetime.fromisoformat(x.replace("Z", "+00:00"))
dur = (t(s["last"]) - t(s["first"])).total_seconds()
rate = (s["sent"] - 1) / dur if dur > 0 else 0
lost = s["loss"]["lost"]
pct = 100.0 * lost / max(s["sent"], 1)
print(f"twampc: sent {s['sent']} in {dur:.3f} s = {rate:,.0f} pps, lost {lost} ({pct:.4f} %), "
      f"RTT p50 {s['rtt']['p50_us']:.1f} µs p99 {s['rtt']['p99_us']:.1f} µs")
print("target: ≥ 100,000 pps with < 0.01 % loss:", "MET" if rate >= 95000 and pct < 0.01 else "MISSED")
PY
