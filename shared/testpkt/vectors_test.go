package testpkt

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// teapartyVectors mirrors testdata/teaparty-reflector-vectors.json: request/reply payload pairs
// between the stamp-suite sender and the teaparty reflector (stateful), key
// "interop-test-key-2026".
type teapartyVectors struct {
	Open          [][2]string `json:"open"`
	CoSTime       [][2]string `json:"cos_time_tlvs_tos186"`
	Authenticated [][2]string `json:"authenticated"`
}

// InteropKey is the HMAC key of the teaparty vectors and the stamp-suite authenticated capture.
const interopKey = "interop-test-key-2026"

func loadTeaparty(t testing.TB) teapartyVectors {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "teaparty-reflector-vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v teapartyVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Open) != 2 || len(v.CoSTime) != 1 || len(v.Authenticated) != 2 {
		t.Fatalf("unexpected vector counts %d/%d/%d", len(v.Open), len(v.CoSTime), len(v.Authenticated))
	}
	return v
}

// captureFrame is one UDP datagram of a reference capture (testdata/captures.json, extracted
// with tshark from the pcaps next to it).
type captureFrame struct {
	Frame   int    `json:"frame"`
	TTL     int    `json:"ttl"`
	SrcPort int    `json:"src_port"`
	DstPort int    `json:"dst_port"`
	Payload string `json:"payload"`
}

func loadCaptures(t testing.TB) map[string][]captureFrame {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "captures.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Captures map[string][]captureFrame `json:"captures"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v.Captures
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
