package twampctl

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteFuzzCorpus regenerates testdata/fuzz/<Target>/ from the peer captures when run
// with -update, so `go test -fuzz` and `make fuzz` start from real messages; otherwise it
// checks that every target has its capture-derived seeds on disk.
func TestWriteFuzzCorpus(t *testing.T) {
	plain := map[string][][]byte{}
	var conv [][2][]byte
	var udp []udpPkt
	for _, tc := range captureCases {
		c := readCapture(t, tc.file)
		conv = append(conv, [2][]byte{c.c2s, c.s2c})
		udp = append(udp, c.udp...)
		if tc.mode.Secure() {
			plain["FuzzSecureMessage"] = append(plain["FuzzSecureMessage"], c.c2s[164:276], c.s2c[112:160])
			continue
		}
		s, cl := c.s2c, c.c2s
		add := func(k string, b []byte) { plain[k] = append(plain[k], b) }
		add("FuzzServerGreeting", s[:64])
		add("FuzzSetUpResponse", cl[:164])
		add("FuzzServerStart", s[64:112])
		add("FuzzRequestTWSession", cl[164:276])
		add("FuzzAcceptSession", s[112:160])
		add("FuzzStartSessions", cl[276:308])
		add("FuzzStartAck", s[160:192])
		add("FuzzStopSessions", cl[308:340])
		add("FuzzNSessions", (&NSessions{Command: CmdStopNSessions, SIDs: [][16]byte{[16]byte(s[116:132])}}).AppendTo(nil))
		add("FuzzServerConn", cl)
	}
	files := map[string]string{}
	for target, seeds := range plain {
		for i, b := range seeds {
			files[filepath.Join(target, fmt.Sprintf("capture-%02d", i))] = fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		}
	}
	for i, c := range conv {
		files[filepath.Join("FuzzConversation", fmt.Sprintf("capture-%02d", i))] = fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n[]byte(%q)\n", c[0], c[1])
	}
	for i, u := range udp {
		if i%5 != 0 {
			continue
		}
		files[filepath.Join("FuzzTestPacket", fmt.Sprintf("capture-%03d", i))] = fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nbool(%v)\n", u.payload, len(u.payload) == 112)
	}
	files[filepath.Join("FuzzKeyFile", "readme")] = fmt.Sprintf("go test fuzz v1\nstring(%q)\n", "testuser\t74657374736563726574\n")
	for name, content := range files {
		path := filepath.Join("testdata", "fuzz", name)
		if *update {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Errorf("%s missing or stale (go test -run TestWriteFuzzCorpus -update)", path)
		}
	}
}
