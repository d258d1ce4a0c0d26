#!/usr/bin/env bash
# nfpm.sh: print the path of an nfpm v2.44.0 binary, installing it from the Go module proxy
# into dist/tools/bin when neither PATH nor dist/tools/bin has that version. (v2.48.0 imports modules the
# proxy refuses; see shared/reference/libs.md §8.)
set -euo pipefail
cd "$(dirname "$0")/.."
want=v2.44.0
version_of() { go version -m "$1" 2>/dev/null | awk '$1 == "mod" && $2 == "github.com/goreleaser/nfpm/v2" {print $3}'; }
for cand in "$(command -v nfpm 2>/dev/null || true)" "$PWD/dist/tools/bin/nfpm"; do
  if [ -n "$cand" ] && [ -x "$cand" ] && [ "$(version_of "$cand")" = "$want" ]; then
    echo "$cand"; exit 0
  fi
done
echo "nfpm: installing github.com/goreleaser/nfpm/v2/cmd/nfpm@$want into dist/tools/bin" >&2
mkdir -p dist/tools/bin
GOWORK=off CGO_ENABLED=0 GOBIN="$PWD/dist/tools/bin" go install "github.com/goreleaser/nfpm/v2/cmd/nfpm@$want" >&2
echo "$PWD/dist/tools/bin/nfpm"
