package tcpcraft

import (
	"net/netip"

	"golang.org/x/net/bpf"
)

// DstPortFilter is a classic BPF program for cooked live captures (capture.KernelCooked: the
// kernel runs it on the network layer with the EtherType in its metadata) accepting TCP
// segments to port, and to addr when addr is valid and specified, of IPv4 (first fragments)
// or IPv6 (TCP directly after the fixed header). Unlike a "port" filter it skips the
// segments a responder sends from that port.
func DstPortFilter(addr netip.Addr, port uint16, snaplen uint32) []bpf.Instruction {
	const (
		etIPv4 = 0x0800
		etIPv6 = 0x86dd
	)
	var v4, v6 []bpf.Instruction
	addr = addr.Unmap()
	useAddr := addr.IsValid() && !addr.IsUnspecified()
	// Instructions are assembled back to front so that jump offsets to accept/reject are known:
	// the program ends with "reject: ret 0; accept: ret snaplen".
	prog := []bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtProto},
	}
	// IPv4 block.
	v4 = append(v4,
		bpf.LoadAbsolute{Off: 9, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 6, SkipTrue: 0xff}, // patched: to reject
		bpf.LoadAbsolute{Off: 6, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x1fff, SkipTrue: 0xff},
	)
	if useAddr && addr.Is4() {
		a := addr.As4()
		v4 = append(v4,
			bpf.LoadAbsolute{Off: 16, Size: 4},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]), SkipTrue: 0xff},
		)
	}
	v4 = append(v4,
		bpf.LoadMemShift{Off: 0},
		bpf.LoadIndirect{Off: 2, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(port), SkipTrue: 0xff},
		bpf.Jump{Skip: 0xfe}, // patched: to accept
	)
	v6 = append(v6,
		bpf.LoadAbsolute{Off: 6, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 6, SkipTrue: 0xff},
	)
	if useAddr && addr.Is6() {
		a := addr.As16()
		for i := 0; i < 16; i += 4 {
			v6 = append(v6,
				bpf.LoadAbsolute{Off: uint32(24 + i), Size: 4},
				bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(a[i])<<24 | uint32(a[i+1])<<16 | uint32(a[i+2])<<8 | uint32(a[i+3]), SkipTrue: 0xff},
			)
		}
	}
	v6 = append(v6,
		bpf.LoadAbsolute{Off: 42, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(port), SkipTrue: 0xff},
		bpf.Jump{Skip: 0xfe},
	)
	// Dispatch: jeq IPv4 -> v4 (next), jeq IPv6 -> v6, else reject.
	prog = append(prog,
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: etIPv4, SkipTrue: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: etIPv6, SkipTrue: uint8(1 + len(v4))},
		bpf.Jump{Skip: uint32(len(v4) + len(v6))}, // to reject
	)
	prog = append(prog, v4...)
	prog = append(prog, v6...)
	reject := len(prog)
	prog = append(prog, bpf.RetConstant{Val: 0}, bpf.RetConstant{Val: snaplen})
	accept := reject + 1
	for i, in := range prog {
		switch j := in.(type) {
		case bpf.JumpIf:
			if j.SkipTrue == 0xff {
				j.SkipTrue = uint8(reject - i - 1)
				prog[i] = j
			}
		case bpf.Jump:
			if j.Skip == 0xfe {
				j.Skip = uint32(accept - i - 1)
				prog[i] = j
			}
		}
	}
	return prog
}
