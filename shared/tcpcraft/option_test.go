package tcpcraft

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

func TestParseOptionSpec(t *testing.T) {
	for _, c := range []struct {
		spec string
		hex  string // AppendOptions output (padded), by hand from RFC 9293/7323/2018 layouts
		back string // FormatOptionSpec of the parsed options
	}{
		{"mss:1460,sackok,ts:1:0,ws:7,253:0x1234cafe", "020405b4" + "0402" + "080a0000000100000000" + "030307" + "fd061234cafe" + "000000", ""},
		{"mss:512,ts:13572468:0,sackok,ws:2", "02040200" + "080a00cf197400000000" + "0402" + "030302" + "00", ""},
		{"nop,nop,ts:0x10:0x20", "0101080a0000001000000020", "nop,nop,ts:16:32"},
		{"sack:100-200:300-400", "0512" + "00000064000000c8" + "0000012c00000190" + "0000", ""},
		{"30:0x0081aabbccddeeff0011", "1e0c0081aabbccddeeff0011", ""},
		{"253:len=1", "fd010000", ""},
		{"253:len=9:0xab", "fd09ab00", ""},
		{"mss:0x0102", "02040102", "mss:258"},
		{"99", "63020000", ""},
		{"hex:020405b401", "020405b4" + "01000000", "mss:1460,nop"},
		{"hex:fd", "fd000000", "253:lone"},
		{"eol", "00000000", ""},
		{"", "", ""},
		{"uto:0x8001", "1c048001", "28:0x8001"},
		{"tfo", "22020000", "34"},
	} {
		opts, err := ParseOptionSpec(c.spec)
		if err != nil {
			t.Errorf("%q: %v", c.spec, err)
			continue
		}
		if got := hex.EncodeToString(AppendOptions(nil, opts)); got != c.hex {
			t.Errorf("%q: bytes %s, want %s", c.spec, got, c.hex)
		}
		want := c.back
		if want == "" {
			want = c.spec
		}
		if got := FormatOptionSpec(opts); got != want {
			t.Errorf("%q: formatted back as %q, want %q", c.spec, got, want)
		}
	}
}

func TestParseOptionSpecErrors(t *testing.T) {
	for _, spec := range []string{"bogus", "mss", "mss:1:2", "mss:70000", "ws:300", "ts:1", "253:0xzz", "253:len=0",
		"1:0x00", "sack:1", "hex:0g", "hex:" + string(bytes.Repeat([]byte("01"), 41)), "256", "253:junk",
		"253:0x" + string(bytes.Repeat([]byte("00"), 39))} {
		if _, err := ParseOptionSpec(spec); !errors.Is(err, ErrOptionSpec) {
			t.Errorf("%q: err %v, want ErrOptionSpec", spec, err)
		}
	}
}

func TestParseOptions(t *testing.T) {
	for _, c := range []struct {
		hex  string
		want string // FormatOptions
		bad  bool
	}{
		{"020405b40402080a00cf19740000000001030307fd061234cafe00", "[mss 1460,sackOK,TS val 13572468 ecr 0,nop,wscale 7,unknown-253 0x1234cafe,eol]", false},
		{"0101010101010101010101010101020405b4", "[nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,mss 1460]", false},
		{"0204", "[[bad opt]]", true},         // length past the end
		{"020105b4", "[[bad opt]]", true},     // length 1
		{"0200", "[[bad opt]]", true},         // length 0
		{"fd", "[[bad opt]]", true},           // no length byte
		{"0305", "[[bad opt]]", true},         // wscale length 5, 2 bytes
		{"02030501", "[mss 0x05,nop]", false}, // mss with length 3 is well framed but not an MSS value
	} {
		b, _ := hex.DecodeString(c.hex)
		opts, err := ParseOptions(nil, b)
		if (err != nil) != c.bad {
			t.Errorf("%s: err %v", c.hex, err)
		}
		if got := FormatOptions(opts, err != nil); got != c.want {
			t.Errorf("%s: %s, want %s", c.hex, got, c.want)
		}
	}
}

// FuzzOptionSpec: whatever parses formats back to a spec that parses to the same bytes.
func FuzzOptionSpec(f *testing.F) {
	for _, s := range []string{"mss:1460,sackok,ts:1:0,ws:7,253:0x1234cafe", "nop,nop,ts:0x10:0x20", "sack:1-2:3-4",
		"253:len=1", "hex:020405b401", "hex:fd", "30:0x0081aabbccddeeff0011", "eol", "mss:0x0102", "254:len=200:0x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		opts, err := ParseOptionSpec(spec)
		if err != nil {
			return
		}
		b := AppendOptions(nil, opts)
		back := FormatOptionSpec(opts)
		opts2, err := ParseOptionSpec(back)
		if err != nil {
			t.Fatalf("%q formatted as %q which does not parse: %v", spec, back, err)
		}
		if b2 := AppendOptions(nil, opts2); !bytes.Equal(b, b2) {
			t.Fatalf("%q -> %x, via %q -> %x", spec, b, back, b2)
		}
		_ = FormatOptions(opts, false)
	})
}

// FuzzOptions: the option decoder never panics, and what it parses re-encodes to the same
// bytes (up to an EOL) and round-trips through the symbolic syntax.
func FuzzOptions(f *testing.F) {
	for _, h := range []string{"020405b40402080a00cf19740000000001030307fd061234cafe00", "0204", "fd", "1e0c0081aabbccddeeff0011",
		"0512" + "00000064000000c8" + "0000012c00000190", "01010101"} {
		b, _ := hex.DecodeString(h)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		opts, err := ParseOptions(nil, b)
		var enc []byte
		for _, o := range opts {
			enc = AppendOption(enc, o)
		}
		if !bytes.HasPrefix(b, enc) {
			t.Fatalf("re-encoded %x is not a prefix of %x", enc, b)
		}
		if err == nil && len(opts) > 0 && opts[len(opts)-1].Kind != OptEOL && len(enc) != len(b) {
			t.Fatalf("parsed %d of %d bytes without EOL or error", len(enc), len(b))
		}
		for _, o := range opts {
			_ = o.String()
		}
		if len(b) <= MaxOptionsLen {
			back, err := ParseOptionSpec(FormatOptionSpec(opts))
			if err != nil {
				t.Fatalf("spec %q: %v", FormatOptionSpec(opts), err)
			}
			var enc2 []byte
			for _, o := range back {
				enc2 = AppendOption(enc2, o)
			}
			if !bytes.Equal(enc, enc2) {
				t.Fatalf("spec round trip %x -> %x", enc, enc2)
			}
		}
	})
}
