#!/usr/bin/env bash
# tools.sh [--main]: the tool modules present (a <tool>/go.mod exists), in the canonical order;
# with --main only those whose module root is a main package (a tool still being written may
# have no main.go yet). One name per line.
set -euo pipefail
cd "$(dirname "$0")/.."
ALL_TOOLS="ptpserver ptpclient twampd twampc stampref stampsend tcpexpose spp"
for t in $ALL_TOOLS; do
  [ -f "$t/go.mod" ] || continue
  if [ "${1:-}" = --main ]; then
    name=$(go list -f '{{.Name}}' "./$t" 2>/dev/null) || continue
    [ "$name" = main ] || continue
  fi
  echo "$t"
done
