#!/usr/bin/env bash
# gowork-off.sh: every tool with a main package must also build on its own, from its go.mod and
# go.sum without the workspace (GOWORK=off), as release builds and users' `go build` do. Fails
# with the tool's error when its go.mod/go.sum is incomplete (fix: cd TOOL && GOWORK=off go mod tidy).
set -uo pipefail
cd "$(dirname "$0")/.."
failed=()
for t in $(scripts/tools.sh --main); do
  if out=$(cd "$t" && GOWORK=off CGO_ENABLED=0 go build -o /dev/null . 2>&1); then
    echo "gowork-off: $t builds on its own"
  else
    echo "gowork-off: $t does not build with GOWORK=off:"
    sed 's/^/  /' <<<"$out"
    failed+=("$t")
  fi
done
[ ${#failed[@]} -eq 0 ] || { echo "gowork-off: FAILED: ${failed[*]} (cd TOOL && GOWORK=off go mod tidy)"; exit 1; }
