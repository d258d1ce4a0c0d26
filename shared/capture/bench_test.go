package capture

import (
	"bufio"
	"flag"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

const benchPackets = 1_000_000

var (
	benchOnce sync.Once
	benchDir  string
	benchErr  error
)

// benchFiles writes a 1M-packet pcap and pcapng (Ethernet/IPv4/UDP, 60–160 byte frames, the
// sizes SPP sees after a 200-byte snaplen) once per test binary.
func benchFiles(b *testing.B) (pcap, pcapng string) {
	benchOnce.Do(func() {
		benchDir, benchErr = os.MkdirTemp("", "capture-bench")
		if benchErr != nil {
			return
		}
		f, err := os.Create(filepath.Join(benchDir, "1m.pcap"))
		if err != nil {
			benchErr = err
			return
		}
		bw := bufio.NewWriterSize(f, 1<<20)
		w, _ := NewWriter(bw, Ethernet, 200, false)
		frames := make([][]byte, 101)
		for i := range frames {
			frames[i] = frameOf(i, 60+i)
		}
		for i := range benchPackets {
			fr := frames[i%len(frames)]
			if benchErr = w.WritePacketNanos(nsTime+int64(i)*10_000, fr, len(fr)); benchErr != nil {
				return
			}
		}
		if benchErr = bw.Flush(); benchErr != nil {
			return
		}
		f.Close()
		// pcapng, streamed block by block to keep the generator's memory small.
		f, err = os.Create(filepath.Join(benchDir, "1m.pcapng"))
		if err != nil {
			benchErr = err
			return
		}
		defer f.Close()
		bw.Reset(f)
		in := ngIface{lt: Ethernet, snaplen: 200, tsresol: 9}
		g := newNG(false).shb().idb(in)
		bw.Write(g.buf)
		for i := range benchPackets {
			fr := frames[i%len(frames)]
			g.buf = g.buf[:0]
			g.epb(in, testPkt{ns: nsTime + int64(i)*10_000, data: fr, origLen: len(fr)})
			bw.Write(g.buf)
		}
		benchErr = bw.Flush()
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return filepath.Join(benchDir, "1m.pcap"), filepath.Join(benchDir, "1m.pcapng")
}

// benchRead reads the whole file b.N times and reports packets per second; allocs/op are per
// file (a handful for the reader and its buffer), so per packet they are 0.
func benchRead(b *testing.B, path string) {
	b.ReportAllocs()
	var n int
	cpu0 := cpuTime()
	for b.Loop() {
		r, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		n = 0
		var sum int
		for {
			p, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			sum += len(p.Data) + int(p.TimeNanos&1)
			n++
		}
		r.Close()
		if n != benchPackets || sum == 0 {
			b.Fatalf("read %d packets", n)
		}
	}
	reportRate(b, float64(n)*float64(b.N), cpu0)
}

// reportRate reports packets per wall-clock second and per CPU second of this process: on a
// shared machine the second is the stable figure.
func reportRate(b *testing.B, pkts float64, cpu0 time.Duration) {
	b.ReportMetric(pkts/b.Elapsed().Seconds(), "pkts/s")
	b.ReportMetric(pkts/(cpuTime()-cpu0).Seconds(), "pkts/cpu-s")
	b.ReportMetric(0, "ns/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkReadPcap1M(b *testing.B) {
	p, _ := benchFiles(b)
	benchRead(b, p)
}

func BenchmarkReadPcapNG1M(b *testing.B) {
	_, p := benchFiles(b)
	benchRead(b, p)
}

// BenchmarkReadPlusNetworkLayer1M is the SPP hot path: read and strip to IP.
func BenchmarkReadPlusNetworkLayer1M(b *testing.B) {
	p, _ := benchFiles(b)
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		r, err := Open(p)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			pk, err := r.Next()
			if err != nil {
				break
			}
			ip, et, err := NetworkLayer(pk.LinkType, pk.Data)
			if err != nil || et != EtherTypeIPv4 || len(ip) == 0 {
				b.Fatal("bad frame")
			}
			n++
		}
		r.Close()
		if n != benchPackets {
			b.Fatalf("read %d packets", n)
		}
	}
	reportRate(b, float64(benchPackets)*float64(b.N), cpu0)
}

func BenchmarkNetworkLayer(b *testing.B) {
	frames := map[string]struct {
		lt LinkType
		f  []byte
	}{
		"ethernet":  {Ethernet, frameOf(1, 100)},
		"vlan":      {Ethernet, append(append(append([]byte(nil), frameOf(1, 100)[:12]...), 0x81, 0x00, 0, 5), frameOf(1, 100)[12:]...)},
		"linuxsll2": {LinuxSLL2, append([]byte{0x08, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0}, frameOf(1, 100)[14:]...)},
		"null":      {Null, append([]byte{2, 0, 0, 0}, frameOf(1, 100)[14:]...)},
	}
	for name, fr := range frames {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				ip, et, err := NetworkLayer(fr.lt, fr.f)
				if err != nil || et != EtherTypeIPv4 || ip[0] != 0x45 {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cycleReader is an endless pcap stream: the file header once, then the same records forever.
type cycleReader struct {
	data []byte
	off  int
	loop int // offset the cycle restarts at (after the file header)
}

func (c *cycleReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k := copy(p[n:], c.data[c.off:])
		n += k
		if c.off += k; c.off == len(c.data) {
			c.off = c.loop
		}
	}
	return n, nil
}

// BenchmarkNext measures one packet per op (allocs/op is per packet), over an in-memory
// endless stream of 60–160 byte Ethernet frames.
func BenchmarkNext(b *testing.B) {
	for _, format := range []string{"pcap", "pcapng"} {
		b.Run(format, func(b *testing.B) {
			var pkts []testPkt
			for i := range 1000 {
				pkts = append(pkts, testPkt{ns: nsTime + int64(i)*1000, data: frameOf(i, 60+i%101), origLen: 60 + i%101})
			}
			var data []byte
			var loop int
			if format == "pcap" {
				data, loop = buildPcap(false, false, Ethernet, 200, pkts), pcapFileHeaderLen
			} else {
				in := ngIface{lt: Ethernet, snaplen: 200, tsresol: 9}
				g := newNG(false).shb().idb(in)
				loop = len(g.buf)
				for _, p := range pkts {
					g.epb(in, p)
				}
				data = g.buf
			}
			r, err := NewReader(&cycleReader{data: data, loop: loop})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(data)-loop) / int64(len(pkts)))
			cpu0 := cpuTime()
			var sum int64
			for b.Loop() {
				p, err := r.Next()
				if err != nil {
					b.Fatal(err)
				}
				sum += p.TimeNanos
			}
			if sum == 0 {
				b.Fatal("no packets")
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
			b.ReportMetric(float64(b.N)/(cpuTime()-cpu0).Seconds(), "pkts/cpu-s")
		})
	}
}

// TestMain removes the benchmark files after the run.
func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}
