#!/usr/bin/env bash
# spp bench: a generated 2 × 3M-packet capture pair (UDP, bursts of 3 OUT + 1 IN per round,
# reordering jitter; written to /tmp, not kept in the repo) processed end to end with output
# to /dev/null: wall time, CPU time, packets/s and peak RSS (targets: ≥ 5 M packets/s,
# < 200 MB), then the Go benchmarks (allocations: a constant per run, none per packet).
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${SPP_BENCH_PACKETS:-3000000}
REF=${TMPDIR:-/tmp}/spp-bench-ref.pcap
MON=${TMPDIR:-/tmp}/spp-bench-mon.pcap
BIN=${BIN:-bin}
mkdir -p "$BIN"
CGO_ENABLED=0 go build -trimpath -o "$BIN/spp" ./spp
echo "spp bench: generating $N packets per point into $REF and $MON"
(cd spp && go run ./internal/synth/sppgen -n "$N" -ref "$REF" -mon "$MON")
cat "$REF" "$MON" >/dev/null # warm the page cache
args=(-a 10.0.1.1 -A 10.0.2.1 -f "$REF" -F "$MON" -c -p)
total=$((2 * N))
best=""
for i in 1 2 3; do
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f "%e %U %S %M" -o /tmp/spp-bench-time.txt "$BIN/spp" "${args[@]}" >/dev/null
    read -r wall user sys rss </tmp/spp-bench-time.txt
  else
    # getrusage(RUSAGE_CHILDREN) through python3 when GNU time is missing.
    read -r wall user sys rss < <(python3 -c '
import resource, subprocess, sys, time
t = time.monotonic()
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)
w = time.monotonic() - t
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print("%.2f %.2f %.2f %d" % (w, r.ru_utime, r.ru_stime, r.ru_maxrss))' "$BIN/spp" "${args[@]}")
  fi
  mpps=$(awk -v n=$total -v w="$wall" 'BEGIN { printf "%.2f", n / w / 1e6 }')
  cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
  percpu=$(awk -v n=$total -v c="$cpu" 'BEGIN { printf "%.2f", n / c / 1e6 }')
  echo "run $i: $total packets in ${wall}s wall (${cpu}s CPU): ${mpps} M packets/s (${percpu} M per CPU second), peak RSS $((rss / 1024)) MB"
  if [ -z "$best" ] || awk -v a="$wall" -v b="$bestwall" 'BEGIN { exit !(a < b) }'; then
    best=$mpps bestwall=$wall bestrss=$rss
  fi
done
echo "spp bench: best ${best} M packets/s end to end (target ≥ 5), peak RSS $((bestrss / 1024)) MB (target < 200)"
echo "spp bench: load average $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores (wall figures need an idle machine)"
if [ $((bestrss / 1024)) -ge 200 ]; then
  echo "spp bench: peak memory above 200 MB" >&2
  exit 1
fi
echo
echo "=== go test -bench (spp): BenchmarkFiles on the generated pair, then the hot-path parts"
(cd spp && SPP_BENCH_REF="$REF" SPP_BENCH_MON="$MON" go test -run '^$' -bench Files -benchmem -benchtime 3x ./internal/spp)
(cd spp && go test -run '^$' -bench 'Engine|Classify' -benchmem -benchtime "${BENCHTIME:-1s}" ./internal/engine ./internal/pktid)
