#!/usr/bin/env bash
# tools.sh [--main]: the tool modules present (a <tool>/go.mod exists), in the canonical order;
# with --main only those whose module root is a main package (a tool still being written may
# have no main.go yet). One name per line.
#
# Decisions read stdout only: go's stderr carries progress such as "go: downloading …" on an
# empty module cache, which must never be taken for a package name. It passes through to ours.
set -euo pipefail
cd "$(dirname "$0")/.."
ALL_TOOLS="ptpserver ptpclient twampd twampc stampref stampsend tcpexpose spp"
for t in $ALL_TOOLS; do
  [ -f "$t/go.mod" ] || continue
  if [ "${1:-}" = --main ]; then
    # -e: a directory without Go files prints an empty name (exit 0) instead of failing.
    if name=$(go list -e -f '{{.Name}}' "./$t"); then
      [ "$name" = main ] || continue
    fi
    # go list itself failed (a broken go.mod, a missing module): the build reports that, so
    # the tool stays in the list.
  fi
  echo "$t"
done
