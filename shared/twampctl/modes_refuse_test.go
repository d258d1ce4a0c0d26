package twampctl

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/probekit/probekit/shared/keyfile"
)

// --auth-modes takes the words --help prints as well as owamp's letters.
func TestParseModeWords(t *testing.T) {
	O, A, E, M := ModeUnauthenticated, ModeAuthenticated, ModeEncrypted, ModeMixed
	for s, want := range map[string]Mode{
		"open": O, "unauthenticated": O, "Authenticated": A, "encrypted": E, "mixed": M,
		"open,authenticated,encrypted,mixed": O | A | E | M, "authenticated|encrypted": A | E,
		"open encrypted": O | E, "AEM": A | E | M, "open,AE": O | A | E, "o": O, " a , e ": A | E,
	} {
		if got, err := ParseModeLetters(s); err != nil || got != want {
			t.Errorf("ParseModeLetters(%q) = %s, %v; want %s", s, got, err, want)
		}
	}
	for _, bad := range []string{"", ",", "opened", "auth", "OX", "none", "reflect-octets"} {
		if _, err := ParseModeLetters(bad); !errors.Is(err, ErrMode) {
			t.Errorf("ParseModeLetters(%q): %v, want ErrMode", bad, err)
		}
	}
}

// A refused client sees a refusal (Modes 0 greeting), not an EOF.
func TestRefuse(t *testing.T) {
	srv, cli := net.Pipe()
	defer cli.Close()
	go func() {
		_ = Refuse(srv)
		srv.Close()
	}()
	_, err := ClientHandshake(cli, ClientConfig{Modes: ModeUnauthenticated})
	if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "refuses service") {
		t.Fatalf("ClientHandshake after Refuse: %v", err)
	}
}

// LoadKeyFile refuses a pass-phrase file other accounts can read.
func TestLoadKeyFilePermissions(t *testing.T) {
	p := filepath.Join(t.TempDir(), "twampd.pfs")
	if err := os.WriteFile(p, []byte("alice\t736563726574\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if kf, err := LoadKeyFile(p); err != nil || string(kf["alice"]) != "secret" {
		t.Fatalf("0600: %v %v", kf, err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyFile(p); !errors.Is(err, keyfile.ErrPermissions) || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("0644: %v", err)
	}
}
