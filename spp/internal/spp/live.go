package spp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/probekit/probekit/shared/capture"
)

// liveTimeout is how long a live read waits before the loop looks at the clock (partial
// batches, slave frame timer).
const liveTimeout = 100 * time.Millisecond

// liveRing is the kernel ring per live capture.
const liveRing = 32 << 20

// openCapture opens iface with a kernel filter for the target hosts (the classifier does the
// exact direction and port checks), the original's 8192-byte snap length and promiscuous
// mode, and kernel receive timestamps.
func openCapture(cfg *Config, iface string) (*capture.Live, error) {
	hosts := []netip.Addr{cfg.A, cfg.B}
	for _, n := range []netip.Addr{cfg.NatA, cfg.NatB} {
		if n.IsValid() {
			hosts = append(hosts, n)
		}
	}
	h, err := capture.OpenLive(iface, capture.LiveOptions{
		Snaplen: LiveSnaplen, Promisc: true, Timeout: liveTimeout,
		Match: &capture.Filter{Hosts: hosts},
		// The kernel retires a ring block (1 MiB) after BlockTimeout even if it holds one
		// packet, so sparse traffic uses a block per timeout: 32 blocks of 10 ms ride out a
		// reader descheduled for 300 ms on a loaded machine (8 blocks of 5 ms dropped packets).
		BufferSize: liveRing, BlockTimeout: 10 * time.Millisecond,
	})
	if err != nil {
		return nil, fmt.Errorf("live capture on %s: %w", iface, err)
	}
	return h, nil
}

// liveProducer captures one point on a local interface.
type liveProducer struct {
	classifier
	h     *capture.Live
	iface string
	drops uint64
}

func openLive(cfg *Config, iface string, c classifier) (producer, error) {
	h, err := openCapture(cfg, iface)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.point, err)
	}
	cfg.Log.WithFields(logrus.Fields{"point": c.point, "interface": iface}).Info("capturing")
	return &liveProducer{classifier: c, h: h, iface: iface}, nil
}

func (l *liveProducer) stats() *pointStats { return &l.classifier.stats }
func (l *liveProducer) close()             { l.h.Close() }
func (l *liveProducer) name() string       { return "interface " + l.iface }

func (l *liveProducer) produce(ctx context.Context, f *feeder) error {
	stop := context.AfterFunc(ctx, func() { l.h.Close() })
	defer stop()
	defer l.h.Close()
	defer l.logDrops()
	for {
		p, err := l.h.Next()
		now := time.Now()
		switch {
		case errors.Is(err, capture.ErrTimeout):
			f.flushIfOld(now)
			l.countDrops()
			continue
		case errors.Is(err, capture.ErrClosed):
			return ctx.Err()
		case err != nil:
			return fmt.Errorf("capture on %s: %w", l.iface, err)
		}
		ev, ok, err := l.frame(p.LinkType, p.Data, p.TimeNanos/1000)
		if err != nil {
			return fmt.Errorf("capture on %s: %w", l.iface, err)
		}
		if ok {
			f.add(ev)
		}
		f.flushIfOld(now)
	}
}

// countDrops adds the kernel's ring-full drops since the last call (the counters reset on
// read; a closed handle has none to give).
func (l *liveProducer) countDrops() {
	if st, err := l.h.Stats(); err == nil {
		l.drops += st.Drops
	}
}

func (l *liveProducer) logDrops() {
	l.countDrops()
	if l.drops > 0 {
		l.log.WithFields(logrus.Fields{"interface": l.iface, "drops": l.drops}).Warn("the kernel dropped packets: pairs may be missing")
	}
}

// runSlave captures target traffic on -I and streams sample frames to the master until ctx
// is cancelled.
func runSlave(ctx context.Context, cfg *Config) error {
	c, err := newClassifier(cfg, 1)
	if err != nil {
		return err
	}
	conn, err := dialMaster(cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	h, err := openCapture(cfg, cfg.MonIface)
	if err != nil {
		return fmt.Errorf("slave: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { h.Close() })
	defer stop()
	defer h.Close()
	s := newSender(cfg, conn)
	cfg.Log.WithFields(logrus.Fields{"interface": cfg.MonIface, "master": conn.RemoteAddr().String(),
		"ts_len": cfg.TSLen, "granularity_us": cfg.Granularity}).Info("slave capturing")
	defer func() {
		cfg.Log.WithFields(c.stats.fields()).WithFields(logrus.Fields{"frames": s.Frames, "entries": s.Entries, "heartbeats": s.Heartbeats}).Info("slave stopped")
	}()
	for {
		p, err := h.Next()
		now := time.Now()
		switch {
		case errors.Is(err, capture.ErrTimeout):
		case errors.Is(err, capture.ErrClosed):
			// Interrupted: send what is buffered; stopping a slave is its normal end.
			return s.send(now)
		case err != nil:
			return fmt.Errorf("slave: capture on %s: %w", cfg.MonIface, err)
		default:
			ev, ok, err := c.frame(p.LinkType, p.Data, p.TimeNanos/1000)
			if err != nil {
				return fmt.Errorf("slave: capture on %s: %w", cfg.MonIface, err)
			}
			if ok {
				if err := s.add(ev, now); err != nil {
					return fmt.Errorf("slave: send to master: %w", err)
				}
			}
		}
		if err := s.tick(now); err != nil {
			return fmt.Errorf("slave: send to master: %w", err)
		}
	}
}
