#!/usr/bin/env bash
# version.sh TOOL: the tool's semantic version (valid semver, as nfpm and -X main.version want it).
#   at a tag TOOL/vX.Y.Z         -> X.Y.Z
#   N commits after that tag     -> X.Y.(Z+1)-dev.N+g<sha>   (sorts after X.Y.Z, before X.Y.(Z+1))
#   no tag for TOOL yet          -> 0.0.0-dev.<commits>+g<sha>
#   uncommitted changes          -> adds ".dirty" to the build metadata
#   not a git checkout           -> 0.0.0-dev+unknown
# PROBEKIT_VERSION overrides everything (release scripts, packaging tests).
set -euo pipefail
t=${1:?usage: version.sh TOOL}
if [ -n "${PROBEKIT_VERSION:-}" ]; then echo "$PROBEKIT_VERSION"; exit 0; fi
cd "$(dirname "$0")/.."
if ! sha=$(git rev-parse --short=12 HEAD 2>/dev/null); then echo "0.0.0-dev+unknown"; exit 0; fi
dirty=""
if ! git diff --quiet HEAD -- "$t" shared go.work 2>/dev/null; then dirty=".dirty"; fi
if d=$(git describe --tags --long --match "$t/v[0-9]*" 2>/dev/null); then
  # d = TOOL/vX.Y.Z-N-gSHA (the tag itself may carry a pre-release: TOOL/vX.Y.Z-rc.1)
  d=${d#"$t"/v}
  n=${d%-g*}; n=${n##*-}
  tag=${d%-"$n"-g*}
  if [ "$n" = 0 ] && [ -z "$dirty" ]; then echo "$tag"; exit 0; fi
  if [ "$n" = 0 ]; then echo "$tag+g$sha$dirty"; exit 0; fi
  core=${tag%%-*}
  IFS=. read -r ma mi pa <<<"$core"
  echo "$ma.$mi.$((pa + 1))-dev.$n+g$sha$dirty"
else
  echo "0.0.0-dev.$(git rev-list --count HEAD)+g$sha$dirty"
fi
