package spp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/sirupsen/logrus"

	"github.com/probekit/probekit/spp/internal/engine"
	"github.com/probekit/probekit/spp/internal/format"
	"github.com/probekit/probekit/spp/internal/pktid"
)

// ErrNoTraffic reports that a point's input held no packet between the two addresses.
var ErrNoTraffic = errors.New("no traffic between the target addresses")

// Run runs spp as configured: a slave when cfg.Slave is set, else the master that prints
// one line per pair on cfg.Stdout until both inputs end or ctx is cancelled.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		cfg.Log = l
	}
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	if cfg.Slave != "" {
		return runSlave(ctx, &cfg)
	}
	return runMaster(ctx, &cfg)
}

func newClassifier(cfg *Config, p engine.Point) (classifier, error) {
	cls, err := pktid.New(cfg.A, cfg.B, cfg.NatA, cfg.NatB, cfg.Code)
	if err != nil {
		return classifier{}, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	cls.ExcludePort(uint16(cfg.Port))
	return classifier{cls: cls, point: p, log: cfg.Log, verb: cfg.Verbose, stats: pointStats{Frames: -1}}, nil
}

// master owns the engine and the output of one master run.
type master struct {
	cfg     *Config
	eng     *engine.Engine
	w       *bufio.Writer
	buf     []byte
	opts    format.Options
	n       uint64
	rttSum  int64
	sum     *summary
	writeEr error
}

func newMaster(cfg *Config) *master {
	m := &master{cfg: cfg, w: bufio.NewWriterSize(cfg.Stdout, 64<<10), opts: cfg.formatOptions()}
	if cfg.Summary {
		m.sum = newSummary()
	}
	m.eng = engine.New(engine.Config{Offset: cfg.Offset, Window: cfg.Window, MaxSearch: cfg.MaxSearch}, m.emit)
	if cfg.Verbose&VerbRecords != 0 {
		m.eng.OnRecord(func(d engine.Dir, r engine.Record) {
			cfg.Log.WithFields(logrus.Fields{"dir": d, "ref_us": r.Ref, "mon_us": r.Mon}).Info("record")
		})
	}
	if cfg.Output == OutputCSV {
		m.w.WriteString(format.CSVHeader)
	}
	return m
}

func (m *master) emit(p engine.Pair) {
	m.n++
	switch m.cfg.Output {
	case OutputJSON:
		m.buf = format.AppendJSON(m.buf[:0], m.n, p, m.opts)
	case OutputCSV:
		m.buf = format.AppendCSV(m.buf[:0], m.n, p, m.opts)
	default:
		m.buf = format.AppendText(m.buf[:0], m.n, p, m.opts)
	}
	// Whole lines per write to stdout: flush before a line that does not fit, so the buffer
	// never splits one (a second Ctrl-C exits after the write in flight, cliutil.OutputWriter).
	if len(m.buf) > m.w.Available() && m.w.Buffered() > 0 {
		if err := m.w.Flush(); err != nil && m.writeEr == nil {
			m.writeEr = err
		}
	}
	if _, err := m.w.Write(m.buf); err != nil && m.writeEr == nil {
		m.writeEr = err
	}
	m.rttSum += p.RTT()
	if m.sum != nil {
		m.sum.add(p)
	}
	if m.cfg.Verbose&VerbPairs != 0 {
		m.cfg.Log.WithFields(logrus.Fields{"n": m.n, "out_ref_us": p.Out.Ref, "out_mon_us": p.Out.Mon,
			"in_ref_us": p.In.Ref, "in_mon_us": p.In.Mon, "rtt_us": p.RTT(), "spt_us": p.SPT()}).Info("pair")
	}
}

// add feeds one event of point p to the engine.
func (m *master) add(p engine.Point, ev event) {
	if m.cfg.Verbose&VerbInstances != 0 {
		m.cfg.Log.WithFields(logrus.Fields{"point": p, "dir": ev.dir, "id": ev.id, "ts_us": ev.ts}).Info("instance")
	}
	m.eng.Add(p, ev.dir, ev.id, ev.ts)
}

func (m *master) logQueues() {
	inst, rec := m.eng.QueueLens()
	m.cfg.Log.WithFields(logrus.Fields{
		"ref_out": inst[engine.Ref][engine.Out], "ref_in": inst[engine.Ref][engine.In],
		"mon_out": inst[engine.Mon][engine.Out], "mon_in": inst[engine.Mon][engine.In],
		"records_out": rec[engine.Out], "records_in": rec[engine.In],
	}).Info("queues")
}

// finish closes the engine, flushes the output, prints the summary and checks that both
// points saw target traffic.
func (m *master) finish(stats [2]*pointStats, names [2]string) error {
	m.eng.Close(engine.Ref)
	m.eng.Close(engine.Mon)
	if m.cfg.Verbose&VerbQueues != 0 {
		m.logQueues()
	}
	c := m.eng.Counters()
	m.cfg.Log.WithFields(logrus.Fields{
		"pairs": c.Pairs, "records_out": c.Records[engine.Out], "records_in": c.Records[engine.In],
		"mon_unmatched_out": c.MonDropped[engine.Out], "mon_unmatched_in": c.MonDropped[engine.In],
		"ref_expired_out": c.RefDropped[engine.Out], "ref_expired_in": c.RefDropped[engine.In],
	}).Debug("done")
	if m.sum != nil {
		m.sum.write(m.w, m.cfg.Output, m.cfg.Stderr)
	}
	if err := m.w.Flush(); err != nil && m.writeEr == nil {
		m.writeEr = err
	}
	if m.cfg.Verbose&VerbRTTCount != 0 {
		fmt.Fprintf(m.cfg.Stderr, "RTT COUNT: %d\n", m.rttSum)
	}
	if m.writeEr != nil {
		return fmt.Errorf("write output: %w", m.writeEr)
	}
	return checkTraffic(m.cfg, stats, names)
}

// checkTraffic explains an empty result: a point without any target packet is an error,
// a point with one direction missing a warning.
func checkTraffic(cfg *Config, stats [2]*pointStats, names [2]string) error {
	for p, s := range stats {
		if s == nil {
			continue
		}
		pt := engine.Point(p)
		cfg.Log.WithFields(s.fields()).WithField("point", pt).Debug("input")
		if s.Truncated > 0 {
			cfg.Log.WithFields(s.fields()).Warnf("%s: %d target packets were captured too short for the -# fields; their IDs cover the captured bytes only", pt, s.Truncated)
		}
		if s.Target[engine.Out]+s.Target[engine.In] == 0 {
			if s.Frames >= 0 {
				return fmt.Errorf("%w: %s %s sent no packet between -a %s and -A %s (%d sample frames, %d frames from other hosts ignored, %d bad frames)",
					ErrNoTraffic, pt, names[p], cfg.A, cfg.B, s.Frames, s.Foreign, s.BadFrames)
			}
			return fmt.Errorf("%w: %s %s has no packet between -a %s and -A %s (0 OUT, 0 IN of %d packets: %d IP packets of other hosts, %d not IP, %d malformed)",
				ErrNoTraffic, pt, names[p], cfg.A, cfg.B, s.Packets, s.Other, s.NotIP, s.Malformed)
		}
		for d := range s.Target {
			if s.Target[d] == 0 {
				cfg.Log.WithFields(s.fields()).Warnf("%s %s: no %s packets (%d OUT, %d IN); no pairs can be formed", pt, names[p], engine.Dir(d), s.Target[engine.Out], s.Target[engine.In])
			}
		}
	}
	return nil
}

func runMaster(ctx context.Context, cfg *Config) error {
	if cfg.RefFile != "" && cfg.MonFile != "" {
		return runFiles(ctx, cfg)
	}
	return runLive(ctx, cfg)
}

// runFiles reads each file in its own goroutine (link stripping, classification and hashing
// run in parallel) and merges the two event streams in one goroutine, always taking the
// event with the earlier timestamp (MON shifted by -o). The merge order makes the queues
// hold about one matching window of packets, and the readers block when the merge does not
// need their packets yet, so memory does not grow with the capture.
func runFiles(ctx context.Context, cfg *Config) error {
	var src [2]*fileSource
	for p, name := range [2]string{cfg.RefFile, cfg.MonFile} {
		c, err := newClassifier(cfg, engine.Point(p))
		if err != nil {
			return err
		}
		s, err := openFile(name, c)
		if err != nil {
			for _, o := range src {
				if o != nil {
					o.close()
				}
			}
			return err
		}
		src[p] = s
	}
	rctx, cancel := context.WithCancel(ctx)
	var pf [2]*prefetch
	for p := range pf {
		pf[p] = startPrefetch(rctx, engine.Point(p), &fileProducer{src[p]})
	}
	defer func() {
		cancel()
		for _, f := range pf {
			f.stop()
		}
	}()
	stats := [2]*pointStats{&src[0].stats, &src[1].stats}
	names := [2]string{cfg.RefFile, cfg.MonFile}
	m := newMaster(cfg)
	shift := cfg.Offset * 1e6
	var head [2]event
	var have, done [2]bool
	for i := 0; ; i++ {
		for p := range pf {
			if !have[p] && !done[p] {
				ev, err := pf[p].next()
				switch {
				case err == io.EOF:
					done[p] = true
					m.eng.Close(engine.Point(p))
				case err != nil:
					if ctx.Err() != nil {
						// Interrupted: stop both readers, print what was formed, then report
						// the interruption.
						cancel()
						for _, f := range pf {
							f.stop()
						}
						m.finish(stats, names)
						return ctx.Err()
					}
					return err
				default:
					head[p], have[p] = ev, true
				}
			}
		}
		var p engine.Point
		switch {
		case have[engine.Ref] && have[engine.Mon]:
			if head[engine.Mon].ts-shift < head[engine.Ref].ts {
				p = engine.Mon
			}
		case have[engine.Ref]:
		case have[engine.Mon]:
			p = engine.Mon
		default:
			return m.finish(stats, names)
		}
		m.add(p, head[p])
		have[p] = false
		if i&0xfffff == 0 && i > 0 && cfg.Verbose&VerbQueues != 0 {
			m.logQueues()
		}
	}
}
