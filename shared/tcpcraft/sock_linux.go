package tcpcraft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"golang.org/x/sys/unix"
)

// DefaultMark is the SO_MARK of crafted packets sent over raw IP sockets; the RST-drop rules
// exempt it so that crafted RSTs still leave.
const DefaultMark = 0x7e57

// Errors of the send paths.
var (
	// ErrLocalFirewall reports a crafted packet the local netfilter OUTPUT chain refused (EPERM
	// from sendto on a raw IP socket): "dropped by the local firewall".
	ErrLocalFirewall = errors.New("dropped by the local firewall")
	// ErrNoNeighbour reports that the next hop has no usable entry in the neighbour table,
	// so AF_PACKET cannot address the frame.
	ErrNoNeighbour = errors.New("tcpcraft: next hop not in the neighbour table")
	// ErrNoRoute reports that the kernel has no route to the destination.
	ErrNoRoute = errors.New("tcpcraft: no route")
)

// Sender sends crafted IP packets.
type Sender interface {
	// Send transmits one IP packet (as built by Segment.AppendTo) to its destination address.
	Send(pkt []byte) error
	Close() error
}

// RawConn sends IP packets over raw IP sockets (IPPROTO_RAW: the packet carries its own
// header). Packets traverse the local routing and netfilter OUTPUT chain; they carry SO_MARK
// so that RST-drop rules can exempt them. Safe for concurrent use.
type RawConn struct {
	mark   uint32
	mu     sync.Mutex
	fd4    int
	fd6    int
	closed bool
	sa4    unix.SockaddrInet4
	sa6    unix.SockaddrInet6
	batch  *batchState // sendmmsg arguments (SendBatch)
}

// OpenRaw returns a raw sender marking packets with mark (0: no mark). The sockets are opened
// per family on first use. Needs CAP_NET_RAW (and CAP_NET_ADMIN for a mark).
func OpenRaw(mark uint32) (*RawConn, error) {
	c := &RawConn{mark: mark, fd4: -1, fd6: -1}
	// Open IPv4 now so that a missing privilege is reported at once.
	if _, err := c.socket(false); err != nil {
		return nil, err
	}
	return c, nil
}

// OpenIPv6 opens the IPv6 socket now instead of at the first IPv6 send: before the process
// gives up the privilege to open raw sockets.
func (c *RawConn) OpenIPv6() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.socket(true)
	return err
}

func (c *RawConn) socket(v6 bool) (int, error) {
	fd := &c.fd4
	fam := unix.AF_INET
	if v6 {
		fd, fam = &c.fd6, unix.AF_INET6
	}
	if *fd >= 0 {
		return *fd, nil
	}
	s, err := unix.Socket(fam, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return -1, fmt.Errorf("tcpcraft: raw socket: %w", err)
	}
	if c.mark != 0 {
		if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_MARK, int(c.mark)); err != nil {
			unix.Close(s)
			return -1, fmt.Errorf("tcpcraft: SO_MARK 0x%x: %w", c.mark, err)
		}
	}
	*fd = s
	return s, nil
}

// Send transmits pkt. EPERM (the OUTPUT chain dropped it) is returned as ErrLocalFirewall.
func (c *RawConn) Send(pkt []byte) error {
	if len(pkt) < 1 {
		return fmt.Errorf("tcpcraft: send: empty packet")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return net.ErrClosed
	}
	var to unix.Sockaddr
	v6 := pkt[0]>>4 == 6
	switch {
	case v6 && len(pkt) >= IPv6HeaderLen:
		copy(c.sa6.Addr[:], pkt[24:40])
		to = &c.sa6
	case !v6 && len(pkt) >= IPv4HeaderLen:
		copy(c.sa4.Addr[:], pkt[16:20])
		to = &c.sa4
	default:
		return fmt.Errorf("tcpcraft: send: %d bytes are no IP header", len(pkt))
	}
	fd, err := c.socket(v6)
	if err != nil {
		return err
	}
	if err := unix.Sendto(fd, pkt, 0, to); err != nil {
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("tcpcraft: send: %w (EPERM from the OUTPUT chain)", ErrLocalFirewall)
		}
		return fmt.Errorf("tcpcraft: send: %w", err)
	}
	return nil
}

// Close closes the sockets.
func (c *RawConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	for _, fd := range []int{c.fd4, c.fd6} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	return nil
}

// Route is the kernel's route to a destination.
type Route struct {
	IfIndex int
	IfName  string
	Src     netip.Addr // preferred source address
	Gateway netip.Addr // invalid for a directly connected destination
}

// NextHop is the address whose MAC a frame to the destination carries.
func (r Route) NextHop(dst netip.Addr) netip.Addr {
	if r.Gateway.IsValid() {
		return r.Gateway
	}
	return dst
}

// LookupRoute asks the kernel (rtnetlink RTM_GETROUTE) how it would send to dst.
func LookupRoute(dst netip.Addr) (Route, error) {
	dst = dst.Unmap()
	fam := uint8(unix.AF_INET)
	if dst.Is6() {
		fam = unix.AF_INET6
	}
	a := dst.AsSlice()
	// rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags(4).
	body := []byte{fam, uint8(len(a) * 8), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	body = appendAttr(body, unix.RTA_DST, a)
	msgs, err := netlinkRequest(unix.RTM_GETROUTE, 0, body)
	if err != nil {
		return Route{}, fmt.Errorf("tcpcraft: route to %v: %w", dst, err)
	}
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWROUTE || len(m.Data) < unix.SizeofRtMsg {
			continue
		}
		var r Route
		for _, at := range parseAttrs(m.Data[unix.SizeofRtMsg:]) {
			switch at.typ {
			case unix.RTA_OIF:
				if len(at.val) >= 4 {
					r.IfIndex = int(binary.NativeEndian.Uint32(at.val))
				}
			case unix.RTA_PREFSRC:
				r.Src, _ = netip.AddrFromSlice(at.val)
			case unix.RTA_GATEWAY:
				r.Gateway, _ = netip.AddrFromSlice(at.val)
			}
		}
		if r.IfIndex == 0 {
			continue
		}
		if ifc, err := net.InterfaceByIndex(r.IfIndex); err == nil {
			r.IfName = ifc.Name
		}
		if !r.Src.IsValid() && dst.IsLoopback() {
			r.Src = dst
		}
		return r, nil
	}
	return Route{}, fmt.Errorf("%w to %v", ErrNoRoute, dst)
}

// LookupNeighbour returns the link-layer address of addr on interface ifindex from the
// kernel's neighbour table (rtnetlink RTM_GETNEIGH), ignoring failed and incomplete entries.
func LookupNeighbour(ifindex int, addr netip.Addr) (net.HardwareAddr, error) {
	addr = addr.Unmap()
	fam := uint8(unix.AF_INET)
	if addr.Is6() {
		fam = unix.AF_INET6
	}
	// ndmsg: family, pad(3), ifindex(4), state(2), flags, type.
	body := make([]byte, unix.SizeofNdMsg)
	body[0] = fam
	binary.NativeEndian.PutUint32(body[4:], uint32(ifindex))
	msgs, err := netlinkRequest(unix.RTM_GETNEIGH, unix.NLM_F_DUMP, body)
	if err != nil {
		return nil, fmt.Errorf("tcpcraft: neighbour %v: %w", addr, err)
	}
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWNEIGH || len(m.Data) < unix.SizeofNdMsg {
			continue
		}
		if int(binary.NativeEndian.Uint32(m.Data[4:])) != ifindex {
			continue
		}
		state := binary.NativeEndian.Uint16(m.Data[8:])
		if state&(unix.NUD_FAILED|unix.NUD_INCOMPLETE|unix.NUD_NOARP) != 0 && state&unix.NUD_PERMANENT == 0 {
			continue
		}
		var dst netip.Addr
		var ll []byte
		for _, at := range parseAttrs(m.Data[unix.SizeofNdMsg:]) {
			switch at.typ {
			case unix.NDA_DST:
				dst, _ = netip.AddrFromSlice(at.val)
			case unix.NDA_LLADDR:
				ll = at.val
			}
		}
		if dst.Unmap() == addr && len(ll) > 0 {
			return net.HardwareAddr(append([]byte(nil), ll...)), nil
		}
	}
	return nil, fmt.Errorf("%w: %v on interface %d", ErrNoNeighbour, addr, ifindex)
}

type attr struct {
	typ uint16
	val []byte
}

func appendAttr(b []byte, typ uint16, val []byte) []byte {
	l := unix.SizeofRtAttr + len(val)
	b = binary.NativeEndian.AppendUint16(b, uint16(l))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, val...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// parseAttrs splits rtnetlink attributes, checking every length.
func parseAttrs(b []byte) []attr {
	var out []attr
	for len(b) >= unix.SizeofRtAttr {
		l := int(binary.NativeEndian.Uint16(b))
		if l < unix.SizeofRtAttr || l > len(b) {
			break
		}
		out = append(out, attr{typ: binary.NativeEndian.Uint16(b[2:]) &^ unix.NLA_F_NESTED, val: b[unix.SizeofRtAttr:l]})
		l = (l + 3) &^ 3
		if l > len(b) {
			break
		}
		b = b[l:]
	}
	return out
}

// netlinkRequest sends one rtnetlink request and collects the replies until NLMSG_DONE (or
// the single reply of a non-dump request).
func netlinkRequest(typ uint16, flags uint16, body []byte) ([]syscallMsg, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, err
	}
	const seq = 1
	req := make([]byte, unix.SizeofNlMsghdr, unix.SizeofNlMsghdr+len(body))
	binary.NativeEndian.PutUint32(req[0:], uint32(unix.SizeofNlMsghdr+len(body)))
	binary.NativeEndian.PutUint16(req[4:], typ)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|flags)
	binary.NativeEndian.PutUint32(req[8:], seq)
	req = append(req, body...)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, err
	}
	var out []syscallMsg
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, err
		}
		msgs, err := parseNetlink(buf[:n])
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if e := int32(binary.NativeEndian.Uint32(m.Data)); e != 0 {
						return nil, unix.Errno(-e)
					}
				}
				return out, nil
			}
			out = append(out, syscallMsg{Header: m.Header, Data: append([]byte(nil), m.Data...)})
		}
		if flags&unix.NLM_F_DUMP == 0 && len(out) > 0 {
			return out, nil
		}
	}
}

type syscallMsg struct {
	Header unix.NlMsghdr
	Data   []byte
}

// parseNetlink splits a netlink datagram, checking every length.
func parseNetlink(b []byte) ([]syscallMsg, error) {
	var out []syscallMsg
	for len(b) >= unix.SizeofNlMsghdr {
		l := int(binary.NativeEndian.Uint32(b))
		if l < unix.SizeofNlMsghdr || l > len(b) {
			return nil, fmt.Errorf("netlink: message length %d of %d bytes", l, len(b))
		}
		h := unix.NlMsghdr{Len: uint32(l), Type: binary.NativeEndian.Uint16(b[4:]), Flags: binary.NativeEndian.Uint16(b[6:]),
			Seq: binary.NativeEndian.Uint32(b[8:]), Pid: binary.NativeEndian.Uint32(b[12:])}
		out = append(out, syscallMsg{Header: h, Data: b[unix.SizeofNlMsghdr:l]})
		l = (l + 3) &^ 3
		if l >= len(b) {
			break
		}
		b = b[l:]
	}
	return out, nil
}

// PacketConn sends IP packets over AF_PACKET (SOCK_DGRAM: the kernel writes the link header
// for the interface) to the next hop's link-layer address, bypassing the local netfilter
// OUTPUT chain and routing. One PacketConn serves one destination's route. On loopback the
// receiving side treats injected 127/8 sources as martians unless
// net.ipv4.conf.lo.route_localnet is 1 (use RawConn there).
type PacketConn struct {
	fd    int
	mu    sync.Mutex
	sa4   unix.SockaddrLinklayer
	sa6   unix.SockaddrLinklayer
	Route Route
	MAC   net.HardwareAddr // next hop's link-layer address (empty on loopback and point-to-point)
}

// OpenPacket looks up the route to dst and its next hop's MAC in the neighbour table and
// opens an AF_PACKET socket on the route's interface. Needs CAP_NET_RAW.
func OpenPacket(dst netip.Addr) (*PacketConn, error) {
	r, err := LookupRoute(dst)
	if err != nil {
		return nil, err
	}
	ifc, err := net.InterfaceByIndex(r.IfIndex)
	if err != nil {
		return nil, fmt.Errorf("tcpcraft: interface %d: %w", r.IfIndex, err)
	}
	var mac net.HardwareAddr
	if len(ifc.HardwareAddr) > 0 && ifc.Flags&net.FlagLoopback == 0 {
		if mac, err = LookupNeighbour(r.IfIndex, r.NextHop(dst.Unmap())); err != nil {
			return nil, err
		}
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("tcpcraft: socket(AF_PACKET): %w", err)
	}
	c := &PacketConn{fd: fd, Route: r, MAC: mac}
	for _, p := range []struct {
		sa    *unix.SockaddrLinklayer
		proto uint16
	}{{&c.sa4, unix.ETH_P_IP}, {&c.sa6, unix.ETH_P_IPV6}} {
		p.sa.Ifindex = r.IfIndex
		p.sa.Protocol = htons(p.proto)
		p.sa.Halen = uint8(len(mac))
		copy(p.sa.Addr[:], mac)
	}
	return c, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Send transmits one IP packet to the next hop.
func (c *PacketConn) Send(pkt []byte) error {
	if len(pkt) < 1 {
		return fmt.Errorf("tcpcraft: send: empty packet")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fd < 0 {
		return net.ErrClosed
	}
	sa := &c.sa4
	if pkt[0]>>4 == 6 {
		sa = &c.sa6
	}
	if err := unix.Sendto(c.fd, pkt, 0, sa); err != nil {
		return fmt.Errorf("tcpcraft: send on %s: %w", c.Route.IfName, err)
	}
	return nil
}

// Close closes the socket.
func (c *PacketConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fd >= 0 {
		unix.Close(c.fd)
		c.fd = -1
	}
	return nil
}
