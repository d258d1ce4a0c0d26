package tcpcraft

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

func TestDecodeRoundTrip(t *testing.T) {
	for _, c := range craftCases() {
		b := c.seg.Bytes()
		var d Segment
		if err := Decode(b, &d); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if d.Src != c.seg.Src || d.Dst != c.seg.Dst || d.SrcPort != c.seg.SrcPort || d.DstPort != c.seg.DstPort ||
			d.Seq != c.seg.Seq || d.Ack != c.seg.Ack || d.Flags != c.seg.Flags || d.Window != c.seg.Window ||
			d.TTL != c.seg.TTL || d.TOS != c.seg.TOS || d.Urgent != c.seg.Urgent || !bytes.Equal(d.Payload, c.seg.Payload) {
			t.Errorf("%s: decoded fields differ: %+v", c.name, d)
		}
		if want := !c.seg.SetTCPChecksum; d.ChecksumOK != want {
			t.Errorf("%s: ChecksumOK %v", c.name, d.ChecksumOK)
		}
		if !d.IPChecksumOK {
			t.Errorf("%s: IP checksum wrong", c.name)
		}
		if (d.OptErr != nil) != (c.name == "bad_optlen") {
			t.Errorf("%s: OptErr %v", c.name, d.OptErr)
		}
		if re := d.AppendTo(nil); d.OptErr == nil && !bytes.Equal(re, b) {
			t.Errorf("%s: re-encoded decoded segment differs\n got %x\nwant %x", c.name, re, b)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	good := craftCases()[0].seg.Bytes()
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for _, c := range []struct {
		name string
		pkt  []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"short ip", good[:19], ErrTruncated},
		{"short total", good[:len(good)-1], ErrTruncated},
		{"ihl 4", mod(func(b []byte) []byte { b[0] = 0x44; return b }), ErrHeader},
		{"total < ihl", mod(func(b []byte) []byte { b[2], b[3] = 0, 10; return b }), ErrHeader},
		{"udp", mod(func(b []byte) []byte { b[9] = 17; return b }), ErrNotTCP},
		{"fragment", mod(func(b []byte) []byte { b[7] = 1; return b }), ErrNotTCP},
		{"version 5", mod(func(b []byte) []byte { b[0] = 0x55; return b }), ErrHeader},
		{"tcp short", mod(func(b []byte) []byte { b[2], b[3] = 0, 30; return b }), ErrTruncated},
		{"doff 4", mod(func(b []byte) []byte { b[32] = 0x40 | b[32]&0xf; return b }), ErrHeader},
		{"doff 15", mod(func(b []byte) []byte { b[32] = 0xf0 | b[32]&0xf; return b }), ErrTruncated},
		{"v6 short", mustHex("6000000000140640"), ErrTruncated},
		{"v6 plen", append(mustHex("60000000ffff0640"), make([]byte, 32)...), ErrTruncated},
		{"v6 ext short", append(mustHex("6000000000040040"), make([]byte, 36)...), ErrTruncated},
		{"v6 ext long", append(mustHex("6000000000080040"), append(make([]byte, 32), 6, 1, 0, 0, 0, 0, 0, 0)...), ErrTruncated},
		{"v6 udp", append(mustHex("6000000000001140"), make([]byte, 32)...), ErrNotTCP},
		{"v6 fragment", append(mustHex("6000000000082c40"), append(make([]byte, 32), 6, 0, 0, 0, 0, 0, 0, 0)...), ErrNotTCP},
	} {
		var s Segment
		if err := Decode(c.pkt, &s); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// Ethernet padding after the total length is ignored.
	var s Segment
	if err := Decode(append(append([]byte(nil), good...), 0, 0, 0, 0), &s); err != nil || len(s.Payload) != 0 {
		t.Errorf("padded: %v", err)
	}
	// An IPv6 hop-by-hop header is walked.
	v6 := craftCases()[12].seg.Bytes()
	hbh := append(append(append([]byte(nil), v6[:40]...), 6, 0, 1, 4, 0, 0, 0, 0), v6[40:]...)
	hbh[6] = 0
	hbh[5] += 8
	if err := Decode(hbh, &s); err != nil || s.IPHeaderLen != 48 || s.DstPort != 34343 || !s.ChecksumOK {
		t.Errorf("hop-by-hop: %v %+v", err, s)
	}
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestDecodeAllocs(t *testing.T) {
	b := craftCases()[0].seg.Bytes()
	var s Segment
	if n := testing.AllocsPerRun(100, func() { _ = Decode(b, &s) }); n != 0 {
		t.Errorf("Decode allocates %v times", n)
	}
}

// FuzzDecode: the segment decoder never panics; a decoded segment prints, and re-encodes to
// the same bytes when nothing outside what Segment models was present.
func FuzzDecode(f *testing.F) {
	for _, c := range craftCases() {
		f.Add(c.seg.Bytes())
	}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		var s Segment
		if err := Decode(pkt, &s); err != nil {
			return
		}
		_ = s.Format()
		if s.OptErr != nil || s.IsV6() && s.IPHeaderLen != IPv6HeaderLen {
			return
		}
		// Bytes after the parsed options (after an EOL) must be zero to be reproduced.
		n := 0
		for _, o := range s.Options {
			n += o.WireLen()
		}
		for _, x := range s.OptionBytes[n:] {
			if x != 0 {
				return
			}
		}
		end := s.IPHeaderLen + s.TCPHeaderLen + len(s.Payload)
		if re := s.AppendTo(nil); !bytes.Equal(re, pkt[:end]) {
			t.Fatalf("re-encoded\n got %x\nwant %x", re, pkt[:end])
		}
	})
}
