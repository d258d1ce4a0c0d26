// Package tcpcraft crafts, decodes, prints, sends and receives arbitrary IPv4/IPv6 TCP segments
// (any header field, options in any order including unknown kinds and malformed lengths) for
// TCP middlebox experiments such as tcpexpose.
//
// Wire layout: Segment.AppendTo writes the IP header, the TCP header, the options exactly as
// given followed by explicit zero (EOL) padding to a 32-bit boundary, and the payload, with
// correct lengths and checksums unless a field is overridden on purpose. Decode parses a
// received IP packet into a Segment without allocating, checking every length; a malformed
// options area is reported in Segment.OptErr while the rest of the header stays usable.
//
// Options: ParseOptionSpec reads the symbolic command-line syntax
// (`mss:1460,sackok,ts:1:0,nop,ws:7,253:0x1234cafe`, or `hex:0204...` for raw bytes) and
// FormatOptionSpec writes it back; Option.String prints tcpdump's names.
//
// Printing: Segment.Format writes `tcpdump -S -v -n` lines.
//
// Sending: RawConn sends over a raw IP socket (IPPROTO_RAW, SO_MARK) and reports an EPERM as
// ErrLocalFirewall ("dropped by the local firewall"); PacketConn sends over AF_PACKET to the
// next hop's MAC from the kernel's neighbour table, bypassing the local netfilter OUTPUT chain.
// Receiving: Recorder captures a flow with AF_PACKET and a BPF filter (shared/capture) and
// keeps every sent and received segment raw with its kernel timestamp; WritePcap saves them.
// DstPortFilter is the BPF program of a responder that must not see its own replies.
//
// Firewall: RSTRule prints the nft and iptables rules that keep the local kernel from
// resetting a crafted flow; InstallFirewall installs them as an nft table for one run (with
// the nft tool), InstallOwnedFirewall as a table owned by the process's netlink socket, which
// the kernel deletes when the process ends.
package tcpcraft
