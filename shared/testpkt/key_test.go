package testpkt

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestParseKey(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []byte
		err  bool
	}{
		{"interop-test-key-2026\n", []byte("interop-test-key-2026"), false},
		{"secret\r\n", []byte("secret"), false},
		{"hex:00ff10\n", []byte{0, 0xff, 0x10}, false},
		{"hex:0g", nil, true},
		{"\n", nil, true},
		{"two\n\n", []byte("two\n"), false},
	} {
		got, err := ParseKey([]byte(tc.in))
		if (err != nil) != tc.err || !bytes.Equal(got, tc.want) {
			t.Errorf("%q: %x %v", tc.in, got, err)
		}
		if err != nil && !errors.Is(err, ErrKey) {
			t.Errorf("%q: error %v is not ErrKey", tc.in, err)
		}
	}
	p := filepath.Join(t.TempDir(), "k")
	if err := os.WriteFile(p, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if k, err := LoadKeyFile(p); err != nil || string(k) != "secret" {
		t.Errorf("LoadKeyFile: %q %v", k, err)
	}
	if _, err := LoadKeyFile(p + "x"); err == nil {
		t.Error("missing file accepted")
	}
}
