package spp

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/probekit/probekit/shared/capture"
	"github.com/probekit/probekit/spp/internal/engine"
	"github.com/probekit/probekit/spp/internal/pktid"
)

// event is one target packet seen at a point.
type event struct {
	ts  int64 // µs since the epoch
	id  uint32
	dir engine.Dir
}

// pointStats counts what one point's input contained.
type pointStats struct {
	Packets   uint64    // frames read
	NotIP     uint64    // frames without IPv4/IPv6
	Malformed uint64    // frames too short for their link or IP header
	Other     uint64    // IP packets not between the targets (or excluded)
	Target    [2]uint64 // per direction
	Truncated uint64    // target packets whose selected fields were not all captured
	// Remote points only (Frames is -1 for local inputs): sample frames received from the
	// slave, from other hosts (ignored), and undecodable ones.
	Frames, Foreign, BadFrames int64
}

func (s *pointStats) fields() logrus.Fields {
	return logrus.Fields{
		"packets": s.Packets, "out": s.Target[engine.Out], "in": s.Target[engine.In],
		"other_ip": s.Other, "not_ip": s.NotIP, "malformed": s.Malformed, "truncated": s.Truncated,
	}
}

// classifier wraps pktid for one point, counting and logging each frame (-v 32).
type classifier struct {
	cls   *pktid.Classifier
	point engine.Point
	stats pointStats
	log   logrus.FieldLogger
	verb  uint
}

// frame classifies one link-layer frame; ok reports a target packet.
func (c *classifier) frame(lt capture.LinkType, data []byte, tsUS int64) (event, bool, error) {
	c.stats.Packets++
	ip, _, err := capture.NetworkLayer(lt, data)
	if err != nil {
		if errors.Is(err, capture.ErrUnsupportedLinkType) {
			return event{}, false, err
		}
		c.stats.Malformed++
		return event{}, false, nil
	}
	return c.packet(ip, tsUS)
}

// packet classifies one IP packet.
func (c *classifier) packet(ip []byte, tsUS int64) (event, bool, error) {
	before := c.cls.Truncated
	dir, id, res := c.cls.Classify(ip)
	if c.verb&VerbPackets != 0 {
		c.log.WithFields(logrus.Fields{"point": c.point, "ts_us": tsUS, "len": len(ip), "result": res, "dir": dir, "id": id}).Info("packet")
	}
	switch res {
	case pktid.Target:
		c.stats.Target[dir]++
		c.stats.Truncated += c.cls.Truncated - before
		return event{ts: tsUS, id: id, dir: dir}, true, nil
	case pktid.Other:
		c.stats.Other++
	case pktid.NotIP:
		c.stats.NotIP++
	default:
		c.stats.Malformed++
	}
	return event{}, false, nil
}

// fileSource reads one point from a pcap/pcapng file (or stdin for "-"); files ending in
// .gz are decompressed.
type fileSource struct {
	classifier
	name string
	r    *capture.Reader
	f    io.Closer
	gz   *gzip.Reader
}

func openFile(name string, c classifier) (*fileSource, error) {
	s := &fileSource{classifier: c, name: name}
	var src io.Reader
	if name == "-" {
		src = os.Stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("%s file: %w", c.point, err)
		}
		s.f = f
		src = f
	}
	if strings.HasSuffix(name, ".gz") {
		gz, err := gzip.NewReader(src)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("%s file %s: %w", c.point, name, err)
		}
		s.gz = gz
		src = gz
	}
	r, err := capture.NewReader(src)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("%s file %s: %w", c.point, name, err)
	}
	s.r = r
	return s, nil
}

func (s *fileSource) close() {
	if s.gz != nil {
		s.gz.Close()
	}
	if s.f != nil {
		s.f.Close()
	}
}

// next returns the next target packet, or io.EOF. A file that ends inside its last record
// ends the input with a warning: the packets before it are good.
func (s *fileSource) next() (event, error) {
	for {
		p, err := s.r.Next()
		if err != nil {
			if errors.Is(err, capture.ErrTruncated) {
				s.log.WithError(err).WithField("file", s.name).Warnf("%s file truncated; using the %d packets before the damage", s.point, s.stats.Packets)
				return event{}, io.EOF
			}
			if err == io.EOF {
				return event{}, io.EOF
			}
			return event{}, fmt.Errorf("%s file %s: %w", s.point, s.name, err)
		}
		ev, ok, err := s.frame(p.LinkType, p.Data, p.TimeNanos/1000)
		if err != nil {
			return event{}, fmt.Errorf("%s file %s: %w", s.point, s.name, err)
		}
		if ok {
			return ev, nil
		}
	}
}
