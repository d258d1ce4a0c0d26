package loadgen

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/probekit/probekit/shared/udpsock"
)

// BenchConfig drives Compare. Zero fields take the defaults in DefaultBenchConfig.
type BenchConfig struct {
	// Rate and Duration: the fixed offered load at which CPU per packet is compared.
	Rate     float64
	Duration time.Duration
	// Repeat fixed-rate runs per target, alternating targets; the median counts.
	Repeat int
	// ResidenceRate and ResidenceDuration: the run whose replies give T3 − T2.
	ResidenceRate     float64
	ResidenceDuration time.Duration
	// ExtraResidenceRates are further residence runs (same duration), e.g. 100 pps, where an
	// idle CPU's wake-up dominates, next to 10 kpps.
	ExtraResidenceRates []float64
	// ResidenceSlices splits each residence run into this many alternating slices per target
	// (limit, target, limit, …), so drift in the machine's load hits both alike; the slice
	// with the median p50 represents the target (1 when 0: one run each).
	ResidenceSlices int
	// The max-rate search offers SearchStart, ×SearchFactor each step, up to SearchMax, for
	// SearchDuration each, until loss reaches LossLimit or the generator falls behind.
	SearchStart    float64
	SearchFactor   float64
	SearchMax      float64
	SearchDuration time.Duration
	LossLimit      float64
	// Size of the test packets (DefaultSize when 0).
	Size int
	// SkipSearch leaves out the max-rate search (MaxRate stays 0).
	SkipSearch bool
	// Log receives progress lines (nil: silent).
	Log logrus.FieldLogger
}

// DefaultBenchConfig is the measurement: 20 kpps × 5 s for CPU, residence at 10 kpps,
// loss limit 0.1 %.
var DefaultBenchConfig = BenchConfig{
	Rate: 20000, Duration: 5 * time.Second, Repeat: 1,
	ResidenceRate: 10000, ResidenceDuration: 3 * time.Second,
	SearchStart: 50000, SearchFactor: 1.25, SearchMax: 2e6, SearchDuration: time.Second,
	LossLimit: 0.001,
}

func (c *BenchConfig) normalise() {
	d := DefaultBenchConfig
	orDefault(&c.Rate, d.Rate)
	orDefault(&c.Duration, d.Duration)
	orDefault(&c.ResidenceRate, d.ResidenceRate)
	orDefault(&c.ResidenceDuration, d.ResidenceDuration)
	orDefault(&c.SearchStart, d.SearchStart)
	orDefault(&c.SearchMax, d.SearchMax)
	orDefault(&c.SearchDuration, d.SearchDuration)
	orDefault(&c.LossLimit, d.LossLimit)
	if c.Repeat <= 0 {
		c.Repeat = d.Repeat
	}
	if c.SearchFactor <= 1 {
		c.SearchFactor = d.SearchFactor
	}
	if c.Log == nil {
		l := logrus.New()
		l.SetLevel(logrus.PanicLevel)
		c.Log = l
	}
}

func orDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// TargetReport is what Compare measured for one target.
type TargetReport struct {
	Name string `json:"name"`
	// Fixed are the fixed-rate runs; CPUPerPacket is their median CPU per reflected packet.
	Fixed        []Result      `json:"fixed"`
	CPUPerPacket time.Duration `json:"cpu_per_packet_ns"`
	// MaxRate is the highest reply rate seen with loss below the limit; MaxRateBound says what
	// ended the search: "loss" (the target dropped), "generator" (the load generator could not
	// offer more), or "cap" (SearchMax reached).
	MaxRate      float64  `json:"max_rate_pps"`
	MaxRateBound string   `json:"max_rate_bound,omitempty"`
	Search       []Result `json:"search,omitempty"`
	// Residence is the residence-rate run; its Residence field is empty for plain echoes.
	Residence *Result `json:"residence,omitempty"`
	// ExtraResidence are the runs at BenchConfig.ExtraResidenceRates, in that order.
	ExtraResidence []*Result `json:"extra_residence,omitempty"`
}

// Check is one pass/fail comparison against a target figure.
type Check struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Op    string  `json:"op"`
	Limit float64 `json:"limit"`
	Pass  bool    `json:"pass"`
}

// Report compares a target with the limit echo measured in the same run.
type Report struct {
	Rate         float64       `json:"rate_pps"`
	Duration     time.Duration `json:"duration_ns"`
	Limit        TargetReport  `json:"limit"`
	Target       TargetReport  `json:"target"`
	CPURatio     float64       `json:"cpu_ratio"`
	MaxRateRatio float64       `json:"max_rate_ratio"`
	Checks       []Check       `json:"checks"`
	// LoadAvg is the 1-minute load average at the start and the end: figures taken while
	// other work kept the machine's cores busy are noisier (CPU per packet grows with
	// wake-up costs, loss with scheduling stalls).
	LoadAvg [2]float64 `json:"loadavg_1m"`
	// Pinned says how the processes were pinned to CPUs ("" when they were not).
	Pinned string `json:"pinned,omitempty"`
}

// LoadAvg1 returns the 1-minute load average from /proc/loadavg (0 if unreadable).
func LoadAvg1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// Passed reports whether every check passed.
func (r Report) Passed() bool {
	for _, c := range r.Checks {
		if !c.Pass {
			return false
		}
	}
	return true
}

// The reflector performance targets of issues 4 and 5.
const (
	MaxCPURatio     = 1.3
	MinMaxRateRatio = 0.95
	MaxResidenceP50 = 5 * time.Microsecond
	MaxResidenceP99 = 50 * time.Microsecond
	// MaxResidenceVsLimit is issue 10's bound on the reflector's residence p50 against a
	// stamping limit echo's at the same rate in the same run (needs the limit's stamps).
	MaxResidenceVsLimit = 1.5
	generatorReadBuf    = 8 << 20
	generatorWriteBuf   = 4 << 20
	settleBetweenRuns   = 100 * time.Millisecond
	searchRefinements   = 1
	minSearchRate       = 1000
	harnessWait         = time.Second
	residenceCheckName  = "residence"
)

// Compare measures limit (the minimal echo) and target one after the other on the same
// machine: CPU per packet at the fixed rate (runs alternate between the two), the highest
// loss-free reply rate, and the target's residence time, then checks the ratios against the
// issue's targets.
func Compare(ctx context.Context, limit, target *Process, cfg BenchConfig) (Report, error) {
	cfg.normalise()
	rep := Report{Rate: cfg.Rate, Duration: cfg.Duration}
	rep.LoadAvg[0] = LoadAvg1()
	rep.Limit.Name, rep.Target.Name = limit.Name, target.Name
	reports := []*TargetReport{&rep.Limit, &rep.Target}
	procs := []*Process{limit, target}

	for r := 0; r < cfg.Repeat; r++ {
		for i, p := range procs {
			res, err := RunOnce(ctx, p, Config{Rate: cfg.Rate, Duration: cfg.Duration, Size: cfg.Size, Residence: STAMPResidence})
			if err != nil {
				return rep, err
			}
			cfg.Log.WithFields(logrus.Fields{"target": p.Name, "rate": cfg.Rate, "loss": res.Loss,
				"cpu_us_per_pkt": us(res.CPUPerPacket)}).Info("fixed-rate run")
			reports[i].Fixed = append(reports[i].Fixed, res)
		}
	}
	for _, tr := range reports {
		tr.CPUPerPacket = medianCPU(tr.Fixed)
	}
	if !cfg.SkipSearch {
		run := func(i int, c Config) (Result, error) { return RunOnce(ctx, procs[i], c) }
		if err := search(cfg, reports, run); err != nil {
			return rep, err
		}
	}
	residence := func(rate float64) ([]*Result, error) {
		n := max(cfg.ResidenceSlices, 1)
		slices := make([][]Result, len(procs))
		for range n {
			for i, p := range procs {
				res, err := RunOnce(ctx, p, Config{Rate: rate, Duration: cfg.ResidenceDuration / time.Duration(n), Size: cfg.Size, Residence: STAMPResidence})
				if err != nil {
					return nil, err
				}
				slices[i] = append(slices[i], res)
			}
		}
		out := make([]*Result, len(procs))
		for i := range procs {
			out[i] = medianResidence(slices[i])
		}
		return out, nil
	}
	res, err := residence(cfg.ResidenceRate)
	if err != nil {
		return rep, err
	}
	for i := range procs {
		reports[i].Residence = res[i]
	}
	for _, rate := range cfg.ExtraResidenceRates {
		res, err := residence(rate)
		if err != nil {
			return rep, err
		}
		for i := range procs {
			reports[i].ExtraResidence = append(reports[i].ExtraResidence, res[i])
		}
	}
	rep.evaluate(cfg)
	rep.LoadAvg[1] = LoadAvg1()
	return rep, nil
}

func (rep *Report) evaluate(cfg BenchConfig) {
	if rep.Limit.CPUPerPacket > 0 {
		rep.CPURatio = float64(rep.Target.CPUPerPacket) / float64(rep.Limit.CPUPerPacket)
		rep.Checks = append(rep.Checks, Check{Name: "cpu_per_packet_ratio", Value: rep.CPURatio, Op: "<=", Limit: MaxCPURatio,
			Pass: rep.CPURatio <= MaxCPURatio})
	}
	if !cfg.SkipSearch && rep.Limit.MaxRate > 0 {
		rep.MaxRateRatio = rep.Target.MaxRate / rep.Limit.MaxRate
		rep.Checks = append(rep.Checks, Check{Name: "max_rate_ratio", Value: rep.MaxRateRatio, Op: ">=", Limit: MinMaxRateRatio,
			Pass: rep.MaxRateRatio >= MinMaxRateRatio})
	}
	if r := rep.Target.Residence; r != nil && r.Residence.Count > 0 {
		p50, p99 := us(r.Residence.P50), us(r.Residence.P99)
		rep.Checks = append(rep.Checks,
			Check{Name: residenceCheckName + "_p50_us", Value: p50, Op: "<=", Limit: us(MaxResidenceP50), Pass: r.Residence.P50 <= MaxResidenceP50},
			Check{Name: residenceCheckName + "_p99_us", Value: p99, Op: "<=", Limit: us(MaxResidenceP99), Pass: r.Residence.P99 <= MaxResidenceP99})
	}
	vsLimit := func(l, t *Result) {
		if l == nil || t == nil || l.Residence.Count == 0 || t.Residence.Count == 0 || l.Residence.P50 <= 0 {
			return
		}
		v := float64(t.Residence.P50) / float64(l.Residence.P50)
		rep.Checks = append(rep.Checks, Check{Name: fmt.Sprintf("%s_p50_vs_limit@%.0fpps", residenceCheckName, t.Rate), Value: v,
			Op: "<=", Limit: MaxResidenceVsLimit, Pass: v <= MaxResidenceVsLimit})
	}
	vsLimit(rep.Limit.Residence, rep.Target.Residence)
	for i := range rep.Target.ExtraResidence {
		if i < len(rep.Limit.ExtraResidence) {
			vsLimit(rep.Limit.ExtraResidence[i], rep.Target.ExtraResidence[i])
		}
	}
	for _, tr := range []TargetReport{rep.Limit, rep.Target} {
		for _, f := range tr.Fixed {
			if f.Loss >= cfg.LossLimit {
				rep.Checks = append(rep.Checks, Check{Name: tr.Name + "_fixed_rate_loss", Value: f.Loss, Op: "<", Limit: cfg.LossLimit})
			}
		}
	}
}

// searchState is one target's progress in the max-rate search.
type searchState struct {
	lastPass, firstFail float64
	done                bool
}

// search finds each target's highest reply rate with loss below the limit. The targets climb
// one ladder together — SearchStart, ×SearchFactor per step, up to SearchMax — each step run
// on every target still climbing, one after the other, so drift in the machine's load hits
// both alike. A target stops at its first failing step: loss at or above the limit ("loss")
// or a generator that could not offer the rate ("generator"), each seen in two runs of the
// step. A target that fails the first
// step is retried at halved rates (down to minSearchRate); one bisection between the last
// passing and the first failing rate refines a "loss" bound. run measures target i (trs[i])
// with one configuration.
func search(cfg BenchConfig, trs []*TargetReport, run func(i int, c Config) (Result, error)) error {
	pass := func(r Result) bool { return r.Loss < cfg.LossLimit && !r.GeneratorBound() }
	st := make([]searchState, len(trs))
	step := func(i int, rate float64) (bool, error) {
		res, err := run(i, Config{Rate: rate, Duration: cfg.SearchDuration, Size: cfg.Size})
		if err != nil {
			return false, err
		}
		tr := trs[i]
		tr.Search = append(tr.Search, res)
		cfg.Log.WithFields(logrus.Fields{"target": tr.Name, "offered": rate, "sent_pps": int(res.SentRate),
			"reply_pps": int(res.ReplyRate), "loss": res.Loss}).Info("max-rate step")
		if res.Loss < cfg.LossLimit && res.ReplyRate > tr.MaxRate {
			tr.MaxRate = res.ReplyRate
		}
		if pass(res) {
			st[i].lastPass = max(st[i].lastPass, rate)
			return true, nil
		}
		if st[i].firstFail == 0 || rate < st[i].firstFail {
			st[i].firstFail = rate
		}
		if res.Loss >= cfg.LossLimit {
			tr.MaxRateBound = "loss"
		} else {
			tr.MaxRateBound = "generator"
		}
		return false, nil
	}
	climbing := len(trs)
	for rate := cfg.SearchStart; climbing > 0; rate *= cfg.SearchFactor {
		if rate > cfg.SearchMax {
			for i := range st {
				if !st[i].done {
					trs[i].MaxRateBound = "cap"
					st[i].done = true
				}
			}
			break
		}
		for i := range trs {
			if st[i].done {
				continue
			}
			ok, err := step(i, rate)
			if err == nil && !ok {
				// One failed step ends the climb, so a stall of the busy machine must not
				// decide it alone: the rate gets a second run.
				ok, err = step(i, rate)
			}
			if err != nil {
				return err
			}
			if !ok {
				st[i].done = true
				climbing--
			}
		}
	}
	for i := range trs {
		for rate := st[i].firstFail / 2; st[i].lastPass == 0 && rate >= minSearchRate; rate /= 2 {
			if _, err := step(i, rate); err != nil {
				return err
			}
		}
	}
	for r := 0; r < searchRefinements; r++ {
		for i := range trs {
			if trs[i].MaxRateBound != "loss" || st[i].lastPass == 0 || st[i].firstFail <= st[i].lastPass {
				continue
			}
			if _, err := step(i, (st[i].lastPass+st[i].firstFail)/2); err != nil {
				return err
			}
		}
	}
	return nil
}

// RunOnce runs cfg against p from a fresh generator socket (so late replies of an earlier run
// cannot be mistaken for this run's), measuring p's CPU.
func RunOnce(ctx context.Context, p *Process, cfg Config) (Result, error) {
	if p.Exited() {
		return Result{}, fmt.Errorf("loadgen: %s exited: %v: %s", p.Name, p.err, p.out.String())
	}
	conn, err := udpsock.Listen(ctx, "udp4", "127.0.0.1:0", udpsock.Options{
		RxTimestamps: true, ReadBuffer: generatorReadBuf, WriteBuffer: generatorWriteBuf})
	if err != nil {
		return Result{}, err
	}
	defer conn.Close()
	time.Sleep(settleBetweenRuns)
	cfg.Target, cfg.PID = p.Addr, p.PID()
	if cfg.Wait == 0 {
		// A run ends early once every reply is in, so a long wait costs nothing unless a
		// scheduling stall on a busy machine delays the last replies.
		cfg.Wait = harnessWait
	}
	res, err := Run(ctx, conn, cfg)
	if err != nil {
		return res, fmt.Errorf("%s: %w", p.Name, err)
	}
	if p.Exited() {
		return res, fmt.Errorf("loadgen: %s exited during the run: %v: %s", p.Name, p.err, p.out.String())
	}
	return res, nil
}

// medianResidence returns the run whose residence p50 is the median of rs.
func medianResidence(rs []Result) *Result {
	idx := make([]int, len(rs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(rs[a].Residence.P50, rs[b].Residence.P50) })
	r := rs[idx[len(idx)/2]]
	return &r
}

func medianCPU(rs []Result) time.Duration {
	if len(rs) == 0 {
		return 0
	}
	v := make([]time.Duration, len(rs))
	for i, r := range rs {
		v[i] = r.CPUPerPacket
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
