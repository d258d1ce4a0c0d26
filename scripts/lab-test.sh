#!/usr/bin/env bash
# lab-test.sh: the network-lab self test, when running as root with namespaces available.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "lab: skipped (not root)"; exit 0; fi
if [ -x scripts/netlab ]; then scripts/netlab selftest; else echo "lab: skipped (scripts/netlab not present)"; fi
