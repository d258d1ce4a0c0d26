// Package pktid classifies IP packets into SPP's two directions and computes the packet ID,
// the CRC-32 of the header fields selected by -# (spp.md §3), over captured bytes only.
package pktid

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/probekit/probekit/shared/checksum"
	"github.com/probekit/probekit/spp/internal/engine"
)

// Field bits of the original's -# option, concatenated in this order.
const (
	SrcAddr    = 1    // IP source address (skipped when a NAT address is given)
	DstAddr    = 2    // IP destination address (skipped when a NAT address is given)
	Protocol   = 4    // IP protocol / IPv6 upper-layer header
	IPID       = 8    // IPv4 identification; IPv6: fragment ID, else flow label + payload length
	SrcPort    = 16   // L4 bytes 0–1 (TCP, UDP)
	DstPort    = 32   // L4 bytes 2–3 (TCP, UDP)
	TCPSeq     = 64   // TCP sequence number
	TCPAck     = 128  // TCP acknowledgement number
	TCPFlags   = 256  // TCP bytes 12–15: data offset, flags, window
	TCPCsum    = 512  // TCP bytes 16–19: checksum, urgent pointer
	UDPLenCsum = 1024 // UDP bytes 4–7: length, checksum
	UDPPayload = 2048 // first min(12, UDP length − 8) bytes of UDP payload
	OtherL4    = 4096 // first 20 bytes after the IP header when neither TCP nor UDP

	// Default is the original's default: addresses, protocol, IP ID and ports.
	Default = 63
	// DefaultIPv6 is used for IPv6 targets when -# is not given: IPv6 has no per-packet
	// identification, so TCP sequence/acknowledgement numbers, 12 bytes of UDP payload and
	// 20 bytes of ICMPv6/other headers are added to tell packets of one flow apart.
	DefaultIPv6 = Default | TCPSeq | TCPAck | UDPPayload | OtherL4
	// All is every defined bit.
	All = 8191
)

// Port is the UDP port of SPP sample frames; the original's capture filter excludes it.
const Port = 9822

// Result says what Classify made of a packet.
type Result uint8

// Classification results.
const (
	Target    Result = iota // a packet between the two target addresses; ID valid
	Other                   // an IP packet of other hosts (or excluded: ICMP unreachable, port 9822)
	NotIP                   // neither IPv4 nor IPv6
	Malformed               // shorter than its fixed IP header or with an impossible header length
)

func (r Result) String() string {
	switch r {
	case Target:
		return "target"
	case Other:
		return "other"
	case NotIP:
		return "not-ip"
	}
	return "malformed"
}

// MarshalText makes JSON logs show the result's name.
func (r Result) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// ErrAddress reports unusable -a/-A/-n/-N addresses.
var ErrAddress = errors.New("pktid: bad target addresses")

type addr struct {
	b   [16]byte
	v4  uint32 // the IPv4 address as a big-endian word, for the fast path
	n   int
	set bool
}

func mkaddr(a netip.Addr) addr {
	if !a.IsValid() {
		return addr{}
	}
	a = a.Unmap()
	var r addr
	r.set = true
	if a.Is4() {
		v := a.As4()
		r.n = copy(r.b[:], v[:])
		r.v4 = binary.BigEndian.Uint32(v[:])
	} else {
		r.b = a.As16()
		r.n = 16
	}
	return r
}

func (a *addr) eq(b []byte) bool {
	return a.set && string(a.b[:a.n]) == string(b)
}

// direction4 is direction for IPv4 header words.
func (c *Classifier) direction4(src, dst uint32) (engine.Dir, bool) {
	switch {
	case src == c.a.v4 && dst == c.b.v4:
		return engine.Out, true
	case src == c.b.v4 && dst == c.a.v4:
		return engine.In, true
	}
	if c.nat {
		var s, d [4]byte
		binary.BigEndian.PutUint32(s[:], src)
		binary.BigEndian.PutUint32(d[:], dst)
		return c.direction(s[:], d[:])
	}
	return 0, false
}

// hashPad is the room for leading zero bytes in front of the hashed fields. The SPP CRC
// starts from 0 without inversion, so leading zeros do not change it. hash/crc32 runs its
// slicing-by-8 loop on inputs of 16 bytes or more while more than 8 bytes remain, and the
// rest byte by byte; padding to 8k+1 bytes (at least 17) leaves a single byte for the slow
// loop instead of the whole usual 15-byte input — a fifth of the file-mode CPU time.
const hashPad = 16

// sppHash hashes the fields appended after the pad area of the scratch buffer.
func (c *Classifier) sppHash(b []byte) uint32 {
	n := len(b) - hashPad
	pad := ((1-n)%8 + 8) % 8
	if n+pad < 17 {
		pad += 8
	}
	return checksum.SPPHash(b[hashPad-pad:])
}

// Classifier turns IP packets into (direction, packet ID). It keeps a scratch buffer, so use
// one Classifier per goroutine.
type Classifier struct {
	code       uint32
	v6         bool
	a, b       addr // near REF (-a), near MON (-A)
	natA, natB addr // NAT addresses seen for REF (-n) and MON (-N)
	nat        bool
	port       uint16 // sample-frame port excluded from target traffic
	scratch    [hashPad + 140]byte
	// Truncated counts target packets whose selected fields were not all captured; the ID
	// then covers the captured bytes only.
	Truncated uint64
}

// New returns a classifier for traffic between a (near REF) and b (near MON), with the
// optional NAT addresses natA/natB (zero netip.Addr when unused) and the -# field code.
func New(a, b, natA, natB netip.Addr, code uint32) (*Classifier, error) {
	if !a.IsValid() || !b.IsValid() {
		return nil, fmt.Errorf("%w: both -a and -A are required", ErrAddress)
	}
	a, b = a.Unmap(), b.Unmap()
	if a.Is4() != b.Is4() {
		return nil, fmt.Errorf("%w: -a %s and -A %s are of different IP versions", ErrAddress, a, b)
	}
	if a == b {
		return nil, fmt.Errorf("%w: -a and -A are the same address %s", ErrAddress, a)
	}
	for _, n := range []netip.Addr{natA, natB} {
		if n.IsValid() && n.Unmap().Is4() != a.Is4() {
			return nil, fmt.Errorf("%w: NAT address %s is not of the targets' IP version", ErrAddress, n)
		}
	}
	if code == 0 || code > All {
		return nil, fmt.Errorf("pktid: -# %d selects no valid field (1..%d)", code, All)
	}
	c := &Classifier{code: code, v6: a.Is6(), a: mkaddr(a), b: mkaddr(b), natA: mkaddr(natA), natB: mkaddr(natB)}
	c.nat = c.natA.set || c.natB.set
	c.port = Port
	return c, nil
}

// ExcludePort sets the UDP/TCP port whose packets are not target traffic (default Port,
// where SPP's own sample frames travel).
func (c *Classifier) ExcludePort(p uint16) { c.port = p }

// Code returns the -# field code in use.
func (c *Classifier) Code() uint32 { return c.code }

// direction returns the SPP direction of a packet by its addresses.
func (c *Classifier) direction(src, dst []byte) (engine.Dir, bool) {
	switch {
	case c.a.eq(src) && c.b.eq(dst):
		return engine.Out, true
	case c.b.eq(src) && c.a.eq(dst):
		return engine.In, true
	}
	if c.nat {
		switch {
		case c.natA.eq(src) && c.b.eq(dst), c.a.eq(src) && c.natB.eq(dst):
			return engine.Out, true
		case c.b.eq(src) && c.natA.eq(dst), c.natB.eq(src) && c.a.eq(dst):
			return engine.In, true
		}
	}
	return 0, false
}

// Classify returns the direction and packet ID of ip, a packet starting at its IP header
// and holding the captured bytes only.
func (c *Classifier) Classify(ip []byte) (engine.Dir, uint32, Result) {
	if len(ip) == 0 {
		return 0, 0, Malformed
	}
	switch ip[0] >> 4 {
	case 4:
		if c.v6 {
			return 0, 0, Other
		}
		return c.classify4(ip)
	case 6:
		if !c.v6 {
			return 0, 0, Other
		}
		return c.classify6(ip)
	}
	return 0, 0, NotIP
}

func (c *Classifier) classify4(ip []byte) (engine.Dir, uint32, Result) {
	if len(ip) < 20 {
		return 0, 0, Malformed
	}
	ihl := int(ip[0]&0x0f) * 4
	if ihl < 20 {
		return 0, 0, Malformed
	}
	dir, ok := c.direction4(binary.BigEndian.Uint32(ip[12:16]), binary.BigEndian.Uint32(ip[16:20]))
	if !ok {
		return 0, 0, Other
	}
	proto := ip[9]
	var l4 []byte
	if ihl <= len(ip) {
		l4 = ip[ihl:]
	}
	if c.excluded(proto, l4, 1) {
		return 0, 0, Other
	}
	b := c.scratch[:hashPad] // zeros: see hashPad
	short := ihl > len(ip)
	if c.code&SrcAddr != 0 && !c.nat {
		b = append(b, ip[12:16]...)
	}
	if c.code&DstAddr != 0 && !c.nat {
		b = append(b, ip[16:20]...)
	}
	if c.code&Protocol != 0 {
		b = append(b, proto)
	}
	if c.code&IPID != 0 {
		b = append(b, ip[4:6]...)
	}
	// Bytes after the IP header as the original counts them: from the total length field.
	l4len := int(binary.BigEndian.Uint16(ip[2:4])) - ihl
	b, short = c.appendL4(b, proto, l4, l4len, short)
	if short {
		c.Truncated++
	}
	return dir, c.sppHash(b), Target
}

// excluded mirrors the original's capture filter "!icmp[icmptype]==3 and !port 9822":
// ICMP destination-unreachable messages and SPP's own sample frames are not target traffic.
func (c *Classifier) excluded(proto uint8, l4 []byte, icmpProto uint8) bool {
	switch proto {
	case icmpProto:
		return len(l4) > 0 && l4[0] == unreachable(icmpProto)
	case 6, 17:
		if len(l4) >= 4 {
			return binary.BigEndian.Uint16(l4[0:2]) == c.port || binary.BigEndian.Uint16(l4[2:4]) == c.port
		}
	}
	return false
}

func unreachable(icmpProto uint8) byte {
	if icmpProto == 58 {
		return 1 // ICMPv6 destination unreachable
	}
	return 3
}

// appendField appends l4[from:to] clipped to the captured bytes; short reports clipping.
func appendField(b, l4 []byte, from, to int, short bool) ([]byte, bool) {
	if to > len(l4) {
		short = true
		to = len(l4)
	}
	if from < to {
		b = append(b, l4[from:to]...)
	}
	return b, short
}

// appendL4 appends the transport fields selected by the code. l4 holds the captured bytes
// after the IP header(s), l4len the length the IP header declares for them.
func (c *Classifier) appendL4(b []byte, proto uint8, l4 []byte, l4len int, short bool) ([]byte, bool) {
	code := c.code
	switch proto {
	case 6, 17:
		if code&SrcPort != 0 {
			b, short = appendField(b, l4, 0, 2, short)
		}
		if code&DstPort != 0 {
			b, short = appendField(b, l4, 2, 4, short)
		}
		if proto == 6 {
			if code&TCPSeq != 0 {
				b, short = appendField(b, l4, 4, 8, short)
			}
			if code&TCPAck != 0 {
				b, short = appendField(b, l4, 8, 12, short)
			}
			if code&TCPFlags != 0 {
				b, short = appendField(b, l4, 12, 16, short)
			}
			if code&TCPCsum != 0 {
				b, short = appendField(b, l4, 16, 20, short)
			}
			return b, short
		}
		if code&UDPLenCsum != 0 {
			b, short = appendField(b, l4, 4, 8, short)
		}
		if code&UDPPayload != 0 {
			if len(l4) < 6 {
				return b, true
			}
			n := min(12, int(binary.BigEndian.Uint16(l4[4:6]))-8)
			if n > 0 {
				b, short = appendField(b, l4, 8, 8+n, short)
			}
		}
	default:
		if code&OtherL4 != 0 {
			n := min(20, l4len)
			if n > 0 {
				b, short = appendField(b, l4, 0, n, short)
			}
		}
	}
	return b, short
}

// IPv6 extension headers walked to find the upper-layer header.
const (
	hopByHop = 0
	routing  = 43
	fragment = 44
	authHdr  = 51
	destOpts = 60
)

func (c *Classifier) classify6(ip []byte) (engine.Dir, uint32, Result) {
	if len(ip) < 40 {
		return 0, 0, Malformed
	}
	dir, ok := c.direction(ip[8:24], ip[24:40])
	if !ok {
		return 0, 0, Other
	}
	payloadLen := int(binary.BigEndian.Uint16(ip[4:6]))
	next := ip[6]
	off := 40
	var fragID []byte
	short := false
	// Skip extension headers; a non-first fragment carries no transport header.
	noL4 := false
walk:
	for hops := 0; hops < 8; hops++ {
		switch next {
		case hopByHop, routing, destOpts, authHdr:
			if off+2 > len(ip) {
				short = true
				break walk
			}
			n := (int(ip[off+1]) + 1) * 8
			if next == authHdr {
				n = (int(ip[off+1]) + 2) * 4
			}
			next = ip[off]
			off += n
		case fragment:
			if off+8 > len(ip) {
				short = true
				break walk
			}
			fragID = ip[off+4 : off+8]
			if binary.BigEndian.Uint16(ip[off+2:off+4])&^7 != 0 {
				noL4 = true
			}
			next = ip[off]
			off += 8
		default:
			break walk
		}
	}
	var l4 []byte
	if off <= len(ip) {
		l4 = ip[off:]
	} else {
		short = true
	}
	if noL4 {
		l4 = nil
	}
	if !noL4 && c.excluded(next, l4, 58) {
		return 0, 0, Other
	}
	b := c.scratch[:hashPad] // zeros: see hashPad
	if c.code&SrcAddr != 0 && !c.nat {
		b = append(b, ip[8:24]...)
	}
	if c.code&DstAddr != 0 && !c.nat {
		b = append(b, ip[24:40]...)
	}
	if c.code&Protocol != 0 {
		b = append(b, next)
	}
	if c.code&IPID != 0 {
		if fragID != nil {
			b = append(b, fragID...)
		} else {
			b = append(b, ip[1]&0x0f, ip[2], ip[3], ip[4], ip[5])
		}
	}
	if !noL4 {
		b, short = c.appendL4(b, next, l4, payloadLen-(off-40), short)
	}
	if short {
		c.Truncated++
	}
	return dir, c.sppHash(b), Target
}
