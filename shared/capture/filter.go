package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"golang.org/x/net/bpf"
)

// ErrFilter reports a filter that cannot be compiled (too many terms, ports without a transport
// protocol that has ports, an unsupported link type).
var ErrFilter = errors.New("invalid capture filter")

// IP protocol numbers used by filters.
const (
	ProtoICMP   uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoUDP    uint8 = 17
	ProtoICMPv6 uint8 = 58
	ProtoSCTP   uint8 = 132
)

// maxFilterTerms bounds hosts and ports so that every conditional jump fits cBPF's 8-bit offset.
const maxFilterTerms = 16

// Filter selects IPv4/IPv6 packets; every non-empty field must match (AND), values within a
// field are alternatives (OR). The zero Filter accepts everything, including non-IP frames.
// It is the subset of tcpdump's language measurement tools need:
//
//	Filter{Hosts: a, Protocol: ProtoUDP, Ports: p} ≡ (ip or ip6) and (host a…) and udp and (port p…)
//
// As in libpcap, IPv4 fragments after the first never match a port, and the IPv6 next-header
// is read from the fixed header (extension headers are not walked). Ethernet and Linux cooked
// frames may carry up to two VLAN tags in the frame (live captures see tags stripped by the
// driver, which is the same as untagged).
type Filter struct {
	Hosts    []netip.Addr // source or destination address; IPv4-mapped IPv6 addresses are unmapped
	Protocol uint8        // IPv4 protocol / IPv6 next header; 0 = any
	Ports    []uint16     // TCP/UDP/SCTP source or destination port
}

// FilterHost returns a program for lt accepting IP packets from or to any of addrs, capturing
// whole packets.
func FilterHost(lt LinkType, addrs ...netip.Addr) ([]bpf.Instruction, error) {
	return Filter{Hosts: addrs}.Compile(lt, 0)
}

// FilterPort returns a program for lt accepting packets of proto (ProtoTCP, ProtoUDP,
// ProtoSCTP, or 0 for any of them) from or to any of ports.
func FilterPort(lt LinkType, proto uint8, ports ...uint16) ([]bpf.Instruction, error) {
	return Filter{Protocol: proto, Ports: ports}.Compile(lt, 0)
}

// FilterHostPort combines FilterHost and FilterPort: proto packets between any of addrs and
// any of ports.
func FilterHostPort(lt LinkType, proto uint8, addrs []netip.Addr, ports ...uint16) ([]bpf.Instruction, error) {
	return Filter{Hosts: addrs, Protocol: proto, Ports: ports}.Compile(lt, 0)
}

// Compile returns a classic BPF program for frames of link type lt that accepts matching
// packets, truncated to snaplen bytes (≤ 0: 262144), and drops the others. lt may also be
// KernelCooked, for cooked live captures.
func (f Filter) Compile(lt LinkType, snaplen int) ([]bpf.Instruction, error) {
	if snaplen <= 0 {
		snaplen = minMaxRecord
	}
	if len(f.Hosts) > maxFilterTerms || len(f.Ports) > maxFilterTerms {
		return nil, fmt.Errorf("capture: filter with %d hosts and %d ports (at most %d each): %w", len(f.Hosts), len(f.Ports), maxFilterTerms, ErrFilter)
	}
	if len(f.Ports) > 0 && f.Protocol != 0 && f.Protocol != ProtoTCP && f.Protocol != ProtoUDP && f.Protocol != ProtoSCTP {
		return nil, fmt.Errorf("capture: filter on ports of IP protocol %d: %w", f.Protocol, ErrFilter)
	}
	var v4, v6 []netip.Addr
	for _, a := range f.Hosts {
		a = a.Unmap()
		switch {
		case a.Is4():
			v4 = append(v4, a)
		case a.Is6():
			v6 = append(v6, a)
		default:
			return nil, fmt.Errorf("capture: filter host %v: %w", a, ErrFilter)
		}
	}
	accept := bpf.RetConstant{Val: uint32(snaplen)}
	if len(f.Hosts) == 0 && f.Protocol == 0 && len(f.Ports) == 0 {
		return []bpf.Instruction{accept}, nil
	}
	a := &asm{}
	if err := a.link(lt); err != nil {
		return nil, err
	}
	// Conditional jumps reach at most 255 instructions, so each section jumps to its own
	// trampolines ("acc4", "rej4") that hold the unconditional jumps to accept and reject.
	// IPv4, X = network header offset.
	a.label("ip4")
	if len(f.Hosts) > 0 {
		if len(v4) == 0 {
			a.jump("reject")
		}
		for _, off := range []uint32{12, 16} {
			a.emit(bpf.LoadIndirect{Off: off, Size: 4})
			for _, h := range v4 {
				a.jeq(binary.BigEndian.Uint32(h.AsSlice()), "ip4proto", "")
			}
		}
		a.jump("reject")
	}
	a.label("ip4proto")
	a.emit(bpf.LoadIndirect{Off: 9, Size: 1})
	a.proto(f, "rej4")
	if len(f.Ports) > 0 {
		a.emit(bpf.LoadIndirect{Off: 6, Size: 2}) // flags + fragment offset
		a.jset(0x1fff, "rej4", "")
		// X += IHL*4: A = (ip[0] & 0xf) << 2; A += X; X = A.
		a.emit(bpf.LoadIndirect{Off: 0, Size: 1})
		a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x0f})
		a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 2})
		a.emit(bpf.ALUOpX{Op: bpf.ALUOpAdd})
		a.emit(bpf.TAX{})
		a.ports(f, 0, "acc4", "rej4")
	}
	a.label("acc4")
	a.jump("accept")
	a.label("rej4")
	a.jump("reject")
	// IPv6, X = network header offset.
	a.label("ip6")
	if len(f.Hosts) > 0 {
		if len(v6) == 0 {
			a.jump("reject")
		}
		for _, base := range []uint32{8, 24} {
			for _, h := range v6 {
				b := h.As16()
				next := a.uniq("ip6host")
				for w := range 4 {
					a.emit(bpf.LoadIndirect{Off: base + uint32(4*w), Size: 4})
					a.jeq(binary.BigEndian.Uint32(b[4*w:]), "", next)
				}
				a.jump("ip6proto")
				a.label(next)
			}
		}
		a.jump("reject")
	}
	a.label("ip6proto")
	a.emit(bpf.LoadIndirect{Off: 6, Size: 1})
	a.proto(f, "reject")
	if len(f.Ports) > 0 {
		a.ports(f, 40, "accept", "reject")
	}
	a.label("accept")
	a.emit(accept)
	a.label("reject")
	a.emit(bpf.RetConstant{Val: 0})
	return a.resolve()
}

// link emits the link-layer part: it jumps to "ip4" or "ip6" with X = network offset, and to
// "reject" for anything else.
func (a *asm) link(lt LinkType) error {
	// vlan dispatches on A = EtherType at etOff with the payload (X) at nh, skipping up to two
	// in-frame tags: each tag is TCI(2) + inner EtherType(2) at the payload's start.
	vlan := func(nh uint32) {
		for range 2 {
			tag, notag := a.uniq("tag"), a.uniq("notag")
			a.jeq(uint32(EtherTypeVLAN), tag, "")
			a.jeq(uint32(EtherTypeQinQ), tag, "")
			a.jeq(uint32(EtherTypeQinQ1), tag, notag)
			a.label(tag)
			a.emit(bpf.LoadAbsolute{Off: nh + 2, Size: 2})
			nh += vlanTagLen
			a.emit(bpf.LoadConstant{Dst: bpf.RegX, Val: nh})
			a.label(notag)
		}
		a.jeq(uint32(EtherTypeIPv4), "ip4", "")
		a.jeq(uint32(EtherTypeIPv6), "ip6", "")
		a.jump("reject")
	}
	switch lt {
	case Ethernet:
		a.emit(bpf.LoadConstant{Dst: bpf.RegX, Val: ethernetHeaderLen})
		a.emit(bpf.LoadAbsolute{Off: 12, Size: 2})
		vlan(ethernetHeaderLen)
	case LinuxSLL:
		a.emit(bpf.LoadConstant{Dst: bpf.RegX, Val: linuxSLLHeaderLen})
		a.emit(bpf.LoadAbsolute{Off: 14, Size: 2})
		vlan(linuxSLLHeaderLen)
	case LinuxSLL2:
		a.emit(bpf.LoadConstant{Dst: bpf.RegX, Val: linuxSLL2HeaderLen})
		a.emit(bpf.LoadAbsolute{Off: 0, Size: 2})
		vlan(linuxSLL2HeaderLen)
	case KernelCooked:
		a.emit(bpf.LoadConstant{Dst: bpf.RegX, Val: 0})
		a.emit(bpf.LoadExtension{Num: bpf.ExtProto})
		a.jeq(uint32(EtherTypeIPv4), "ip4", "")
		a.jeq(uint32(EtherTypeIPv6), "ip6", "")
		a.jump("reject")
	case RawIPv4:
		a.emit(bpf.LoadConstant{Dst: bpf.RegX, Val: 0})
		a.jump("ip4")
	case RawIPv6:
		a.emit(bpf.LoadConstant{Dst: bpf.RegX, Val: 0})
		a.jump("ip6")
	case Raw:
		a.emit(bpf.LoadConstant{Dst: bpf.RegX, Val: 0})
		a.emit(bpf.LoadAbsolute{Off: 0, Size: 1})
		a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4})
		a.jeq(4, "ip4", "")
		a.jeq(6, "ip6", "")
		a.jump("reject")
	case Null, Loop:
		a.emit(bpf.LoadConstant{Dst: bpf.RegX, Val: loopHeaderLen})
		a.emit(bpf.LoadAbsolute{Off: 0, Size: 4})
		fams := func(v []uint32) []uint32 {
			if lt == Loop {
				return v
			}
			out := slices.Clone(v)
			for _, f := range v {
				out = append(out, bitsSwap32(f))
			}
			return out
		}
		for _, f := range fams([]uint32{afInet}) {
			a.jeq(f, "ip4", "")
		}
		for _, f := range fams([]uint32{afInet6Linux, afInet6BSD, afInet6FreeBSD, afInet6Darwin}) {
			a.jeq(f, "ip6", "")
		}
		a.jump("reject")
	default:
		return fmt.Errorf("capture: filter for %v: %w", lt, ErrUnsupportedLinkType)
	}
	return nil
}

func bitsSwap32(v uint32) uint32 {
	return v>>24 | (v>>8)&0xff00 | (v<<8)&0xff0000 | v<<24
}

// proto checks A (the IP protocol) against the filter's protocol, or against the protocols
// that have ports when only ports are given.
func (a *asm) proto(f Filter, reject string) {
	switch {
	case f.Protocol != 0:
		a.jeq(uint32(f.Protocol), "", reject)
	case len(f.Ports) > 0:
		ok := a.uniq("hasports")
		a.jeq(uint32(ProtoTCP), ok, "")
		a.jeq(uint32(ProtoUDP), ok, "")
		a.jeq(uint32(ProtoSCTP), ok, reject)
		a.label(ok)
	}
}

// ports checks the source and destination ports at X+off.
func (a *asm) ports(f Filter, off uint32, accept, reject string) {
	for _, o := range []uint32{off, off + 2} {
		a.emit(bpf.LoadIndirect{Off: o, Size: 2})
		for _, p := range f.Ports {
			a.jeq(uint32(p), accept, "")
		}
	}
	a.jump(reject)
}

// asm is a tiny assembler with forward labels. A jump target "" means the next instruction.
type asm struct {
	ins    []asmIns
	labels map[string]int
	n      int
}

// uniq returns a fresh label name.
func (a *asm) uniq(prefix string) string {
	a.n++
	return fmt.Sprintf("%s.%d", prefix, a.n)
}

type asmIns struct {
	in     bpf.Instruction
	jt, jf string // JumpIf targets
	ja     string // Jump target
}

func (a *asm) emit(in bpf.Instruction) { a.ins = append(a.ins, asmIns{in: in}) }

func (a *asm) jeq(v uint32, jt, jf string) {
	a.ins = append(a.ins, asmIns{in: bpf.JumpIf{Cond: bpf.JumpEqual, Val: v}, jt: jt, jf: jf})
}

func (a *asm) jset(v uint32, jt, jf string) {
	a.ins = append(a.ins, asmIns{in: bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: v}, jt: jt, jf: jf})
}

func (a *asm) jump(target string) { a.ins = append(a.ins, asmIns{in: bpf.Jump{}, ja: target}) }

func (a *asm) label(name string) {
	if a.labels == nil {
		a.labels = map[string]int{}
	}
	a.labels[name] = len(a.ins)
}

func (a *asm) resolve() ([]bpf.Instruction, error) {
	out := make([]bpf.Instruction, len(a.ins))
	target := func(i int, name string) (uint32, error) {
		if name == "" {
			return 0, nil
		}
		to, ok := a.labels[name]
		if !ok {
			return 0, fmt.Errorf("capture: filter: undefined label %q: %w", name, ErrFilter)
		}
		if to <= i {
			return 0, fmt.Errorf("capture: filter: backward jump to %q: %w", name, ErrFilter)
		}
		return uint32(to - i - 1), nil
	}
	for i, x := range a.ins {
		switch in := x.in.(type) {
		case bpf.JumpIf:
			jt, err := target(i, x.jt)
			if err != nil {
				return nil, err
			}
			jf, err := target(i, x.jf)
			if err != nil {
				return nil, err
			}
			if jt > 255 || jf > 255 {
				return nil, fmt.Errorf("capture: filter too long for an 8-bit jump: %w", ErrFilter)
			}
			in.SkipTrue, in.SkipFalse = uint8(jt), uint8(jf)
			out[i] = in
		case bpf.Jump:
			k, err := target(i, x.ja)
			if err != nil {
				return nil, err
			}
			in.Skip = k
			out[i] = in
		default:
			out[i] = x.in
		}
	}
	return out, nil
}
