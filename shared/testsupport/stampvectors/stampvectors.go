// Package stampvectors embeds the STAMP interop data the tests of testpkt, reflector and the
// STAMP tools check against: the teaparty reflector request/reply vectors and the UDP payloads
// of the stamp-suite and XilongYang reflector captures (extracted with tshark from the pcaps in
// testdata/, copied from the project's reference data; a test re-reads the pcaps to prove the
// extraction).
package stampvectors

import (
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"testing"
)

// InteropKey is the HMAC key of the teaparty vectors and the stamp-suite authenticated capture;
// the XilongYang capture uses "secret".
const InteropKey = "interop-test-key-2026"

// Pair is a request and the reflector's reply, as UDP payloads.
type Pair struct{ Request, Reply []byte }

// Teaparty holds the teaparty vectors (stamp-suite sender → teaparty reflector, stateful).
type Teaparty struct {
	// Open: two unauthenticated 44-octet exchanges, SSID 0x002a.
	Open []Pair
	// CoSTime: a 60-octet request with Class of Service and Timestamp Information TLVs, sent
	// with IP TOS 0xBA.
	CoSTime []Pair
	// Authenticated: two 112-octet exchanges under InteropKey.
	Authenticated []Pair
}

// Frame is one UDP datagram of a reference capture.
type Frame struct {
	Frame   int    `json:"frame"`
	TTL     int    `json:"ttl"`
	SrcPort int    `json:"src_port"`
	DstPort int    `json:"dst_port"`
	Hex     string `json:"payload"`
	Payload []byte `json:"-"`
}

//go:embed teaparty-reflector-vectors.json
var teapartyJSON []byte

//go:embed captures.json
var capturesJSON []byte

func pairs(in [][2]string) ([]Pair, error) {
	out := make([]Pair, 0, len(in))
	for _, p := range in {
		req, err := hex.DecodeString(p[0])
		if err != nil {
			return nil, err
		}
		rep, err := hex.DecodeString(p[1])
		if err != nil {
			return nil, err
		}
		out = append(out, Pair{req, rep})
	}
	return out, nil
}

// LoadTeaparty decodes the teaparty vectors.
func LoadTeaparty() (Teaparty, error) {
	var raw struct {
		Open          [][2]string `json:"open"`
		CoSTime       [][2]string `json:"cos_time_tlvs_tos186"`
		Authenticated [][2]string `json:"authenticated"`
	}
	var v Teaparty
	if err := json.Unmarshal(teapartyJSON, &raw); err != nil {
		return v, fmt.Errorf("teaparty vectors: %w", err)
	}
	var err error
	if v.Open, err = pairs(raw.Open); err != nil {
		return v, err
	}
	if v.CoSTime, err = pairs(raw.CoSTime); err != nil {
		return v, err
	}
	v.Authenticated, err = pairs(raw.Authenticated)
	return v, err
}

// Capture files.
const (
	StampSuite     = "stamp-suite-reflector.pcap"
	StampSuiteAuth = "stamp-suite-reflector-auth.pcap"
	XilongYangAuth = "stamp-xy-auth.pcap"
)

// LoadCaptures returns the frames of every capture, by file name, in capture order (frame N is
// at index N−1).
func LoadCaptures() (map[string][]Frame, error) {
	var raw struct {
		Captures map[string][]Frame `json:"captures"`
	}
	if err := json.Unmarshal(capturesJSON, &raw); err != nil {
		return nil, fmt.Errorf("captures: %w", err)
	}
	for _, frames := range raw.Captures {
		for i := range frames {
			b, err := hex.DecodeString(frames[i].Hex)
			if err != nil {
				return nil, fmt.Errorf("captures: frame %d: %w", frames[i].Frame, err)
			}
			frames[i].Payload = b
		}
	}
	return raw.Captures, nil
}

// MustTeaparty is LoadTeaparty for tests: it fails t on error.
func MustTeaparty(t testing.TB) Teaparty {
	t.Helper()
	v, err := LoadTeaparty()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// MustCaptures is LoadCaptures for tests: it fails t on error.
func MustCaptures(t testing.TB) map[string][]Frame {
	t.Helper()
	c, err := LoadCaptures()
	if err != nil {
		t.Fatal(err)
	}
	return c
}
