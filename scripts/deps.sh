#!/usr/bin/env bash
# deps.sh: install the Debian packages that builds, tests, the lab and the demo use, only when
# missing. Safe offline: when everything is present it touches neither apt nor the network, and
# when apt is unreachable it warns and exits 0 (tests that need a missing program skip with a
# reason). Needs root to install; otherwise it only lists what is missing.
set -euo pipefail
need=()
# command  package
check() { command -v "$1" >/dev/null 2>&1 || need+=("$2"); }
check ip iproute2          # namespaces, veth (netlab)
check iptables iptables    # NAT, TCPMSS, TCPOPTSTRIP (netlab, tcpexpose)
check nft nftables
check conntrack conntrack
check tcpdump tcpdump      # captures for ground truth
check tshark tshark        # independent dissector for interop tests
check editcap tshark
check socat socat
check ethtool ethtool
check turnserver coturn    # RFC 5780 STUN server in the netlab nat topology
check miniupnpd miniupnpd-nftables  # UPnP IGD / NAT-PMP on netlab NAT routers
check natpmpc natpmpc
check upnpc miniupnpc
check chromium chromium    # headless browser for the ptpserver web page e2e test (chromedp)
check setpriv util-linux
check dpkg-deb dpkg        # package install test
check man man-db           # man page rendering test
check zsh zsh              # completion script tests (shared/cliutil)
check fish fish
check gzip gzip
check git git              # version stamping
check gcc gcc              # go test -race needs cgo
[ -f /usr/include/stdio.h ] || need+=(libc6-dev)
mapfile -t need < <(printf '%s\n' "${need[@]}" | awk 'NF && !seen[$0]++')
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "deps: missing ${need[*]} (run as root to install them); tests needing them will skip" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "deps: missing ${need[*]} and no apt-get here; tests needing them will skip" >&2
  exit 0
fi
echo "deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer before apt does (else it blocks).
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
if ! apt-get update -qq; then
  echo "deps: apt-get update failed (offline?); missing: ${need[*]}; tests needing them will skip" >&2
  exit 0
fi
# One retry: a half-configured package from an interrupted run is finished by `-f install`.
if ! apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null &&
   ! { apt-get -f install -y -qq >/dev/null; apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }; then
  echo "deps: apt-get install failed; missing: ${need[*]}; tests needing them will skip" >&2
  exit 0
fi
echo "deps: installed ${need[*]}"
