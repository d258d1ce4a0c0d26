#!/usr/bin/env bash
# version.sh TOOL: the tool's version from its own tag (TOOL/vX.Y.Z), else 0.0.0-dev+<commit>.
set -euo pipefail
t=$1
if v=$(git describe --tags --match "$t/v*" 2>/dev/null); then
  echo "${v#"$t"/v}"
else
  echo "0.0.0-dev+$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
fi
