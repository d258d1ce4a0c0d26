#!/usr/bin/env bash
# deps.sh: install the Debian packages builds, tests and the lab need, only when missing.
set -euo pipefail
need=()
check() { command -v "$1" >/dev/null 2>&1 || need+=("$2"); }
check ip iproute2
check iptables iptables
check nft nftables
check tcpdump tcpdump
check tshark tshark
check editcap tshark
check socat socat
check ethtool ethtool
check conntrack conntrack
check turnserver coturn
check setpriv util-linux
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "deps: missing ${need[*]} (run as root to install them)" >&2
  exit 0
fi
echo "deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections || true
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
