#!/usr/bin/env bash
# scripts-test.sh: self-tests of the build scripts in throwaway repositories under a temp dir:
# version.sh (tags, dev builds, dirty trees, valid semver), build.sh/tools.sh (any subset of
# tool modules, a tool dir without main.go is skipped, binaries are static and stamped, go's
# stderr never read as a package name), fuzz.sh (one retry after Go's deadline flake only) and
# cli-lint.sh (a tool with an octal-parsing flag fails).
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
check() { # check NAME GOT WANT(regex)
  if [[ "$2" =~ ^$3$ ]]; then echo "ok   $1: $2"; else echo "FAIL $1: got '$2', want /$3/"; fails=$((fails + 1)); fi
}
# Semantic Versioning 2.0.0 (the regex from semver.org, shortened to what version.sh emits).
SEMVER='(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?'

# --- version.sh
r=$tmp/ver
mkdir -p "$r/scripts" "$r/spp" "$r/shared"
cp scripts/version.sh "$r/scripts/"
cd "$r"
git init -q -b main . && git config user.email t@example.org && git config user.name t
echo a >spp/a && git add . && git commit -qm one
sha() { git rev-parse --short=12 HEAD; }
check "no tag" "$(scripts/version.sh spp)" "0\.0\.0-dev\.1\+g$(sha)"
git tag spp/v1.2.3
check "at tag" "$(scripts/version.sh spp)" "1\.2\.3"
git tag twampd/v7.0.0
check "other tool's tag" "$(scripts/version.sh spp)" "1\.2\.3"
echo b >spp/a && git commit -qam two && echo c >spp/a && git commit -qam three
check "after tag" "$(scripts/version.sh spp)" "1\.2\.4-dev\.2\+g$(sha)"
echo d >spp/a
check "dirty" "$(scripts/version.sh spp)" "1\.2\.4-dev\.2\+g$(sha)\.dirty"
git commit -qam four && git tag spp/v2.0.0-rc.1
check "pre-release tag" "$(scripts/version.sh spp)" "2\.0\.0-rc\.1"
check "override" "$(PROBEKIT_VERSION=9.9.9 scripts/version.sh spp)" "9\.9\.9"
for t in spp twampd stampref; do check "semver $t" "$(scripts/version.sh $t)" "$SEMVER"; done
cd "$src"

# --- tools.sh + build.sh with a partial workspace
r=$tmp/ws
mkdir -p "$r/scripts" "$r/shared" "$r/twampd" "$r/spp"
cp scripts/tools.sh scripts/build.sh scripts/version.sh scripts/release.sh "$r/scripts/"
cd "$r"
printf 'go 1.26.0\n\nuse (\n\t./shared\n\t./spp\n\t./twampd\n)\n' >go.work
printf 'module github.com/probekit/probekit/shared\n\ngo 1.26.0\n' >shared/go.mod
for t in twampd spp; do printf 'module github.com/probekit/probekit/%s\n\ngo 1.26.0\n' $t >$t/go.mod; done
printf 'package main\n\nimport "fmt"\n\nvar version = "dev"\n\nfunc main() { fmt.Println("twampd", version) }\n' >twampd/main.go
git init -q -b main . && git config user.email t@example.org && git config user.name t && git add . && git commit -qm ws
check "tools present" "$(scripts/tools.sh | tr '\n' ' ')" "twampd spp "
check "tools with main" "$(scripts/tools.sh --main | tr '\n' ' ')" "twampd "
# Issue 10: on an empty module cache go prints "go: downloading …" on stderr; that must never be
# read as the package name (twampd was skipped as "no main package yet"). A fake go on PATH
# that chats on stderr before running the real one reproduces it without the network.
fakego=$tmp/fakego
mkdir -p "$fakego"
printf '#!/usr/bin/env bash\necho "go: downloading example.com/slow v1.2.3" >&2\nexec %q "$@"\n' "$(command -v go)" >"$fakego/go"
chmod +x "$fakego/go"
check "tools with main, go chatty on stderr" "$(PATH=$fakego:$PATH scripts/tools.sh --main 2>/dev/null | tr '\n' ' ')" "twampd "
check "tools with main, stderr passed through" "$(PATH=$fakego:$PATH scripts/tools.sh --main 2>&1 >/dev/null | sort -u)" "go: downloading example\.com/slow v1\.2\.3"
out=$(PATH=$fakego:$PATH GO=$fakego/go scripts/build.sh 2>&1) || { echo "$out"; fails=$((fails + 1)); }
check "build with go chatty on stderr builds twampd" "$(grep -c '^build: twampd .* -> bin/twampd$' <<<"$out")" "1"
check "build with go chatty on stderr skips only spp" "$(grep '^build: skip' <<<"$out")" "build: skip spp \(no main package yet\)"
rm -rf bin
out=$(scripts/build.sh 2>&1) || { echo "$out"; fails=$((fails + 1)); }
check "build skips spp" "$(grep -c 'skip spp (no main package yet)' <<<"$out")" "1"
check "version stamped" "$(bin/twampd)" "twampd 0\.0\.0-dev\.1\+g[0-9a-f]{12}"
check "static binary" "$(ldd bin/twampd 2>&1 | grep -c 'not a dynamic executable')" "1"
check "no spp binary" "$(ls bin)" "twampd"
if out=$(scripts/release.sh twampd 2>&1); then
  echo "FAIL release off a tag: release.sh succeeded"; fails=$((fails + 1))
else
  check "release refuses an untagged tree" "$out" "release: twampd is at 0\.0\.0-dev\.1\+g[0-9a-f]{12}, not at a tag .*"
fi
printf 'package spp\n' >spp/lib.go
check "library root is not a tool" "$(scripts/tools.sh --main | tr '\n' ' ')" "twampd "
rm spp/lib.go
printf 'package main\n\nfunc main() {\n' >twampd/main.go
if out=$(scripts/build.sh 2>&1); then
  echo "FAIL broken main: build.sh succeeded: $out"; fails=$((fails + 1))
else
  check "broken main fails the build" "$(grep -c 'main.go' <<<"$out")" "[1-9][0-9]*"
fi
rm twampd/main.go
out=$(scripts/build.sh 2>&1) || { echo "$out"; fails=$((fails + 1)); }
check "build with no mains" "$out" "build: no tool has a main package yet \(modules present: twampd spp \)"
cd "$src"

# --- fuzz.sh: one retry after Go's bare "context deadline exceeded" flake, never after a crasher
r=$tmp/fz
mkdir -p "$r/scripts" "$r/fz"
cp scripts/fuzz.sh "$r/scripts/"
printf 'go 1.26.0\n\nuse ./fz\n' >"$r/go.work"
printf 'module example.com/fz\n\ngo 1.26.0\n' >"$r/fz/go.mod"
printf 'package fz\n\nimport "testing"\n\nfunc FuzzX(f *testing.F) { f.Fuzz(func(t *testing.T, b []byte) {}) }\n' >"$r/fz/fz_test.go"
# The fake go answers "go test" from a plan (one outcome per call) and passes the rest on.
{
  echo '#!/usr/bin/env bash'
  echo 'if [ "$1" = test ]; then'
  echo '  n=$(cat "$FAKE_STATE"); echo $((n + 1)) >"$FAKE_STATE"'
  echo '  case "$(sed -n "$((n + 1))p" "$FAKE_PLAN")" in'
  echo '    ok) printf "ok  \texample.com/fz\t10.0s\n"; exit 0 ;;'
  echo '    flake) printf -- "--- FAIL: FuzzX (10.03s)\n    context deadline exceeded\nFAIL\nexit status 1\n"; exit 1 ;;'
  echo '    crash) printf -- "--- FAIL: FuzzX (0.10s)\n    --- FAIL: FuzzX (0.00s)\n        panic: context deadline exceeded\n    Failing input written to testdata/fuzz/FuzzX/5825\n    To re-run:\n    go test -run=FuzzX/5825\nFAIL\n"; exit 1 ;;'
  echo '    stderr) echo "context deadline exceeded" >&2; printf -- "--- FAIL: FuzzX (0.20s)\n    fz_test.go:9: wrong answer\nFAIL\n"; exit 1 ;;'
  echo '  esac'
  echo '  echo "fake go: no plan for call $((n + 1))" >&2; exit 3'
  echo 'fi'
  printf 'exec %q "$@"\n' "$(command -v go)"
} >"$r/go"
chmod +x "$r/go"
fuzzcase() { # fuzzcase NAME "PLAN…" WANT_EXIT WANT_CALLS WANT_RETRY_LINES
  local rc=0 out
  printf '%s\n' $2 >"$r/plan"
  echo 0 >"$r/state"
  out=$(cd "$r" && GO="$r/go" FAKE_PLAN="$r/plan" FAKE_STATE="$r/state" scripts/fuzz.sh 1s 2>&1) || rc=$?
  check "fuzz $1: exit" "$rc" "$3"
  check "fuzz $1: go test runs" "$(cat "$r/state")" "$4"
  check "fuzz $1: retry announced" "$(grep -c 'running it once more' <<<"$out" || true)" "$5"
}
fuzzcase "clean" "ok" 0 1 0
fuzzcase "deadline flake, then clean" "flake ok" 0 2 1
fuzzcase "deadline flake twice" "flake flake" 1 2 1
fuzzcase "crasher (even one mentioning the deadline)" "crash ok" 1 1 0
fuzzcase "deadline only on stderr" "stderr ok" 1 1 0

# --- cli-lint.sh: every tool's real app through PROBEKIT_LINT_CLI=1 (cliutil from this tree)
r=$tmp/lint
mkdir -p "$r/scripts" "$r/twampd" "$r/spp"
cp scripts/tools.sh scripts/cli-lint.sh "$r/scripts/"
printf 'go 1.26.0\n\nuse (\n\t./spp\n\t./twampd\n\t%s\n)\n' "$src/shared" >"$r/go.work"
for t in twampd spp; do
  printf 'module github.com/probekit/probekit/%s\n\ngo 1.26.0\n\nrequire github.com/probekit/probekit/shared v0.0.0\n\nreplace github.com/probekit/probekit/shared => %s\n' $t "$src/shared" >"$r/$t/go.mod"
done
cat >"$r/twampd/main.go" <<'EOF'
package main

import (
	"os"

	"github.com/probekit/probekit/shared/cliutil"
)

func main() {
	app := cliutil.NewApp("twampd", "test daemon", "1")
	app.Flags = append(app.Flags, cliutil.IntFlag("count", "count", 1, 1, 9))
	os.Exit(cliutil.Main(app, os.Args))
}
EOF
sed -e 's/twampd/spp/g' -e 's/cliutil.IntFlag("count", "count", 1, 1, 9)/\&cli.Uint64Flag{Name: "count"}/' \
  -e 's|^import (|import (\n\t"github.com/urfave/cli/v2"|' "$r/twampd/main.go" >"$r/spp/main.go"
rc=0
out=$(cd "$r" && scripts/cli-lint.sh 2>&1) || rc=$?
[ "$rc" = 1 ] || echo "$out"
check "cli-lint: a tool with an octal-parsing flag fails" "$rc" "1"
check "cli-lint: clean tool passes" "$(grep -c '^cli-lint: twampd ok$' <<<"$out")" "1"
check "cli-lint: names the flag" "$(grep -c 'spp: cli lint: spp: --count parses base 0' <<<"$out")" "1"
check "cli-lint: summary" "$(tail -1 <<<"$out")" "cli-lint: FAILED: spp"

if [ $fails -gt 0 ]; then echo "scripts-test: $fails FAILED"; exit 1; fi
echo "scripts-test: all passed"
