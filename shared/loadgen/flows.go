package loadgen

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/probekit/probekit/shared/udpsock"
)

// FlowsResult is one run of several flows against one target.
type FlowsResult struct {
	Flows    int           `json:"flows"`
	Rate     float64       `json:"rate_pps"` // offered, all flows together
	Duration time.Duration `json:"duration_ns"`
	Sent     uint64        `json:"sent"`
	Received uint64        `json:"received"`
	Loss     float64       `json:"loss"`
	// ReplyRate is the replies per second over the run's wall time.
	ReplyRate float64 `json:"reply_pps"`
	// CPU is the target's CPU time over the run (every thread), Wall the run's length from the
	// first send to the last reply; PacketsPerCPUSecond = Received / CPU; Cores = CPU / Wall,
	// how many CPUs the target kept busy on average.
	CPU                 time.Duration `json:"cpu_ns"`
	Wall                time.Duration `json:"wall_ns"`
	PacketsPerCPUSecond float64       `json:"packets_per_cpu_second"`
	Cores               float64       `json:"cores"`
	// ResidenceP50 is the median of the flows' T3 − T2 medians.
	ResidenceP50   time.Duration `json:"residence_p50_ns"`
	GeneratorBound bool          `json:"generator_bound"`
}

// RunFlows offers rate packets per second for d to p from flows sockets at once (each its own
// source port, so SO_REUSEPORT spreads them over a reflector's sockets and each is a session),
// and measures p's CPU time over the whole run.
func RunFlows(ctx context.Context, p *Process, rate float64, d time.Duration, flows, size int) (FlowsResult, error) {
	res := FlowsResult{Flows: flows, Rate: rate, Duration: d}
	if p.Exited() {
		return res, fmt.Errorf("loadgen: %s exited: %v: %s", p.Name, p.err, p.out.String())
	}
	conns := make([]*udpsock.Conn, flows)
	for i := range conns {
		c, err := udpsock.Listen(ctx, "udp4", "127.0.0.1:0", udpsock.Options{
			RxTimestamps: true, ReadBuffer: generatorReadBuf / 2, WriteBuffer: generatorWriteBuf / 2})
		if err != nil {
			return res, err
		}
		defer c.Close()
		conns[i] = c
	}
	time.Sleep(settleBetweenRuns)
	cpu0, err := ProcCPU(p.PID())
	if err != nil {
		return res, err
	}
	t0 := time.Now()
	results := make([]Result, flows)
	errs := make([]error, flows)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = Run(ctx, conns[i], Config{Target: p.Addr, Rate: rate / float64(flows), Duration: d,
				Size: size, Residence: STAMPResidence, Wait: harnessWait})
		}()
	}
	wg.Wait()
	wall := time.Since(t0)
	cpu1, err := ProcCPU(p.PID())
	if err != nil {
		return res, err
	}
	var p50s []time.Duration
	var last time.Duration
	for i, r := range results {
		if errs[i] != nil {
			return res, errs[i]
		}
		res.Sent += r.Sent
		res.Received += r.Received
		if r.Residence.Count > 0 {
			p50s = append(p50s, r.Residence.P50)
		}
		if r.GeneratorBound() {
			res.GeneratorBound = true
		}
		last = max(last, r.SendElapsed)
	}
	if res.Sent > 0 {
		res.Loss = float64(res.Sent-res.Received) / float64(res.Sent)
	}
	res.CPU, res.Wall = cpu1-cpu0, wall
	if last > 0 {
		res.ReplyRate = float64(res.Received) / last.Seconds()
	}
	if res.CPU > 0 {
		res.PacketsPerCPUSecond = float64(res.Received) / res.CPU.Seconds()
	}
	if wall > 0 {
		res.Cores = res.CPU.Seconds() / wall.Seconds()
	}
	if len(p50s) > 0 {
		slices.Sort(p50s)
		res.ResidenceP50 = p50s[len(p50s)/2]
	}
	if p.Exited() {
		return res, fmt.Errorf("loadgen: %s exited during the run: %v: %s", p.Name, p.err, p.out.String())
	}
	return res, nil
}
