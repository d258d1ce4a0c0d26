package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/net/bpf"
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

// FuzzFilter is a differential test of the compiled BPF filters: for every frame, the program
// run in x/net/bpf's VM must accept exactly what the reference model (NetworkLayer + refMatch)
// accepts, wherever the model's semantics apply (≤ 2 VLAN tags, no 802.3 frames, every field
// the program loads present).
func FuzzFilter(f *testing.F) {
	ips, ets := filterCorpus()
	for i, ip := range ips {
		f.Add(uint8(i), uint16(Ethernet), wrap(Ethernet, ets[i], ip, 7))
		f.Add(uint8(i), uint16(LinuxSLL2), wrap(LinuxSLL2, ets[i], ip))
		f.Add(uint8(i), uint16(Null), wrap(Null, ets[i], ip))
	}
	for _, path := range []string{"testdata/spp-ping-ref.pcap", "testdata/twamp-owamp-ipv6.pcap", "testdata/sll2-any-loopback.pcap"} {
		r, err := Open(path)
		if err != nil {
			f.Fatal(err)
		}
		for i := range uint8(3) {
			p, err := r.Next()
			if err != nil {
				break
			}
			f.Add(i, uint16(p.LinkType), bytes.Clone(p.Data))
		}
		r.Close()
	}
	vms := map[[2]int]*bpf.VM{}
	for fi, flt := range testFilters {
		for _, lt := range []LinkType{Ethernet, LinuxSLL, LinuxSLL2, Null, Loop, Raw, RawIPv4, RawIPv6} {
			prog, err := flt.Compile(lt, 0)
			if err != nil {
				f.Fatal(err)
			}
			vm, err := bpf.NewVM(prog)
			if err != nil {
				f.Fatal(err)
			}
			vms[[2]int{fi, int(lt)}] = vm
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, lt uint16, frame []byte) {
		fi := int(which) % len(testFilters)
		vm, ok := vms[[2]int{fi, int(lt)}]
		if !ok {
			return
		}
		n, err := vm.Run(frame)
		if err != nil {
			t.Fatalf("VM: %v", err)
		}
		if !modelApplies(LinkType(lt), frame) {
			return
		}
		flt := testFilters[fi]
		ip, et, err := NetworkLayer(LinkType(lt), frame)
		want := false
		switch {
		case len(flt.Hosts) == 0 && flt.Protocol == 0 && len(flt.Ports) == 0:
			want = true // the empty filter accepts anything, even garbage
		case err != nil:
			// not an IP packet the model can see: the program must reject it too
		case loadsPresent(flt, et, ip):
			want = refMatch(flt, et, ip)
		case et == EtherTypeIPv4 || et == EtherTypeIPv6:
			return // the program may reject a short packet before the model's verdict
		}
		if (n > 0) != want {
			t.Fatalf("filter %d (%s) on %v frame %x: BPF accept=%v, model %v", fi, tcpdumpExpr(testFilters[fi]), LinkType(lt), frame, n > 0, want)
		}
	})
}

// modelApplies reports whether the frame is within the filter's documented scope.
func modelApplies(lt LinkType, frame []byte) bool {
	var et uint16
	var rest []byte
	switch lt {
	case Ethernet:
		if len(frame) < 14 {
			return true
		}
		et, rest = binary.BigEndian.Uint16(frame[12:]), frame[14:]
		if et < 0x0600 {
			return false // 802.3/SNAP: NetworkLayer only
		}
	case LinuxSLL:
		if len(frame) < 16 {
			return true
		}
		et, rest = binary.BigEndian.Uint16(frame[14:]), frame[16:]
	case LinuxSLL2:
		if len(frame) < 20 {
			return true
		}
		et, rest = binary.BigEndian.Uint16(frame), frame[20:]
	default:
		return true
	}
	for tags := 0; et == EtherTypeVLAN || et == EtherTypeQinQ || et == EtherTypeQinQ1; tags++ {
		if tags == 2 || len(rest) < 4 {
			return tags < 2 // a third tag: outside the filter's scope
		}
		et, rest = binary.BigEndian.Uint16(rest[2:]), rest[4:]
	}
	return true
}

// loadsPresent reports whether ip holds every field the filter program may load.
func loadsPresent(f Filter, et uint16, ip []byte) bool {
	switch et {
	case EtherTypeIPv4:
		if len(ip) < 20 {
			return false
		}
		return len(f.Ports) == 0 || len(ip) >= int(ip[0]&0x0f)*4+4
	case EtherTypeIPv6:
		return len(ip) >= 40 && (len(f.Ports) == 0 || len(ip) >= 44)
	}
	return true
}
