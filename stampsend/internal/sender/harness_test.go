package sender

import (
	"io"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/probekit/probekit/shared/timestamp"
	"github.com/probekit/probekit/shared/udpsock"
)

// harness drives a session's pipeline without a socket: send records a departure as the
// sending goroutine would, recv hands a datagram to the receive path (validation, matching,
// statistics, records), summary combines them as Run does.
type harness struct{ s *session }

func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	if cfg.Interval == 0 {
		cfg.Interval = time.Second
	}
	if cfg.Count == 0 {
		cfg.Count = 64 // the pipeline remembers Count packets (a million without)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	s, err := newSession(cfg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{s: s}
}

// send records packet seq as sent at t1 with kernel transmit stamp t1k (zero: none).
func (h *harness) send(seq uint32, t1, t1k time.Time) {
	h.s.p.Record(seq, t1, t1k, timestamp.SourceKernel)
}

func (h *harness) recv(data []byte, m *udpsock.Message) error {
	m.Buf, m.N = data, len(data)
	return h.s.p.Handle(m)
}

func (h *harness) summary(elapsed time.Duration) *Summary {
	return h.s.acc.summary(h.s.p.Stats(), elapsed)
}
