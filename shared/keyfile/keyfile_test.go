package keyfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		mode os.FileMode
		err  error
	}{
		{0o600, nil}, {0o400, nil}, {0o700, nil},
		{0o640, ErrPermissions}, {0o644, ErrPermissions}, {0o666, ErrPermissions},
		{0o604, ErrPermissions}, {0o620, ErrPermissions}, {0o602, ErrPermissions},
	} {
		p := filepath.Join(dir, tc.mode.String())
		if err := os.WriteFile(p, []byte("secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, tc.mode); err != nil {
			t.Fatal(err)
		}
		b, err := Read(p)
		if !errors.Is(err, tc.err) {
			t.Errorf("%v: err %v, want %v", tc.mode, err, tc.err)
		}
		if tc.err == nil && string(b) != "secret\n" {
			t.Errorf("%v: read %q", tc.mode, b)
		}
		if tc.err != nil {
			msg := err.Error()
			if !strings.Contains(msg, "chmod 600 "+p) || strings.Contains(msg, "\n") {
				t.Errorf("%v: message %q does not name chmod 600 on one line", tc.mode, msg)
			}
		}
	}
	if _, err := Read(dir); !errors.Is(err, ErrNotRegular) {
		t.Errorf("directory: %v", err)
	}
	if _, err := Read(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, MaxSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(big); err == nil {
		t.Error("oversized file accepted")
	}
}
