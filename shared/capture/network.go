package capture

import (
	"encoding/binary"
	"fmt"
)

// EtherType values NetworkLayer reports.
const (
	EtherTypeIPv4  uint16 = 0x0800
	EtherTypeARP   uint16 = 0x0806
	EtherTypeIPv6  uint16 = 0x86DD
	EtherTypeVLAN  uint16 = 0x8100 // IEEE 802.1Q C-tag
	EtherTypeQinQ  uint16 = 0x88A8 // IEEE 802.1ad S-tag
	EtherTypeQinQ1 uint16 = 0x9100 // pre-standard double tagging
)

// Link header lengths.
const (
	ethernetHeaderLen  = 14
	vlanTagLen         = 4
	linuxSLLHeaderLen  = 16
	linuxSLL2HeaderLen = 20
	loopHeaderLen      = 4
	// maxVLANTags bounds the tag stack walked, so that a frame of nothing but tags costs
	// bounded work; real networks use one or two.
	maxVLANTags = 8
)

// Address families in NULL/LOOP headers. AF_INET is 2 everywhere; AF_INET6 differs per OS.
const (
	afInet         = 2
	afInet6Linux   = 10
	afInet6BSD     = 24 // NetBSD, OpenBSD, BSD/OS
	afInet6FreeBSD = 28
	afInet6Darwin  = 30
)

// NetworkLayer strips the link header of frame (of link type lt) and returns the network-layer
// packet, sharing frame's memory, with its EtherType (EtherTypeIPv4, EtherTypeIPv6, or whatever
// the link header names, such as EtherTypeARP). 802.1Q/802.1ad VLAN tags are skipped in
// Ethernet and Linux cooked frames. NULL headers are accepted in either byte order, since they
// carry the capturing host's order. Errors wrap ErrUnsupportedLinkType, ErrShortFrame or
// ErrUnknownNetwork.
func NetworkLayer(lt LinkType, frame []byte) (ipPacket []byte, etherType uint16, err error) {
	switch lt {
	case Ethernet:
		if len(frame) < ethernetHeaderLen {
			return nil, 0, shortFrame(lt, len(frame), ethernetHeaderLen)
		}
		et := binary.BigEndian.Uint16(frame[12:14])
		if et < 0x0600 {
			return ieee8023(frame)
		}
		return skipVLAN(lt, frame[ethernetHeaderLen:], et)
	case RawIPv4:
		if len(frame) == 0 {
			return nil, 0, shortFrame(lt, 0, 1)
		}
		return frame, EtherTypeIPv4, nil
	case RawIPv6:
		if len(frame) == 0 {
			return nil, 0, shortFrame(lt, 0, 1)
		}
		return frame, EtherTypeIPv6, nil
	case Raw:
		if len(frame) == 0 {
			return nil, 0, shortFrame(lt, 0, 1)
		}
		switch frame[0] >> 4 {
		case 4:
			return frame, EtherTypeIPv4, nil
		case 6:
			return frame, EtherTypeIPv6, nil
		}
		return nil, 0, fmt.Errorf("capture: %v frame with IP version %d: %w", lt, frame[0]>>4, ErrUnknownNetwork)
	case LinuxSLL:
		if len(frame) < linuxSLLHeaderLen {
			return nil, 0, shortFrame(lt, len(frame), linuxSLLHeaderLen)
		}
		return skipVLAN(lt, frame[linuxSLLHeaderLen:], binary.BigEndian.Uint16(frame[14:16]))
	case LinuxSLL2:
		if len(frame) < linuxSLL2HeaderLen {
			return nil, 0, shortFrame(lt, len(frame), linuxSLL2HeaderLen)
		}
		return skipVLAN(lt, frame[linuxSLL2HeaderLen:], binary.BigEndian.Uint16(frame[0:2]))
	case Null, Loop:
		if len(frame) < loopHeaderLen {
			return nil, 0, shortFrame(lt, len(frame), loopHeaderLen)
		}
		fam := binary.BigEndian.Uint32(frame[:4])
		if lt == Null && fam > 0xFFFF {
			// Written in little-endian host order: the family sits in the first bytes.
			fam = binary.LittleEndian.Uint32(frame[:4])
		}
		switch fam {
		case afInet:
			return frame[loopHeaderLen:], EtherTypeIPv4, nil
		case afInet6Linux, afInet6BSD, afInet6FreeBSD, afInet6Darwin:
			return frame[loopHeaderLen:], EtherTypeIPv6, nil
		}
		return nil, 0, fmt.Errorf("capture: %v frame with address family %d: %w", lt, fam, ErrUnknownNetwork)
	}
	return nil, 0, fmt.Errorf("capture: %v: %w", lt, ErrUnsupportedLinkType)
}

// skipVLAN walks 802.1Q/802.1ad tags: each is TCI(2) + next EtherType(2).
func skipVLAN(lt LinkType, payload []byte, et uint16) ([]byte, uint16, error) {
	for i := 0; et == EtherTypeVLAN || et == EtherTypeQinQ || et == EtherTypeQinQ1; i++ {
		if i == maxVLANTags {
			return nil, 0, fmt.Errorf("capture: %v frame with more than %d VLAN tags: %w", lt, maxVLANTags, ErrUnknownNetwork)
		}
		if len(payload) < vlanTagLen {
			return nil, 0, fmt.Errorf("capture: %v VLAN tag needs %d bytes, have %d: %w", lt, vlanTagLen, len(payload), ErrShortFrame)
		}
		et = binary.BigEndian.Uint16(payload[2:4])
		payload = payload[vlanTagLen:]
	}
	return payload, et, nil
}

// ieee8023 handles an 802.3 length-field frame: LLC/SNAP with an EtherType-encapsulating OUI
// (00-00-00, RFC 1042) yields that EtherType; other LLC payloads are not network packets here.
func ieee8023(frame []byte) ([]byte, uint16, error) {
	const snapLen = 8 // DSAP, SSAP, control, OUI(3), EtherType(2)
	p := frame[ethernetHeaderLen:]
	if len(p) >= snapLen && p[0] == 0xAA && p[1] == 0xAA && p[2] == 0x03 && p[3] == 0 && p[4] == 0 && p[5] == 0 {
		return skipVLAN(Ethernet, p[snapLen:], binary.BigEndian.Uint16(p[6:8]))
	}
	return nil, 0, fmt.Errorf("capture: 802.3 frame without RFC 1042 SNAP header: %w", ErrUnknownNetwork)
}

func shortFrame(lt LinkType, have, need int) error {
	return fmt.Errorf("capture: %v frame needs %d bytes, have %d: %w", lt, need, have, ErrShortFrame)
}
