#!/usr/bin/env bash
# abuse.sh: issue 11's attacks at the issue's sizes against the real twampd and stampref on
# loopback (the same Go tests make test runs in a bounded form): twampd 3 x 1000 unstarted
# session requests and 200 idle control connections; stampref 200,000 provisioning POSTs and
# 300 slow API connections. Each asserts the daemon alive, RSS under its bound, a legitimate
# client with 0 loss during and after, and the counters and logs of the attack.
set -euo pipefail
for tool in twampd stampref; do
  echo "--- $tool abuse (PROBEKIT_ABUSE_LONG=1)"
  (cd "$tool" && PROBEKIT_ABUSE_LONG=1 go test -count=1 -timeout 600s -v -run . ./internal/abuse | grep -E '^(---|ok|FAIL|PASS)|RSS|abuse_test')
done
