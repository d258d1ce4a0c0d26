#!/usr/bin/env bash
# lab-test.sh: the network-lab self test (scripts/netlab selftest, owned by the lab engineer), run
# by `make test` when root. Skips with the reason when not root or when the lab is not there yet.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "lab: skipped (not root)"; exit 0; fi
if [ ! -x scripts/netlab ]; then echo "lab: skipped (scripts/netlab not present yet)"; exit 0; fi
scripts/netlab selftest
