package netlab

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// CapturedPacket is one decoded packet of a lab capture (IPv4 or IPv6 over Ethernet).
type CapturedPacket struct {
	Time     time.Time
	Len      int            // frame length on the wire
	Src, Dst netip.AddrPort // ports are zero for non-TCP/UDP packets
	Proto    layers.IPProtocol
	IPv4     *layers.IPv4
	IPv6     *layers.IPv6
	TCP      *layers.TCP
	UDP      *layers.UDP
	Payload  []byte // transport payload
}

// ReadCapture decodes a pcap written by StartCapture. Packets that are not IP are skipped.
func ReadCapture(file string) ([]CapturedPacket, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("netlab: %s: %w", file, err)
	}
	var out []CapturedPacket
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("netlab: %s: %w", file, err)
		}
		pkt := gopacket.NewPacket(data, r.LinkType(), gopacket.Default)
		cp := CapturedPacket{Time: ci.Timestamp, Len: ci.Length}
		var src, dst netip.Addr
		switch {
		case pkt.Layer(layers.LayerTypeIPv4) != nil:
			ip := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			cp.IPv4, cp.Proto = ip, ip.Protocol
			src, _ = netip.AddrFromSlice(ip.SrcIP.To4())
			dst, _ = netip.AddrFromSlice(ip.DstIP.To4())
		case pkt.Layer(layers.LayerTypeIPv6) != nil:
			ip := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
			cp.IPv6, cp.Proto = ip, ip.NextHeader
			src, _ = netip.AddrFromSlice(ip.SrcIP)
			dst, _ = netip.AddrFromSlice(ip.DstIP)
		default:
			continue
		}
		var sp, dp uint16
		if l := pkt.Layer(layers.LayerTypeTCP); l != nil {
			cp.TCP = l.(*layers.TCP)
			sp, dp, cp.Payload = uint16(cp.TCP.SrcPort), uint16(cp.TCP.DstPort), cp.TCP.Payload
		} else if l := pkt.Layer(layers.LayerTypeUDP); l != nil {
			cp.UDP = l.(*layers.UDP)
			sp, dp, cp.Payload = uint16(cp.UDP.SrcPort), uint16(cp.UDP.DstPort), cp.UDP.Payload
		}
		cp.Src, cp.Dst = netip.AddrPortFrom(src, sp), netip.AddrPortFrom(dst, dp)
		out = append(out, cp)
	}
}
