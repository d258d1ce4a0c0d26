package testpkt

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/probekit/probekit/shared/keyfile"
)

// ErrKey reports an unusable key.
var ErrKey = errors.New("testpkt: bad key")

// ParseKey decodes a STAMP HMAC key as written in a key file or an API request: "hex:" followed
// by hex digits, or else the raw octets (an ASCII password), with one trailing newline (LF or
// CRLF) removed. Peers disagree on key formats (reference/stamp.md §5.5); raw octets match
// teaparty, stamp-suite with an ASCII key and XilongYang. Empty keys are refused.
func ParseKey(b []byte) ([]byte, error) {
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if h, ok := bytes.CutPrefix(b, []byte("hex:")); ok {
		k := make([]byte, hex.DecodedLen(len(h)))
		if _, err := hex.Decode(k, bytes.TrimSpace(h)); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrKey, err)
		}
		b = k
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrKey)
	}
	return append([]byte(nil), b...), nil
}

// LoadKeyFile reads a key file (see ParseKey). Keys never go on the command line, where other
// users could read them from the process list; a file readable by group or others is refused
// (keyfile.Read: "run chmod 600 FILE").
func LoadKeyFile(path string) ([]byte, error) {
	b, err := keyfile.Read(path)
	if err != nil {
		return nil, err
	}
	k, err := ParseKey(b)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return k, nil
}
