package twampctl

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

// The RFC 6038 offsets (sources in rfc6038.go), written out: sender padding after the
// 14/48-octet RFC 5357 §4.1.2 headers, or after 14+27 = 41 / 48+64 = 112 octets in the
// Symmetrical Size format; reflector padding at 41 (42 behind the RFC 7750 DS octet) / 112
// (RFC 5357 §4.2.1 with erratum 5045).
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

// Golden RFC 6038 test packets, octet by octet (layouts and sources in rfc6038.go): a
// Session-Sender packet built the way emirica/twamp-protocol's client.c builds one (14-octet
// header, mbz_offset octets of MBZ, Server Octets at padding[mbz_offset]), and the
// Session-Reflector reply carrying the reflected octets at 41, 42 (RFC 7750 Sender DSCP/ECN
// at 41) or 112 (authenticated/encrypted, RFC 5357 erratum 5045).
func TestRFC6038GoldenPackets(t *testing.T) {
	h := func(s string) []byte {
		b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	open14 := "00000007 e9a3c1f1 80000000 8001" // Seq 7 · Timestamp · EE (S=1, multiplier 1)
	auth48 := "00000007" + strings.Repeat("00", 12) + "e9a3c1f1 80000000 8001" + strings.Repeat("00", 6) + strings.Repeat("a5", 16)
	for _, tc := range []struct {
		name     string
		mode     Mode
		sender   string // whole sender packet: header, MBZ, padding (Server Octets beef first)
		length   uint16 // Length of Padding to Reflect
		reflOff  int
		reflects string // the octets the reflector must copy
	}{
		{"open, RFC 5357 format", ModeUnauthenticated | ModeReflectOctets,
			open14 + "beef 0102 0304", 4, 41, "beef0102"},
		{"open, symmetrical size", ModeUnauthenticated | ModeReflectOctets | ModeSymmetricalSize,
			open14 + strings.Repeat("00", 27) + "beef 0102 0304", 6, 41, "beef01020304"},
		{"mixed, symmetrical size", ModeMixed | ModeReflectOctets | ModeSymmetricalSize,
			open14 + strings.Repeat("00", 27) + "beef 0102", 2, 41, "beef"},
		{"open, symmetrical size, RFC 7750", ModeUnauthenticated | ModeReflectOctets | ModeSymmetricalSize | ModeDSCPECN,
			open14 + strings.Repeat("00", 27) + "beef 0102 0304", 3, 42, "beef01"},
		{"authenticated, RFC 5357 format", ModeAuthenticated | ModeReflectOctets,
			auth48 + "beef" + strings.Repeat("11", 64), 2, 112, "beef"},
		{"encrypted, symmetrical size", ModeEncrypted | ModeReflectOctets | ModeSymmetricalSize,
			auth48 + strings.Repeat("00", 64) + "beef 7777", 4, 112, "beef7777"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := h(tc.sender)
			l := NewReflectLayout(tc.mode, tc.length)
			if v, ok := l.ServerOctets(req); !ok || v != 0xbeef {
				t.Errorf("Server Octets %04x %v at %d", v, ok, l.SenderOff)
			}
			// A fresh sender packet with the same header gets the Server Octets at the same place.
			fresh := append([]byte(nil), req...)
			clear(fresh[l.SenderOff:])
			l.PutServerOctets(fresh, 0xbeef)
			if !bytes.Equal(fresh[:l.SenderOff+2], req[:l.SenderOff+2]) {
				t.Errorf("PutServerOctets: % x, want % x", fresh[:l.SenderOff+2], req[:l.SenderOff+2])
			}
			if l.ReflectorOff != tc.reflOff {
				t.Errorf("reflector padding at %d, want %d", l.ReflectorOff, tc.reflOff)
			}
			// The reply is max(request, reflector header) long (symmetrical: equal sizes).
			reply := make([]byte, max(len(req), tc.reflOff+len(tc.reflects)/2))
			if n := l.Reflect(reply, req); n != int(tc.length) {
				t.Fatalf("reflected %d octets, want %d", n, tc.length)
			}
			if got := hex.EncodeToString(reply[tc.reflOff : tc.reflOff+int(tc.length)]); got != tc.reflects {
				t.Errorf("reply[%d:] = %s, want %s", tc.reflOff, got, tc.reflects)
			}
			if got := hex.EncodeToString(l.Reflected(reply)); got != tc.reflects {
				t.Errorf("Reflected = %s, want %s", got, tc.reflects)
			}
			if tc.mode&ModeSymmetricalSize != 0 && l.SenderHeaderLen() != tc.reflOff && tc.mode&ModeDSCPECN == 0 {
				t.Errorf("symmetrical sender header %d, reflector header %d", l.SenderHeaderLen(), tc.reflOff)
			}
		})
	}
}

// Offsets of the RFC 6038 control fields, checked against the independent implementations
// cited in rfc6038.go: Octets to be Reflected at 88 and Length of Padding to Reflect at 90 of
// the 112-octet Request-TW-Session (NOC agent; twamp-protocol's Android port writes req[91]),
// Reflected Octets at 20 and Server Octets at 22 of the 48-octet Accept-Session (acc[20],
// acc[22]); the octets around them stay zero (MBZ) and the HMAC keeps its place (96 / 32).
func TestRFC6038ControlOffsets(t *testing.T) {
	rq := RequestTWSession{IPVN: 4, TypeP: 0xffffffff, OctetsToBeReflected: 0x1122, PaddingToReflect: 0x0002}
	for i := range rq.HMAC {
		rq.HMAC[i] = 0xcc
	}
	b := rq.AppendTo(nil)
	if len(b) != 112 {
		t.Fatalf("Request-TW-Session is %d octets", len(b))
	}
	if got := hex.EncodeToString(b[84:112]); got != "ffffffff"+"1122"+"0002"+"00000000"+strings.Repeat("cc", 16) {
		t.Errorf("Request-TW-Session[84:112] = %s", got)
	}
	if b[91] != 2 {
		t.Errorf("req[91] = %d, want the low octet of Length of Padding to Reflect", b[91])
	}
	as := AcceptSession{Accept: AcceptOK, Port: 0x4953, ReflectedOctets: 0x1122, ServerOctets: 0xbeef}
	for i := range as.HMAC {
		as.HMAC[i] = 0xdd
	}
	a := as.AppendTo(nil)
	if len(a) != 48 {
		t.Fatalf("Accept-Session is %d octets", len(a))
	}
	if got := hex.EncodeToString(a[20:48]); got != "1122"+"beef"+strings.Repeat("00", 8)+strings.Repeat("dd", 16) {
		t.Errorf("Accept-Session[20:48] = %s", got)
	}
	var back AcceptSession
	if err := back.UnmarshalBinary(a); err != nil || back.ReflectedOctets != 0x1122 || back.ServerOctets != 0xbeef {
		t.Errorf("decode: %+v %v", back, err)
	}
	// IANA TWAMP-Modes: bit 5 Reflect Octets, bit 6 Symmetrical Size, bit 8 DSCP/ECN.
	if ModeReflectOctets != 1<<5 || ModeSymmetricalSize != 1<<6 || ModeDSCPECN != 1<<8 {
		t.Errorf("mode bits %d %d %d", ModeReflectOctets, ModeSymmetricalSize, ModeDSCPECN)
	}
}
