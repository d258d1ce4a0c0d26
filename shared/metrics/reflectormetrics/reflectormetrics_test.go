package reflectormetrics

import (
	"strings"
	"testing"

	"github.com/probekit/probekit/shared/metrics"
	"github.com/probekit/probekit/shared/reflector"
	"github.com/probekit/probekit/shared/testpkt"
)

func TestRegister(t *testing.T) {
	r, err := reflector.New(reflector.Config{Mode: testpkt.ModeUnauthenticated})
	if err != nil {
		t.Fatal(err)
	}
	reg := metrics.New("probe")
	Register(reg, r)
	r.Stats.Received.Add(5)
	r.Stats.Reflected.Add(4)
	r.Stats.Drops[reflector.DropAuth].Add(1)
	r.Stats.Residence[0].Add(3)
	r.Stats.Residence[len(r.Stats.Residence)-1].Add(1)
	r.Stats.Evicted.Add(7)
	r.Stats.Wakeup[2].Add(2)
	var b strings.Builder
	if err := reg.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"probe_received_packets_total 5\n", "probe_reflected_packets_total 4\n",
		`probe_dropped_packets_total{reason="auth"} 1` + "\n", `probe_dropped_packets_total{reason="table_full"} 0` + "\n",
		`probe_residence_seconds_bucket{le="1e-06"} 3` + "\n", `probe_residence_seconds_bucket{le="+Inf"} 4` + "\n",
		"probe_residence_seconds_sum 0\n", "probe_evicted_sessions_total 7\n", "probe_expired_sessions_total 0\n",
		`probe_wakeup_seconds_bucket{le="5e-06"} 2` + "\n", `probe_dropped_packets_total{reason="session_rate_limited"} 0` + "\n", "# HELP probe_kernel_rx_timestamps_total Reflected packets whose T2 is a kernel timestamp.\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %q in\n%s", want, b.String())
		}
	}
}
