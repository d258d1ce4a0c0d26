package tcpcraft

import (
	"bytes"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/probekit/probekit/shared/capture"
)

// gopacketBytes serializes the segment with gopacket's layers (an independent implementation),
// giving it the options as explicit bytes including our padding.
func gopacketBytes(t *testing.T, s *Segment) []byte {
	t.Helper()
	tcp := &layers.TCP{SrcPort: layers.TCPPort(s.SrcPort), DstPort: layers.TCPPort(s.DstPort), Seq: s.Seq, Ack: s.Ack,
		Window: s.Window, Urgent: s.Urgent,
		FIN: s.Flags&FlagFIN != 0, SYN: s.Flags&FlagSYN != 0, RST: s.Flags&FlagRST != 0, PSH: s.Flags&FlagPSH != 0,
		ACK: s.Flags&FlagACK != 0, URG: s.Flags&FlagURG != 0, ECE: s.Flags&FlagECE != 0, CWR: s.Flags&FlagCWR != 0, NS: s.Flags&FlagAE != 0}
	n := 0
	for _, o := range s.Options {
		to := layers.TCPOption{OptionType: layers.TCPOptionKind(o.Kind)}
		if o.Kind > 1 {
			to.OptionLength = o.Len()
			to.OptionData = o.Data
		}
		tcp.Options = append(tcp.Options, to)
		n += o.WireLen()
	}
	for ; n%4 != 0; n++ {
		tcp.Options = append(tcp.Options, layers.TCPOption{OptionType: layers.TCPOptionKindEndList})
	}
	var nl gopacket.SerializableLayer
	if s.IsV6() {
		ip := &layers.IPv6{Version: 6, TrafficClass: s.TOS, FlowLabel: s.FlowLabel, NextHeader: layers.IPProtocolTCP,
			HopLimit: s.TTL, SrcIP: net.IP(s.Src.AsSlice()), DstIP: net.IP(s.Dst.AsSlice())}
		if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		nl = ip
	} else {
		ip := &layers.IPv4{Version: 4, TOS: s.TOS, Id: s.ID, Flags: layers.IPv4Flag(s.IPFlags), FragOffset: s.FragOff,
			TTL: s.TTL, Protocol: layers.IPProtocolTCP, SrcIP: net.IP(s.Src.AsSlice()), DstIP: net.IP(s.Dst.AsSlice())}
		if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		nl = ip
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		nl, tcp, gopacket.Payload(s.Payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestCraftMatchesGopacket: every well-formed crafted kind is byte-identical to gopacket's
// serialization of the same fields.
func TestCraftMatchesGopacket(t *testing.T) {
	for _, c := range craftCases() {
		if !c.gopacket {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			got := c.seg.Bytes()
			want := gopacketBytes(t, &c.seg)
			if !bytes.Equal(got, want) {
				t.Fatalf("bytes differ\n got %x\nwant %x", got, want)
			}
		})
	}
}

// TestMalformedGoldens: malformed segments, bytes by hand (checksums from the RFC 1071 sum
// worked out in the comments' spirit, verified by tcpdump in TestTcpdumpGolden).
func TestMalformedGoldens(t *testing.T) {
	want := map[string]string{
		// IPv4 20 + TCP 20 + mss(4) + kind 253 len 1 (2 bytes) + 2 zero pad = 48.
		"bad_optlen": "45000030000c00004006" + "????" + "0ac701020ac70202" +
			"9c4186270003d86100000000" + "7002" + "1f80" + "????" + "0000" + "02040200" + "fd010000",
		"bad_cksum": "45000028000d00004006" + "????" + "0ac701020ac70202" +
			"9c4186270003d86100000000" + "5002" + "1f80" + "dead" + "0000",
		// data offset 7 (28 bytes) with only 4 option bytes: 4 zero bytes of padding; reserved bit 0x800.
		"big_doff": "45000030000e00004006" + "????" + "0ac701020ac70202" +
			"9c4186270003d86100000000" + "7802" + "1f80" + "????" + "0000" + "02040200" + "00000000",
	}
	for _, c := range craftCases() {
		w, ok := want[c.name]
		if !ok {
			continue
		}
		got := hex.EncodeToString(c.seg.Bytes())
		if len(got) != len(w) {
			t.Errorf("%s: length %d, want %d\n got %s\nwant %s", c.name, len(got)/2, len(w)/2, got, w)
			continue
		}
		for i := range w {
			if w[i] != '?' && w[i] != got[i] {
				t.Errorf("%s: differs at byte %d\n got %s\nwant %s", c.name, i/2, got, w)
				break
			}
		}
	}
}

// writeCasesPcap writes every crafted case to a raw-IP pcap.
func writeCasesPcap(t *testing.T, file string) {
	t.Helper()
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := capture.NewWriter(f, capture.Raw, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range craftCases() {
		b := c.seg.Bytes()
		if err := w.WritePacketNanos(int64(i+1)*1e9, b, len(b)); err != nil {
			t.Fatal(err)
		}
	}
}

// tcpdumpLines turns `tcpdump -S -v -n -tt` output into one record per packet (IP line and
// TCP line joined by "\n"), without the timestamp.
func tcpdumpLines(out string) []string {
	var recs []string
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if strings.HasPrefix(l, "    ") && len(recs) > 0 && strings.HasPrefix(recs[len(recs)-1], "IP (") {
			recs[len(recs)-1] += "\n" + l
			continue
		}
		if _, rest, ok := strings.Cut(l, " "); ok && len(l) > 0 && l[0] >= '0' && l[0] <= '9' {
			l = rest
		}
		recs = append(recs, l)
	}
	return recs
}

// TestTcpdumpGolden compares Format with tcpdump 4.99's -S -v -n output for every crafted
// case (testdata/tcpdump.txt, written by tcpdump from the pcap of these cases). When tcpdump
// is installed it is run again on a fresh pcap, so the bytes are checked by tcpdump too
// (checksums "(correct)" where they should be).
func TestTcpdumpGolden(t *testing.T) {
	golden, err := os.ReadFile("testdata/tcpdump.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := tcpdumpLines(string(golden))
	cases := craftCases()
	if len(want) != len(cases) {
		t.Fatalf("golden has %d packets, %d cases", len(want), len(cases))
	}
	if _, err := exec.LookPath("tcpdump"); err == nil {
		file := filepath.Join(t.TempDir(), "cases.pcap")
		writeCasesPcap(t, file)
		out, err := exec.Command("tcpdump", "-S", "-v", "-n", "-tt", "-r", file).Output()
		if err != nil {
			t.Fatal(err)
		}
		if got := tcpdumpLines(string(out)); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("tcpdump on the crafted bytes differs from the golden:\n%s", strings.Join(got, "\n"))
		}
	}
	for i, c := range cases {
		var d Segment
		b := c.seg.Bytes()
		if err := Decode(b, &d); err != nil {
			t.Fatalf("%s: decode: %v", c.name, err)
		}
		if got := d.Format(); got != want[i] {
			t.Errorf("%s: decoded Format\n got %s\nwant %s", c.name, got, want[i])
		}
		if got := c.seg.Format(); got != want[i] {
			t.Errorf("%s: built Format\n got %s\nwant %s", c.name, got, want[i])
		}
	}
}

// TestKernelCaptureFormat compares Format with tcpdump's output for segments a Linux kernel
// sent (testdata/kernel.pcap, the first packets of shared/data/spp's iperf3 capture, and
// tcpdump -S -v -n -tt output of it). Truncated records (snaplen 200) are skipped: they do
// not decode.
func TestKernelCaptureFormat(t *testing.T) {
	golden, err := os.ReadFile("testdata/kernel.tcpdump.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := tcpdumpLines(string(golden))
	r, err := capture.Open("testdata/kernel.pcap")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	checked := 0
	for i := 0; ; i++ {
		p, err := r.Next()
		if err != nil {
			break
		}
		ip, _, err := capture.NetworkLayer(p.LinkType, p.Data)
		if err != nil {
			t.Fatal(err)
		}
		var s Segment
		if err := Decode(ip, &s); err != nil {
			continue
		}
		if got := s.Format(); got != want[i] {
			t.Errorf("packet %d\n got %s\nwant %s", i+1, got, want[i])
		}
		checked++
	}
	if checked < 10 {
		t.Fatalf("only %d packets checked", checked)
	}
}
