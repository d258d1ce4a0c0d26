// Package keyfile reads secret files (TWAMP pass-phrase stores, STAMP HMAC keys, tokens for
// HTTP side ports) and refuses those that other accounts can read.
//
// Every probekit tool that loads a secret goes through Read, so the rule is the same for
// twampd, twampc, stampref, stampsend and the web/metrics token files: a regular file whose
// mode grants no permission to group or others (chmod 600 or 400). owamp never checked the
// mode of its pfstore files; probekit refuses such files instead of warning, because a
// world-readable pass-phrase lets every local account run authenticated tests as its
// identity. Files handed over by systemd (LoadCredential=, $CREDENTIALS_DIRECTORY) are
// mode 0400 and pass.
package keyfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// MaxSize bounds what Read accepts: a key or token file is a few hundred octets, a pfstore
// with many identities a few kilobytes.
const MaxSize = 1 << 20

// ErrPermissions is returned (wrapped) for a key file readable or writable by group or others.
var ErrPermissions = errors.New("readable by group or others")

// ErrNotRegular is returned (wrapped) for a path that is not a regular file.
var ErrNotRegular = errors.New("not a regular file")

// Check reports whether fi describes a file fit to hold a secret: a regular file with no
// permission bits for group or others. The error is one line naming the fix.
func Check(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("key file %s: %w", path, ErrNotRegular)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("key file %s: mode %04o is %w; run chmod 600 %s", path, perm, ErrPermissions, path)
	}
	return nil
}

// Read returns the contents of the secret file at path after checking its mode on the open
// file (no race between the check and the read). Errors are one line and name the file.
func Read(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	if err := Check(path, fi); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("key file %s: larger than %d octets", path, MaxSize)
	}
	return b, nil
}
