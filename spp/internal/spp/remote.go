package spp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/probekit/probekit/spp/internal/engine"
	"github.com/probekit/probekit/spp/internal/ssf"
)

// resolve returns the addresses of host (an IP literal or a name).
func resolve(host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	ips, err := net.LookupIP(host)
	if err != nil {
		return nil, err
	}
	var res []netip.Addr
	for _, ip := range ips {
		if a, ok := netip.AddrFromSlice(ip); ok {
			res = append(res, a.Unmap())
		}
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("%s: no address", host)
	}
	return res, nil
}

// remoteProducer receives the sample frames of one slave on the master's UDP port and turns
// their entries into events of its point. Frames from other hosts are counted and dropped
// (the original accepted anyone's).
type remoteProducer struct {
	cfg   *Config
	point engine.Point
	host  string
	from  []netip.Addr
	conn  *net.UDPConn
	st    pointStats
	log   logrus.FieldLogger
}

func openRemote(cfg *Config, host string, c classifier) (producer, error) {
	from, err := resolve(host)
	if err != nil {
		return nil, fmt.Errorf("%w: remote slave %q: %v", ErrUsage, host, err)
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{Port: cfg.Port})
	if err != nil {
		return nil, fmt.Errorf("%s: listen for sample frames: %w", c.point, err)
	}
	cfg.Log.WithFields(logrus.Fields{"point": c.point, "slave": host, "port": cfg.Port}).Info("waiting for sample frames")
	if cfg.onListen != nil {
		cfg.onListen()
	}
	return &remoteProducer{cfg: cfg, point: c.point, host: host, from: from, conn: conn, log: cfg.Log}, nil
}

func (r *remoteProducer) stats() *pointStats { return &r.st }
func (r *remoteProducer) close()             { r.conn.Close() }
func (r *remoteProducer) name() string       { return "slave " + r.host }

func (r *remoteProducer) produce(ctx context.Context, f *feeder) error {
	stop := context.AfterFunc(ctx, func() { r.conn.Close() })
	defer stop()
	defer r.conn.Close()
	buf := make([]byte, 65536)
	ents := make([]ssf.Entry, 0, ssf.MaxFrameLen/5)
	gran := int64(r.cfg.Granularity)
	verb := r.cfg.Verbose
	for {
		n, src, err := r.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return ctx.Err()
			}
			return fmt.Errorf("receive sample frames: %w", err)
		}
		if !r.accept(src.Addr().Unmap()) {
			r.st.Foreign++
			if r.st.Foreign == 1 || verb&VerbNetwork != 0 {
				r.log.WithField("from", src).Warnf("ignoring sample frame from %s: not the slave %s", src.Addr(), r.host)
			}
			continue
		}
		var h ssf.Header
		ents, h, err = ssf.Decode(buf[:n], gran, ents[:0])
		if err != nil {
			r.st.BadFrames++
			r.log.WithError(err).WithField("from", src).Warn("bad sample frame")
			continue
		}
		r.st.Frames++
		if verb&VerbNetwork != 0 {
			r.log.WithFields(logrus.Fields{"from": src, "bytes": n, "entries": len(ents), "pt": h.PT}).Info("sample frame")
		}
		for _, e := range ents {
			if verb&VerbNetVerbose != 0 {
				r.log.WithFields(logrus.Fields{"hash": e.Hash, "dir": e.Dir, "ts_us": e.Time}).Info("sample entry")
			}
			r.st.Packets++
			r.st.Target[e.Dir]++
			f.add(event{ts: e.Time, id: e.Hash, dir: e.Dir})
		}
		f.flush()
	}
}

func (r *remoteProducer) accept(a netip.Addr) bool {
	for _, f := range r.from {
		if f == a {
			return true
		}
	}
	return false
}

// sender is the slave's side: it packs events into sample frames and sends them to the
// master when a frame is full, when the next offset would not fit, and at least every -t
// (an empty heartbeat frame when nothing was captured).
type sender struct {
	enc      *ssf.Encoder
	conn     net.Conn
	interval time.Duration
	last     time.Time
	hb       []byte
	log      logrus.FieldLogger
	verb     uint

	Frames, Entries, Heartbeats uint64
}

func newSender(cfg *Config, conn net.Conn) *sender {
	return &sender{
		enc: ssf.NewEncoder(cfg.TSLen, int64(cfg.Granularity)), conn: conn,
		interval: cfg.FrameInterval, log: cfg.Log, verb: cfg.Verbose,
		hb: make([]byte, 0, ssf.HeaderLen), last: time.Now(),
	}
}

func (s *sender) add(ev event, now time.Time) error {
	if !s.enc.Fits(ev.ts) {
		if err := s.send(now); err != nil {
			return err
		}
	}
	s.enc.Add(ev.id, ev.dir, ev.ts)
	s.Entries++
	if s.enc.Len() > ssf.FlushLen {
		return s.send(now)
	}
	return nil
}

// tick sends what is buffered, or a heartbeat, once -t has passed since the last frame.
func (s *sender) tick(now time.Time) error {
	if now.Sub(s.last) < s.interval {
		return nil
	}
	if s.enc.Entries() > 0 {
		return s.send(now)
	}
	s.hb = ssf.Heartbeat(s.hb[:0], now.UnixMicro())
	s.last = now
	s.Heartbeats++
	_, err := s.conn.Write(s.hb)
	return ignoreRefused(err)
}

func (s *sender) send(now time.Time) error {
	if s.enc.Entries() == 0 {
		return nil
	}
	if s.verb&VerbNetwork != 0 {
		s.log.WithFields(logrus.Fields{"bytes": s.enc.Len(), "entries": s.enc.Entries()}).Info("send sample frame")
	}
	_, err := s.conn.Write(s.enc.Frame())
	s.enc.Reset()
	s.last = now
	s.Frames++
	return ignoreRefused(err)
}

// ignoreRefused keeps a slave running while its master is not (yet) listening: a connected
// UDP socket reports the ICMP port unreachable of an earlier frame on a later write.
func ignoreRefused(err error) error {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return nil
	}
	return err
}

func dialMaster(cfg *Config) (net.Conn, error) {
	addrs, err := resolve(cfg.Slave)
	if err != nil {
		return nil, fmt.Errorf("%w: master %q: %v", ErrUsage, cfg.Slave, err)
	}
	conn, err := net.Dial("udp", net.JoinHostPort(addrs[0].String(), strconv.Itoa(cfg.Port)))
	if err != nil {
		return nil, fmt.Errorf("slave: %w", err)
	}
	return conn, nil
}
