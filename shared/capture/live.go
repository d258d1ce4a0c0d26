package capture

import (
	"errors"
	"time"

	"golang.org/x/net/bpf"
)

// Sentinel errors of live capture.
var (
	// ErrTimeout is returned by (*Live).Next when LiveOptions.Timeout passes without a packet;
	// the handle stays usable.
	ErrTimeout = errors.New("capture: live capture timeout")
	// ErrClosed is returned by (*Live).Next after Close.
	ErrClosed = errors.New("capture: live capture closed")
)

// KernelCooked is the pseudo link type of filters for cooked (LinuxSLL2) live captures: the
// kernel runs such filters on the network layer and takes the EtherType from the packet's
// metadata (skb->protocol). It never appears on a Packet.
const KernelCooked LinkType = 0xffff

// LiveOptions configures OpenLive.
type LiveOptions struct {
	// Snaplen is the number of bytes kept per packet (≤ 0: 262144).
	Snaplen int
	// Promisc puts the interface into promiscuous mode for the handle's lifetime (ignored for
	// "any", as there is no single interface).
	Promisc bool
	// Match, when set, is compiled for the handle's kernel view and attached.
	Match *Filter
	// Filter is a raw classic BPF program attached instead of Match. It runs on what the
	// kernel sees: frames of the handle's LinkType, except on cooked handles (LinkType
	// LinuxSLL2), where it must be compiled for KernelCooked. Return values above Snaplen
	// are lowered to Snaplen.
	Filter []bpf.Instruction
	// Timeout bounds how long Next waits for a packet before returning ErrTimeout
	// (0: wait until a packet arrives or Close).
	Timeout time.Duration
	// BlockTimeout is how soon the kernel hands a partly filled ring block to the reader
	// (default 10 ms): the upper bound of the delivery latency, not of timestamp accuracy.
	BlockTimeout time.Duration
	// BufferSize is the size of the receive ring (default 8 MiB; at least 32 blocks of
	// 64 KiB, or of the power of two above the snaplen).
	BufferSize int
	// Cooked captures LinuxSLL2 frames even on an Ethernet or raw-IP interface. "any" and
	// interfaces of other types (tunnels, PPP, …) are always cooked.
	Cooked bool
}

// LiveStats are the kernel's packet counters since the previous call to Stats.
type LiveStats struct {
	Packets uint64 // packets that passed the filter
	Drops   uint64 // packets dropped because the ring was full
}
