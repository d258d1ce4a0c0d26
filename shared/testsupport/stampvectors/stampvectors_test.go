package stampvectors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"path/filepath"
	"testing"

	"github.com/probekit/probekit/shared/capture"
)

func TestLoad(t *testing.T) {
	v, err := LoadTeaparty()
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Open) != 2 || len(v.CoSTime) != 1 || len(v.Authenticated) != 2 || len(v.Open[0].Request) != 44 ||
		len(v.CoSTime[0].Reply) != 60 || len(v.Authenticated[1].Reply) != 112 {
		t.Errorf("teaparty vectors %+v", v)
	}
	c, err := LoadCaptures()
	if err != nil {
		t.Fatal(err)
	}
	for name, n := range map[string]int{StampSuite: 13, StampSuiteAuth: 8, XilongYangAuth: 10} {
		if len(c[name]) != n {
			t.Errorf("%s: %d frames, want %d", name, len(c[name]), n)
		}
		for i, f := range c[name] {
			if f.Frame != i+1 || len(f.Payload) < 44 {
				t.Errorf("%s frame %d: %+v", name, i+1, f)
			}
		}
	}
}

// TestCapturesMatchPcaps re-reads the pcaps (testdata/, copied from the reference data) with
// shared/capture and checks that the embedded frames are exactly their UDP datagrams.
func TestCapturesMatchPcaps(t *testing.T) {
	c, err := LoadCaptures()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{StampSuite, StampSuiteAuth, XilongYangAuth} {
		r, err := capture.Open(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		i := 0
		for {
			p, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			ip, _, err := capture.NetworkLayer(p.LinkType, p.Data)
			if err != nil {
				t.Fatal(err)
			}
			hl := int(ip[0]&0xF) * 4
			udp := ip[hl:]
			f := c[name][i]
			if int(ip[8]) != f.TTL || int(binary.BigEndian.Uint16(udp[0:])) != f.SrcPort ||
				int(binary.BigEndian.Uint16(udp[2:])) != f.DstPort || !bytes.Equal(udp[8:], f.Payload) {
				t.Errorf("%s frame %d differs from the pcap", name, i+1)
			}
			i++
		}
		r.Close()
		if i != len(c[name]) {
			t.Errorf("%s: %d frames in the pcap, %d embedded", name, i, len(c[name]))
		}
	}
}
