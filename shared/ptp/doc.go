// Package ptp is the wire codec of the PtP test (peer-to-peer UDP mesh tester, chrisy/ptptest
// protocol version 2, plus probekit's version 3 TLVs) that ptpserver and ptpclient speak. It is not
// IEEE 1588 PTP.
//
// # Packet
//
//	packet   = version:u8 (=1)  TLV*  checksum:u16 (big-endian)
//	TLV      = type:u8  len:u8  value[len-2]     len INCLUDES the 2-byte header (value ≤ 253 bytes)
//	checksum = RFC 1071 Internet checksum over version+TLVs (shared/checksum)
//
// Packets are at most MaxPacket (1400) bytes. Decoding is liberal (PTP-W3): unsigned values of
// any size 1–8, addresses of 6 (IPv4+port) or 18 (IPv6+port) bytes with no family byte (B9),
// unknown TLV types skipped (kept in Message.Extra), a TLV with len < 2 or one running past the
// checksum rejects the packet. A checksum mismatch is ErrChecksum: callers count and drop it (B2).
//
// # Messages
//
// Message is the union of every message; AppendTo writes the TLVs that are present in one
// canonical order, which is the order the original sends (reference §4), so every vector of
// shared/data/ptp/vectors.json is reproduced byte for byte:
//
//	SERVERVER|CLIENTVER, SEQUENCE, UUID, RELAYTO, RELAYFROM, PTPADDR, MYTS, YOURTS, ECHOSEQ,
//	YOURADDR, SHUTDOWN, MESH, NATINFO, CANDIDATE*, PORTMAP*, REACH*, LISTPAGE,
//	{CLIENTLIST_EXT, PEERUUID, CLIENTLIST_INT, CANDIDATE*}*, CLIENTLEN, other TLVs, META
//
// META is always last and must be byte-identical to Python json.dumps for a Python peer to parse
// what follows it (AppendPyJSON); a META longer than 253 bytes is omitted instead of failing the
// packet (B4).
//
// # Version 3 TLVs (probekit)
//
// Sent only to peers that announced CLIENTVER/SERVERVER ≥ 3 (PTP-W5: a legacy peer's read loop
// dies on an unknown TLV). AppendTo refuses them (ErrV3Field) in a message whose own version
// TLV is below 3. A v3 client therefore announces CLIENTVER=3 with v2 TLVs only until the server
// has answered with SERVERVER ≥ 3; the server answers a client with the lower of its own version
// (3) and the client's.
//
//	 5 MESH       string ≤ 64 bytes, c→s in beacons: the server groups clients by it; absent =
//	              the default mesh, which legacy clients share.
//	 6 LISTPAGE   2 bytes: page index u8, page count u8 (s→c). A v3 list larger than one packet
//	              comes in pages; CLIENTLEN counts this page's CLIENTLIST_EXT entries.
//	10 ECHOSEQ    u32: SEQUENCE of the probe being answered, in every v3 reply carrying YOURTS,
//	              so loss is counted by sequence.
//	11 PEERUUID   16 bytes: UUID of the peer whose CLIENTLIST_EXT immediately precedes (s→c v3
//	              lists), for peer-reflexive learning by UUID.
//	12 REACH      53 bytes, one per peer, c→s: peer UUID(16) | path u8 (Path) | sent u32 |
//	              received u32 | lost u32 | rtt min, avg, p50, p99, max u32 µs | jitter u32 µs.
//	13 NATINFO    c→s: mapping u8 | filtering u8 | hairpin u8 (Behavior, Hairpin) | public
//	              address (6 or 18 bytes).
//	14 RELAYTO    16-byte UUID, c→s: the server forwards the packet to that peer (same mesh only,
//	              rate-limited per client). It rewrites RELAYTO in place into RELAYFROM carrying
//	              the origin's UUID (RewriteRelay) and recomputes the checksum; every other TLV
//	              reaches the peer unchanged and in order.
//	15 RELAYFROM  16-byte UUID of the origin, s→c.
//	16 CANDIDATE  address (6/18 bytes): c→s an extra candidate address of the sender (e.g. a
//	              port mapping); in v3 lists the server repeats a peer's candidates after its
//	              PEERUUID.
//	17 PATHINFO   optional, opaque to this package; 20–29 are reserved for bulk transfer.
//	18 PORTMAP    c→s in beacons, one per port-mapping protocol tried (PortMap): protocol u8
//	              (1 UPnP IGD, 2 NAT-PMP, 3 PCP) | status u8 (0 no gateway, 1 granted, 2 error)
//	              | lifetime u32 s | external address (6/18 bytes; 0.0.0.0:0 when not granted).
//
// In a list, CLIENTLIST_INT, PEERUUID and CANDIDATE attach to the entry opened by the last
// CLIENTLIST_EXT whatever their order (the encoder writes EXT, PEERUUID, INT, CANDIDATE*); a
// CANDIDATE before any CLIENTLIST_EXT is the sender's own (Message.Candidates).
//
// What ptpserver sends a v3 client: a list round is one packet per page, each with SERVERVER=3,
// its own SEQUENCE, the recipient's UUID, YOURADDR, LISTPAGE and CLIENTLEN; MYTS rides on page 0
// only (answer it once). Lists are sent every 13 s and at most once per second per mesh after a
// membership change. Every reply to a v3 client's MYTS carries ECHOSEQ. A legacy (v2) client
// gets SERVERVER=2 and v2 TLVs only, and at most one packet of list (the entries that fit).
//
// Decoding into a reused Message allocates nothing: byte-slice fields alias the packet.
package ptp
