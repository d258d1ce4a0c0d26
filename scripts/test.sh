#!/usr/bin/env bash
# test.sh: everything `make test` (and CI through .ci/run) checks, in order, with the time of each
# step: deps, gofmt, go vet, build, each tool built alone (GOWORK=off), cliutil.Lint on every
# tool's command line (cli-lint.sh), go test -race over the
# whole workspace, script self-tests,
# the network-lab self test and the package install test (both only as root).
# Every step runs even when an earlier one failed, so one run shows every problem; the exit
# status is 1 when any step failed. GOTESTFLAGS adds flags to go test (e.g. GOTESTFLAGS=-short).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
t_all=$(date +%s)
steps=()
failed=()
step() {
  local name=$1 t0 d rc=0
  shift
  t0=$(date +%s)
  echo "==> $name"
  "$@" || rc=$?
  d=$(( $(date +%s) - t0 ))
  if [ $rc -eq 0 ]; then
    steps+=("$(printf '%-10s %5ds  ok' "$name" "$d")")
  else
    steps+=("$(printf '%-10s %5ds  FAILED (exit %d)' "$name" "$d" "$rc")")
    failed+=("$name")
  fi
}

gofmt_check() {
  local out
  out=$(gofmt -l $(go list -m -f '{{.Dir}}' | sed "s|^$PWD/||"))
  if [ -n "$out" ]; then echo "gofmt needed on:"; echo "$out"; return 1; fi
  echo "gofmt: clean"
}

gotest() {
  mkdir -p dist
  local log=dist/gotest.log rc
  set +e
  # -race needs cgo; the binaries themselves are built with CGO_ENABLED=0.
  CGO_ENABLED=1 "$GO" test -race -count=1 -timeout 6m ${GOTESTFLAGS:-} work 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  echo "go test: $(grep -c '^ok ' "$log") packages ok, $(grep -c $'^FAIL\t' "$log") failed," \
    "$(grep -c 'no test files' "$log") without tests"
  if [ "$rc" != 0 ]; then
    echo "go test failures:"
    grep -E $'^(FAIL\t|\s*--- FAIL|panic: )' "$log" | sed 's/^/  /'
  fi
  return "$rc"
}

step deps scripts/deps.sh
step gofmt gofmt_check
step vet "$GO" vet work
step build scripts/build.sh
step gowork-off scripts/gowork-off.sh
step cli-lint scripts/cli-lint.sh
step go-test gotest
step scripts scripts/scripts-test.sh
step lab scripts/lab-test.sh
step packages scripts/packages-test.sh
echo
echo "==> test summary"
printf '  %s\n' "${steps[@]}"
printf '  %-10s %5ds\n' total "$(( $(date +%s) - t_all ))"
if [ ${#failed[@]} -gt 0 ]; then
  echo "make test: FAILED steps: ${failed[*]}"
  exit 1
fi
echo "make test: all steps passed"
