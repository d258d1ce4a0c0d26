package ptp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		panic(err)
	}
	return b
}

// Bulk TLV values assembled by hand from the layout in bulk.go's comment.
func TestBulkGolden(t *testing.T) {
	sum := [32]byte{0: 0xaa, 31: 0xbb}
	o := BulkOffer{ID: 0x01020304, Size: 20 << 20, Block: 1024, SHA256: sum, Name: "f.bin"}
	wantOffer := unhex(`01020304 0000000001400000 0400
		aa000000000000000000000000000000000000000000000000000000000000bb 662e62696e`)
	r := BulkReq{ID: 1, Have: 0x10, Ranges: []BulkRange{{Start: 0x10, Count: 3}, {Start: 0x20, Count: 0x100}}}
	wantReq := unhex(`00000001 00000010 00000010 0003 00000020 0100`)
	d := BulkData{ID: 1, Block: 0x20, Length: 1024}
	wantData := unhex(`00000001 00000020 0400`)
	dn := BulkDone{ID: 1, Status: BulkMismatch, Text: "sha"}
	wantDone := unhex(`00000001 01 736861`)
	for _, c := range []struct {
		name string
		got  []byte
		want []byte
	}{{"offer", o.AppendTo(nil), wantOffer}, {"req", r.AppendTo(nil), wantReq}, {"data", d.AppendTo(nil), wantData}, {"done", dn.AppendTo(nil), wantDone}} {
		if !bytes.Equal(c.got, c.want) {
			t.Errorf("%s\n got %x\nwant %x", c.name, c.got, c.want)
		}
	}
	var o2 BulkOffer
	var r2 BulkReq
	var d2 BulkData
	var dn2 BulkDone
	if err := o2.UnmarshalBinary(wantOffer); err != nil || o2 != o {
		t.Errorf("offer %+v %v", o2, err)
	}
	if err := r2.UnmarshalBinary(wantReq); err != nil || r2.ID != 1 || r2.Have != 16 || len(r2.Ranges) != 2 || r2.Ranges[1] != r.Ranges[1] {
		t.Errorf("req %+v %v", r2, err)
	}
	if err := d2.UnmarshalBinary(wantData); err != nil || d2 != d {
		t.Errorf("data %+v %v", d2, err)
	}
	if err := dn2.UnmarshalBinary(wantDone); err != nil || dn2 != dn {
		t.Errorf("done %+v %v", dn2, err)
	}
	for name, err := range map[string]error{
		"offer short":   o2.UnmarshalBinary(wantOffer[:45]),
		"offer block 0": o2.UnmarshalBinary(append(append(append([]byte{}, wantOffer[:12]...), 0, 0), wantOffer[14:]...)),
		"req ragged":    r2.UnmarshalBinary(wantReq[:11]),
		"data long":     d2.UnmarshalBinary(append(wantData, 0)),
		"done short":    dn2.UnmarshalBinary(wantDone[:4]),
	} {
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Limits: names and texts are cut to fit one TLV, ranges to BulkRangesMax.
	o.Name = strings.Repeat("n", 300)
	if n := len(o.AppendTo(nil)); n != MaxValue {
		t.Errorf("long name: value of %d bytes", n)
	}
	r.Ranges = make([]BulkRange, 100)
	if n := len(r.AppendTo(nil)); n > MaxValue || n != BulkReqSize+BulkRangesMax*BulkRangeSize {
		t.Errorf("many ranges: value of %d bytes", n)
	}
}

func FuzzBulkValues(f *testing.F) {
	f.Add(uint8(0), unhex(`01020304 0000000001400000 0400 aa000000000000000000000000000000000000000000000000000000000000bb 662e62696e`))
	f.Add(uint8(1), unhex(`00000001 00000010 00000010 0003`))
	f.Add(uint8(2), unhex(`00000001 00000020 0400`))
	f.Add(uint8(3), unhex(`00000001 01 736861`))
	f.Fuzz(func(t *testing.T, kind uint8, v []byte) {
		switch kind % 4 {
		case 0:
			var o BulkOffer
			if o.UnmarshalBinary(v) == nil && len(v) <= MaxValue && !bytes.Equal(o.AppendTo(nil), v) {
				t.Fatal("offer round trip")
			}
		case 1:
			var r BulkReq
			if r.UnmarshalBinary(v) == nil && len(v) <= MaxValue && !bytes.Equal(r.AppendTo(nil), v) {
				t.Fatal("req round trip")
			}
		case 2:
			var d BulkData
			if d.UnmarshalBinary(v) == nil && !bytes.Equal(d.AppendTo(nil), v) {
				t.Fatal("data round trip")
			}
		case 3:
			var d BulkDone
			if d.UnmarshalBinary(v) == nil && len(v) <= MaxValue && !bytes.Equal(d.AppendTo(nil), v) {
				t.Fatal("done round trip")
			}
		}
	})
}
