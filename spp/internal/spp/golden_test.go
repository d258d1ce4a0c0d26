package spp

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const td = "../../testdata"

func readTD(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(td, name))
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(name, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// fileConfig is the command line of the reference outputs: spp -a 10.71.1.1 -A 10.71.2.1
// -f REF -F MON with the original's defaults.
func fileConfig(ref, mon string) Config {
	return Config{
		A: netip.MustParseAddr("10.71.1.1"), B: netip.MustParseAddr("10.71.2.1"),
		RefFile: ref, MonFile: mon,
		Window: DefaultWindow, TSLen: DefaultTSLen, Granularity: DefaultGranularity,
		FrameInterval: DefaultFrameInterval, Port: DefaultPort,
	}
}

func run(t *testing.T, cfg Config) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	cfg.Stdout, cfg.Stderr = &out, &errb
	err := Run(context.Background(), cfg)
	return out.String(), err
}

var (
	ping    = [2]string{td + "/spp-ping-ref.pcap", td + "/spp-ping-mon.pcap"}
	udpecho = [2]string{td + "/spp-udpecho-ref.pcap", td + "/spp-udpecho-mon.pcap"}
	tcpbulk = [2]string{td + "/spp-tcpbulk-ref.pcap.gz", td + "/spp-tcpbulk-mon.pcap.gz"}
)

// TestGoldenOutputs: spp's output is byte-identical to C SPP 0.3.6 for every reference
// output and option set in the golden data (SPP-R6, SPP-R7; data README "Command lines").
func TestGoldenOutputs(t *testing.T) {
	plus100 := td + "/spp-udpecho-mon-plus100s.pcap"
	tests := []struct {
		name   string
		files  [2]string
		mod    func(*Config)
		golden string // "" = empty output
	}{
		{"ping -c -p", ping, func(c *Config) { c.Count, c.SPT = true, true }, "spp-ping.spp036-cp.txt"},
		{"udpecho -c -p", udpecho, func(c *Config) { c.Count, c.SPT = true, true }, "spp-udpecho.spp036-cp.txt"},
		{"udpecho -b -p", udpecho, func(c *Config) { c.Begin, c.SPT = true, true }, "spp-udpecho.spp036-bp.txt"},
		{"udpecho -m -p", udpecho, func(c *Config) { c.MonStamp, c.SPT = true, true }, "spp-udpecho.spp036-mp.txt"},
		{"tcpbulk -c -p", tcpbulk, func(c *Config) { c.Count, c.SPT = true, true }, "spp-tcpbulk.spp036-cp.txt.gz"},
		{"udpecho MON +100 s, -o 100", [2]string{udpecho[0], plus100}, func(c *Config) { c.Count, c.SPT, c.Offset = true, true, 100 }, "spp-udpecho.spp036-cp.txt"},
		{"udpecho MON +100 s pcapng, -o 100", [2]string{udpecho[0], td + "/spp-udpecho-mon-plus100s.pcapng"}, func(c *Config) { c.Count, c.SPT, c.Offset = true, true, 100 }, "spp-udpecho.spp036-cp.txt"},
		{"udpecho MON +100 s, -d 120", [2]string{udpecho[0], plus100}, func(c *Config) { c.Count, c.SPT, c.Window = true, true, 120 }, "spp-udpecho.spp036-cp.txt"},
		{"udpecho MON +100 s, default window: 0 pairs", [2]string{udpecho[0], plus100}, func(c *Config) { c.Count, c.SPT = true, true }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fileConfig(tc.files[0], tc.files[1])
			tc.mod(&cfg)
			got, err := run(t, cfg)
			if err != nil {
				t.Fatal(err)
			}
			var want []byte
			if tc.golden != "" {
				want = readTD(t, tc.golden)
			}
			if got != string(want) {
				t.Fatalf("output differs from %s: %s", tc.golden, firstDiff(got, string(want)))
			}
		})
	}
}

// TestTwoColumnForm: without -c and -p the line is "ts rtt" (data README).
func TestTwoColumnForm(t *testing.T) {
	got, err := run(t, fileConfig(udpecho[0], udpecho[1]))
	if err != nil {
		t.Fatal(err)
	}
	if first, _, _ := strings.Cut(got, "\n"); first != "1795410105.125231 0.024735" {
		t.Fatalf("first line %q", first)
	}
}

func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) && i < len(w); i++ {
		if g[i] != w[i] {
			return "line " + strconv.Itoa(i+1) + ": got " + strconv.Quote(g[i]) + " want " + strconv.Quote(w[i])
		}
	}
	return "got " + strconv.Itoa(len(g)) + " lines, want " + strconv.Itoa(len(w))
}

// truthPair is one line of spp-X.truth-pairs.txt: the oracle's pair with its four packet
// timestamps and the packets' true one-way delays (one shared clock).
type truthPair struct {
	outRef, outMon, inRef, inMon, owdOut, owdIn int64
}

func readTruth(t *testing.T, name string) []truthPair {
	var res []truthPair
	sc := bufio.NewScanner(bytes.NewReader(readTD(t, name)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) != 10 {
			t.Fatalf("truth line %q", sc.Text())
		}
		var v [6]int64
		for i := range v {
			n, err := strconv.ParseInt(f[4+i], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			v[i] = n
		}
		res = append(res, truthPair{v[0], v[1], v[2], v[3], v[4], v[5]})
	}
	return res
}

// parseSeconds turns "1795410054.492751" / "-0.000490" into µs.
func parseSeconds(t *testing.T, s string) int64 {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	whole, frac, ok := strings.Cut(s, ".")
	if !ok || len(frac) != 6 {
		t.Fatalf("bad seconds %q", s)
	}
	w, err1 := strconv.ParseInt(whole, 10, 64)
	f, err2 := strconv.ParseInt(frac, 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("bad seconds %q", s)
	}
	if neg {
		return -(w*1e6 + f)
	}
	return w*1e6 + f
}

// TestPairsMatchTruth: every pair spp forms has the same four packet timestamps as the
// oracle's pair, and its RTT equals the true RTT owd_out + owd_in of those packets, taken
// from captures on one clock (SPP-R5, spp.md §11). The CSV output carries all four times.
func TestPairsMatchTruth(t *testing.T) {
	for _, sc := range []struct {
		name  string
		files [2]string
		truth string
	}{
		{"ping", ping, "spp-ping.truth-pairs.txt"},
		{"udpecho", udpecho, "spp-udpecho.truth-pairs.txt"},
		{"tcpbulk", tcpbulk, "spp-tcpbulk.truth-pairs.txt.gz"},
	} {
		t.Run(sc.name, func(t *testing.T) {
			truth := readTruth(t, sc.truth)
			cfg := fileConfig(sc.files[0], sc.files[1])
			cfg.Output = OutputCSV
			got, err := run(t, cfg)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(got), "\n")
			if lines[0] != "n,ts,rtt,spt,out_ref,out_mon,in_ref,in_mon" {
				t.Fatalf("header %q", lines[0])
			}
			lines = lines[1:]
			if len(lines) != len(truth) {
				t.Fatalf("%d pairs, truth has %d", len(lines), len(truth))
			}
			var maxErr int64
			for i, l := range lines {
				f := strings.Split(l, ",")
				rtt := parseSeconds(t, f[2])
				tp := truth[i]
				got := [4]int64{parseSeconds(t, f[4]), parseSeconds(t, f[5]), parseSeconds(t, f[6]), parseSeconds(t, f[7])}
				if got != [4]int64{tp.outRef, tp.outMon, tp.inRef, tp.inMon} {
					t.Fatalf("pair %d: packets %v, truth %+v", i+1, got, tp)
				}
				maxErr = max(maxErr, abs(rtt-(tp.owdOut+tp.owdIn)))
			}
			if maxErr != 0 {
				t.Fatalf("max |rtt − true rtt| = %d µs, want 0", maxErr)
			}
			t.Logf("%d pairs, every RTT equals owd_out+owd_in exactly", len(lines))
		})
	}
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
