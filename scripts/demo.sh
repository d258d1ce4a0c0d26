#!/usr/bin/env bash
# demo.sh: run scripts/demo.d/<tool>.sh for every built tool that has one (from the repo root,
# binaries in bin/). Each hook prints a real measurement on loopback and exits 0. Run by
# `make demo` after deps and build.
set -uo pipefail
cd "$(dirname "$0")/.."
present=$(scripts/tools.sh | tr '\n' ' ')
built=()
for t in $(scripts/tools.sh --main); do [ -x "bin/$t" ] && built+=("$t"); done
echo "demo: tool modules present: ${present:-none}"
echo "demo: tools built: ${built[*]:-none}"
ran=0 failed=()
for t in "${built[@]}"; do
  hook=scripts/demo.d/$t.sh
  if [ ! -f "$hook" ]; then
    echo "demo: $t: no hook ($hook)"
    continue
  fi
  echo
  echo "=== demo $t"
  start=$(date +%s)
  if bash "$hook"; then
    echo "=== demo $t: ok ($(( $(date +%s) - start ))s)"
  else
    echo "=== demo $t: FAILED"
    failed+=("$t")
  fi
  ran=$((ran + 1))
done
echo
if [ "$ran" -eq 0 ]; then
  echo "demo: no tool has a demo yet, so nothing was measured."
  exit 0
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "demo: ${#failed[@]} of $ran demos failed: ${failed[*]}"
  exit 1
fi
echo "demo: $ran demos ran"
