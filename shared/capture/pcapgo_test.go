package capture

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/pcapgo"
)

// compareWithPcapgo reads path with gopacket's pcapgo (an independent implementation) and
// checks that every packet has the same bytes, lengths, link type and timestamp.
func compareWithPcapgo(t *testing.T, path string) int {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type source interface {
		ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	}
	var src source
	var linkOf func(ci gopacket.CaptureInfo) LinkType
	if bytes.HasPrefix(raw, []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		ng, err := pcapgo.NewNgReader(bytes.NewReader(raw), pcapgo.DefaultNgReaderOptions)
		if err != nil {
			t.Fatal(err)
		}
		src = ng
		linkOf = func(ci gopacket.CaptureInfo) LinkType {
			in, err := ng.Interface(ci.InterfaceIndex)
			if err != nil {
				t.Fatal(err)
			}
			return LinkType(in.LinkType)
		}
	} else {
		pr, err := pcapgo.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		src = pr
		linkOf = func(gopacket.CaptureInfo) LinkType { return LinkType(pr.LinkType()) }
	}
	r, err := NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for ; ; n++ {
		want, ci, werr := src.ReadPacketData()
		p, err := r.Next()
		if werr != nil {
			if err == nil {
				t.Fatalf("%s: packet %d: pcapgo ends (%v), we read more", path, n+1, werr)
			}
			if werr == io.EOF && err != io.EOF || err == io.EOF && werr != io.EOF && !errors.Is(werr, io.ErrUnexpectedEOF) {
				t.Fatalf("%s: end: pcapgo %v, ours %v", path, werr, err)
			}
			return n
		}
		if err != nil {
			t.Fatalf("%s: packet %d: %v (pcapgo read it)", path, n+1, err)
		}
		if !bytes.Equal(p.Data, want) || p.OrigLen != ci.Length || p.CaptureLen != ci.CaptureLength ||
			p.TimeNanos != ci.Timestamp.UnixNano() || p.LinkType != linkOf(ci) || p.Interface != ci.InterfaceIndex {
			t.Fatalf("%s: packet %d: ours %d bytes orig %d at %d lt %v if %d; pcapgo %d bytes orig %d at %d lt %v if %d",
				path, n+1, len(p.Data), p.OrigLen, p.TimeNanos, p.LinkType, p.Interface,
				len(want), ci.Length, ci.Timestamp.UnixNano(), linkOf(ci), ci.InterfaceIndex)
		}
	}
}
