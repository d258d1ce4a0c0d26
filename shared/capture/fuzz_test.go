package capture

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// fuzzRead reads every packet of data with a small buffer and checks the invariants that
// callers rely on: Data within bounds, CaptureLen == len(Data), no panic, sticky errors, and
// only the documented error classes.
func fuzzRead(t *testing.T, data []byte) []testPkt {
	r, err := NewReaderSize(bytes.NewReader(data), 64)
	if err != nil {
		if !errors.Is(err, ErrUnknownFormat) && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("open: unexpected error class: %v", err)
		}
		return nil
	}
	var pkts []testPkt
	for {
		p, err := r.Next()
		if err != nil {
			if err != io.EOF && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("unexpected error class: %v", err)
			}
			if _, err2 := r.Next(); err2 != err {
				t.Fatalf("error not sticky: %v then %v", err, err2)
			}
			return pkts
		}
		if p.CaptureLen != len(p.Data) || len(p.Data) > len(data) {
			t.Fatalf("CaptureLen %d, len(Data) %d, input %d", p.CaptureLen, len(p.Data), len(data))
		}
		// Whatever the link type, stripping must not panic.
		NetworkLayer(p.LinkType, p.Data)
		pkts = append(pkts, testPkt{ns: p.TimeNanos, data: bytes.Clone(p.Data), origLen: p.OrigLen})
	}
}

func FuzzPcapReader(f *testing.F) {
	addSeeds(f, "testdata/*.pcap", 4096)
	f.Add(buildPcap(true, true, Ethernet, 65535, samplePkts(3)))
	f.Add(buildPcap(false, true, LinuxSLL2, 65535, samplePkts(2)))
	f.Fuzz(func(t *testing.T, data []byte) {
		pkts := fuzzRead(t, data)
		if len(pkts) == 0 || len(data) < 24 {
			return
		}
		// Round trip: what was read, written as pcap, reads back identically.
		r, err := NewReaderSize(bytes.NewReader(data), 64)
		if err != nil {
			t.Fatal(err)
		}
		if r.Format() != FormatPcap {
			return
		}
		var buf bytes.Buffer
		w, err := NewWriter(&buf, r.LinkType(), maxBlock, true)
		if err != nil {
			t.Fatal(err)
		}
		var want []testPkt
		for _, p := range pkts {
			if p.ns < 0 || p.ns/1e9 > 0xffffffff {
				return
			}
			if err := w.WritePacketNanos(p.ns, p.data, p.origLen); err != nil {
				t.Fatal(err)
			}
			p.origLen = max(p.origLen, len(p.data))
			want = append(want, p)
		}
		r2, err := NewReaderSize(&buf, 4096)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := readAll(t, r2)
		if err != nil {
			t.Fatal(err)
		}
		comparePkts(t, got, want)
	})
}

func FuzzPcapNGReader(f *testing.F) {
	addSeeds(f, "testdata/*.pcapng", 4096)
	g := newNG(true).shb().idb(ngIface{lt: LinuxSLL2, tsresol: 0x80 | 30, tsoffset: 7}).idb(ngIface{lt: Ethernet, tsresol: 9})
	for i, p := range samplePkts(3) {
		p.iface = i % 2
		g.epb(ngIface{tsresol: 9}, p)
	}
	g.spb(testPkt{data: []byte{1, 2, 3}, origLen: 9})
	f.Add(g.buf)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRead(t, data)
	})
}

func FuzzNetworkLayer(f *testing.F) {
	// Seeds: the first frames of each real capture, prefixed with the link type.
	for _, path := range []string{"testdata/spp-ping-ref.pcap", "testdata/twamp-owamp-ipv6.pcap", "testdata/stamp-xy-auth.pcap", "testdata/sll2-any-loopback.pcap"} {
		r, err := Open(path)
		if err != nil {
			f.Fatal(err)
		}
		for i := 0; i < 4; i++ {
			p, err := r.Next()
			if err != nil {
				break
			}
			f.Add(uint16(p.LinkType), bytes.Clone(p.Data))
		}
		r.Close()
	}
	for _, lt := range []LinkType{Null, Loop, Raw, RawIPv4, RawIPv6, LinuxSLL} {
		f.Add(uint16(lt), []byte{0, 0, 0, 2, 0x45, 0, 0, 20})
	}
	f.Add(uint16(Ethernet), []byte{1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6, 0x81, 0, 0, 1, 0x88, 0xa8, 0, 2, 0x86, 0xdd, 0x60})
	f.Fuzz(func(t *testing.T, lt uint16, frame []byte) {
		ip, et, err := NetworkLayer(LinkType(lt), frame)
		if err != nil {
			if ip != nil || et != 0 {
				t.Fatalf("error %v with result %x/%#x", err, ip, et)
			}
			if !errors.Is(err, ErrShortFrame) && !errors.Is(err, ErrUnknownNetwork) && !errors.Is(err, ErrUnsupportedLinkType) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		// Zero copy: the network layer is a suffix of the frame.
		if len(ip) > len(frame) || (len(ip) > 0 && &ip[len(ip)-1] != &frame[len(frame)-1]) {
			t.Fatalf("result is not a suffix of the frame")
		}
	})
}

// addSeeds adds each file matching pattern, cut to at most limit bytes (a cut file is also a
// useful truncation seed), to the corpus.
func addSeeds(f *testing.F, pattern string, limit int) {
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed files for %s", pattern)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:min(len(b), limit)])
	}
}
