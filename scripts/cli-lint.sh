#!/usr/bin/env bash
# cli-lint.sh [TOOL...]: cliutil.Lint on every tool's real command line (default: every tool
# with a main package, scripts/tools.sh --main). Each tool is built into a temporary directory
# and run with PROBEKIT_LINT_CLI=1, which makes cliutil.Main lint the app instead of running
# it (urfave integer flags that parse "010" as 8, default-true bools, duplicate names, commands
# without usage), then checks the usage rule (an unknown option: exit 2, one line on stderr).
# A new tool is covered as soon as it has a main package calling cliutil.Main; a tool that
# does not answer the lint entry point fails.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
tools=("$@")
[ ${#tools[@]} -gt 0 ] || mapfile -t tools < <(scripts/tools.sh --main)
if [ ${#tools[@]} -eq 0 ]; then echo "cli-lint: no tool has a main package yet"; exit 0; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=()
for t in "${tools[@]}"; do
  if ! CGO_ENABLED=0 "$GO" build -C "$t" -o "$tmp/$t" . ; then
    echo "cli-lint: $t does not build"
    failed+=("$t")
    continue
  fi
  # stdout decides (never stderr): exactly "<tool>: cli lint ok" and exit 0.
  if out=$(PROBEKIT_LINT_CLI=1 timeout 30 "$tmp/$t" </dev/null) && [ "$out" = "$t: cli lint ok" ]; then
    echo "cli-lint: $t ok"
  else
    [ "$out" = "$t: cli lint ok" ] || [ -z "$out" ] || echo "cli-lint: $t said: $out"
    echo "cli-lint: $t FAILED (its problems are above; is main calling cliutil.Main?)"
    failed+=("$t")
    continue
  fi
  # The usage rule every tool shares: an unknown option exits 2 with one line on stderr and
  # nothing on stdout.
  rc=0
  timeout 30 "$tmp/$t" --no-such-option-probekit </dev/null >"$tmp/out" 2>"$tmp/err" || rc=$?
  if [ "$rc" != 2 ] || [ "$(wc -l <"$tmp/err")" != 1 ] || [ -s "$tmp/out" ]; then
    echo "cli-lint: $t --no-such-option-probekit: exit $rc, $(wc -l <"$tmp/err") lines on stderr, $(wc -c <"$tmp/out") bytes on stdout; want exit 2, one line, nothing:"
    sed 's/^/  /' "$tmp/err" | head -5
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then echo "cli-lint: FAILED: ${failed[*]}"; exit 1; fi
echo "cli-lint: all ${#tools[@]} tools clean"
