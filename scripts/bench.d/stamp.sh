#!/usr/bin/env bash
# stamp.sh (issue 4): the STAMP figures.
#  1. go test -bench of the reflector's per-packet path (allocations per packet must be 0);
#  2. pkbench: stampref against the limit echo in one run — CPU per reflected packet at
#     20 kpps (target ≤ 1.3 × echo), highest loss-free rate (≥ 0.95 × echo), residence T3 − T2
#     at 10 kpps (targets p50 ≤ 5 µs, p99 ≤ 50 µs);
#     and the same with --realtime (SCHED_FIFO thread, blocking reads) and --busy-poll (also pinned
#     away from the generator, against a polling limit echo);
#  3. stampsend: one session at 100 kpps for 3 s against stampref, false loss (target < 0.01 %);
#  4. issue 10: the reflector scaling with cores (pkbench scale: 1 worker, 2 SO_REUSEPORT sockets,
#     2 workers on one socket; packets per CPU-second, target 2 × ratio ≥ 1.7, residence p50 not
#     worse) and default residence at 100 pps and 10 kpps against the stamping limit echo in one
#     run (target p50 ≤ 1.5 × the echo's at both rates).
# Everything runs on 127.0.0.1 and is bounded in time.
set -euo pipefail
BIN=${BIN:-bin}
PKBENCH=${PKBENCH:-$BIN/pkbench}
mkdir -p "$BIN"
for t in stampref stampsend; do
  CGO_ENABLED=0 go build -C "$t" -trimpath -o "$(cd "$BIN" && pwd)/$t" .
done

echo "--- reflector hot path (go test -bench, shared/reflector)"
(cd shared && go test -run '^$' -bench 'BenchmarkReflect$|BenchmarkReflectWorkers|BenchmarkServe$|BenchmarkServeWorkers' -benchmem -benchtime "${BENCHTIME:-1s}" ./reflector) |
  grep -E '^Benchmark|^ok'

echo
echo "--- stampref vs the limit echo (pkbench)"
"$PKBENCH" --log-level warn reflector --name stampref \
  --cmd "$BIN/stampref --listen 127.0.0.1:{port} --no-monitor --log-level warn" \
  --rate 20000 --duration "${BENCH_DURATION:-5s}" --repeat "${BENCH_REPEAT:-3}" \
  --residence-rate 10000 --residence-duration 3s --search-duration 1s

echo
echo "--- stampref --realtime 10 (SCHED_FIFO listener thread, blocking reads) vs the limit echo"
"$PKBENCH" --log-level warn reflector --name stampref-realtime \
  --cmd "$BIN/stampref --listen 127.0.0.1:{port} --no-monitor --log-level warn --realtime 10" \
  --rate 20000 --duration "${BENCH_DURATION:-5s}" --repeat 1 --no-search \
  --residence-rate 10000 --residence-duration 3s

echo
echo "--- stampref --busy-poll 200us vs the limit echo (residence with polling instead of wake-ups)"
"$PKBENCH" --log-level warn reflector --name stampref-busy-poll \
  --cmd "$BIN/stampref --listen 127.0.0.1:{port} --no-monitor --log-level warn --busy-poll 200us" \
  --rate 20000 --duration "${BENCH_DURATION:-5s}" --repeat 1 --no-search \
  --residence-rate 10000 --residence-duration 3s

echo
echo "--- stampref --busy-poll 200us, pinned: generator on one CPU, limit echo (also polling) and stampref on the other"
echo "    (on 2 CPUs an unpinned poller shares its CPU with the generator; this is the reflector's own residence)"
"$PKBENCH" --log-level warn reflector --name stampref-busy-poll-pinned --pin \
  --limit-stamps --limit-busy-poll 200us \
  --cmd "$BIN/stampref --listen 127.0.0.1:{port} --no-monitor --log-level warn --busy-poll 200us" \
  --rate 20000 --duration "${BENCH_DURATION:-5s}" --repeat 1 --no-search \
  --residence-rate 10000 --residence-duration "${BENCH_RESIDENCE:-10s}"

echo
echo "--- issue 10: default stampref residence at 10 kpps and 100 pps vs the stamping limit echo (one run)"
"$PKBENCH" --log-level warn reflector --name stampref-default --limit-stamps \
  --cmd "$BIN/stampref --listen 127.0.0.1:{port} --no-monitor --log-level warn" \
  --rate 20000 --duration "${BENCH_DURATION:-5s}" --repeat 1 --no-search \
  --residence-rate 10000 --residence-duration 6s --residence-also 100 --residence-slices 6

echo
echo "--- issue 10: shared/reflector scaling (1 worker; 2 SO_REUSEPORT sockets; 2 workers on one socket)"
"$PKBENCH" --log-level warn scale --workers 2 --flows 8 --rate 40000 --duration 3s --repeat "${BENCH_REPEAT:-3}"
(cd shared && go test -run '^$' -bench 'BenchmarkResidence' -benchtime 300x ./reflector) | grep -E '^Benchmark|^ok'

echo
echo "--- stampsend: one session at 100 kpps for 3 s (300,000 packets)"
port=$(( 20000 + RANDOM % 20000 ))
dir=$(mktemp -d)
"$BIN/stampref" --listen "127.0.0.1:$port" --no-monitor --log-level warn &
ref=$!
trap 'kill $ref 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
sleep 0.3
"$BIN/stampsend" --log-level warn --json -q -c 300000 -i 10us -W 1s "127.0.0.1:$port" | tail -1 >"$dir/summary.json"
python3 - "$dir/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
ok = s["loss_pct"] < 0.01
print(f"sent {s['sent']} received {s['received']} lost {s['lost']} ({s['loss_pct']:.4f} %, target < 0.01 %) "
      f"duplicates {s['duplicates']} reordered {s['reordered']} in {s['duration_s']:.2f} s "
      f"= {s['sent']/s['duration_s']:.0f} pps; rtt p50 {s['rtt']['p50_us']:.1f} µs p99 {s['rtt']['p99_us']:.1f} µs; "
      f"T1 {s['tx_source']} T4 {s['rx_source']}")
print("check sender_false_loss_pct", f"{s['loss_pct']:.4f} < 0.01", "ok" if ok else "MISSED")
PY
