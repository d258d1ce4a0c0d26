// Package testpkt encodes and decodes STAMP (RFC 8762, RFC 8972) and TWAMP-Test (RFC 5357)
// test packets: Session-Sender and Session-Reflector packets in unauthenticated and
// authenticated layouts, the RFC 8972 TLVs with their U/M/I flags, and the
// HMAC-SHA-256/128 STAMP uses for integrity.
//
// Packets are plain structs with AppendTo (append the wire form to a buffer) and
// UnmarshalBinary (check every length, then decode). Timestamps are kept as the raw 64-bit
// wire value because a packet's Error Estimate Z bit decides whether they are NTP or
// truncated PTP; use [Time] / [Stamp] to convert. Octets after the base packet (TLVs in
// STAMP, padding in TWAMP) are exposed as Extra, aliased into the decoded buffer.
//
// TWAMP-Test reuses the same layouts: an unauthenticated TWAMP reflected packet is the STAMP
// one without the trailing 3 MBZ octets (41 bytes, [ReflectedPacket.UnmarshalBinary] accepts
// it, and the 38-byte replies of some TWAMP-Light reflectors), and the TWAMP authenticated /
// encrypted reflected packet has exactly the STAMP authenticated layout. The TWAMP
// authenticated sender packet differs (HMAC at offset 32, 48-byte base): use
// [ModeTWAMPAuthenticated]. TWAMP's HMAC-SHA1 and AES keys are the TWAMP code's business;
// this package only places the 16 HMAC octets.
//
// Offsets and checklist IDs cited in comments and tests refer to reference/stamp.md.
package testpkt
