//go:build linux

package capture

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// TPACKET_V3 layout (linux/if_packet.h).
const (
	tpBlockStatusOff = 8  // tpacket_block_desc.hdr.bh1.block_status
	tpNumPktsOff     = 12 // num_pkts
	tpFirstPktOff    = 16 // offset_to_first_pkt
	tp3HdrLen        = 48 // TPACKET_ALIGN(sizeof(struct tpacket3_hdr))
	tpDefaultBuffer  = 8 << 20
	tpMinBlock       = 64 << 10
	// tpMinBlocks: the kernel retires a block at every BlockTimeout even when it holds a
	// single packet, so sparse traffic uses one block per timeout; the ring must hold enough
	// blocks to ride out a reader that pauses (32 × 10 ms at least).
	tpMinBlocks   = 32
	tpFrameSize   = 2048
	vlanReserve   = 4                      // room to re-insert a stripped 802.1Q tag
	cookedReserve = linuxSLL2HeaderLen + 4 // room for the SLL2 header and a tag
)

// Live is a live AF_PACKET (TPACKET_V3 ring) capture handle. Next and Stats must not be
// called concurrently with each other; Close may be called from any goroutine and makes a
// blocked Next return ErrClosed.
type Live struct {
	mu       sync.Mutex
	closed   atomic.Bool
	fd       int
	efd      int // eventfd that wakes poll on Close
	ring     []byte
	blockSz  int
	nBlocks  int
	block    int  // current block
	held     bool // current block is owned by user space
	left     int  // packets left in the current block
	off      int  // offset of the next packet header in ring
	lt       LinkType
	filterLT LinkType
	cooked   bool
	snaplen  int
	loIndex  int
	timeout  int // poll timeout, ms (-1: forever)
	iface    string
	// final holds the counters Close read from the socket before releasing it, so a caller
	// can still account for the last packets and drops; handed out once by Stats.
	final     LiveStats
	finalRead bool
}

// OpenLive opens a live capture on iface ("any" or "" for every interface, cooked). Needs
// CAP_NET_RAW. Packets carry kernel receive timestamps.
func OpenLive(iface string, opts LiveOptions) (*Live, error) {
	h, err := openLive(iface, opts)
	if err != nil {
		return nil, fmt.Errorf("capture: open live %q: %w", iface, err)
	}
	return h, nil
}

func openLive(iface string, opts LiveOptions) (*Live, error) {
	h := &Live{fd: -1, efd: -1, iface: iface, snaplen: opts.Snaplen, timeout: -1}
	if h.snaplen <= 0 {
		h.snaplen = minMaxRecord
	}
	if opts.Timeout > 0 {
		h.timeout = int(max(opts.Timeout.Milliseconds(), 1))
	}
	if lo, err := loopbackIndex(); err == nil {
		h.loIndex = lo
	}
	ifindex := 0
	anyIface := iface == "" || iface == "any"
	h.cooked = opts.Cooked || anyIface
	if !anyIface {
		ifc, err := net.InterfaceByName(iface)
		if err != nil {
			return nil, err
		}
		ifindex = ifc.Index
	}
	if !h.cooked {
		hatype, err := arpHardwareType(iface)
		if err != nil {
			return nil, err
		}
		h.lt, h.cooked = liveLinkType(hatype)
	}
	if h.cooked {
		h.lt = LinuxSLL2
	}
	h.filterLT = h.lt
	if h.cooked {
		h.filterLT = KernelCooked
	}
	// Protocol 0: the socket receives nothing until bind, so no packet escapes the filter.
	typ := unix.SOCK_RAW
	if h.cooked {
		typ = unix.SOCK_DGRAM
	}
	fd, err := unix.Socket(unix.AF_PACKET, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket(AF_PACKET): %w", err)
	}
	h.fd = fd
	ok := false
	defer func() {
		if !ok {
			h.release()
		}
	}()
	prog := opts.Filter
	if opts.Match != nil {
		if prog, err = opts.Match.Compile(h.filterLT, h.snaplen); err != nil {
			return nil, err
		}
	}
	if err := h.attach(prog); err != nil {
		return nil, err
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return nil, fmt.Errorf("PACKET_VERSION TPACKET_V3: %w", err)
	}
	reserve := vlanReserve
	if h.cooked {
		reserve = cookedReserve
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_RESERVE, reserve); err != nil {
		return nil, fmt.Errorf("PACKET_RESERVE: %w", err)
	}
	if err := h.setupRing(opts); err != nil {
		return nil, err
	}
	if opts.Promisc && ifindex != 0 {
		mreq := unix.PacketMreq{Ifindex: int32(ifindex), Type: unix.PACKET_MR_PROMISC}
		if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
			return nil, fmt.Errorf("promiscuous mode: %w", err)
		}
	}
	if h.efd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}
	if err := unix.Bind(fd, sa); err != nil {
		return nil, fmt.Errorf("bind: %w", err)
	}
	ok = true
	return h, nil
}

// attach installs prog (or a snaplen-only program), clamping accept values to the snaplen so
// the kernel copies no more than needed into the ring.
func (h *Live) attach(prog []bpf.Instruction) error {
	// The kernel counts from where the filter looks: the network layer on cooked handles,
	// whose frames then get the SLL2 header in front (libpcap lowers the snaplen the same way).
	snap := uint32(h.snaplen)
	if h.cooked {
		snap = uint32(max(h.snaplen-linuxSLL2HeaderLen, 1))
	}
	if len(prog) == 0 {
		prog = []bpf.Instruction{bpf.RetConstant{Val: snap}}
	}
	prog = append([]bpf.Instruction(nil), prog...)
	for i, in := range prog {
		if r, ok := in.(bpf.RetConstant); ok && r.Val > snap {
			prog[i] = bpf.RetConstant{Val: snap}
		}
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return fmt.Errorf("assemble filter: %w", err)
	}
	sf := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		sf[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(sf)), Filter: &sf[0]}
	if err := unix.SetsockoptSockFprog(h.fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
		return fmt.Errorf("attach filter: %w", err)
	}
	return nil
}

func (h *Live) setupRing(opts LiveOptions) error {
	page := os.Getpagesize()
	block := tpMinBlock
	for block < h.snaplen+cookedReserve+256 {
		block *= 2
	}
	size := opts.BufferSize
	if size <= 0 {
		size = tpDefaultBuffer
	}
	n := max(size/block, tpMinBlocks)
	tov := opts.BlockTimeout
	if tov <= 0 {
		tov = 10 * time.Millisecond
	}
	req := unix.TpacketReq3{
		Block_size:     uint32(block),
		Block_nr:       uint32(n),
		Frame_size:     tpFrameSize,
		Frame_nr:       uint32(block / tpFrameSize * n),
		Retire_blk_tov: uint32(max(tov.Milliseconds(), 1)),
	}
	if block%page != 0 {
		return fmt.Errorf("ring block %d is not a multiple of the page size %d", block, page)
	}
	if err := unix.SetsockoptTpacketReq3(h.fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return fmt.Errorf("PACKET_RX_RING (%d × %d bytes): %w", n, block, err)
	}
	ring, err := unix.Mmap(h.fd, 0, block*n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap ring: %w", err)
	}
	h.ring, h.blockSz, h.nBlocks = ring, block, n
	return nil
}

// LinkType returns the link type of the captured frames.
func (h *Live) LinkType() LinkType { return h.lt }

// FilterLinkType returns the link type to compile raw LiveOptions.Filter programs for.
func (h *Live) FilterLinkType() LinkType { return h.filterLT }

// Snaplen returns the snapshot length.
func (h *Live) Snaplen() int { return h.snaplen }

func (h *Live) status(block int) *uint32 {
	return (*uint32)(unsafe.Pointer(&h.ring[block*h.blockSz+tpBlockStatusOff]))
}

// Next returns the next packet with its kernel timestamp. Data points into the ring and is
// valid until the next call to Next or Close.
func (h *Live) Next() (Packet, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p, _, err := h.nextLocked(true)
	return p, err
}

// nextLocked walks the ring (h.mu held): the next packet of the current block, else the next
// block the kernel has handed over. When no block is ready it waits for one (wait) or
// returns ok false; a closed handle returns ErrClosed.
func (h *Live) nextLocked(wait bool) (p Packet, ok bool, err error) {
	for {
		if h.closed.Load() {
			return Packet{}, false, ErrClosed
		}
		if h.left > 0 {
			if p, ok := h.packet(); ok {
				return p, true, nil
			}
			continue
		}
		if h.held {
			atomic.StoreUint32(h.status(h.block), unix.TP_STATUS_KERNEL)
			h.held = false
			h.block = (h.block + 1) % h.nBlocks
		}
		if atomic.LoadUint32(h.status(h.block))&unix.TP_STATUS_USER == 0 {
			if !wait {
				return Packet{}, false, nil
			}
			if err := h.wait(); err != nil {
				return Packet{}, false, err
			}
			continue
		}
		base := h.block * h.blockSz
		h.held = true
		h.left = int(binary.NativeEndian.Uint32(h.ring[base+tpNumPktsOff:]))
		h.off = base + int(binary.NativeEndian.Uint32(h.ring[base+tpFirstPktOff:]))
	}
}

// packet decodes the tpacket3_hdr at h.off and advances; ok is false for skipped packets.
func (h *Live) packet() (Packet, bool) {
	r := h.ring
	o := h.off
	next := int(binary.NativeEndian.Uint32(r[o:]))
	sec := binary.NativeEndian.Uint32(r[o+4:])
	nsec := binary.NativeEndian.Uint32(r[o+8:])
	snap := int(binary.NativeEndian.Uint32(r[o+12:]))
	wire := int(binary.NativeEndian.Uint32(r[o+16:]))
	status := binary.NativeEndian.Uint32(r[o+20:])
	mac := o + int(binary.NativeEndian.Uint16(r[o+24:]))
	tci := uint16(binary.NativeEndian.Uint32(r[o+32:]))
	tpid := binary.NativeEndian.Uint16(r[o+36:])
	sll := r[o+tp3HdrLen:]
	proto := binary.BigEndian.Uint16(sll[2:]) // sll_protocol, network order
	ifindex := int32(binary.NativeEndian.Uint32(sll[4:]))
	hatype := binary.NativeEndian.Uint16(sll[8:])
	pkttype := sll[10]
	halen := int(min(sll[11], 8))
	h.left--
	h.off = o + next
	// On loopback every packet passes twice (out, then in); keep one copy, as libpcap does.
	if pkttype == unix.PACKET_OUTGOING && int(ifindex) == h.loIndex {
		return Packet{}, false
	}
	end := mac + snap
	start := mac
	hasTag := status&unix.TP_STATUS_VLAN_VALID != 0
	if status&unix.TP_STATUS_VLAN_TPID_VALID == 0 {
		tpid = EtherTypeVLAN
	}
	if h.cooked {
		if hasTag {
			start -= vlanTagLen
			binary.BigEndian.PutUint16(r[start:], tci)
			binary.BigEndian.PutUint16(r[start+2:], proto)
			proto = tpid
			wire += vlanTagLen
		}
		start -= linuxSLL2HeaderLen
		s := r[start : start+linuxSLL2HeaderLen]
		binary.BigEndian.PutUint16(s[0:], proto)
		binary.BigEndian.PutUint16(s[2:], 0)
		binary.BigEndian.PutUint32(s[4:], uint32(ifindex))
		binary.BigEndian.PutUint16(s[8:], hatype)
		s[10] = pkttype
		s[11] = byte(halen)
		clear(s[12:20])
		copy(s[12:], sll[12:12+halen])
		wire += linuxSLL2HeaderLen
	} else if hasTag && h.lt == Ethernet && snap >= 12 {
		// Re-insert the tag the driver stripped: move the MAC addresses 4 bytes down.
		start -= vlanTagLen
		copy(r[start:start+12], r[mac:mac+12])
		binary.BigEndian.PutUint16(r[start+12:], tpid)
		binary.BigEndian.PutUint16(r[start+14:], tci)
		wire += vlanTagLen
	}
	// A re-inserted tag, the SLL2 header or a filter returning A may exceed the snaplen.
	end = min(end, start+h.snaplen)
	ns := int64(sec)*1e9 + int64(nsec)
	return Packet{
		Time:       time.Unix(0, ns),
		TimeNanos:  ns,
		Data:       r[start:end:end],
		CaptureLen: end - start,
		OrigLen:    wire,
		LinkType:   h.lt,
	}, true
}

func (h *Live) wait() error {
	fds := []unix.PollFd{{Fd: int32(h.fd), Events: unix.POLLIN | unix.POLLERR}, {Fd: int32(h.efd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, h.timeout)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("capture: poll: %w", err)
		}
		if h.closed.Load() || fds[1].Revents != 0 {
			return ErrClosed
		}
		if n == 0 {
			return ErrTimeout
		}
		if fds[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
			// POLLERR on a packet socket reports a pending socket error (e.g. the interface
			// went down); read it so the next poll can block again.
			if e, _ := unix.GetsockoptInt(h.fd, unix.SOL_SOCKET, unix.SO_ERROR); e != 0 {
				return fmt.Errorf("capture: %s: %w", h.iface, unix.Errno(e))
			}
		}
		return nil
	}
}

// Stats returns the kernel's counters since the previous call (they reset on read). After
// Close, the first call returns the counters Close collected (those not yet read); later
// calls return ErrClosed.
func (h *Live) Stats() (LiveStats, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fd < 0 {
		if h.finalRead {
			return LiveStats{}, ErrClosed
		}
		h.finalRead = true
		return h.final, nil
	}
	return h.readStats()
}

func (h *Live) readStats() (LiveStats, error) {
	st, err := unix.GetsockoptTpacketStatsV3(h.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return LiveStats{}, fmt.Errorf("capture: PACKET_STATISTICS: %w", err)
	}
	return LiveStats{Packets: uint64(st.Packets), Drops: uint64(st.Drops)}, nil
}

// Close stops the capture and releases the ring. Safe to call more than once and
// concurrently with Next.
func (h *Live) Close() error {
	if h.closed.Swap(true) {
		return nil
	}
	if h.efd >= 0 {
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		unix.Write(h.efd, one[:])
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fd >= 0 {
		h.final, _ = h.readStats() // on error the final counters are unknown: zero
	}
	return h.release()
}

func (h *Live) release() error {
	var err error
	if h.ring != nil {
		err = unix.Munmap(h.ring)
		h.ring = nil
	}
	if h.fd >= 0 {
		if e := unix.Close(h.fd); err == nil {
			err = e
		}
		h.fd = -1
	}
	if h.efd >= 0 {
		unix.Close(h.efd)
		h.efd = -1
	}
	return err
}

// liveLinkType maps an interface's ARPHRD_ type to the link type of a SOCK_RAW capture, or
// to cooked mode for types without one.
func liveLinkType(hatype uint16) (LinkType, bool) {
	switch hatype {
	case unix.ARPHRD_ETHER, unix.ARPHRD_LOOPBACK:
		return Ethernet, false
	case unix.ARPHRD_NONE: // tun, WireGuard: bare IP packets
		return Raw, false
	}
	return LinuxSLL2, true // tunnels, PPP, …: libpcap's cooked mode, which every type supports
}

// arpHardwareType returns the interface's ARPHRD_ type, which decides the link type.
func arpHardwareType(iface string) (uint16, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("socket(AF_PACKET): %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(iface)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFHWADDR, ifr); err != nil {
		return 0, fmt.Errorf("SIOCGIFHWADDR: %w", err)
	}
	return ifr.Uint16(), nil
}

func loopbackIndex() (int, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return 0, err
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback != 0 {
			return i.Index, nil
		}
	}
	return 0, fmt.Errorf("no loopback interface")
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
