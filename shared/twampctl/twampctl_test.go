package twampctl

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// RFC 6070 PBKDF2-HMAC-SHA1 test vectors.
func TestPBKDF2SHA1(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		c, l int
		want string
	}{
		{"password", "salt", 1, 20, "0c60c80f961f0e71f3a9b524af6012062fe037a6"},
		{"password", "salt", 2, 20, "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957"},
		{"password", "salt", 4096, 20, "4b007901b765489abead49d926f721d065a429c1"},
		{"passwordPASSWORDpassword", "saltSALTsaltSALTsaltSALTsaltSALTsalt", 4096, 25, "3d2eec4fe41c849b80c8d83662c0e44a8b291a964cf2f07038"},
		{"pass\x00word", "sa\x00lt", 4096, 16, "56fa6aa75548099dcc37d7f03425e0c3"},
	} {
		got := hex.EncodeToString(PBKDF2SHA1([]byte(tc.p), []byte(tc.s), tc.c, tc.l))
		if got != tc.want {
			t.Errorf("PBKDF2(%q,%q,%d,%d) = %s, want %s", tc.p, tc.s, tc.c, tc.l, got, tc.want)
		}
	}
}

func TestTokenRoundTrip(t *testing.T) {
	kdf := KDFKey([]byte("testsecret"), [16]byte{1, 2, 3}, 1024)
	ch := [16]byte{9, 8, 7}
	k := SessionKeys{AES: [16]byte{0xaa}, HMAC: [32]byte{0xbb, 31: 0xcc}}
	tok := EncryptToken(kdf, ch, k)
	got, err := DecryptToken(kdf, ch, tok)
	if err != nil || got != k {
		t.Fatalf("DecryptToken = %+v, %v", got, err)
	}
	other := KDFKey([]byte("other"), [16]byte{1, 2, 3}, 1024)
	if _, err := DecryptToken(other, ch, tok); !errors.Is(err, ErrChallenge) {
		t.Fatalf("wrong key: %v, want ErrChallenge", err)
	}
}

func TestValidCount(t *testing.T) {
	for c, ok := range map[uint32]bool{0: false, 512: false, 1024: true, 1025: false, 2048: true, 3000: false, 1 << 24: true, 1 << 25: false} {
		if err := ValidCount(c); (err == nil) != ok {
			t.Errorf("ValidCount(%d) = %v, want ok=%v", c, err, ok)
		}
	}
}

func TestModes(t *testing.T) {
	m, err := ParseModeLetters("aeom")
	if err != nil || m != 15 {
		t.Fatalf("ParseModeLetters = %d, %v", m, err)
	}
	if _, err := ParseModeLetters("X"); !errors.Is(err, ErrMode) {
		t.Fatalf("bad letter: %v", err)
	}
	offered := ModeUnauthenticated | ModeEncrypted | ModeIndividualSessionControl
	for _, tc := range []struct {
		m  Mode
		ok bool
	}{
		{ModeUnauthenticated, true},
		{ModeEncrypted | ModeIndividualSessionControl, true},
		{ModeAuthenticated, false}, // not offered
		{0, false},
		{ModeUnauthenticated | ModeEncrypted, false}, // two security modes
		{ModeIndividualSessionControl, false},        // no security mode
		{ModeUnauthenticated | ModeReflectOctets, false},
	} {
		if err := tc.m.ValidChoice(offered); (err == nil) != tc.ok {
			t.Errorf("ValidChoice(%s) = %v, want ok=%v", tc.m, err, tc.ok)
		}
	}
	if s := (ModeMixed | ModeDSCPECN | 1<<20).String(); s != "mixed|dscp-ecn|0x100000" {
		t.Errorf("String = %q", s)
	}
	if ModeMixed.TestSecurity() != ModeUnauthenticated || ModeEncrypted.TestSecurity() != ModeEncrypted {
		t.Error("TestSecurity")
	}
	if !ModeMixed.Secure() || ModeUnauthenticated.Secure() {
		t.Error("Secure")
	}
}

func TestAcceptNormalize(t *testing.T) {
	if Accept(6).Normalize() != AcceptFailure || Accept(200).String() != "failure" || AcceptNotSupported.String() != "not supported" {
		t.Error("undefined Accept values must read as failure")
	}
}

// Every fixed-size decoder rejects one octet too few and one too many (TW-C2).
func TestLengthChecks(t *testing.T) {
	decoders := map[string]struct {
		n int
		u interface{ UnmarshalBinary([]byte) error }
	}{
		"greeting":   {ServerGreetingLen, &ServerGreeting{}},
		"setup":      {SetUpResponseLen, &SetUpResponse{}},
		"start":      {ServerStartLen, &ServerStart{}},
		"request":    {RequestTWSessionLen, &RequestTWSession{}},
		"accept":     {AcceptSessionLen, &AcceptSession{}},
		"startsess":  {StartSessionsLen, &StartSessions{}},
		"startack":   {StartAckLen, &StartAck{}},
		"stopsess":   {StopSessionsLen, &StopSessions{}},
		"nsessions0": {NSessionsBaseLen, &NSessions{}},
	}
	for name, d := range decoders {
		for _, n := range []int{0, d.n - 1, d.n + 1} {
			if err := d.u.UnmarshalBinary(make([]byte, n)); err == nil {
				t.Errorf("%s: %d octets accepted", name, n)
			}
		}
	}
}

func TestCommandChecks(t *testing.T) {
	b := make([]byte, RequestTWSessionLen)
	b[0] = byte(CmdStartSessions)
	if err := (&RequestTWSession{}).UnmarshalBinary(b); !errors.Is(err, ErrCommand) {
		t.Errorf("request with command 2: %v", err)
	}
	b = make([]byte, 32)
	if err := (&StartSessions{}).UnmarshalBinary(b); !errors.Is(err, ErrCommand) {
		t.Errorf("start with command 0: %v", err)
	}
	if err := (&StopSessions{}).UnmarshalBinary(b); !errors.Is(err, ErrCommand) {
		t.Errorf("stop with command 0: %v", err)
	}
	if err := (&NSessions{}).UnmarshalBinary(b); !errors.Is(err, ErrCommand) {
		t.Errorf("N-sessions with command 0: %v", err)
	}
}

// Golden wire bytes for the layouts no peer capture contains (RFC 5938, RFC 6038 fields).
func TestGoldenLayouts(t *testing.T) {
	sid1 := [16]byte{0x7f, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	sid2 := [16]byte{0x7f, 0, 0, 1, 15: 0xee}
	for _, tc := range []struct {
		name string
		m    interface {
			AppendTo([]byte) []byte
			UnmarshalBinary([]byte) error
		}
		fresh interface {
			AppendTo([]byte) []byte
			UnmarshalBinary([]byte) error
		}
		want string
	}{
		{"start-n", &NSessions{Command: CmdStartNSessions, SIDs: [][16]byte{sid1, sid2}}, &NSessions{},
			"07000000000000000000000000000002" + hex.EncodeToString(sid1[:]) + hex.EncodeToString(sid2[:]) + strings.Repeat("00", 16)},
		{"stop-n-ack", &NSessions{Command: CmdStopNAck, Accept: AcceptNotSupported, SIDs: [][16]byte{sid1}}, &NSessions{},
			"0a030000000000000000000000000001" + hex.EncodeToString(sid1[:]) + strings.Repeat("00", 16)},
		{"request-6038", &RequestTWSession{IPVN: 6, SenderPort: 0x1234, ReceiverPort: 862, PaddingLength: 27,
			StartTime: 0x0102030405060708, Timeout: 2 << 32, TypeP: TypePFromDSCP(46), OctetsToBeReflected: 2, PaddingToReflect: 27,
			ReceiverAddress: AddrField(netip.MustParseAddr("2001:db8::1"))}, &RequestTWSession{},
			"0506000000000000000000001234035e" + strings.Repeat("00", 16) + "20010db8000000000000000000000001" + strings.Repeat("00", 16) +
				"0000001b" + "0102030405060708" + "0000000200000000" + "2e000000" + "0002001b00000000" + strings.Repeat("00", 16)},
		{"accept-6038", &AcceptSession{Accept: AcceptOK, Port: 18771, SID: sid1, ReflectedOctets: 0xabcd, ServerOctets: 0x0102}, &AcceptSession{},
			"00004953" + hex.EncodeToString(sid1[:]) + "abcd0102" + strings.Repeat("00", 8) + strings.Repeat("00", 16)},
		{"stop", &StopSessions{NumSessions: 3}, &StopSessions{}, "03000000000000030000000000000000" + strings.Repeat("00", 16)},
	} {
		got := hex.EncodeToString(tc.m.AppendTo(nil))
		if got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
			continue
		}
		raw, _ := hex.DecodeString(tc.want)
		if err := tc.fresh.UnmarshalBinary(raw); err != nil {
			t.Errorf("%s: decode: %v", tc.name, err)
		}
		if !bytes.Equal(tc.fresh.AppendTo(nil), raw) {
			t.Errorf("%s: decode/encode not identical", tc.name)
		}
	}
}

func TestNSessionsLengthMismatch(t *testing.T) {
	m := &NSessions{Command: CmdStopNSessions, SIDs: make([][16]byte, 2)}
	b := m.AppendTo(nil)
	if err := (&NSessions{}).UnmarshalBinary(b[:len(b)-16]); !errors.Is(err, ErrLength) {
		t.Errorf("short: %v", err)
	}
	b[12], b[13] = 0xff, 0xff
	if err := (&NSessions{}).UnmarshalBinary(b); !errors.Is(err, ErrNumSessions) {
		t.Errorf("huge count: %v", err)
	}
	if _, err := (&NSessions{Command: CmdStartSessions}).MarshalBinary(); !errors.Is(err, ErrCommand) {
		t.Errorf("marshal with command 2: %v", err)
	}
}

func TestAddrFields(t *testing.T) {
	for _, s := range []string{"192.0.2.1", "2001:db8::5"} {
		a := netip.MustParseAddr(s)
		ipvn := uint8(6)
		if a.Is4() {
			ipvn = 4
		}
		got, err := AddrFromField(ipvn, AddrField(a))
		if err != nil || got != a {
			t.Errorf("%s: %v %v", s, got, err)
		}
	}
	if a, err := AddrFromField(4, [16]byte{}); err != nil || a.IsValid() {
		t.Errorf("zero address: %v %v", a, err)
	}
	if _, err := AddrFromField(5, [16]byte{}); !errors.Is(err, ErrIPVN) {
		t.Errorf("ipvn 5: %v", err)
	}
	if d, ok := TypePDSCP(TypePFromDSCP(46)); !ok || d != 46 {
		t.Errorf("TypePDSCP = %d %v", d, ok)
	}
	if _, ok := TypePDSCP(1 << 30); ok {
		t.Error("PHB-ID format accepted as DSCP")
	}
}

func TestIdentity(t *testing.T) {
	var su SetUpResponse
	if err := su.SetIdentity("testuser"); err != nil || su.Identity() != "testuser" {
		t.Fatalf("identity %q %v", su.Identity(), err)
	}
	if err := su.SetIdentity(strings.Repeat("x", 81)); err == nil {
		t.Error("81-octet identity accepted")
	}
}

// Seal/Open across two streams with the same keys; tampering anywhere fails the HMAC.
func TestStreamRoundTrip(t *testing.T) {
	k := SessionKeys{AES: [16]byte{1}, HMAC: [32]byte{2}}
	iv := [16]byte{3}
	tx, rx := NewSecureStream(k, iv), NewSecureStream(k, iv)
	msgs := [][]byte{
		(&RequestTWSession{IPVN: 4, PaddingLength: 27}).AppendTo(nil),
		(&StartSessions{}).AppendTo(nil),
		(&StopSessions{NumSessions: 1}).AppendTo(nil),
	}
	var wire [][]byte
	for _, m := range msgs {
		c := bytes.Clone(m)
		if err := tx.Seal(c); err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(c[:16], m[:16]) {
			t.Fatal("not encrypted")
		}
		wire = append(wire, c)
	}
	for i, c := range wire {
		p := bytes.Clone(c)
		if err := rx.Open(p); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !bytes.Equal(p[:len(p)-16], msgs[i][:len(p)-16]) {
			t.Fatalf("message %d: plaintext differs", i)
		}
	}
	// Tampering: a fresh receiver sees a flipped bit in the first message.
	rx2 := NewSecureStream(k, iv)
	bad := bytes.Clone(wire[0])
	bad[20] ^= 0x80
	if err := rx2.Open(bad); !errors.Is(err, ErrHMAC) {
		t.Fatalf("tampered: %v, want ErrHMAC", err)
	}
	if err := tx.Encrypt(make([]byte, 15)); !errors.Is(err, ErrLength) {
		t.Errorf("partial block: %v", err)
	}
	// Open streams leave plaintext and zero the HMAC field.
	o := NewOpenStream()
	m := bytes.Clone(msgs[1])
	m[20] = 7
	if err := o.Seal(m); err != nil || !allZero(m[16:]) {
		t.Errorf("open seal: %v %x", err, m)
	}
}

func TestTestCryptoRoundTrip(t *testing.T) {
	k := SessionKeys{AES: [16]byte{1}, HMAC: [32]byte{2}}
	for _, mode := range []Mode{ModeAuthenticated, ModeEncrypted} {
		tc, err := NewTestCrypto(mode, [16]byte{5}, k)
		if err != nil {
			t.Fatal(err)
		}
		s := make([]byte, 112)
		for i := range s {
			s[i] = byte(i)
		}
		orig := bytes.Clone(s)
		if err := tc.SealSender(s); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(s[48:], orig[48:]) {
			t.Error("padding changed")
		}
		if err := tc.Clone().OpenSender(s); err != nil || !bytes.Equal(s[:32], orig[:32]) {
			t.Errorf("%s sender: %v", mode, err)
		}
		r := bytes.Clone(orig)
		if err := tc.SealReflector(r); err != nil {
			t.Fatal(err)
		}
		if err := tc.OpenReflector(r); err != nil || !bytes.Equal(r[:96], orig[:96]) {
			t.Errorf("%s reflector: %v", mode, err)
		}
		if err := tc.OpenSender(make([]byte, 47)); !errors.Is(err, ErrLength) {
			t.Errorf("short: %v", err)
		}
	}
	if _, err := NewTestCrypto(ModeMixed, [16]byte{}, k); !errors.Is(err, ErrMode) {
		t.Errorf("mixed: %v", err)
	}
}

func TestKeyFile(t *testing.T) {
	kf, err := ParseKeyFile(strings.NewReader("# owamp pfstore\ntestuser\t74657374736563726574\n\nbob  626f62 # trailing\n"))
	if err != nil {
		t.Fatal(err)
	}
	if string(kf["testuser"]) != "testsecret" || string(kf["bob"]) != "bob" || len(kf) != 2 {
		t.Fatalf("got %q", kf)
	}
	var buf bytes.Buffer
	if _, err := kf.WriteTo(&buf); err != nil || buf.String() != "bob\t626f62\ntestuser\t74657374736563726574\n" {
		t.Fatalf("WriteTo %q %v", buf.String(), err)
	}
	for _, bad := range []string{"user", "user zz", "user 00 extra", "u 61\nu 62", strings.Repeat("x", 81) + " 61", "u " + ""} {
		if _, err := ParseKeyFile(strings.NewReader(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
