package capture

import (
	"errors"
	"fmt"
)

// LinkType is a pcap/pcapng LINKTYPE_ value (https://www.tcpdump.org/linktypes.html).
type LinkType uint16

// Link types this package decodes.
const (
	Null      LinkType = 0   // LINKTYPE_NULL: BSD loopback, 4-byte address family in the capturing host's byte order
	Ethernet  LinkType = 1   // LINKTYPE_ETHERNET (DLT_EN10MB)
	Raw       LinkType = 101 // LINKTYPE_RAW: bare IPv4 or IPv6, version from the first nibble
	Loop      LinkType = 108 // LINKTYPE_LOOP: OpenBSD loopback, 4-byte address family in network byte order
	LinuxSLL  LinkType = 113 // LINKTYPE_LINUX_SLL: Linux "cooked" v1, 16-byte header
	RawIPv4   LinkType = 228 // LINKTYPE_IPV4
	RawIPv6   LinkType = 229 // LINKTYPE_IPV6
	LinuxSLL2 LinkType = 276 // LINKTYPE_LINUX_SLL2: Linux "cooked" v2 (tcpdump -i any), 20-byte header
)

// Sentinel errors callers branch on.
var (
	// ErrUnsupportedLinkType reports a link type this package cannot strip.
	ErrUnsupportedLinkType = errors.New("unsupported link type")
	// ErrShortFrame reports a frame shorter than its link header says it must be.
	ErrShortFrame = errors.New("frame too short for its link header")
	// ErrUnknownNetwork reports a frame whose link header names no network protocol this
	// package can identify (a raw frame that is not IPv4/IPv6, an unknown loopback family).
	ErrUnknownNetwork = errors.New("unknown network protocol")
)

// Supported reports whether NetworkLayer can strip frames of this link type.
func (lt LinkType) Supported() bool {
	switch lt {
	case Null, Ethernet, Raw, Loop, LinuxSLL, RawIPv4, RawIPv6, LinuxSLL2:
		return true
	}
	return false
}

// String returns the LINKTYPE_ name without its prefix, or the number for other types.
func (lt LinkType) String() string {
	switch lt {
	case Null:
		return "NULL"
	case Ethernet:
		return "ETHERNET"
	case Raw:
		return "RAW"
	case Loop:
		return "LOOP"
	case LinuxSLL:
		return "LINUX_SLL"
	case RawIPv4:
		return "IPV4"
	case RawIPv6:
		return "IPV6"
	case LinuxSLL2:
		return "LINUX_SLL2"
	case KernelCooked:
		return "KERNEL_COOKED"
	}
	return fmt.Sprintf("LINKTYPE(%d)", uint16(lt))
}
