package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func TestNetworkLayer(t *testing.T) {
	ip4 := []byte{0x45, 0, 0, 20, 1, 2, 3, 4, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2}
	ip6 := append([]byte{0x60, 0, 0, 0, 0, 0, 59, 64}, make([]byte, 32)...)
	eth := func(et uint16, payload ...[]byte) []byte {
		b := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
		b = binary.BigEndian.AppendUint16(b, et)
		for _, p := range payload {
			b = append(b, p...)
		}
		return b
	}
	tag := func(vid, et uint16) []byte {
		return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, vid), et)
	}
	sll := func(proto uint16, payload ...[]byte) []byte {
		b := []byte{0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0}
		b = binary.BigEndian.AppendUint16(b, proto)
		for _, p := range payload {
			b = append(b, p...)
		}
		return b
	}
	sll2 := func(proto uint16, payload ...[]byte) []byte {
		b := binary.BigEndian.AppendUint16(nil, proto)
		b = append(b, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0)
		for _, p := range payload {
			b = append(b, p...)
		}
		return b
	}
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	for _, tc := range []struct {
		name    string
		lt      LinkType
		frame   []byte
		want    []byte
		wantET  uint16
		wantErr error
	}{
		{"ethernet ipv4", Ethernet, eth(EtherTypeIPv4, ip4), ip4, EtherTypeIPv4, nil},
		{"ethernet ipv6", Ethernet, eth(EtherTypeIPv6, ip6), ip6, EtherTypeIPv6, nil},
		{"ethernet arp", Ethernet, eth(EtherTypeARP, []byte{0, 1}), []byte{0, 1}, EtherTypeARP, nil},
		{"802.1Q", Ethernet, eth(EtherTypeVLAN, tag(100, EtherTypeIPv4), ip4), ip4, EtherTypeIPv4, nil},
		{"QinQ 88a8+8100", Ethernet, eth(EtherTypeQinQ, tag(10, EtherTypeVLAN), tag(20, EtherTypeIPv6), ip6), ip6, EtherTypeIPv6, nil},
		{"QinQ 9100", Ethernet, eth(EtherTypeQinQ1, tag(10, EtherTypeVLAN), tag(20, EtherTypeIPv4), ip4), ip4, EtherTypeIPv4, nil},
		{"802.3 SNAP", Ethernet, eth(uint16(8+len(ip4)), []byte{0xAA, 0xAA, 3, 0, 0, 0, 0x08, 0x00}, ip4), ip4, EtherTypeIPv4, nil},
		{"802.3 LLC", Ethernet, eth(40, []byte{0x42, 0x42, 3, 0, 0, 0, 0, 0}), nil, 0, ErrUnknownNetwork},
		{"ethernet short", Ethernet, eth(EtherTypeIPv4)[:13], nil, 0, ErrShortFrame},
		{"ethernet empty payload", Ethernet, eth(EtherTypeIPv4), []byte{}, EtherTypeIPv4, nil},
		{"vlan short", Ethernet, eth(EtherTypeVLAN, []byte{0, 100, 8}), nil, 0, ErrShortFrame},
		{"vlan bomb", Ethernet, eth(EtherTypeVLAN, bytes.Repeat(tag(1, EtherTypeVLAN), 20)), nil, 0, ErrUnknownNetwork},
		{"raw ipv4", Raw, ip4, ip4, EtherTypeIPv4, nil},
		{"raw ipv6", Raw, ip6, ip6, EtherTypeIPv6, nil},
		{"raw version 5", Raw, []byte{0x50}, nil, 0, ErrUnknownNetwork},
		{"raw empty", Raw, nil, nil, 0, ErrShortFrame},
		{"ipv4 linktype", RawIPv4, ip4, ip4, EtherTypeIPv4, nil},
		{"ipv6 linktype", RawIPv6, ip6, ip6, EtherTypeIPv6, nil},
		{"ipv4 empty", RawIPv4, nil, nil, 0, ErrShortFrame},
		{"ipv6 empty", RawIPv6, []byte{}, nil, 0, ErrShortFrame},
		{"sll ipv4", LinuxSLL, sll(EtherTypeIPv4, ip4), ip4, EtherTypeIPv4, nil},
		{"sll vlan", LinuxSLL, sll(EtherTypeVLAN, tag(7, EtherTypeIPv6), ip6), ip6, EtherTypeIPv6, nil},
		{"sll short", LinuxSLL, sll(EtherTypeIPv4)[:15], nil, 0, ErrShortFrame},
		{"sll2 ipv6", LinuxSLL2, sll2(EtherTypeIPv6, ip6), ip6, EtherTypeIPv6, nil},
		{"sll2 vlan", LinuxSLL2, sll2(EtherTypeVLAN, tag(7, EtherTypeIPv4), ip4), ip4, EtherTypeIPv4, nil},
		{"sll2 short", LinuxSLL2, sll2(EtherTypeIPv4)[:19], nil, 0, ErrShortFrame},
		{"null le inet", Null, cat([]byte{2, 0, 0, 0}, ip4), ip4, EtherTypeIPv4, nil},
		{"null be inet", Null, cat([]byte{0, 0, 0, 2}, ip4), ip4, EtherTypeIPv4, nil},
		{"null le inet6 darwin", Null, cat([]byte{30, 0, 0, 0}, ip6), ip6, EtherTypeIPv6, nil},
		{"null be inet6 freebsd", Null, cat([]byte{0, 0, 0, 28}, ip6), ip6, EtherTypeIPv6, nil},
		{"null le inet6 bsd", Null, cat([]byte{24, 0, 0, 0}, ip6), ip6, EtherTypeIPv6, nil},
		{"null inet6 linux", Null, cat([]byte{10, 0, 0, 0}, ip6), ip6, EtherTypeIPv6, nil},
		{"null unknown", Null, []byte{7, 0, 0, 0}, nil, 0, ErrUnknownNetwork},
		{"null short", Null, []byte{2, 0, 0}, nil, 0, ErrShortFrame},
		{"loop inet", Loop, cat([]byte{0, 0, 0, 2}, ip4), ip4, EtherTypeIPv4, nil},
		{"loop inet6", Loop, cat([]byte{0, 0, 0, 24}, ip6), ip6, EtherTypeIPv6, nil},
		{"loop little-endian is wrong", Loop, cat([]byte{2, 0, 0, 0}, ip4), nil, 0, ErrUnknownNetwork},
		{"unsupported", LinkType(127), ip4, nil, 0, ErrUnsupportedLinkType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, et, err := NetworkLayer(tc.lt, tc.frame)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if et != tc.wantET || !bytes.Equal(got, tc.want) {
				t.Fatalf("got %x (ethertype %#04x), want %x (%#04x)", got, et, tc.want, tc.wantET)
			}
			// Zero copy: the result aliases the frame's tail.
			if len(got) > 0 && &got[len(got)-1] != &tc.frame[len(tc.frame)-1] {
				t.Fatal("result does not alias the frame")
			}
		})
	}
}

func TestLinkTypeString(t *testing.T) {
	for lt, want := range map[LinkType]string{Null: "NULL", Ethernet: "ETHERNET", Raw: "RAW", Loop: "LOOP",
		LinuxSLL: "LINUX_SLL", RawIPv4: "IPV4", RawIPv6: "IPV6", LinuxSLL2: "LINUX_SLL2", 127: "LINKTYPE(127)"} {
		if lt.String() != want {
			t.Errorf("%d: %q, want %q", uint16(lt), lt.String(), want)
		}
		if lt.Supported() != (lt != 127) {
			t.Errorf("%v: Supported %v", lt, lt.Supported())
		}
	}
}

// TestNetworkLayerCaptures strips every packet of the real captures down to IP.
func TestNetworkLayerCaptures(t *testing.T) {
	for _, f := range []string{"testdata/spp-ping-ref.pcap", "testdata/spp-udpecho-mon-plus100s.pcapng", "testdata/twamp-owamp-ipv6.pcap"} {
		r, err := Open(f)
		if err != nil {
			t.Fatal(err)
		}
		n4, n6 := 0, 0
		for {
			p, err := r.Next()
			if err != nil {
				break
			}
			ip, et, err := NetworkLayer(p.LinkType, p.Data)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			switch {
			case et == EtherTypeIPv4 && ip[0]>>4 == 4:
				n4++
			case et == EtherTypeIPv6 && ip[0]>>4 == 6:
				n6++
			}
		}
		r.Close()
		if n4+n6 == 0 {
			t.Fatalf("%s: no IP packets", f)
		}
	}
}
