package capture_test

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/probekit/probekit/shared/capture"
)

// Read a capture (pcap or pcapng, detected from the magic number) and strip every frame down
// to its IP packet.
func ExampleOpen() {
	r, err := capture.Open("testdata/sll2-any-loopback.pcap")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	fmt.Println(r.Format(), r.LinkType(), r.Snaplen())
	for {
		p, err := r.Next() // p.Data is valid until the next call
		if errors.Is(err, capture.ErrTruncated) {
			fmt.Println("warning:", err) // the packets before were good
			break
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		ip, etherType, err := capture.NetworkLayer(p.LinkType, p.Data)
		if err != nil {
			continue
		}
		fmt.Printf("%s %#04x %d bytes\n", p.Time.UTC().Format(time.StampMicro), etherType, len(ip))
		if p.TimeNanos > 1795418701400000000 {
			break
		}
	}
	// Output:
	// pcap LINUX_SLL2 256
	// Nov 23 07:25:01.304441 0x0800 51 bytes
	// Nov 23 07:25:01.305453 0x86dd 67 bytes
	// Nov 23 07:25:01.956356 0x0800 51 bytes
}

// Capture UDP port 862 on every interface; raw programs for cooked ("any") handles are
// compiled for KernelCooked, or pass LiveOptions.Match and let OpenLive compile it.
func ExampleOpenLive() {
	h, err := capture.OpenLive("any", capture.LiveOptions{
		Snaplen: 200,
		Match:   &capture.Filter{Hosts: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Protocol: capture.ProtoUDP, Ports: []uint16{862}},
		Timeout: 100 * time.Millisecond,
	})
	if err != nil {
		fmt.Println(err) // needs CAP_NET_RAW
		return
	}
	defer h.Close()
	for range 10 {
		p, err := h.Next()
		if errors.Is(err, capture.ErrTimeout) {
			continue // check a context here
		}
		if err != nil {
			return
		}
		fmt.Println(p.Time, p.LinkType, p.CaptureLen)
	}
}
