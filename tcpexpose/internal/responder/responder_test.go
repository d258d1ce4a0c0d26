package responder

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"

	"github.com/probekit/probekit/shared/tcpcraft"
	"github.com/probekit/probekit/tcpexpose/internal/wire"
)

var (
	cli  = netip.MustParseAddr("10.199.1.2")
	srv  = netip.MustParseAddr("10.199.2.2")
	cli6 = netip.MustParseAddr("fd99:1::2")
	srv6 = netip.MustParseAddr("fd99:2::2")
)

func seg(flags uint16, seq, ack uint32, opts []tcpcraft.Option, payload []byte) *tcpcraft.Segment {
	return &tcpcraft.Segment{Src: cli, Dst: srv, TTL: 64, SrcPort: 40001, DstPort: wire.DefaultPort, Seq: seq, Ack: ack,
		Flags: flags, Window: wire.ClientWindow, Options: opts, Payload: payload}
}

func reflectPayload(n int) []byte {
	p := make([]byte, n)
	p[0] = wire.MarkerReflect
	return p
}

var unknown253 = tcpcraft.Option{Kind: 253, Data: []byte{0x12, 0x34, 0xca, 0xfe}}

func TestReply(t *testing.T) {
	r := New(DefaultParams(), netip.Addr{}, wire.DefaultPort)
	out := make([]byte, 0, 2048)
	origSyn := []tcpcraft.Option{tcpcraft.MSS(512), tcpcraft.Timestamps(13572468, 0), tcpcraft.SACKPermitted(), tcpcraft.WindowScale(2)}
	for _, c := range []struct {
		name string
		in   *tcpcraft.Segment
		kind Kind
		// The expected reply as tcpdump -S -v -n prints it (TCP line), by hand from reference §3.
		want string
	}{
		{"syn", seg(tcpcraft.FlagSYN, 252001, 0, origSyn, nil), SynAck,
			"10.199.2.2.34343 > 10.199.1.2.40001: Flags [S.], cksum 0x%s (correct), seq 11259375, ack 252002, win 32768, options [mss 512,sackOK,TS val 12345678 ecr 13572468,nop,wscale 6], length 0"},
		{"syn unknown echoed", seg(tcpcraft.FlagSYN, 252001, 0, append(append([]tcpcraft.Option{}, origSyn...), wire.MPCapable(0x0102030405060708), unknown253), nil), SynAck,
			"10.199.2.2.34343 > 10.199.1.2.40001: Flags [S.], cksum 0x%s (correct), seq 11259375, ack 252002, win 32768, options [mss 512,sackOK,TS val 12345678 ecr 13572468,nop,wscale 6,mptcp 12 capable v0 csum {0x102030405060708},unknown-253 0x1234cafe,eol], length 0"},
		{"syn mss only", seg(tcpcraft.FlagSYN, 7, 0, []tcpcraft.Option{tcpcraft.MSS(1460)}, nil), SynAck,
			"10.199.2.2.34343 > 10.199.1.2.40001: Flags [S.], cksum 0x%s (correct), seq 11259375, ack 8, win 32768, options [mss 512], length 0"},
		{"syn ecn", seg(tcpcraft.FlagSYN|tcpcraft.FlagECE|tcpcraft.FlagCWR, 7, 0, nil, nil), SynAck,
			"10.199.2.2.34343 > 10.199.1.2.40001: Flags [S.E], cksum 0x%s (correct), seq 11259375, ack 8, win 32768, options [mss 512], length 0"},
		{"data", seg(tcpcraft.FlagACK, 252002, 0xabcdf0, nil, make([]byte, 100)), Ack,
			"10.199.2.2.34343 > 10.199.1.2.40001: Flags [.], cksum 0x%s (correct), ack 252102, win 32768, length 0"},
		{"data ts", seg(tcpcraft.FlagACK|tcpcraft.FlagPSH, 252002, 0xabcdf0, []tcpcraft.Option{tcpcraft.NOP(), tcpcraft.NOP(), tcpcraft.Timestamps(13572469, 12345678)}, make([]byte, 100)), Ack,
			"10.199.2.2.34343 > 10.199.1.2.40001: Flags [.], cksum 0x%s (correct), ack 252102, win 32768, options [nop,nop,TS val 12345678 ecr 13572469], length 0"},
		{"dupack", seg(tcpcraft.FlagACK, 252514, 0xabcdf0, nil, append([]byte{wire.MarkerDupAck}, make([]byte, 99)...)), DupAck,
			"10.199.2.2.34343 > 10.199.1.2.40001: Flags [.], cksum 0x%s (correct), ack 252514, win 32768, length 0"},
		{"mpdata", seg(tcpcraft.FlagACK, 252002, 0xabcdf0, []tcpcraft.Option{wire.MPData(0x1122334455667788, 1, 512)}, make([]byte, 512)), Ack,
			"10.199.2.2.34343 > 10.199.1.2.40001: Flags [.], cksum 0x%s (correct), ack 252514, win 32768, options [nop,nop,unknown-32 0x1122334455667988], length 0"},
		{"fin", seg(tcpcraft.FlagFIN|tcpcraft.FlagACK, 252514, 0xabcdf0, nil, nil), FinAck,
			"10.199.2.2.34343 > 10.199.1.2.40001: Flags [F.], cksum 0x%s (correct), seq 11259376, ack 252515, win 32768, length 0"},
		{"pure ack", seg(tcpcraft.FlagACK, 252002, 0xabcdf0, nil, nil), None, ""},
		{"rst", seg(tcpcraft.FlagRST|tcpcraft.FlagACK, 252002, 0xabcdf0, nil, make([]byte, 10)), None, ""},
		{"synack", seg(tcpcraft.FlagSYN|tcpcraft.FlagACK, 252002, 0xabcdf0, nil, nil), None, ""},
		{"no ack data", seg(0, 252002, 0, nil, make([]byte, 10)), None, ""},
		{"other port", func() *tcpcraft.Segment { s := seg(tcpcraft.FlagSYN, 1, 0, nil, nil); s.DstPort = 80; return s }(), None, ""},
		{"bad checksum", func() *tcpcraft.Segment {
			s := seg(tcpcraft.FlagSYN, 1, 0, nil, nil)
			s.SetTCPChecksum, s.TCPChecksum = true, 1
			return s
		}(), None, ""},
	} {
		got, kind := r.Reply(c.in.Bytes(), out)
		if kind != c.kind {
			t.Errorf("%s: kind %d, want %d", c.name, kind, c.kind)
			continue
		}
		if c.want == "" {
			if got != nil {
				t.Errorf("%s: unexpected reply", c.name)
			}
			continue
		}
		var d tcpcraft.Segment
		if err := tcpcraft.Decode(got, &d); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		line := d.Line()
		want := strings.Replace(c.want, "%s", line[strings.Index(line, "cksum 0x")+8:][:4], 1)
		if line != want || !d.ChecksumOK || !d.IPChecksumOK || d.TTL != 64 {
			t.Errorf("%s:\n got %s\nwant %s", c.name, line, want)
		}
	}
}

// TestReflect: the reflection payload is the received header byte for byte, then the
// reply's own header with a zero TCP checksum (identical to the reply's header otherwise).
func TestReflect(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		r := New(DefaultParams(), netip.Addr{}, wire.DefaultPort)
		in := seg(tcpcraft.FlagACK|tcpcraft.FlagPSH, 252002, 0xabcdf0,
			[]tcpcraft.Option{tcpcraft.NOP(), tcpcraft.NOP(), tcpcraft.Timestamps(13572469, 12345678), unknown253, tcpcraft.NOP(), tcpcraft.NOP()},
			reflectPayload(200))
		if v6 {
			in.Src, in.Dst = cli6, srv6
		}
		pkt := in.Bytes()
		got, kind := r.Reply(pkt, nil)
		if kind != Reflect {
			t.Fatalf("kind %d", kind)
		}
		var d tcpcraft.Segment
		if err := tcpcraft.Decode(got, &d); err != nil || !d.ChecksumOK {
			t.Fatalf("reply: %v", err)
		}
		ipLen := 20
		if v6 {
			ipLen = 40
		}
		rcvdLen := ipLen + 20 + 20
		if !bytes.Equal(d.Payload[:rcvdLen], pkt[:rcvdLen]) {
			t.Errorf("received header not reflected:\n got %x\nwant %x", d.Payload[:rcvdLen], pkt[:rcvdLen])
		}
		own := append([]byte(nil), got[:d.IPHeaderLen+d.TCPHeaderLen]...)
		own[d.IPHeaderLen+16], own[d.IPHeaderLen+17] = 0, 0
		if !bytes.Equal(d.Payload[rcvdLen:], own) {
			t.Errorf("sent header:\n got %x\nwant %x", d.Payload[rcvdLen:], own)
		}
		refl, err := wire.ParseReflection(d.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if refl.ReceivedLen != 200 || refl.SentLen != len(d.Payload) || refl.Received.Seq != 252002 || refl.Sent.Ack != 252202 {
			t.Errorf("parsed reflection %+v", refl)
		}
		if o, ok := refl.Received.Option(253); !ok || hex.EncodeToString(o.Data) != "1234cafe" {
			t.Errorf("kind 253 not in the reflected header")
		}
		if o, ok := d.Option(253); !ok || !o.Equal(unknown253) {
			t.Errorf("kind 253 not echoed in the ACK")
		}
	}
}

func TestReplyAllocs(t *testing.T) {
	r := New(DefaultParams(), netip.Addr{}, wire.DefaultPort)
	out := make([]byte, 0, 2048)
	for _, in := range [][]byte{
		seg(tcpcraft.FlagSYN, 252001, 0, []tcpcraft.Option{tcpcraft.MSS(512), tcpcraft.Timestamps(1, 0), tcpcraft.SACKPermitted(), tcpcraft.WindowScale(2), unknown253}, nil).Bytes(),
		seg(tcpcraft.FlagACK, 252002, 0xabcdf0, []tcpcraft.Option{tcpcraft.Timestamps(1, 2), wire.MPData(1, 1, 100)}, reflectPayload(100)).Bytes(),
	} {
		if n := testing.AllocsPerRun(200, func() { r.Reply(in, out) }); n != 0 {
			t.Errorf("Reply allocates %v times per segment", n)
		}
	}
}

func BenchmarkReply(b *testing.B) {
	r := New(DefaultParams(), netip.Addr{}, wire.DefaultPort)
	out := make([]byte, 0, 2048)
	in := seg(tcpcraft.FlagSYN, 252001, 0, []tcpcraft.Option{tcpcraft.MSS(1460), tcpcraft.SACKPermitted(), tcpcraft.Timestamps(13572468, 0),
		tcpcraft.NOP(), tcpcraft.WindowScale(7), unknown253}, nil).Bytes()
	b.ReportAllocs()
	for b.Loop() {
		r.Reply(in, out)
	}
}

// FuzzReply: the responder's receive path never panics, and every reply it sends is a
// well-formed segment with a correct checksum, back to the sender from the answered port.
func FuzzReply(f *testing.F) {
	for _, s := range []*tcpcraft.Segment{
		seg(tcpcraft.FlagSYN, 252001, 0, []tcpcraft.Option{tcpcraft.MSS(512), tcpcraft.Timestamps(1, 0), tcpcraft.SACKPermitted(), tcpcraft.WindowScale(2), wire.MPCapable(7)}, nil),
		seg(tcpcraft.FlagACK, 252002, 0xabcdf0, []tcpcraft.Option{tcpcraft.Timestamps(1, 2), wire.MPData(1, 1, 100), unknown253}, reflectPayload(100)),
		seg(tcpcraft.FlagACK, 252002, 0xabcdf0, nil, []byte{wire.MarkerDupAck}),
		seg(tcpcraft.FlagFIN|tcpcraft.FlagACK, 252002, 0xabcdf0, nil, nil),
		seg(tcpcraft.FlagSYN, 1, 0, []tcpcraft.Option{{Kind: 253, Length: 1}}, reflectPayload(3)),
	} {
		f.Add(s.Bytes())
		s.Src, s.Dst = cli6, srv6
		f.Add(s.Bytes())
	}
	r := New(DefaultParams(), netip.Addr{}, wire.DefaultPort)
	out := make([]byte, 0, 2048)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		got, kind := r.Reply(pkt, out)
		if got == nil {
			return
		}
		var in, d tcpcraft.Segment
		if err := tcpcraft.Decode(pkt, &in); err != nil {
			t.Fatalf("answered an undecodable packet (kind %d)", kind)
		}
		if err := tcpcraft.Decode(got, &d); err != nil || !d.ChecksumOK || !d.IPChecksumOK || d.OptErr != nil {
			t.Fatalf("bad reply %x: %v", got, err)
		}
		if d.Dst != in.Src || d.DstPort != in.SrcPort || d.SrcPort != wire.DefaultPort {
			t.Fatalf("reply to the wrong place: %s", d.Line())
		}
		if kind == Reflect {
			if _, err := wire.ParseReflection(d.Payload); err != nil {
				t.Fatalf("reflection does not parse: %v", err)
			}
		}
	})
}
