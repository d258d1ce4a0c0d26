package ssf

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/probekit/probekit/spp/internal/engine"
)

// TestGoldenFrame pins the wire layout of spp.md §7 for -l 2 -g 100: an x86-64 C slave's
// frame with three entries.
func TestGoldenFrame(t *testing.T) {
	e := NewEncoder(2, 100)
	t0 := int64(1795410105_102990)
	e.Add(0x11223344, engine.Out, t0)
	e.Add(0xa1b2c3d4, engine.In, t0+19_747)     // 198 units later (floor arithmetic)
	e.Add(0x01020304, engine.Out, t0+3_276_799) // 32570 units after the previous entry
	want := "03" + "04" + "0000" +              // version 3, pt 2, seq 0
		"b9c8036b" + // 1795410105 = 0x6b03c8b9, LE
		"4e920100" + // 102990 LE
		"44332211" + "8000" + // hash LE, OUT with offset 0
		"d4c3b2a1" + "00c6" + // IN, 198 units
		"04030201" + "ff3a" // OUT, 32570 units = 0x7f3a
	if got := hex.EncodeToString(e.Frame()); got != want {
		t.Fatalf("frame\n%s\nwant\n%s", got, want)
	}
	ents, h, err := Decode(e.Frame(), 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	if h.PT != 2 || h.Sec != 1795410105 || h.Usec != 102990 || len(ents) != 3 {
		t.Fatalf("header %+v entries %d", h, len(ents))
	}
	// floor(t/g)·g + (t0 mod g)
	wantT := []int64{t0, 1795410105_122790, 1795410108_379790}
	for i, en := range ents {
		if en.Time != wantT[i] {
			t.Errorf("entry %d time %d want %d", i, en.Time, wantT[i])
		}
	}
}

func TestHeartbeat(t *testing.T) {
	b := Heartbeat(nil, 1795410105_000001)
	if got := hex.EncodeToString(b); got != "03000000b9c8036b01000000" {
		t.Fatalf("heartbeat %s", got)
	}
	ents, h, err := Decode(b, 100, nil)
	if err != nil || len(ents) != 0 || h.PT != PTHeartbeat {
		t.Fatalf("%v %v %+v", err, ents, h)
	}
}

func TestFits(t *testing.T) {
	e := NewEncoder(1, 100) // 7 bits: offsets up to 127 units
	e.Add(1, engine.In, 1_000_000)
	if !e.Fits(1_000_000 + 127*100) {
		t.Error("127 units should fit")
	}
	if e.Fits(1_000_000 + 128*100) {
		t.Error("128 units should not fit")
	}
	if e.Fits(999_900) {
		t.Error("a negative offset should not fit")
	}
	if abs := NewEncoder(0, 100); !abs.Fits(0) {
		t.Error("absolute frames always fit")
	}
}

// TestRoundTrip encodes random entry streams the way the slave does (new frame when an
// offset does not fit or the frame is full) and checks the master's reconstruction:
// hashes and directions exact, times within one granule (exact for -l 0).
func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, l := range []int{0, 1, 2, 3, 4} {
		for _, g := range []int64{1, 7, 100, 1000} {
			var in, out []Entry
			ts := int64(1795410105_000000) + r.Int64N(1e6)
			for range 3000 {
				ts += r.Int64N(40_000)
				if r.IntN(50) == 0 {
					ts += r.Int64N(5e6)
				}
				in = append(in, Entry{Hash: r.Uint32(), Dir: engine.Dir(r.IntN(2)), Time: ts})
			}
			enc := NewEncoder(l, g)
			flush := func() {
				if enc.Entries() == 0 {
					return
				}
				if enc.Len() > MaxFrameLen {
					t.Fatalf("frame of %d bytes", enc.Len())
				}
				var err error
				out, _, err = Decode(enc.Frame(), g, out)
				if err != nil {
					t.Fatal(err)
				}
				enc.Reset()
			}
			for _, en := range in {
				if !enc.Fits(en.Time) {
					flush()
				}
				enc.Add(en.Hash, en.Dir, en.Time)
				if enc.Len() > FlushLen {
					flush()
				}
			}
			flush()
			if len(out) != len(in) {
				t.Fatalf("l=%d g=%d: %d entries back, want %d", l, g, len(out), len(in))
			}
			tol := g - 1
			if l == 0 {
				tol = 0
			}
			for i := range in {
				d := out[i].Time - in[i].Time
				if out[i].Hash != in[i].Hash || out[i].Dir != in[i].Dir || d < -tol || d > tol {
					t.Fatalf("l=%d g=%d entry %d: got %+v want %+v", l, g, i, out[i], in[i])
				}
			}
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	good := NewEncoder(2, 100)
	good.Add(1, engine.Out, 5_000_000)
	frame := good.Frame()
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(frame)) }
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"short", frame[:11], ErrShort},
		{"version", mod(func(b []byte) []byte { b[0] = 0x02; return b }), ErrVersion},
		{"extension bits", mod(func(b []byte) []byte { b[0] = 0x13; return b }), ErrVersion},
		{"payload type", mod(func(b []byte) []byte { b[1] = 5 << 1; return b }), ErrPayloadType},
		{"partial entry", frame[:len(frame)-1], ErrLength},
		{"no entries", frame[:HeaderLen], ErrLength},
		{"heartbeat with data", mod(func(b []byte) []byte { b[1] = 0; return b }), ErrLength},
		{"usec", mod(func(b []byte) []byte { b[8], b[9], b[10] = 0x40, 0x42, 0x0f; return b }), ErrTime},
	}
	for _, tc := range tests {
		if _, _, err := Decode(tc.b, 100, nil); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestEncodeNoAlloc(t *testing.T) {
	e := NewEncoder(2, 100)
	ts := int64(1e15)
	n := testing.AllocsPerRun(1000, func() {
		if !e.Fits(ts) || e.Len() > FlushLen {
			e.Reset()
		}
		e.Add(1, engine.In, ts)
		ts += 250
	})
	if n != 0 {
		t.Fatalf("%v allocs", n)
	}
}
