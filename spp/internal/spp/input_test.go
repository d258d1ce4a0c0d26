package spp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/probekit/probekit/shared/capture"
)

// asIs keeps the frames of the Ethernet golden captures unchanged.
const asIs = capture.LinkType(0xffff)

// rewrite copies a golden Ethernet capture to a new pcap: each frame's IP packet is given the
// link header of lt, timestamps are shifted by shiftUS, and keep (if set) selects packets.
func rewrite(t *testing.T, src string, lt capture.LinkType, nanos bool, shiftUS int64, keep func(i int) bool) string {
	t.Helper()
	r, err := capture.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var buf bytes.Buffer
	wlt := lt
	if lt == asIs {
		wlt = capture.Ethernet
	}
	w, err := capture.NewWriter(&buf, wlt, 65535, nanos)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		p, err := r.Next()
		if err != nil {
			break
		}
		if keep != nil && !keep(i) {
			continue
		}
		ip := p.Data[14:]
		var f []byte
		switch lt {
		case capture.Ethernet: // 802.1Q tagged
			f = append(append(append([]byte{}, p.Data[:12]...), 0x81, 0x00, 0x00, 0x07), p.Data[12:]...)
		case capture.Raw, capture.RawIPv4:
			f = append(f, ip...)
		case capture.LinuxSLL:
			f = append([]byte{0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00}, ip...)
		case capture.LinuxSLL2:
			f = append([]byte{0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0}, ip...)
		case capture.Null:
			f = append(binary.LittleEndian.AppendUint32(nil, 2), ip...)
		case capture.Loop:
			f = append(binary.BigEndian.AppendUint32(nil, 2), ip...)
		default:
			f = append(f, p.Data...)
		}
		if err := w.WritePacketNanos(p.TimeNanos+shiftUS*1000, f, len(f)); err != nil {
			t.Fatal(err)
		}
	}
	name := filepath.Join(t.TempDir(), "x.pcap")
	if err := os.WriteFile(name, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

// TestLinkTypesAndResolutions: the ping scenario gives the golden output from every link
// type and from nanosecond pcaps (SPP-R8, SPP-Q9, SPP-Q11).
func TestLinkTypesAndResolutions(t *testing.T) {
	want := string(readTD(t, "spp-ping.spp036-cp.txt"))
	for _, tc := range []struct {
		name  string
		lt    capture.LinkType
		nanos bool
	}{
		{"ethernet with 802.1Q tag", capture.Ethernet, false},
		{"raw", capture.Raw, false},
		{"raw ipv4", capture.RawIPv4, true},
		{"linux sll", capture.LinuxSLL, false},
		{"linux sll2", capture.LinuxSLL2, true},
		{"null", capture.Null, false},
		{"loop", capture.Loop, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fileConfig(rewrite(t, ping[0], tc.lt, tc.nanos, 0, nil), rewrite(t, ping[1], tc.lt, !tc.nanos, 0, nil))
			cfg.Count, cfg.SPT = true, true
			got, err := run(t, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatal(firstDiff(got, want))
			}
		})
	}
}

// TestNegativeOffset: with MON's clock 100 s behind REF, -o -100 restores the golden output
// (the original's unsigned -o gives 0 pairs here, SPP-Q3); so does a wide window, and any
// positive offset of the wrong sign finds nothing.
func TestNegativeOffset(t *testing.T) {
	mon := rewrite(t, udpecho[1], asIs, false, -100_000_000, nil)
	want := string(readTD(t, "spp-udpecho.spp036-cp.txt"))
	for _, tc := range []struct {
		offset, window int64
		want           string
	}{
		{-100, DefaultWindow, want},
		{0, 120, want},
		{0, DefaultWindow, ""},
		{100, DefaultWindow, ""},
		{-99, 1, want},   // 1 s off plus a second boundary: |delta| ≤ 2 = window+1
		{-101, 1, want},  // the same on the other side
		{-97, 0, ""},     // 3 s off with a 0 s window
		{-100, 0, want},  // exact offset, smallest window
		{-160, 60, want}, // 60 s off inside the default window (window+1 covers a second boundary)
	} {
		cfg := fileConfig(udpecho[0], mon)
		cfg.Count, cfg.SPT, cfg.Offset, cfg.Window = true, true, tc.offset, tc.window
		got, err := run(t, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("-o %d -d %d: %s", tc.offset, tc.window, firstDiff(got, tc.want))
		}
	}
}

func TestTruncatedLastPacket(t *testing.T) {
	b := readTD(t, "spp-ping-mon.pcap")
	name := filepath.Join(t.TempDir(), "cut.pcap")
	if err := os.WriteFile(name, b[:len(b)-30], 0o644); err != nil {
		t.Fatal(err)
	}
	log, hook := test.NewNullLogger()
	cfg := fileConfig(ping[0], name)
	cfg.Count, cfg.SPT, cfg.Log = true, true, log
	got, err := run(t, cfg)
	if err != nil {
		t.Fatalf("truncated last packet is fatal: %v", err)
	}
	// Only the last MON packet (the 300th echo reply) is lost; it belonged to the final
	// candidate pair, which is never printed, so the output is complete.
	if want := string(readTD(t, "spp-ping.spp036-cp.txt")); got != want {
		t.Fatal(firstDiff(got, want))
	}
	var warned bool
	for _, e := range hook.AllEntries() {
		warned = warned || (e.Level == logrus.WarnLevel && strings.Contains(e.Message, "truncated"))
	}
	if !warned {
		t.Fatal("no truncation warning")
	}
}

func TestUnsupportedLinkType(t *testing.T) {
	name := rewrite(t, ping[1], 147, false, 0, nil) // LINKTYPE_USER0
	_, err := run(t, fileConfig(ping[0], name))
	if !errors.Is(err, capture.ErrUnsupportedLinkType) || !strings.Contains(err.Error(), "MON file") {
		t.Fatalf("err = %v", err)
	}
}

// TestNoTraffic: addresses that match nothing are an error that says what was seen.
func TestNoTraffic(t *testing.T) {
	cfg := fileConfig(ping[0], ping[1])
	cfg.B = netip.MustParseAddr("10.71.2.99")
	_, err := run(t, cfg)
	if !errors.Is(err, ErrNoTraffic) {
		t.Fatalf("err = %v", err)
	}
	if want := "REF " + ping[0] + " has no packet between -a 10.71.1.1 and -A 10.71.2.99 (0 OUT, 0 IN of 600 packets: 600 IP packets of other hosts"; !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v\nwant it to contain %q", err, want)
	}
}

// TestOneDirectionMissing warns with the per-direction counts.
func TestOneDirectionMissing(t *testing.T) {
	mon := rewrite(t, ping[1], asIs, false, 0, func(i int) bool { return i%2 == 0 }) // echo requests only
	log, hook := test.NewNullLogger()
	cfg := fileConfig(ping[0], mon)
	cfg.Log = log
	got, err := run(t, cfg)
	if err != nil || got != "" {
		t.Fatalf("err %v output %q", err, got)
	}
	var msg string
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.WarnLevel {
			msg = e.Message
		}
	}
	if !strings.Contains(msg, "no IN packets (300 OUT, 0 IN)") {
		t.Fatalf("warning %q", msg)
	}
}

func TestStdin(t *testing.T) {
	f, err := os.Open(ping[1])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	old := os.Stdin
	os.Stdin = f
	defer func() { os.Stdin = old }()
	cfg := fileConfig(ping[0], "-")
	cfg.Count, cfg.SPT = true, true
	got, err := run(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if want := string(readTD(t, "spp-ping.spp036-cp.txt")); got != want {
		t.Fatal(firstDiff(got, want))
	}
}

// TestUnreadableInputs: missing files, non-capture files and damaged headers fail with one
// error naming the point and the file.
func TestUnreadableInputs(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.txt")
	os.WriteFile(text, []byte("this is not a capture file, just text\n"), 0o644)
	short := filepath.Join(dir, "short.pcap")
	os.WriteFile(short, readTD(t, "spp-ping-mon.pcap")[:10], 0o644)
	for _, tc := range []struct {
		mon, want string
	}{
		{filepath.Join(dir, "missing.pcap"), "MON file: open " + filepath.Join(dir, "missing.pcap") + ": no such file"},
		{text, "MON file " + text + ": "},
		{short, "MON file " + short + ": "},
	} {
		_, err := run(t, fileConfig(ping[0], tc.mon))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", tc.mon, err, tc.want)
		}
	}
}

// TestInterrupted: a cancelled file run stops both readers, prints what it formed and
// returns the cancellation.
func TestInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cfg := fileConfig(tcpbulk[0], tcpbulk[1])
	var out bytes.Buffer
	cfg.Stdout = &out
	if err := Run(ctx, cfg); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}
