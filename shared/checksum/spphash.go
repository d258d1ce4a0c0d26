package checksum

import "hash/crc32"

// SPPHash returns the CRC-32 packet ID of SPP 0.3.x (reference/spp.md §3): reflected
// polynomial 0xEDB88320, initial value 0 and no final XOR, i.e. the Linux kernel's
// crc32_le(0, buf, len). It is not the IEEE CRC-32 of hash/crc32, which starts from and ends
// with an inversion; the inversions are undone here so the hardware-accelerated table is used.
func SPPHash(b []byte) uint32 {
	return ^crc32.Update(0xFFFF_FFFF, crc32.IEEETable, b)
}

// SPPHashUpdate continues an SPP hash over more bytes: SPPHashUpdate(SPPHash(a), b) equals
// SPPHash(a‖b), and SPPHashUpdate(0, b) equals SPPHash(b). SPP concatenates header fields, so
// callers can hash them in place without copying.
func SPPHashUpdate(crc uint32, b []byte) uint32 {
	return ^crc32.Update(^crc, crc32.IEEETable, b)
}
