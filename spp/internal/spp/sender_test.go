package spp

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/probekit/probekit/spp/internal/engine"
	"github.com/probekit/probekit/spp/internal/ssf"
)

// frameConn records the frames a sender writes.
type frameConn struct {
	net.Conn
	mu     sync.Mutex
	frames [][]byte
}

func (c *frameConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frames = append(c.frames, append([]byte(nil), b...))
	return len(b), nil
}

// TestSenderTimer: -t bounds the time between frames (the original parsed it and used a
// fixed 1 s): entries wait at most -t, and an idle slave sends heartbeats every -t.
func TestSenderTimer(t *testing.T) {
	cfg := fileConfig("", "")
	cfg.FrameInterval = 250 * time.Millisecond
	c := &frameConn{}
	s := newSender(&cfg, c)
	t0 := time.Now()
	s.last = t0
	if err := s.add(event{ts: t0.UnixMicro(), id: 1, dir: engine.Out}, t0); err != nil {
		t.Fatal(err)
	}
	s.tick(t0.Add(200 * time.Millisecond))
	if len(c.frames) != 0 {
		t.Fatal("frame sent before -t passed")
	}
	s.tick(t0.Add(260 * time.Millisecond))
	if len(c.frames) != 1 {
		t.Fatalf("%d frames after -t", len(c.frames))
	}
	ents, _, err := ssf.Decode(c.frames[0], int64(cfg.Granularity), nil)
	if err != nil || len(ents) != 1 || ents[0].Hash != 1 {
		t.Fatalf("frame: %v %v", ents, err)
	}
	s.tick(t0.Add(400 * time.Millisecond))
	s.tick(t0.Add(520 * time.Millisecond))
	if len(c.frames) != 2 || len(c.frames[1]) != ssf.HeaderLen || s.Heartbeats != 1 {
		t.Fatalf("want one heartbeat after an idle -t, got %d frames", len(c.frames))
	}
}

// TestSenderSplitsFrames: a frame is sent when it exceeds 1388 bytes and when an offset no
// longer fits the -l field.
func TestSenderSplitsFrames(t *testing.T) {
	cfg := fileConfig("", "")
	cfg.TSLen, cfg.Granularity = 1, 100 // offsets up to 127 units = 12.7 ms
	c := &frameConn{}
	s := newSender(&cfg, c)
	now := time.Now()
	ts := int64(1_795_000_000_000_000)
	for i := range 400 {
		ts += 1000
		if i == 300 {
			ts += 20_000 // does not fit one byte
		}
		s.add(event{ts: ts, id: uint32(i), dir: engine.In}, now)
	}
	s.send(now)
	var total int
	for _, f := range c.frames {
		if len(f) > ssf.MaxFrameLen {
			t.Fatalf("frame of %d bytes", len(f))
		}
		ents, _, err := ssf.Decode(f, 100, nil)
		if err != nil {
			t.Fatal(err)
		}
		total += len(ents)
	}
	// 5-byte entries: 276 fit under 1388 bytes, the gap forces one more split.
	if total != 400 || len(c.frames) != 3 {
		t.Fatalf("%d entries in %d frames", total, len(c.frames))
	}
}

// TestRemoteIgnoresOtherSenders: frames from an address other than the -R slave's are
// dropped (the original accepted frames from anyone).
func TestRemoteIgnoresOtherSenders(t *testing.T) {
	cfg := fileConfig(ping[0], "")
	cfg.MonFile, cfg.MonRemote, cfg.Port = "", "127.0.0.1", freePort(t)
	cfg.Count, cfg.SPT = true, true
	// The master warns at the first foreign frame: the test waits for that (not for a time)
	// before it stops the master, which a loaded machine may leave unscheduled for long.
	seen := &messageHook{sub: "ignoring sample frame", seen: make(chan struct{})}
	log := logrus.New()
	log.SetOutput(io.Discard)
	log.AddHook(seen)
	cfg.Log = log
	m := startMaster(t, cfg)
	// A stranger on 127.0.0.2 replays the MON capture: nothing may come of it.
	stranger, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)}, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: cfg.Port})
	if err != nil {
		t.Skipf("no 127.0.0.2: %v", err)
	}
	defer stranger.Close()
	src, err := openFile(ping[1], mustClassifier(t, &cfg))
	if err != nil {
		t.Fatal(err)
	}
	defer src.close()
	s := newSender(&cfg, stranger)
	for {
		ev, err := src.next()
		if err != nil {
			break
		}
		s.add(ev, time.Now())
	}
	s.send(time.Now())
	select {
	case <-seen.seen:
	case <-time.After(30 * time.Second): // hang guard
		t.Fatal("the master never reported the stranger's frames")
	}
	out, err := m.stop(0)
	if err == nil || !strings.Contains(err.Error(), "sent no packet between") || strings.Contains(err.Error(), " 0 frames from other hosts") {
		t.Fatalf("master: %v, output %q", err, out)
	}
	if out != "" {
		t.Fatalf("pairs from a stranger's frames: %q", out)
	}
}

// messageHook closes seen at the first log entry containing sub.
type messageHook struct {
	sub  string
	once sync.Once
	seen chan struct{}
}

func (h *messageHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h *messageHook) Fire(e *logrus.Entry) error {
	if strings.Contains(e.Message, h.sub) {
		h.once.Do(func() { close(h.seen) })
	}
	return nil
}

func mustClassifier(t *testing.T, cfg *Config) classifier {
	cfg.Code = 63
	c, err := newClassifier(cfg, engine.Mon)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
