#!/usr/bin/env bash
# fuzz.sh [FUZZTIME] [REGEX]: run every `func FuzzXxx(f *testing.F)` in every workspace module,
# one at a time, for FUZZTIME each (default 10s). REGEX limits the targets (matched against
# "dir:FuzzName"). A failing target leaves its input in testdata/fuzz/FuzzName/ (go test's own
# behaviour) and makes the script exit 1 after running all the others.
set -uo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-${FUZZTIME:-10s}}
filter=${2:-.}
modules=$(go list -m -f '{{.Dir}}' | sed "s|^$PWD/||")
targets=()
for m in $modules; do
  while IFS= read -r hit; do
    file=${hit%%:*}
    name=$(sed -E 's/^.*func (Fuzz[A-Za-z0-9_]*)\(.*$/\1/' <<<"$hit")
    dir=$(dirname "$file")
    t="$dir:$name"
    grep -Eq -- "$filter" <<<"$t" && targets+=("$t")
  done < <(grep -rE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(' "$m" 2>/dev/null | grep -v '/testdata/' | sort)
done
if [ ${#targets[@]} -eq 0 ]; then echo "fuzz: no fuzz targets found"; exit 0; fi
echo "fuzz: ${#targets[@]} targets, $fuzztime each"
failed=()
for t in "${targets[@]}"; do
  dir=${t%%:*}; name=${t##*:}
  echo "=== fuzz $dir $name"
  if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "./$dir"; then
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${#failed[@]} of ${#targets[@]} targets FAILED: ${failed[*]}"
  exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran $fuzztime without a failure"
