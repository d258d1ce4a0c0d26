package loadgen

import (
	"context"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/udpsock"
)

// The test binary doubles as the target process: with LOADGEN_TEST_ECHO=ADDR it runs Echo
// there until SIGTERM, so the harness measures a real separate PID.
func TestMain(m *testing.M) {
	if addr := os.Getenv("LOADGEN_TEST_ECHO"); addr != "" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		defer stop()
		c, err := udpsock.Listen(ctx, "udp4", addr, udpsock.Options{})
		if err != nil {
			os.Stderr.WriteString(err.Error())
			os.Exit(3)
		}
		if err := Echo(ctx, c, 64, nil); err != nil {
			os.Exit(4)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func startTestEcho(t *testing.T, name string) *Process {
	t.Helper()
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	t.Setenv("LOADGEN_TEST_ECHO", addr.String())
	p, err := StartArgs(context.Background(), name, addr, []string{os.Args[0], "-test.run=^$"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Error(err)
		}
	})
	return p
}

func TestCompareEchoWithEcho(t *testing.T) {
	limit := startTestEcho(t, "limit-echo")
	other := startTestEcho(t, "echo-copy")
	if limit.PID() == other.PID() || limit.PID() == os.Getpid() {
		t.Fatalf("pids %d %d (self %d)", limit.PID(), other.PID(), os.Getpid())
	}
	rep, err := Compare(context.Background(), limit, other, BenchConfig{
		Rate: 5000, Duration: 600 * time.Millisecond,
		ResidenceRate: 2000, ResidenceDuration: 200 * time.Millisecond,
		SearchStart: 5000, SearchMax: 12000, SearchFactor: 2, SearchDuration: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range []TargetReport{rep.Limit, rep.Target} {
		if len(tr.Fixed) != 1 || tr.Fixed[0].Sent != 3000 {
			t.Fatalf("%s: fixed runs %+v", tr.Name, tr.Fixed)
		}
		// 3000 packets through a separate process cost measurable CPU (≥ one 10 ms tick)
		// and less than a whole core for the 600 ms run.
		f := tr.Fixed[0]
		if f.CPU < ClockTick || f.CPU > 600*time.Millisecond {
			t.Errorf("%s: CPU %v for %d packets", tr.Name, f.CPU, f.Received)
		}
		if tr.CPUPerPacket != f.CPUPerPacket || f.CPUPerPacket != f.CPU/time.Duration(f.Received) {
			t.Errorf("%s: CPU per packet %v, run %v / %d", tr.Name, tr.CPUPerPacket, f.CPU, f.Received)
		}
		if tr.Residence == nil || tr.Residence.Sent != 400 || tr.Residence.Residence.Count != 0 {
			t.Errorf("%s: residence run %+v (an echo carries no T2/T3)", tr.Name, tr.Residence)
		}
		if len(tr.Search) == 0 || tr.MaxRateBound == "" {
			t.Errorf("%s: no search steps", tr.Name)
		}
		if tr.MaxRateBound == "cap" && tr.MaxRate < 9000 {
			t.Errorf("%s: search reached the cap with max rate %.0f", tr.Name, tr.MaxRate)
		}
	}
	if rep.CPURatio <= 0 || len(rep.Checks) < 2 || rep.Checks[0].Name != "cpu_per_packet_ratio" {
		t.Errorf("ratio %v checks %+v", rep.CPURatio, rep.Checks)
	}
	if rep.LoadAvg[0] <= 0 && rep.LoadAvg[1] <= 0 {
		t.Errorf("load average %v not read (test processes were running)", rep.LoadAvg)
	}
	want := float64(rep.Target.CPUPerPacket) / float64(rep.Limit.CPUPerPacket)
	if rep.CPURatio != want {
		t.Errorf("CPURatio %v, want %v", rep.CPURatio, want)
	}
}

func TestEvaluateChecks(t *testing.T) {
	rep := Report{
		Limit:  TargetReport{Name: "limit", CPUPerPacket: 4000, MaxRate: 100000},
		Target: TargetReport{Name: "r", CPUPerPacket: 5000, MaxRate: 96000, Residence: &Result{Residence: Percentiles{Count: 10, P50: 4 * time.Microsecond, P99: 60 * time.Microsecond}}},
	}
	rep.evaluate(BenchConfig{LossLimit: 0.001})
	want := map[string]bool{"cpu_per_packet_ratio": true, "max_rate_ratio": true, "residence_p50_us": true, "residence_p99_us": false}
	if len(rep.Checks) != len(want) {
		t.Fatalf("checks %+v", rep.Checks)
	}
	for _, c := range rep.Checks {
		if pass, ok := want[c.Name]; !ok || pass != c.Pass {
			t.Errorf("check %+v, want pass=%v", c, pass)
		}
	}
	if rep.CPURatio != 1.25 || rep.MaxRateRatio != 0.96 || rep.Passed() {
		t.Errorf("ratios %v %v passed %v", rep.CPURatio, rep.MaxRateRatio, rep.Passed())
	}
	// Loss in a fixed-rate run is a failed check of its own.
	rep = Report{Limit: TargetReport{Name: "limit", CPUPerPacket: 1, Fixed: []Result{{Loss: 0.01}}}, Target: TargetReport{CPUPerPacket: 1}}
	rep.evaluate(BenchConfig{LossLimit: 0.001, SkipSearch: true})
	if rep.Passed() || rep.Checks[len(rep.Checks)-1].Name != "limit_fixed_rate_loss" {
		t.Errorf("checks %+v", rep.Checks)
	}
	// Residence against a stamping limit echo at each rate: 1.5 × its p50 at most.
	res := func(rate float64, p50 time.Duration) *Result {
		return &Result{Rate: rate, Residence: Percentiles{Count: 100, P50: p50, P99: 2 * p50}}
	}
	rep = Report{
		Limit: TargetReport{Name: "limit", Residence: res(10000, 20*time.Microsecond),
			ExtraResidence: []*Result{res(100, 80*time.Microsecond)}},
		Target: TargetReport{Name: "r", Residence: res(10000, 31*time.Microsecond),
			ExtraResidence: []*Result{res(100, 100*time.Microsecond)}},
	}
	rep.evaluate(BenchConfig{LossLimit: 0.001, SkipSearch: true})
	got := map[string]Check{}
	for _, c := range rep.Checks {
		got[c.Name] = c
	}
	if c := got["residence_p50_vs_limit@10000pps"]; c.Value != 1.55 || c.Pass {
		t.Errorf("10 kpps: %+v", c)
	}
	if c := got["residence_p50_vs_limit@100pps"]; c.Value != 1.25 || !c.Pass {
		t.Errorf("100 pps: %+v", c)
	}
}

func TestMedianResidence(t *testing.T) {
	rs := []Result{{Rate: 1, Residence: Percentiles{P50: 30}}, {Rate: 2, Residence: Percentiles{P50: 10}}, {Rate: 3, Residence: Percentiles{P50: 20}}}
	if r := medianResidence(rs); r.Rate != 3 {
		t.Errorf("median slice %+v", r)
	}
	if r := medianResidence(rs[:1]); r.Rate != 1 {
		t.Errorf("single slice %+v", r)
	}
}

func TestStartCommandFailures(t *testing.T) {
	_, err := StartCommand(context.Background(), "quitter", "echo bye; exit 3 # {port}", nil)
	if err == nil || !strings.Contains(err.Error(), "exited before answering") || !strings.Contains(err.Error(), "bye") {
		t.Errorf("err = %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = StartCommand(ctx, "sleeper", "sleep 30 # {port}", nil)
	if err == nil || time.Since(start) > 25*time.Second { // hang guard: sleep 30 must be cut short
		t.Errorf("silent target: err %v after %v", err, time.Since(start))
	}
}

// fakeTarget answers search steps from a capacity: loss above it, and a generator that
// cannot offer more than genMax.
func fakeTarget(capacity, genMax float64) func(c Config) Result {
	return func(c Config) Result {
		sent := min(c.Rate, genMax)
		r := Result{Rate: c.Rate, Sent: uint64(sent), SentRate: sent, ReplyRate: min(sent, capacity)}
		r.Received = uint64(r.ReplyRate)
		r.Lost = r.Sent - r.Received
		r.Loss = float64(r.Lost) / float64(r.Sent)
		return r
	}
}

func TestSearchLadder(t *testing.T) {
	cfg := BenchConfig{SearchStart: 50000, SearchFactor: 1.25, SearchMax: 2e6, LossLimit: 0.001}
	cfg.normalise()
	for _, tc := range []struct {
		name      string
		searchMax float64
		targets   []func(Config) Result
		wantMax   []float64
		wantBound []string
		wantSteps []int
	}{
		{
			// Limit echo bounded by the generator at 120k; the reflector drops above 80k.
			name:      "generator and loss",
			searchMax: 2e6,
			targets:   []func(Config) Result{fakeTarget(1e9, 120000), fakeTarget(80000, 120000)},
			wantMax:   []float64{120000, 78125},
			wantBound: []string{"generator", "loss"},
			// limit: 50k, 62.5k, 78.1k, 97.7k, 122.1k (120k sent is within 3 %: passes, reply
			// 120k), 152.6k twice (generator short: stop). reflector: 50k, 62.5k, 78.1k,
			// 97.7k twice (loss: stop) and one bisection at 87.9k (loss).
			wantSteps: []int{7, 6},
		},
		{
			name:      "first step fails: halve",
			searchMax: 60000,
			targets:   []func(Config) Result{fakeTarget(1e9, 1e9), fakeTarget(30000, 1e9)},
			wantMax:   []float64{0, 25000},
			wantBound: []string{"cap", "loss"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			trs := []*TargetReport{{Name: "a"}, {Name: "b"}}
			var order []string
			run := func(i int, c Config) (Result, error) {
				order = append(order, trs[i].Name)
				return tc.targets[i](c), nil
			}
			c := cfg
			if tc.searchMax != 0 {
				c.SearchMax = tc.searchMax
			}
			if err := search(c, trs, run); err != nil {
				t.Fatal(err)
			}
			for i, tr := range trs {
				if tc.wantMax[i] != 0 && tr.MaxRate != tc.wantMax[i] {
					t.Errorf("%s: max %v, want %v", tr.Name, tr.MaxRate, tc.wantMax[i])
				}
				if tr.MaxRateBound != tc.wantBound[i] {
					t.Errorf("%s: bound %q, want %q", tr.Name, tr.MaxRateBound, tc.wantBound[i])
				}
				if tc.wantSteps != nil && len(tr.Search) != tc.wantSteps[i] {
					t.Errorf("%s: %d steps, want %d", tr.Name, len(tr.Search), tc.wantSteps[i])
				}
			}
			// The ladder alternates: both targets run the first rate before either runs the second.
			if len(order) < 2 || order[0] != "a" || order[1] != "b" {
				t.Errorf("step order %v", order)
			}
		})
	}
}
