package twampctl

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/probekit/probekit/shared/keyfile"
)

// KeyFile maps identities (KeyID) to shared secrets, read from owamp's pass-phrase store
// format (pfstore): one `identity<whitespace>hex(pass-phrase)` per line, `#` comments.
type KeyFile map[string][]byte

// ParseKeyFile reads a pfstore-format key file. Errors name the offending line.
func ParseKeyFile(r io.Reader) (KeyFile, error) {
	kf := KeyFile{}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(s, '#'); i >= 0 {
			s = strings.TrimSpace(s[:i])
		}
		if s == "" {
			continue
		}
		f := strings.Fields(s)
		if len(f) != 2 {
			return nil, fmt.Errorf("key file line %d: want \"identity hex-pass-phrase\", got %d fields", line, len(f))
		}
		if len(f[0]) > KeyIDLen {
			return nil, fmt.Errorf("key file line %d: identity longer than %d octets", line, KeyIDLen)
		}
		key, err := hex.DecodeString(f[1])
		if err != nil {
			return nil, fmt.Errorf("key file line %d: pass-phrase is not hex: %w", line, err)
		}
		if len(key) == 0 {
			return nil, fmt.Errorf("key file line %d: empty pass-phrase", line)
		}
		if _, dup := kf[f[0]]; dup {
			return nil, fmt.Errorf("key file line %d: duplicate identity %q", line, f[0])
		}
		kf[f[0]] = key
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	return kf, nil
}

// LoadKeyFile reads a pfstore-format key file from path. A file readable by group or
// others is refused (keyfile.ErrPermissions: "run chmod 600 FILE").
func LoadKeyFile(path string) (KeyFile, error) {
	b, err := keyfile.Read(path)
	if err != nil {
		return nil, err
	}
	kf, err := ParseKeyFile(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return kf, nil
}

// WriteTo writes the key file in pfstore format, identities sorted.
func (kf KeyFile) WriteTo(w io.Writer) (int64, error) {
	ids := make([]string, 0, len(kf))
	for id := range kf {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var n int64
	for _, id := range ids {
		m, err := fmt.Fprintf(w, "%s\t%s\n", id, hex.EncodeToString(kf[id]))
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
