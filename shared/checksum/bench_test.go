package checksum

import (
	"fmt"
	"net/netip"
	"testing"
)

var sink16 uint16

func BenchmarkChecksum(b *testing.B) {
	for _, n := range []int{20, 64, 1500, 9000, 65536} {
		buf := make([]byte, n)
		for i := range buf {
			buf[i] = byte(i * 7)
		}
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				sink16 = Checksum(buf)
			}
		})
	}
}

// BenchmarkReference measures the textbook 16-bit loop for comparison.
func BenchmarkReference1500(b *testing.B) {
	buf := make([]byte, 1500)
	b.SetBytes(1500)
	for b.Loop() {
		sink16 = refSum(buf)
	}
}

func BenchmarkTransportIPv6(b *testing.B) {
	src, dst := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	seg := make([]byte, 1452)
	b.SetBytes(int64(len(seg)))
	b.ReportAllocs()
	for b.Loop() {
		sink16 = Transport(src, dst, ProtoUDP, seg)
	}
}

func BenchmarkUpdate(b *testing.B) {
	var cs uint16 = 0xDD2F
	b.ReportAllocs()
	for b.Loop() {
		cs = Update(cs, 0x5555, 0x3285)
	}
	sink16 = cs
}

func BenchmarkSPPHash(b *testing.B) {
	for _, n := range []int{15, 64, 1500} {
		buf := make([]byte, n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			var h uint32
			for b.Loop() {
				h = SPPHash(buf)
			}
			sink16 = uint16(h)
		})
	}
}
