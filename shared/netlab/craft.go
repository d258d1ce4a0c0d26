package netlab

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"
)

// ProbeSYNOptions are the options of tcpexpose's probe SYN (tcpexpose.md §4): MSS 1460,
// SACK permitted, timestamps, NOP, window scale 7, an unknown kind 253 carrying 0x1234cafe, EOL.
func ProbeSYNOptions() []layers.TCPOption {
	return []layers.TCPOption{
		{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}},
		{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
		{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: []byte{0x00, 0xcf, 0x18, 0x74, 0, 0, 0, 0}},
		{OptionType: layers.TCPOptionKindNop},
		{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
		{OptionType: 253, OptionLength: 6, OptionData: []byte{0x12, 0x34, 0xca, 0xfe}},
		{OptionType: layers.TCPOptionKindEndList},
	}
}

// SendSYN sends one crafted IPv4 TCP SYN from inside the host's namespace through a raw socket
// (so it traverses the host's netfilter OUTPUT chain and routing like any packet).
func (h *Host) SendSYN(src, dst netip.AddrPort, seq uint32, window uint16, opts []layers.TCPOption) error {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, Id: uint16(seq),
		SrcIP: net.IP(src.Addr().AsSlice()), DstIP: net.IP(dst.Addr().AsSlice())}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()),
		Seq: seq, SYN: true, Window: window, Options: opts}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		return err
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, tcp); err != nil {
		return fmt.Errorf("netlab: build SYN: %w", err)
	}
	return h.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
		if err != nil {
			return fmt.Errorf("netlab %s: raw socket: %w", h.Name, err)
		}
		defer unix.Close(fd)
		sa := &unix.SockaddrInet4{Addr: dst.Addr().As4()}
		if err := unix.Sendto(fd, buf.Bytes(), 0, sa); err != nil {
			return fmt.Errorf("netlab %s: send SYN: %w", h.Name, err)
		}
		return nil
	})
}

// optionKinds lists the option kinds of a captured TCP header, in order.
func optionKinds(t *layers.TCP) []int {
	k := make([]int, 0, len(t.Options))
	for _, o := range t.Options {
		k = append(k, int(o.OptionType))
	}
	return k
}
