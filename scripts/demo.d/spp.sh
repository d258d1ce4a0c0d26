#!/usr/bin/env bash
# spp demo: RTT between two capture points of a real UDP echo exchange (shipped captures of
# the C SPP 0.3.6 golden data, delay stepping 10 → 40 → 20 ms each way): the first pairs,
# then the --summary statistics. Output is byte-identical to C SPP 0.3.6 for the pair lines.
set -euo pipefail
cd "$(dirname "$0")/../.."
td=spp/testdata
echo "$ spp -a 10.71.1.1 -A 10.71.2.1 -f spp-udpecho-ref.pcap -F spp-udpecho-mon.pcap -c -p --summary"
out=$(bin/spp -a 10.71.1.1 -A 10.71.2.1 -f $td/spp-udpecho-ref.pcap -F $td/spp-udpecho-mon.pcap -c -p --summary)
echo "$out" | head -5
echo "   …"
echo "$out" | grep '^#'
# The pair lines must be those of the original tool.
if ! diff -q <(echo "$out" | grep -v '^#') $td/spp-udpecho.spp036-cp.txt >/dev/null; then
  echo "spp demo: output differs from C SPP 0.3.6" >&2
  exit 1
fi
echo "(pair lines identical to C SPP 0.3.6: $td/spp-udpecho.spp036-cp.txt)"
