package client

import (
	"testing"
	"time"

	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/timestamp"
	"github.com/probekit/probekit/shared/udpsock"
)

// offline gives a session a test builds by hand its pipeline without a socket; sendAt records
// departures, handleReply hands a datagram to the real receive path (validation, matching,
// statistics, onReply) and finishOffline collects the results as Run does.
func offline(t testing.TB, s *session) {
	t.Helper()
	if err := s.newPipeline(nil, time.Time{}, time.Hour, nil); err != nil {
		t.Fatal(err)
	}
}

func (s *session) sendAt(seq uint32, t1 time.Time) {
	s.p.Record(seq, t1, time.Time{}, timestamp.SourceNone)
}

func (s *session) handleReply(m *udpsock.Message, _ *testpkt.ReflectedPacket) {
	_ = s.p.Handle(m)
}

func (s *session) finishOffline() { s.collect(s.p.Stats()) }
