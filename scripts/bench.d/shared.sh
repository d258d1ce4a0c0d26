#!/usr/bin/env bash
# shared.sh: the limit echo against a second copy of itself on 127.0.0.1 — the machine's echo
# figures (CPU µs per packet at 20 kpps, max loss-free packets/s) and the ratios two identical
# implementations get in one run, which calibrate the ≤ 1.3 / ≥ 0.95 reflector targets.
set -euo pipefail
"${PKBENCH:-bin/pkbench}" --log-level warn reflector --name echo-copy \
  --rate 20000 --duration "${BENCH_DURATION:-5s}" --repeat "${BENCH_REPEAT:-3}" \
  --residence-duration 2s --search-duration 1s
