#!/bin/sh
# tcpexpose sends crafted segments over raw IP and AF_PACKET sockets and captures with
# AF_PACKET: grant CAP_NET_RAW so users need not run it as root. --manage-firewall and SO_MARK
# also need CAP_NET_ADMIN (run those as root, or grant it with setcap cap_net_raw,cap_net_admin+ep).
set -e
if command -v setcap >/dev/null 2>&1; then
  setcap cap_net_raw+ep /usr/bin/tcpexpose || echo "tcpexpose: setcap failed; raw sockets need root" >&2
fi
exit 0
