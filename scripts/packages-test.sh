#!/usr/bin/env bash
# packages-test.sh: build the packages of every built tool, install one .deb with dpkg -i, check
# that the binary runs from /usr/bin with the expected version and that its man page,
# completions (and unit, for a daemon) are where the package says, then remove it and check that
# nothing is left. Needs root and dpkg; skips (exit 0) otherwise or when no tool is built yet.
# PKG_TEST_TOOL picks the tool to install (default: the first daemon built, else the first tool).
set -euo pipefail
cd "$(dirname "$0")/.."
skip() { echo "packages-test: skipped ($*)"; exit 0; }
[ "$(id -u)" = 0 ] || skip "not root"
command -v dpkg >/dev/null || skip "dpkg not installed"
built=()
for t in $(scripts/tools.sh --main); do [ -x "bin/$t" ] && built+=("$t"); done
[ ${#built[@]} -gt 0 ] || skip "no tool has a main package yet"
scripts/packages.sh "${built[@]}"

t=${PKG_TEST_TOOL:-}
if [ -z "$t" ]; then
  t=${built[0]}
  for d in twampd stampref ptpserver; do
    case " ${built[*]} " in *" $d "*) t=$d; break ;; esac
  done
fi
v=$(scripts/version.sh "$t")
deb=$(ls dist/"${t}"_*.deb | head -1)
if dpkg -s "$t" >/dev/null 2>&1; then
  skip "a $t package is already installed here; not replacing it"
fi
fail() { echo "packages-test: FAIL: $*" >&2; dpkg -r "$t" >/dev/null 2>&1 || true; exit 1; }
echo "packages-test: dpkg -i $deb"
dpkg -i "$deb" >/dev/null || fail "dpkg -i $deb"
got=$(/usr/bin/"$t" --version) || fail "/usr/bin/$t --version exited $?"
[ "$got" = "$t $v" ] || fail "/usr/bin/$t --version = '$got', want '$t $v'"
section=1
case " twampd stampref ptpserver " in *" $t "*) section=8 ;; esac
[ -f "$t/packaging/$t.service" ] && section=8
files=(/usr/share/man/man$section/$t.$section.gz
  /usr/share/bash-completion/completions/$t
  /usr/share/zsh/vendor-completions/_$t
  /usr/share/fish/vendor_completions.d/$t.fish)
[ $section = 8 ] && files+=(/usr/lib/systemd/system/$t.service)
for f in "${files[@]}"; do
  [ -s "$f" ] || fail "$f not installed"
  dpkg -S "$f" >/dev/null 2>&1 || fail "$f not owned by the package"
done
zcat "/usr/share/man/man$section/$t.$section.gz" | grep -q "^\.TH \"${t^^}\" $section " || fail "man page header"
if command -v man >/dev/null; then
  man -w "$section" "$t" >/dev/null 2>&1 || fail "man -w $section $t does not find the page"
fi
grep -q "complete .* $t\$" "/usr/share/bash-completion/completions/$t" || fail "bash completion does not register $t"
if [ $section = 8 ]; then
  grep -q '^AmbientCapabilities=CAP_NET_BIND_SERVICE' "/usr/lib/systemd/system/$t.service" || fail "unit lacks CAP_NET_BIND_SERVICE"
  if command -v systemd-analyze >/dev/null; then
    out=$(systemd-analyze verify "/usr/lib/systemd/system/$t.service" 2>&1) || fail "systemd-analyze verify: $out"
    [ -z "$out" ] || fail "systemd-analyze verify: $out"
  fi
fi
echo "packages-test: $t $v installed: --version ok, ${#files[@]} files in place"
dpkg -r "$t" >/dev/null || fail "dpkg -r $t"
for f in /usr/bin/"$t" "${files[@]}"; do
  [ ! -e "$f" ] || { echo "packages-test: FAIL: $f left after dpkg -r" >&2; exit 1; }
done
echo "packages-test: dpkg -r $t removed everything"
