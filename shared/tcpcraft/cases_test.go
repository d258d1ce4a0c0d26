package tcpcraft

import (
	"encoding/binary"
	"net/netip"
)

var (
	cAddr  = netip.MustParseAddr("10.199.1.2")
	sAddr  = netip.MustParseAddr("10.199.2.2")
	cAddr6 = netip.MustParseAddr("fd99:1::2")
	sAddr6 = netip.MustParseAddr("fd99:2::2")
)

func payload(n int, first byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i)
	}
	if n > 0 {
		p[0] = first
	}
	return p
}

func mpCapable() Option {
	return Option{Kind: OptMPTCP, Data: []byte{0x00, 0x81, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08}}
}

func mpData(dsn uint64) Option {
	d := binary.BigEndian.AppendUint64(nil, dsn)
	d = binary.BigEndian.AppendUint32(d, 1)
	d = binary.BigEndian.AppendUint16(d, 512)
	return Option{Kind: 31, Data: d}
}

// craftCases are one segment of every kind tcpexpose crafts, plus malformed ones.
func craftCases() []struct {
	name string
	seg  Segment
	// gopacket is false for segments gopacket cannot serialize identically (malformed ones).
	gopacket bool
} {
	probeOpts := []Option{MSS(1460), SACKPermitted(), Timestamps(13572468, 0), NOP(), WindowScale(7),
		{Kind: 253, Data: []byte{0x12, 0x34, 0xca, 0xfe}}, EOL()}
	origSyn := []Option{MSS(512), Timestamps(13572468, 0), SACKPermitted(), WindowScale(2)}
	return []struct {
		name     string
		seg      Segment
		gopacket bool
	}{
		{"probe_syn", Segment{Src: cAddr, Dst: sAddr, TTL: 64, ID: 1, IPFlags: IPFlagDF, SrcPort: 40001, DstPort: 34343,
			Seq: 252001, Flags: FlagSYN, Window: 8064, Options: probeOpts}, true},
		{"syn", Segment{Src: cAddr, Dst: sAddr, TTL: 64, ID: 2, SrcPort: 40002, DstPort: 34343,
			Seq: 252001, Flags: FlagSYN, Window: 8064, Options: origSyn}, true},
		{"syn_opt", Segment{Src: cAddr, Dst: sAddr, TTL: 64, ID: 3, SrcPort: 40003, DstPort: 34343,
			Seq: 252001, Flags: FlagSYN, Window: 8064, Options: append(append([]Option{}, origSyn...), mpCapable())}, true},
		{"syn_opt2", Segment{Src: cAddr, Dst: sAddr, TTL: 64, ID: 4, SrcPort: 40004, DstPort: 34343,
			Seq: 252001, Flags: FlagSYN, Window: 8064, Options: []Option{MSS(512), NOP(), NOP(), Timestamps(13572468, 0),
				NOP(), NOP(), SACKPermitted(), NOP(), WindowScale(2), NOP(), NOP(), mpCapable()}}, true},
		{"synack", Segment{Src: sAddr, Dst: cAddr, TTL: 64, SrcPort: 34343, DstPort: 40001, Seq: 0xabcdef, Ack: 252002,
			Flags: FlagSYN | FlagACK, Window: 32768, Options: []Option{MSS(512), SACKPermitted(), Timestamps(12345678, 13572468),
				NOP(), WindowScale(6), {Kind: 253, Data: []byte{0x12, 0x34, 0xca, 0xfe}}}}, true},
		{"data_reflect", Segment{Src: cAddr, Dst: sAddr, TTL: 64, ID: 5, IPFlags: IPFlagDF, SrcPort: 40001, DstPort: 34343,
			Seq: 252002, Ack: 0xabcdf0, Flags: FlagACK | FlagPSH, Window: 8064,
			Options: []Option{NOP(), NOP(), Timestamps(13572469, 12345678), {Kind: 253, Data: []byte{0x12, 0x34, 0xca, 0xfe}}, NOP(), NOP()},
			Payload: payload(200, 0xa1)}, true},
		{"data_mpdata", Segment{Src: cAddr, Dst: sAddr, TTL: 64, ID: 6, SrcPort: 40005, DstPort: 34343,
			Seq: 252002, Ack: 0xabcdf0, Flags: FlagACK, Window: 8064, Options: []Option{mpData(0x1122334455667788)},
			Payload: payload(512, 0xa1)}, true},
		{"ack_mpack", Segment{Src: sAddr, Dst: cAddr, TTL: 64, SrcPort: 34343, DstPort: 40005,
			Seq: 0xabcdf0, Ack: 252514, Flags: FlagACK, Window: 32768,
			Options: []Option{NOP(), NOP(), {Kind: 32, Data: binary.BigEndian.AppendUint64(nil, 0x1122334455667988)}}}, true},
		{"fin", Segment{Src: cAddr, Dst: sAddr, TTL: 64, ID: 7, SrcPort: 40001, DstPort: 34343,
			Seq: 252514, Ack: 0xabcdf0, Flags: FlagFIN | FlagACK, Window: 8064}, true},
		{"rst", Segment{Src: cAddr, Dst: sAddr, TTL: 64, ID: 8, SrcPort: 40001, DstPort: 34343,
			Seq: 252515, Flags: FlagRST, Window: 0}, true},
		{"ecn_syn", Segment{Src: cAddr, Dst: sAddr, TTL: 64, TOS: 0x02, ID: 9, SrcPort: 40006, DstPort: 80,
			Seq: 252001, Flags: FlagSYN | FlagECE | FlagCWR, Window: 8064, Options: []Option{MSS(1460)}}, true},
		{"sack", Segment{Src: cAddr, Dst: sAddr, TTL: 64, ID: 10, SrcPort: 40001, DstPort: 34343,
			Seq: 252002, Ack: 0xabcdf0 + 1000, Flags: FlagACK, Window: 8064,
			Options: []Option{NOP(), NOP(), SACK([2]uint32{0xabcdf0 + 2000, 0xabcdf0 + 3000})}}, true},
		{"v6_syn", Segment{Src: cAddr6, Dst: sAddr6, TTL: 64, FlowLabel: 0x12345, SrcPort: 40007, DstPort: 34343,
			Seq: 252001, Flags: FlagSYN, Window: 8064, Options: probeOpts}, true},
		{"v6_data", Segment{Src: cAddr6, Dst: sAddr6, TTL: 63, TOS: 0xb8, SrcPort: 40007, DstPort: 34343,
			Seq: 252002, Ack: 0xabcdf0, Flags: FlagACK | FlagPSH, Window: 8064, Payload: payload(100, 0xb2)}, true},
		{"urg", Segment{Src: cAddr, Dst: sAddr, TTL: 1, ID: 11, SrcPort: 40001, DstPort: 34343,
			Seq: 252002, Ack: 1, Flags: FlagACK | FlagURG, Window: 8064, Urgent: 3, Payload: []byte("abc")}, true},
		// Malformed on purpose (byte-exact goldens by hand in golden_test.go).
		{"bad_optlen", Segment{Src: cAddr, Dst: sAddr, TTL: 64, ID: 12, SrcPort: 40001, DstPort: 34343,
			Seq: 252001, Flags: FlagSYN, Window: 8064, Options: []Option{MSS(512), {Kind: 253, Length: 1}}}, false},
		{"bad_cksum", Segment{Src: cAddr, Dst: sAddr, TTL: 64, ID: 13, SrcPort: 40001, DstPort: 34343,
			Seq: 252001, Flags: FlagSYN, Window: 8064, SetTCPChecksum: true, TCPChecksum: 0xdead}, false},
		{"big_doff", Segment{Src: cAddr, Dst: sAddr, TTL: 64, ID: 14, SrcPort: 40001, DstPort: 34343,
			Seq: 252001, Flags: FlagSYN | FlagReserved&0x800, Window: 8064, DataOffset: 7, Options: []Option{MSS(512)}}, false},
	}
}
