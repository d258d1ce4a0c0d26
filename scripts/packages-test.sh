#!/usr/bin/env bash
# packages-test.sh: build the packages of every tool, install one .deb with dpkg -i, check
# that the binary runs from /usr/bin with the expected version and that its man page,
# completions (and unit, for a daemon) are where the package says, then remove it and check that
# nothing is left; the other .debs' contents are checked with dpkg-deb. Needs root and dpkg;
# skips (exit 0) otherwise or when no tool has a main package yet. PKG_TEST_TOOL picks the tool
# to install (default: the first daemon).
set -euo pipefail
cd "$(dirname "$0")/.."
skip() { echo "packages-test: skipped ($*)"; exit 0; }
[ "$(id -u)" = 0 ] || skip "not root"
command -v dpkg >/dev/null || skip "dpkg not installed"
mapfile -t built < <(scripts/tools.sh --main)
[ ${#built[@]} -gt 0 ] || skip "no tool has a main package yet"
# Own build and output directories: bin/ may be rebuilt by someone else meanwhile.
work=dist/packages-test
rm -rf "$work"
BIN=$work/bin scripts/build.sh "${built[@]}"
BIN=$work/bin DIST=$work scripts/packages.sh "${built[@]}"

fail() { echo "packages-test: FAIL: $*" >&2; dpkg -r "$t" >/dev/null 2>&1 || true; exit 1; }

# test_tool: install one tool's .deb, check it, remove it.
test_tool() {
  local t=$1 got v deb section f files
  got=$("$work/bin/$t" --version)
  v=${got#"$t "}
  deb=$(ls "$work/${t}"_*.deb | head -1)
  if dpkg -s "$t" >/dev/null 2>&1; then
    echo "packages-test: $t skipped (a $t package is already installed here; not replacing it)"
    return 0
  fi
  echo "packages-test: dpkg -i $deb"
  dpkg -i "$deb" >/dev/null || fail "$t: dpkg -i $deb"
  got=$(/usr/bin/"$t" --version) || fail "$t: /usr/bin/$t --version exited $?"
  [ "$got" = "$t $v" ] || fail "$t: /usr/bin/$t --version = '$got', want '$t $v'"
  section=1
  case " twampd stampref ptpserver " in *" $t "*) section=8 ;; esac
  [ -f "$t/packaging/$t.service" ] && section=8
  files=(/usr/share/man/man$section/$t.$section.gz
    /usr/share/bash-completion/completions/$t
    /usr/share/zsh/vendor-completions/_$t
    /usr/share/fish/vendor_completions.d/$t.fish)
  [ $section = 8 ] && files+=(/usr/lib/systemd/system/$t.service)
  for f in "${files[@]}"; do
    [ -s "$f" ] || fail "$t: $f not installed"
    dpkg -S "$f" >/dev/null 2>&1 || fail "$t: $f not owned by the package"
  done
  zcat "/usr/share/man/man$section/$t.$section.gz" | grep -q "^\.TH \"${t^^}\" $section " || fail "$t: man page header"
  if command -v man >/dev/null; then
    man -w "$section" "$t" >/dev/null 2>&1 || fail "$t: man -w $section $t does not find the page"
  fi
  grep -q "complete .* $t\$" "/usr/share/bash-completion/completions/$t" || fail "$t: bash completion does not register $t"
  if [ $section = 8 ]; then
    grep -q '^AmbientCapabilities=CAP_NET_BIND_SERVICE' "/usr/lib/systemd/system/$t.service" || fail "$t: unit lacks CAP_NET_BIND_SERVICE"
    if command -v systemd-analyze >/dev/null; then
      out=$(systemd-analyze verify "/usr/lib/systemd/system/$t.service" 2>&1) || fail "$t: systemd-analyze verify: $out"
      [ -z "$out" ] || fail "$t: systemd-analyze verify: $out"
    fi
  fi
  echo "packages-test: $t $v installed: --version ok, ${#files[@]} files in place"
  dpkg -r "$t" >/dev/null || fail "$t: dpkg -r $t"
  for f in /usr/bin/"$t" "${files[@]}"; do
    [ ! -e "$f" ] || { echo "packages-test: FAIL: $f left after dpkg -r" >&2; return 1; }
  done
  echo "packages-test: dpkg -r $t removed everything"
}

# check_contents: without installing (dpkg runs man-db triggers, ~10 s a package), check
# that a .deb holds the binary, man page, completions (and unit) at the right paths.
check_contents() {
  local t=$1 deb list section=1 f
  deb=$(ls "$work/${t}"_*.deb | head -1)
  case " twampd stampref ptpserver " in *" $t "*) section=8 ;; esac
  [ -f "$t/packaging/$t.service" ] && section=8
  list=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\.||')
  for f in /usr/bin/$t /usr/share/man/man$section/$t.$section.gz /usr/share/bash-completion/completions/$t \
    /usr/share/zsh/vendor-completions/_$t /usr/share/fish/vendor_completions.d/$t.fish \
    $([ $section = 8 ] && echo /usr/lib/systemd/system/$t.service); do
    grep -qx -- "$f" <<<"$list" || fail "$t: $deb lacks $f"
  done
  echo "packages-test: $deb holds binary, man page, completions$([ $section = 8 ] && echo ', unit')"
}

# Install one package for real (a daemon if there is one: it has the most parts), check the
# contents of the others.
t=${PKG_TEST_TOOL:-${built[0]}}
if [ -z "${PKG_TEST_TOOL:-}" ]; then
  for d in twampd stampref ptpserver; do
    case " ${built[*]} " in *" $d "*) t=$d; break ;; esac
  done
fi
for o in "${built[@]}"; do [ "$o" = "$t" ] || check_contents "$o"; done
test_tool "$t"
