#!/usr/bin/env bash
# build.sh [TOOL...]: static binaries bin/<tool> for the given tools (default: every present
# tool with a main package). CGO_ENABLED=0, -trimpath, no build id, version from version.sh
# stamped into main.version. GOWORK=off gives a release build from the tool's own go.mod.
set -euo pipefail
cd "$(dirname "$0")/.."
export CGO_ENABLED=0
BIN=${BIN:-bin}
GO=${GO:-go}
tools=("$@")
if [ ${#tools[@]} -eq 0 ]; then
  mapfile -t tools < <(scripts/tools.sh --main)
  present=$(scripts/tools.sh | tr '\n' ' ')
  if [ ${#tools[@]} -eq 0 ]; then
    echo "build: no tool has a main package yet (modules present: ${present:-none})"
    exit 0
  fi
  for t in $present; do
    case " ${tools[*]} " in *" $t "*) ;; *) echo "build: skip $t (no main package yet)" ;; esac
  done
fi
mkdir -p "$BIN"
shown=$BIN
BIN=$(cd "$BIN" && pwd)
for t in "${tools[@]}"; do
  v=$(scripts/version.sh "$t")
  echo "build: $t $v -> $shown/$t"
  # -C: build inside the module, so GOWORK=off (release builds) uses the tool's own go.mod.
  "$GO" build -C "$t" -trimpath -ldflags "-s -w -buildid= -X main.version=$v" -o "$BIN/$t" .
  # A static binary has no program interpreter; ldd says so.
  if command -v ldd >/dev/null && ldd "$BIN/$t" >/dev/null 2>&1; then
    echo "build: $BIN/$t is dynamically linked (cgo crept in?)" >&2
    exit 1
  fi
done
