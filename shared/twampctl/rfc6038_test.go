package twampctl

import (
	"bytes"
	"testing"
)

// The RFC 6038 §4.2 offsets, written out: sender padding after the 14/48-octet RFC 5357
// headers, or after 14+27 = 41 / 48+64 = 112 octets in the Symmetrical Size format;
// reflector padding at 41 (42 behind the RFC 7750 DS octet) / 112.
func TestRFC6038Offsets(t *testing.T) {
	for _, tc := range []struct {
		mode                Mode
		senderOff, reflOff  int
		room27, room64Plus5 int // reflected octets that fit with Padding Length 27 / 69
	}{
		{ModeUnauthenticated, 14, 41, 0, 42},
		{ModeMixed, 14, 41, 0, 42},
		{ModeUnauthenticated | ModeDSCPECN, 14, 42, 0, 41},
		{ModeUnauthenticated | ModeSymmetricalSize, 41, 41, 27, 69},
		{ModeUnauthenticated | ModeSymmetricalSize | ModeDSCPECN, 41, 42, 26, 68},
		{ModeMixed | ModeSymmetricalSize, 41, 41, 27, 69},
		{ModeAuthenticated, 48, 112, 0, 5},
		{ModeEncrypted | ModeDSCPECN, 48, 112, 0, 5},
		{ModeAuthenticated | ModeSymmetricalSize, 112, 112, 27, 69},
		{ModeEncrypted | ModeSymmetricalSize, 112, 112, 27, 69},
	} {
		l := NewReflectLayout(tc.mode|ModeReflectOctets, 0)
		if l.SenderOff != tc.senderOff || l.ReflectorOff != tc.reflOff {
			t.Errorf("%s: sender padding at %d, reflector padding at %d; want %d, %d", tc.mode, l.SenderOff, l.ReflectorOff, tc.senderOff, tc.reflOff)
		}
		if r := l.Room(27); max(r, 0) != tc.room27 {
			t.Errorf("%s: room with padding 27 = %d, want %d", tc.mode, r, tc.room27)
		}
		if r := l.Room(69); r != tc.room64Plus5 {
			t.Errorf("%s: room with padding 69 = %d, want %d", tc.mode, r, tc.room64Plus5)
		}
		l.Length = tc.room64Plus5
		if err := l.Check(69); err != nil {
			t.Errorf("%s: %d octets in padding 69 refused: %v", tc.mode, l.Length, err)
		}
		l.Length++
		if err := l.Check(69); err == nil {
			t.Errorf("%s: %d octets in padding 69 accepted", tc.mode, l.Length)
		}
	}
}

func TestRFC6038ReflectAndServerOctets(t *testing.T) {
	l := NewReflectLayout(ModeUnauthenticated|ModeReflectOctets|ModeSymmetricalSize, 6)
	req := make([]byte, 41+10)
	for i := 41; i < len(req); i++ {
		req[i] = byte(i)
	}
	l.PutServerOctets(req, 0xbeef)
	if v, ok := l.ServerOctets(req); !ok || v != 0xbeef || req[41] != 0xbe || req[42] != 0xef {
		t.Fatalf("Server Octets %04x %v at 41: % x", v, ok, req[41:43])
	}
	reply := make([]byte, len(req))
	if n := l.Reflect(reply, req); n != 6 {
		t.Fatalf("copied %d", n)
	}
	if want := []byte{0xbe, 0xef, 43, 44, 45, 46}; !bytes.Equal(l.Reflected(reply), want) || !bytes.Equal(reply[41:47], want) {
		t.Errorf("reflected % x, want % x", l.Reflected(reply), want)
	}
	// Short packets: partial or no copy, no panic.
	if n := l.Reflect(reply[:44], req); n != 3 {
		t.Errorf("short reply copied %d, want 3", n)
	}
	if n := l.Reflect(reply, req[:40]); n != 0 {
		t.Errorf("short request copied %d, want 0", n)
	}
	if l.Reflected(reply[:46]) != nil {
		t.Error("Reflected on a short reply")
	}
	if _, ok := l.ServerOctets(req[:42]); ok {
		t.Error("Server Octets from a short packet")
	}
}

// FuzzReflectLayout reflects arbitrary (captured) test packets with arbitrary layouts: never
// panics, never writes outside the reply's padding, and copies exactly the octets requested
// when both packets are long enough.
func FuzzReflectLayout(f *testing.F) {
	for _, tc := range captureCases {
		c := readCapture(f, tc.file)
		for _, u := range c.udp {
			f.Add(u.payload, uint32(tc.mode), uint16(2))
		}
	}
	f.Fuzz(func(t *testing.T, req []byte, mode uint32, length uint16) {
		l := NewReflectLayout(Mode(mode), length)
		reply := make([]byte, max(len(req), l.ReflectorOff))
		for i := range reply {
			reply[i] = 0x5a
		}
		n := l.Reflect(reply, req)
		if n < 0 || n > int(length) {
			t.Fatalf("copied %d of %d", n, length)
		}
		for i := range reply {
			inside := i >= l.ReflectorOff && i < l.ReflectorOff+n
			if !inside && reply[i] != 0x5a {
				t.Fatalf("octet %d written outside the reflected span", i)
			}
			if inside && reply[i] != req[l.SenderOff+i-l.ReflectorOff] {
				t.Fatalf("octet %d not copied", i)
			}
		}
		if len(req) >= l.SenderOff+int(length) && len(reply) >= l.ReflectorOff+int(length) && n != int(length) {
			t.Fatalf("copied %d, want %d", n, length)
		}
		_, _ = l.ServerOctets(req)
		_ = l.Check(uint32(len(req)))
	})
}
