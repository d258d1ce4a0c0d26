package cmd

import (
	"strings"
	"testing"

	"github.com/probekit/probekit/ptpclient/internal/client"
)

// TestWriteReportGolden: the text report (what a non-terminal run prints at the end), against a
// hand-written golden: widths, 3-decimal ms figures, the learned-path star, drop counters,
// NAT reasons and a peer's reason.
func TestWriteReportGolden(t *testing.T) {
	s := client.Summary{Type: "summary", UUID: "0f1e2d3c4b5a69788796a5b4c3d2e1f0", Server: "192.0.2.1:23456", Mesh: "lab",
		Self: client.SelfReport{Local: "10.0.1.2:40000", Public: "198.51.100.7:40000", NAT: client.NATReport{
			Mapping: "endpoint-independent", Filtering: "address-and-port-dependent", Hairpin: "no",
			MappingReason: "same public address towards two servers"}},
		ServerR: client.PeerReport{Sent: 3, Received: 2, RTT: client.RTT{Avg: 12.5}},
		Peers: []client.PeerReport{
			{Address: "203.0.113.9:50001", Path: "direct", Learned: true, Sent: 10, Received: 9, Lost: 1, LossPct: 10,
				RTT: client.RTT{Min: 1.5, Avg: 2.25, P50: 2, P99: 3.125, Max: 3.125}, JitterMs: 0.25},
			{Address: "[2001:db8::1]:5", Path: "relay", Sent: 4, Received: 4,
				RTT: client.RTT{Min: 20, Avg: 21, P50: 21, P99: 22, Max: 22}, JitterMs: 1, Reason: "both NATs map per destination: relayed"},
		}}
	var b strings.Builder
	WriteReport(&b, s, client.Counters{BadChecksum: 1, Malformed: 2, Unknown: 3})
	want := `client 0f1e2d3c4b5a69788796a5b4c3d2e1f0, server 192.0.2.1:23456, mesh "lab" (RTT avg 12.500 ms, 3 sent, 2 answered)
local 10.0.1.2:40000, public 198.51.100.7:40000, NAT mapping endpoint-independent, filtering address-and-port-dependent, hairpin no
  same public address towards two servers
dropped: 1 bad checksum, 2 malformed, 3 from unknown senders
Address                          Path      Sent   Rcvd   Lost  Loss %   RTT min       avg       p50       p99       max    Jitter  Reason
203.0.113.9:50001                direct*     10      9      1   10.00     1.500     2.250     2.000     3.125     3.125     0.250  
[2001:db8::1]:5                  relay        4      4      0    0.00    20.000    21.000    21.000    22.000    22.000     1.000  both NATs map per destination: relayed
RTT and jitter in ms; * = address learned from the peer's packets (hole punching)
`
	if got := b.String(); got != want {
		t.Errorf("report:\n%s\nwant:\n%s", got, want)
	}
	b.Reset()
	WriteReport(&b, client.Summary{UUID: "u", Server: "s"}, client.Counters{})
	if !strings.Contains(b.String(), "public unknown") || !strings.Contains(b.String(), "(no peers)") {
		t.Errorf("empty report:\n%s", b.String())
	}
}
