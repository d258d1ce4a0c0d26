package twampctl

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

type codec interface {
	AppendTo([]byte) []byte
	UnmarshalBinary([]byte) error
}

// captureMessages returns every plaintext control message of the peer captures keyed by
// kind, plus the raw (encrypted) client and server streams for the secure ones.
func captureMessages(f *testing.F) (plain map[string][][]byte, secure []capture) {
	plain = map[string][][]byte{}
	for _, tc := range captureCases {
		c := readCapture(f, tc.file)
		if tc.mode.Secure() {
			secure = append(secure, c)
			continue
		}
		s, cl := c.s2c, c.c2s
		plain["greeting"] = append(plain["greeting"], s[:64])
		plain["setup"] = append(plain["setup"], cl[:164])
		plain["start"] = append(plain["start"], s[64:112])
		plain["request"] = append(plain["request"], cl[164:276])
		plain["accept"] = append(plain["accept"], s[112:160])
		plain["startsess"] = append(plain["startsess"], cl[276:308])
		plain["startack"] = append(plain["startack"], s[160:192])
		plain["stopsess"] = append(plain["stopsess"], cl[308:340])
	}
	return plain, secure
}

// fuzzDecoder checks that a decoder never panics and that whatever it accepts re-encodes to
// a message that decodes to the same value.
func fuzzDecoder(f *testing.F, seeds [][]byte, fresh func() codec) {
	for _, s := range seeds {
		f.Add(bytes.Clone(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m := fresh()
		if err := m.UnmarshalBinary(b); err != nil {
			return
		}
		enc := m.AppendTo(nil)
		if len(enc) != len(b) {
			t.Fatalf("re-encoded %d octets from %d", len(enc), len(b))
		}
		m2 := fresh()
		if err := m2.UnmarshalBinary(enc); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !bytes.Equal(m2.AppendTo(nil), enc) {
			t.Fatal("encode not stable")
		}
	})
}

func FuzzServerGreeting(f *testing.F) {
	p, _ := captureMessages(f)
	fuzzDecoder(f, p["greeting"], func() codec { return &ServerGreeting{} })
}

func FuzzSetUpResponse(f *testing.F) {
	p, _ := captureMessages(f)
	fuzzDecoder(f, p["setup"], func() codec { return &SetUpResponse{} })
}

func FuzzServerStart(f *testing.F) {
	p, _ := captureMessages(f)
	fuzzDecoder(f, p["start"], func() codec { return &ServerStart{} })
}

func FuzzRequestTWSession(f *testing.F) {
	p, _ := captureMessages(f)
	fuzzDecoder(f, p["request"], func() codec { return &RequestTWSession{} })
}

func FuzzAcceptSession(f *testing.F) {
	p, _ := captureMessages(f)
	fuzzDecoder(f, p["accept"], func() codec { return &AcceptSession{} })
}

func FuzzStartSessions(f *testing.F) {
	p, _ := captureMessages(f)
	fuzzDecoder(f, p["startsess"], func() codec { return &StartSessions{} })
}

func FuzzStartAck(f *testing.F) {
	p, _ := captureMessages(f)
	fuzzDecoder(f, p["startack"], func() codec { return &StartAck{} })
}

func FuzzStopSessions(f *testing.F) {
	p, _ := captureMessages(f)
	fuzzDecoder(f, p["stopsess"], func() codec { return &StopSessions{} })
}

func FuzzNSessions(f *testing.F) {
	f.Add((&NSessions{Command: CmdStartNSessions, SIDs: make([][16]byte, 1)}).AppendTo(nil))
	f.Add((&NSessions{Command: CmdStopNAck, Accept: 3, SIDs: make([][16]byte, 3)}).AppendTo(nil))
	// Real SIDs from the captures inside an N-sessions frame.
	p, _ := captureMessages(f)
	for _, a := range p["accept"] {
		f.Add((&NSessions{Command: CmdStopNSessions, SIDs: [][16]byte{[16]byte(a[4:20])}}).AppendTo(nil))
	}
	fuzzDecoder(f, nil, func() codec { return &NSessions{} })
}

// FuzzConversation feeds the whole-conversation decoder (secure and open) with the real
// encrypted and plaintext streams and mutations of them: it must never panic, and a
// mutated encrypted stream must never decode with a different plaintext unnoticed.
func FuzzConversation(f *testing.F) {
	for _, tc := range captureCases {
		c := readCapture(f, tc.file)
		f.Add(c.c2s, c.s2c)
	}
	f.Fuzz(func(t *testing.T, c2s, s2c []byte) {
		if len(s2c) >= 64 {
			// Keep the PBKDF2 count small so each iteration stays fast.
			s2c = bytes.Clone(s2c)
			s2c[48], s2c[49], s2c[50], s2c[51] = 0, 0, 4, 0
		}
		tr, err := decodeConversation(c2s, s2c, testSecret)
		if err != nil {
			return
		}
		if len(tr.lines) < 3 || !strings.HasPrefix(tr.lines[0], "Server-Greeting") {
			t.Fatalf("decoded transcript without greeting: %q", tr.lines)
		}
	})
}

// FuzzSecureMessage decrypts arbitrary ciphertext with the modeE capture's keys: Open must
// fail cleanly on anything the peer did not seal.
func FuzzSecureMessage(f *testing.F) {
	_, sec := captureMessages(f)
	for _, c := range sec {
		f.Add(c.c2s[164:276])
		f.Add(c.s2c[112:160])
	}
	k := SessionKeys{AES: [16]byte{1, 2, 3}, HMAC: [32]byte{4, 5, 6}}
	f.Fuzz(func(t *testing.T, b []byte) {
		s := NewSecureStream(k, [16]byte{})
		m := bytes.Clone(b)
		err := s.Open(m)
		if len(b) < HMACLen || len(b)%16 != 0 {
			if err == nil {
				t.Fatalf("%d octets opened", len(b))
			}
			return
		}
		if err == nil {
			// Only sealed messages open: reseal and compare.
			tx := NewSecureStream(k, [16]byte{})
			if err := tx.Seal(m); err != nil || !bytes.Equal(m, b) {
				t.Fatalf("opened a message that does not reseal identically")
			}
		}
	})
}

// FuzzTestPacket opens arbitrary test packets with authenticated and encrypted keys.
func FuzzTestPacket(f *testing.F) {
	for _, tc := range captureCases {
		c := readCapture(f, tc.file)
		for _, u := range c.udp {
			f.Add(u.payload, tc.mode == ModeEncrypted)
		}
	}
	k := SessionKeys{AES: [16]byte{7}, HMAC: [32]byte{8}}
	f.Fuzz(func(t *testing.T, b []byte, enc bool) {
		mode := ModeAuthenticated
		if enc {
			mode = ModeEncrypted
		}
		tc, _ := NewTestCrypto(mode, [16]byte{9}, k)
		_ = tc.OpenSender(bytes.Clone(b))
		_ = tc.OpenReflector(bytes.Clone(b))
	})
}

func FuzzKeyFile(f *testing.F) {
	f.Add("testuser\t74657374736563726574\n")
	f.Add("# c\na 61\nb 62 # x\n")
	f.Fuzz(func(t *testing.T, s string) {
		kf, err := ParseKeyFile(strings.NewReader(s))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if _, err := kf.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		kf2, err := ParseKeyFile(&buf)
		if err != nil || len(kf2) != len(kf) {
			t.Fatalf("round trip: %v", err)
		}
		for id, k := range kf {
			if !bytes.Equal(kf2[id], k) {
				t.Fatalf("key of %q changed", id)
			}
		}
	})
}

// FuzzServerConn plays arbitrary client bytes against the server side (handshake, then the
// command loop) over an in-memory connection: garbage must end in an error, never a panic
// or a hang. Seeds are the client streams of the peer captures and an RFC 6038 session.
func FuzzServerConn(f *testing.F) {
	for _, tc := range captureCases {
		c := readCapture(f, tc.file)
		f.Add(c.c2s)
	}
	f.Fuzz(func(t *testing.T, c2s []byte) {
		a, b := net.Pipe()
		defer a.Close()
		go func() { _, _ = io.Copy(io.Discard, b) }()
		go func() {
			_, _ = b.Write(c2s)
			b.Close()
		}()
		_ = a.SetDeadline(time.Now().Add(5 * time.Second))
		c, err := ServerHandshake(a, ServerConfig{Modes: SecurityModes | ModeIndividualSessionControl | ModeReflectOctets | ModeSymmetricalSize, Count: 1024,
			Secret: func(string) ([]byte, bool) { return testSecret, true }})
		if err != nil || c == nil {
			return
		}
		for i := 0; i < 64; i++ {
			cmd, msg, err := c.ReadCommand()
			if err != nil {
				return
			}
			switch cmd {
			case CmdRequestTWSession:
				var rq RequestTWSession
				if rq.UnmarshalBinary(msg) != nil {
					t.Fatal("ReadCommand returned an undecodable Request-TW-Session")
				}
			case CmdStartNSessions, CmdStopNSessions:
				var n NSessions
				if n.UnmarshalBinary(msg) != nil {
					t.Fatal("ReadCommand returned an undecodable N-sessions message")
				}
			}
		}
	})
}
