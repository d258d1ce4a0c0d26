#!/usr/bin/env bash
# release.sh TOOL: release build of one tool at its tag TOOL/vX.Y.Z (HEAD must be at the tag and
# the tree clean; SNAPSHOT=1 skips both checks for a trial run). The binary is built with
# GOWORK=off, i.e. from the tool's own go.mod/go.sum (with its replace of ../shared), exactly as
# a user's `go build` in that directory would; then .deb/.rpm and SHA256SUMS go to
# dist/release/TOOL-VERSION/.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:?usage: release.sh TOOL (or make release TOOL=name)}
[ -f "$t/go.mod" ] || { echo "release: no module $t/" >&2; exit 2; }
v=$(scripts/version.sh "$t")
if [ "${SNAPSHOT:-0}" != 1 ]; then
  if ! [[ "$v" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.]+)?$ ]] || [[ "$v" == *dev* ]]; then
    echo "release: $t is at $v, not at a tag $t/vX.Y.Z (tag it, or SNAPSHOT=1 for a trial)" >&2
    exit 1
  fi
  if [ -n "$(git status --porcelain -- "$t" shared go.work)" ]; then
    echo "release: uncommitted changes under $t/ or shared/" >&2
    exit 1
  fi
fi
out=dist/release/$t-$v
rm -rf "$out" && mkdir -p "$out/bin"
(cd "$t" && GOWORK=off go mod verify >/dev/null)
GOWORK=off BIN="$out/bin" scripts/build.sh "$t"
BIN="$out/bin" DIST="$out" scripts/packages.sh "$t"
rm -rf "$out/stage"
echo "release: $t $v in $out/"
ls -l "$out"
