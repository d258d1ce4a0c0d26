package checksum

import (
	"encoding/hex"
	"math/rand/v2"
	"testing"
)

// bitwiseCRC is an independent bit-at-a-time CRC-32: reflected polynomial 0xEDB88320,
// initial value 0, no final XOR — the Linux crc32_le(0, buf, len) SPP 0.3.x uses.
func bitwiseCRC(crc uint32, b []byte) uint32 {
	for _, x := range b {
		crc ^= uint32(x)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xEDB88320
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

func TestSPPHashGolden(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want uint32
	}{
		// Expected values from Python: 0xffffffff ^ zlib.crc32(data, 0xffffffff).
		{"check string 123456789", hex.EncodeToString([]byte("123456789")), 0x2dfd2d88},
		{"empty", "", 0},
		// Init 0 and no final XOR: leading zero bytes leave the hash at 0.
		{"zeros", "00000000", 0},
		// Default -# 63 fields of testdata/spp-udpecho-ref-20.pcap frame 1: src 10.71.1.1,
		// dst 10.71.2.1, proto 17, IP ID 0x63fb, ports 42188 → 7.
		{"udpecho frame 1 default fields", "0a4701010a4702011163fba4cc0007", 0xcd28269f},
	}
	for _, tc := range tests {
		b, _ := hex.DecodeString(tc.in)
		if got := SPPHash(b); got != tc.want {
			t.Errorf("%s: SPPHash = %#08x, want %#08x", tc.name, got, tc.want)
		}
		if got := bitwiseCRC(0, b); got != tc.want {
			t.Errorf("%s: bitwise reference = %#08x, want %#08x (test vector wrong)", tc.name, got, tc.want)
		}
	}
}

func TestSPPHashMatchesBitwise(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	for range 5000 {
		b := make([]byte, r.IntN(200))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		want := bitwiseCRC(0, b)
		if got := SPPHash(b); got != want {
			t.Fatalf("SPPHash(%x) = %#08x, bitwise %#08x", b, got, want)
		}
		split := r.IntN(len(b) + 1)
		if got := SPPHashUpdate(SPPHash(b[:split]), b[split:]); got != want {
			t.Fatalf("SPPHashUpdate split %d = %#08x, want %#08x", split, got, want)
		}
		if got := SPPHashUpdate(0, b); got != want {
			t.Fatalf("SPPHashUpdate(0) = %#08x, want %#08x", got, want)
		}
	}
}
