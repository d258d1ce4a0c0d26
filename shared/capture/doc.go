// Package capture reads and writes packet captures (pcap, pcapng) and captures live traffic
// with AF_PACKET, handing out zero-copy frames and stripping link headers down to the IP layer.
//
// Files: Open or NewReader detect pcap (µs or ns, either byte order) and pcapng (any number
// of sections and interfaces, per-interface link type, if_tsresol and if_tsoffset; EPB, SPB
// and the obsolete PB). Next returns one Packet at a time without allocating; its Data is
// valid until the next call. A file cut inside its last record yields the good packets and
// then an error wrapping ErrTruncated, as tcpdump reports "truncated dump file". Timestamps
// equal libpcap's to the nanosecond (sub-ns units are truncated, as libpcap does).
//
// Link layers: NetworkLayer strips Ethernet (802.1Q/802.1ad tags, 802.3 SNAP), raw IP (101,
// 228, 229), Linux cooked v1 and v2, BSD NULL (either byte order) and LOOP headers.
//
// Live: OpenLive opens a TPACKET_V3 ring in pure Go (no cgo), binds it to one interface
// (Ethernet or raw-IP frames) or to "any" (LINUX_SLL2 frames, as tcpdump -i any writes),
// attaches a classic BPF filter before any packet is queued, and returns packets with the
// kernel's receive timestamp. Filters are built with Filter (hosts, protocol, ports) or by
// hand with golang.org/x/net/bpf.
//
// Writing: NewWriter writes little-endian pcap with µs or ns timestamps.
package capture
