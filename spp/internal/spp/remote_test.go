package spp

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/probekit/probekit/spp/internal/engine"
	"github.com/probekit/probekit/spp/internal/pktid"
)

// lineWriter collects the master's output and counts its lines for the polling test; the
// text is read only after the master has returned.
type lineWriter struct {
	b     bytes.Buffer
	lines atomic.Int64
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.lines.Add(int64(bytes.Count(p, []byte{'\n'})))
	return w.b.Write(p)
}

// remoteMaster is a master run in a goroutine with one point fed by sample frames.
type remoteMaster struct {
	out    lineWriter
	cancel context.CancelFunc
	done   chan error
}

// startMaster starts Run(cfg) and returns once the frame socket is bound.
func startMaster(t *testing.T, cfg Config) *remoteMaster {
	t.Helper()
	m := &remoteMaster{done: make(chan error, 1)}
	cfg.Stdout, cfg.Stderr = &m.out, io.Discard
	var ctx context.Context
	ctx, m.cancel = context.WithCancel(context.Background())
	t.Cleanup(m.cancel)
	bound := make(chan struct{})
	cfg.onListen = func() { close(bound) }
	go func() { m.done <- Run(ctx, cfg) }()
	select {
	case <-bound:
	case err := <-m.done:
		t.Fatalf("master ended: %v", err)
	case <-time.After(30 * time.Second): // hang guard
		t.Fatal("master did not bind its port")
	}
	return m
}

// stop waits until the master printed want lines (or 10 s), interrupts it and returns its
// output and error.
func (m *remoteMaster) stop(want int64) (string, error) {
	deadline := time.Now().Add(10 * time.Second)
	for m.out.lines.Load() < want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	m.cancel()
	err := <-m.done
	return m.out.b.String(), err
}

func freePort(t *testing.T) int {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// replaySlave plays a capture file through the slave's classifier and frame sender, as if
// a slave had captured it live.
func replaySlave(t *testing.T, cfg Config, file string) {
	t.Helper()
	cfg.Slave = "127.0.0.1"
	cfg.Code = pktid.Default
	c, err := newClassifier(&cfg, engine.Mon)
	if err != nil {
		t.Fatal(err)
	}
	src, err := openFile(file, c)
	if err != nil {
		t.Fatal(err)
	}
	defer src.close()
	conn, err := dialMaster(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s := newSender(&cfg, conn)
	for {
		ev, err := src.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := s.add(ev, time.Now()); err != nil {
			t.Fatal(err)
		}
		if s.Frames%8 == 7 {
			time.Sleep(time.Millisecond) // pace: loopback, but let the master keep up
		}
	}
	if err := s.send(time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.tick(time.Now().Add(time.Hour)); err != nil { // a heartbeat, ignored by the master
		t.Fatal(err)
	}
}

// runRemote runs a master with REF from the udpecho file and MON from a replaying slave,
// and returns its output once it has want lines.
func runRemote(t *testing.T, tsLen, gran int, want int64) string {
	cfg := fileConfig(udpecho[0], "")
	cfg.MonFile, cfg.MonRemote, cfg.Port = "", "127.0.0.1", freePort(t)
	cfg.TSLen, cfg.Granularity = tsLen, gran
	cfg.Count, cfg.SPT = true, true
	m := startMaster(t, cfg)
	replaySlave(t, cfg, udpecho[1])
	out, err := m.stop(want)
	if err != nil {
		t.Fatalf("master: %v", err)
	}
	return out
}

// TestRemoteExact: with microsecond timestamps in the frames (-g 1 with 3-byte offsets, or
// absolute timestamps -l 0) a remote MON gives exactly the file run's output.
func TestRemoteExact(t *testing.T) {
	want := string(readTD(t, "spp-udpecho.spp036-cp.txt"))
	for _, tc := range []struct{ l, g int }{{3, 1}, {0, 100}, {4, 1}} {
		if got := runRemote(t, tc.l, tc.g, 721); got != want {
			t.Errorf("-l %d -g %d: %s", tc.l, tc.g, firstDiff(got, want))
		}
	}
}

// TestRemoteGranularity: with the default -l 2 -g 100 the slave's times carry ±100 µs, so
// every pair's RTT is within 2 granules of the truth of its packets (SPP-R10).
func TestRemoteGranularity(t *testing.T) {
	truth := owdTruth(t, "spp-udpecho.truth-owd.csv")
	out := runRemote(t, 2, 100, 715)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 715 || len(lines) > 722 {
		t.Fatalf("%d pairs", len(lines))
	}
	// The file run forms the same pairs (same count, same numbering); its CSV names each
	// pair's packets, whose true OWDs come from the truth file.
	cfg := fileConfig(udpecho[0], udpecho[1])
	cfg.Output = OutputCSV
	fileOut, err := run(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	exact := map[string]int64{} // count → true rtt of the file run's pair
	for _, l := range strings.Split(strings.TrimSpace(fileOut), "\n")[1:] {
		f := strings.Split(l, ",")
		exact[f[0]] = truth[0][parseSeconds(t, f[4])] + truth[1][parseSeconds(t, f[6])]
	}
	var worst int64
	for _, l := range lines {
		f := strings.Fields(l)
		rtt := parseSeconds(t, f[2])
		tr, ok := exact[f[0]]
		if !ok {
			continue
		}
		worst = max(worst, abs(rtt-tr))
	}
	if worst > 200 {
		t.Fatalf("worst rtt error %d µs with -g 100", worst)
	}
	t.Logf("%d pairs, worst |rtt − truth| %d µs", len(lines), worst)
}
