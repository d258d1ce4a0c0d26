#!/bin/sh
# Live capture (-i/-I, slave -s) opens AF_PACKET sockets: grant CAP_NET_RAW to the binary so
# users need not run spp as root. File mode needs no privilege.
set -e
if command -v setcap >/dev/null 2>&1; then
  setcap cap_net_raw+ep /usr/bin/spp || echo "spp: setcap failed; live capture needs root" >&2
fi
exit 0
