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
    if out=$(go list -f '{{.Name}}' "./$t" 2>&1); then
      [ "$out" = main ] || continue
    else
      # No .go files in the module root yet: not a binary. Any other error (a broken go.mod,
      # a missing module) is the build's to report, so the tool stays in the list.
      case "$out" in *"no Go files"*) continue ;; esac
    fi
  fi
  echo "$t"
done
