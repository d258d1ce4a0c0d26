// Package reflectormetrics registers a shared/reflector's counters in a metrics.Registry,
// with the same names and HELP in every daemon built on the reflector (twampd, stampref).
package reflectormetrics

import (
	"time"

	"github.com/probekit/probekit/shared/metrics"
	"github.com/probekit/probekit/shared/reflector"
)

// Register adds the reflector's packet counters, drop reasons and residence histogram to
// reg (each daemon adds its own <ns>_sessions, whose meaning differs):
//
//	<ns>_received_packets_total, <ns>_reflected_packets_total, <ns>_kernel_rx_timestamps_total,
//	<ns>_dropped_packets_total{reason}, <ns>_residence_seconds, <ns>_wakeup_seconds,
//	<ns>_evicted_sessions_total, <ns>_expired_sessions_total
//
// Every value is read at scrape time from the reflector's Stats (per-worker slots summed by
// their Load); the data path is not touched.
func Register(reg *metrics.Registry, r *reflector.Reflector) {
	st := &r.Stats
	reg.Counter("received_packets_total", "Test packets received.", st.Received.Load)
	reg.Counter("reflected_packets_total", "Test packets reflected.", st.Reflected.Load)
	reg.Counter("kernel_rx_timestamps_total", "Reflected packets whose T2 is a kernel timestamp.", st.RxKernel.Load)
	reg.CounterVec("dropped_packets_total", "Test packets dropped, by reason.", "reason", func(emit func(string, uint64)) {
		for i := 0; i < reflector.NumDrops; i++ {
			emit(reflector.DropName(i), st.Drops[i].Load())
		}
	})
	reg.Counter("evicted_sessions_total", "Learned sessions evicted (least recently used) to admit a new one into a full table.", st.Evicted.Load)
	reg.Counter("expired_sessions_total", "Learned sessions expired after the idle timeout.", st.Expired.Load)
	bounds := reflector.ResidenceBounds()
	sec := make([]float64, len(bounds))
	for i, b := range bounds {
		sec[i] = b.Seconds()
	}
	reg.Histogram("residence_seconds", "Reflector residence time T3-T2.", sec, func() ([]uint64, float64) {
		counts := make([]uint64, len(st.Residence))
		for i := range st.Residence {
			counts[i] = st.Residence[i].Load()
		}
		return counts, time.Duration(st.ResidenceSum.Load()).Seconds()
	})
	reg.Histogram("wakeup_seconds", "Per received batch, kernel receive stamp of its first datagram to the reflector's read returning: the wake-up part of residence time.", sec, func() ([]uint64, float64) {
		counts := make([]uint64, len(st.Wakeup))
		for i := range st.Wakeup {
			counts[i] = st.Wakeup[i].Load()
		}
		return counts, time.Duration(st.WakeupSum.Load()).Seconds()
	})
}
