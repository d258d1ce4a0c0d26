package ptp

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/probekit/probekit/shared/timestamp"
)

// vector is one entry of testdata/vectors.json (shared/data/ptp, packets of the original).
type vector struct {
	Hex     string          `json:"hex"`
	Len     int             `json:"len"`
	Decoded json.RawMessage `json:"decoded"`
}

func loadVectors(t testing.TB) map[string]vector {
	t.Helper()
	b, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]vector
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v) != 9 {
		t.Fatalf("%d vectors, want 9", len(v))
	}
	return v
}

// orderedJSON parses one JSON value keeping object member order (PyObject) and telling
// floats (with '.' or exponent) from integers, as Python's json.loads would.
func orderedJSON(d *json.Decoder) (any, error) {
	tok, err := d.Token()
	if err != nil {
		return nil, err
	}
	switch x := tok.(type) {
	case json.Delim:
		switch x {
		case '{':
			o := PyObject{}
			for d.More() {
				k, err := d.Token()
				if err != nil {
					return nil, err
				}
				v, err := orderedJSON(d)
				if err != nil {
					return nil, err
				}
				o = append(o, PyField{k.(string), v})
			}
			_, err := d.Token()
			return o, err
		case '[':
			a := []any{}
			for d.More() {
				v, err := orderedJSON(d)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			_, err := d.Token()
			return a, err
		}
	case json.Number:
		if strings.ContainsAny(string(x), ".eE") {
			return x.Float64()
		}
		return x.Int64()
	}
	return tok, nil
}

func addrOf(t *testing.T, v any) netip.AddrPort {
	a := v.([]any)
	return netip.AddrPortFrom(netip.MustParseAddr(a[0].(string)), uint16(a[1].(int64)))
}

// messageFromDecoded builds a Message from a vector's "decoded" list alone (the vector's
// description of the original's packet), independent of the bytes.
func messageFromDecoded(t *testing.T, raw json.RawMessage) *Message {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	v, err := orderedJSON(d)
	if err != nil {
		t.Fatal(err)
	}
	m := &Message{}
	for _, e := range v.([]any) {
		pair := e.([]any)
		name, val := pair[0].(string), pair[1]
		switch name {
		case "SERVERVER":
			m.Role, m.Version = RoleServer, uint8(val.(int64))
		case "CLIENTVER":
			m.Role, m.Version = RoleClient, uint8(val.(int64))
		case "SEQUENCE":
			m.Sequence, m.Has = uint32(val.(int64)), m.Has|FieldSequence
		case "UUID":
			u, err := ParseUUID(val.(string))
			if err != nil {
				t.Fatal(err)
			}
			m.UUID, m.Has = u, m.Has|FieldUUID
		case "MYTS":
			m.MyTS, m.Has = timestamp.Fixed32(val.(int64)), m.Has|FieldMyTS
		case "YOURTS":
			m.YourTS, m.Has = timestamp.Fixed32(val.(int64)), m.Has|FieldYourTS
		case "PTPADDR":
			m.PTPAddr, m.Has = addrOf(t, val), m.Has|FieldPTPAddr
		case "YOURADDR":
			m.YourAddr, m.Has = addrOf(t, val), m.Has|FieldYourAddr
		case "SHUTDOWN":
			if val.(int64) != 1 {
				t.Fatalf("SHUTDOWN %v", val)
			}
			m.Has |= FieldShutdown
		case "CLIENTLIST_EXT":
			m.Entries, m.Has = append(m.Entries, Entry{Ext: addrOf(t, val)}), m.Has|FieldList
		case "CLIENTLIST_INT":
			m.Entries[len(m.Entries)-1].Int = addrOf(t, val)
		case "CLIENTLEN":
			m.ClientLen = int(val.(int64))
			if m.ClientLen != len(m.Entries) {
				t.Fatalf("vector CLIENTLEN %d with %d entries", m.ClientLen, len(m.Entries))
			}
		case "META":
			js, err := AppendPyJSON(nil, val)
			if err != nil {
				t.Fatal(err)
			}
			m.Meta, m.Has = js, m.Has|FieldMeta
		default:
			t.Fatalf("unexpected TLV %s in vector", name)
		}
	}
	return m
}

// TestGoldenVectors: every packet of the original is reproduced byte for byte from its
// description, and decoding the bytes gives the description back.
func TestGoldenVectors(t *testing.T) {
	for name, vec := range loadVectors(t) {
		t.Run(name, func(t *testing.T) {
			want, err := hex.DecodeString(vec.Hex)
			if err != nil || len(want) != vec.Len {
				t.Fatalf("vector hex: %v (len %d, want %d)", err, len(want), vec.Len)
			}
			m := messageFromDecoded(t, vec.Decoded)
			if name == "ipv6_addr_tlv_only" {
				m.Role = RoleNone // a bare PTPADDR TLV: codec test only
			}
			got, err := m.AppendTo([]byte("prefix"))
			if err != nil {
				t.Fatal(err)
			}
			if string(got[:6]) != "prefix" || !bytes.Equal(got[6:], want) {
				t.Fatalf("encoded\n%x\nwant\n%x", got[6:], want)
			}
			if m.Size() != len(want) {
				t.Errorf("Size %d, want %d", m.Size(), len(want))
			}
			var d Message
			if err := d.UnmarshalBinary(want); err != nil {
				t.Fatal(err)
			}
			if d.Has&FieldList != 0 && !d.ListComplete() {
				t.Error("list incomplete")
			}
			again, err := d.AppendTo(nil)
			if err != nil || !bytes.Equal(again, want) {
				t.Fatalf("decode+encode %x, %v", again, err)
			}
			if fmt.Sprint(d.Has) != fmt.Sprint(m.Has) || d.UUID != m.UUID || d.MyTS != m.MyTS || d.YourTS != m.YourTS ||
				d.Sequence != m.Sequence || d.PTPAddr != m.PTPAddr || d.YourAddr != m.YourAddr || !bytes.Equal(d.Meta, m.Meta) ||
				d.Role != m.Role || d.Version != m.Version || len(d.Entries) != len(m.Entries) {
				t.Fatalf("decoded %+v\nwant %+v", d, *m)
			}
			for i := range d.Entries {
				if d.Entries[i] != m.Entries[i] {
					t.Errorf("entry %d: %+v, want %+v", i, d.Entries[i], m.Entries[i])
				}
			}
		})
	}
}

// TestWorkedExample is reference §3's worked example, decoded field by field.
func TestWorkedExample(t *testing.T) {
	pkt, _ := hex.DecodeString("010203020306000000000412" + "0f1e2d3c4b5a69788796a5b4c3d2e1f0" + "080a6666998080000000a8b6")
	var m Message
	if err := m.UnmarshalBinary(pkt); err != nil {
		t.Fatal(err)
	}
	if m.Role != RoleClient || m.Version != 2 || m.Sequence != 0 || m.UUID.String() != "0f1e2d3c4b5a69788796a5b4c3d2e1f0" ||
		m.MyTS != 0x6666998080000000 || m.MyTS.Time().Unix() != 1718000000 || m.MyTS.Time().Nanosecond() != 5e8 {
		t.Fatalf("%+v", m)
	}
}

// TestPyFloat: expected strings printed by CPython's json.dumps (3.11; same repr as 2.7).
func TestPyJSON(t *testing.T) {
	floats := []struct {
		f    float64
		want string
	}{
		{1.0, "1.0"}, {1e16, "1e+16"}, {1e15, "1000000000000000.0"}, {0.0001, "0.0001"}, {1e-5, "1e-05"},
		{1.5e300, "1.5e+300"}, {123456789.125, "123456789.125"}, {0.019756078720092773, "0.019756078720092773"},
		{1718000000.1234567, "1718000000.1234567"}, {1e22, "1e+22"}, {5e-324, "5e-324"}, {9007199254740992, "9007199254740992.0"},
	}
	for _, c := range floats {
		if got := string(AppendPyFloat(nil, c.f)); got != c.want {
			t.Errorf("%v: %s, want %s", c.f, got, c.want)
		}
	}
	got, err := AppendPyJSON(nil, PyObject{{"a", "\u00e9\x7f\x01\U0001F600"}, {"b", []any{nil, true, false, -3, uint8(4)}}, {"c", map[string]any{"z": 1, "y": 2.5}}})
	want := `{"a": "\u00e9\u007f\u0001\ud83d\ude00", "b": [null, true, false, -3, 4], "c": {"y": 2.5, "z": 1}}`
	if err != nil || string(got) != want {
		t.Errorf("%s, %v\nwant %s", got, err, want)
	}
}
