// Package capture reads and writes packet captures (pcap, pcapng) and captures live traffic
// with AF_PACKET, handing out zero-copy frames and stripping link headers down to the IP layer.
package capture
