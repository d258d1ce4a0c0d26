#!/usr/bin/env bash
# fuzz.sh [FUZZTIME] [REGEX]: run every `func FuzzXxx(f *testing.F)` in every workspace module,
# one at a time, for FUZZTIME each (default 10s). REGEX limits the targets (matched against
# "dir:FuzzName"). A failing target leaves its input in testdata/fuzz/FuzzName/ (go test's own
# behaviour) and makes the script exit 1 after running all the others.
#
# Go's fuzzing engine sometimes ends a target with a bare "context deadline exceeded" and no
# crashing input (a known flake of the coordinator, not a finding): such a target is run once
# more, and only a second failure counts. A failure that wrote a crasher ("Failing input
# written to …") is never retried. The decision reads go test's stdout (where the test's
# output goes), never its stderr.
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
fuzztime=${1:-${FUZZTIME:-10s}}
filter=${2:-.}
modules=$("$GO" list -m -f '{{.Dir}}' | sed "s|^$PWD/||")
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
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# fuzz_once DIR NAME: run one target, its stdout shown and kept in $log.
fuzz_once() {
  "$GO" test -run '^$' -fuzz "^${2}\$" -fuzztime "$fuzztime" "./$1" | tee "$log"
  return "${PIPESTATUS[0]}"
}
# flake: the run failed with "context deadline exceeded" and left no crashing input.
flake() {
  grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written to' "$log"
}
failed=()
retried=()
for t in "${targets[@]}"; do
  dir=${t%%:*}; name=${t##*:}
  echo "=== fuzz $dir $name"
  if fuzz_once "$dir" "$name"; then continue; fi
  if flake; then
    echo "fuzz: $t ended with a bare 'context deadline exceeded' and no crashing input (Go fuzzing flake); running it once more"
    retried+=("$t")
    if fuzz_once "$dir" "$name"; then continue; fi
  fi
  failed+=("$t")
done
[ ${#retried[@]} -eq 0 ] || echo "fuzz: retried after a deadline flake: ${retried[*]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${#failed[@]} of ${#targets[@]} targets FAILED: ${failed[*]}"
  exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran $fuzztime without a failure"
