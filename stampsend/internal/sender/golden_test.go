package sender

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/timestamp"
	"github.com/probekit/probekit/shared/udpsock"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestGoldenText runs four replies with known times through the text output (ping-like lines
// and the summary) and compares with testdata/text.golden.
func TestGoldenText(t *testing.T) {
	var out bytes.Buffer
	cfg := Config{Target: target, SSID: 7, Timeout: time.Second, Format: cliutil.FormatText, Out: &out}
	h := newHarness(t, cfg)
	base := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	for i, d := range []struct{ fwd, res, bwd time.Duration }{
		{100 * time.Microsecond, 5 * time.Microsecond, 150 * time.Microsecond},
		{120 * time.Microsecond, 7 * time.Microsecond, 160 * time.Microsecond},
		{110 * time.Microsecond, 6 * time.Microsecond, 140 * time.Microsecond},
		{130 * time.Microsecond, 4 * time.Microsecond, 170 * time.Microsecond},
	} {
		seq := uint32(i)
		t1 := base.Add(time.Duration(i) * 10 * time.Millisecond)
		t2 := t1.Add(d.fwd)
		t3 := t2.Add(d.res)
		t4 := t3.Add(d.bwd)
		data := reply(seq, t1, t2, t3, true)
		var rp testpkt.ReflectedPacket
		if err := rp.UnmarshalBinary(data); err != nil {
			t.Fatal(err)
		}
		m := &udpsock.Message{Addr: target, RxTime: t4, RxSource: timestamp.SourceKernel, TTL: 64}
		h.send(seq, t1, t1)
		if err := h.recv(data, m); err != nil {
			t.Fatal(err)
		}
	}
	h.send(4, base.Add(40*time.Millisecond), time.Time{}) // sent, never answered
	if err := h.s.acc.printSummary(h.summary(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "text.golden")
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("text output\n%s\nwant\n%s", out.Bytes(), want)
	}
}
