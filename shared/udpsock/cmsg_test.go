//go:build linux

package udpsock

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/probekit/probekit/shared/timestamp"
)

var update = flag.Bool("update", false, "rewrite testdata/cmsg from this kernel")

// cmsg builds one control message with arbitrary payload, as the kernel lays it out.
func cmsg(level, typ int32, data []byte) []byte {
	b := make([]byte, cmsgAlignUp(cmsgHdrLen+len(data)))
	binary.NativeEndian.PutUint64(b[0:8], uint64(cmsgHdrLen+len(data)))
	binary.NativeEndian.PutUint32(b[8:12], uint32(level))
	binary.NativeEndian.PutUint32(b[12:16], uint32(typ))
	copy(b[cmsgHdrLen:], data)
	return b
}

func le64s(vs ...int64) []byte {
	b := make([]byte, 8*len(vs))
	for i, v := range vs {
		binary.NativeEndian.PutUint64(b[8*i:], uint64(v))
	}
	return b
}

func le32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

func extErr(origin uint8, info, data uint32) []byte {
	b := make([]byte, 16)
	binary.NativeEndian.PutUint32(b[0:4], uint32(unix.ENOMSG))
	b[4] = origin
	binary.NativeEndian.PutUint32(b[8:12], info)
	binary.NativeEndian.PutUint32(b[12:16], data)
	return b
}

func cat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

func TestParseControl(t *testing.T) {
	if cmsgHdrLen != 16 {
		t.Skip("table built for 64-bit cmsghdr")
	}
	ts := time.Unix(1_700_000_000, 123_456_789)
	for _, tc := range []struct {
		name string
		in   []byte
		want control
	}{
		{"empty", nil, control{}},
		{"timestampns new", cmsg(unix.SOL_SOCKET, soTimestampNSNew, le64s(ts.Unix(), int64(ts.Nanosecond()))),
			control{rxTime: ts, rxSource: timestamp.SourceKernel}},
		{"timestampns old", cmsg(unix.SOL_SOCKET, soTimestampNSOld, le64s(ts.Unix(), int64(ts.Nanosecond()))),
			control{rxTime: ts, rxSource: timestamp.SourceKernel}},
		{"timestamp usec", cmsg(unix.SOL_SOCKET, soTimestampNew, le64s(ts.Unix(), 123_456)),
			control{rxTime: time.Unix(ts.Unix(), 123_456_000), rxSource: timestamp.SourceKernel}},
		{"timestamping software", cmsg(unix.SOL_SOCKET, soTimestampingNew, le64s(ts.Unix(), int64(ts.Nanosecond()), 0, 0, 0, 0)),
			control{rxTime: ts, rxSource: timestamp.SourceKernel}},
		{"timestamping hardware only", cmsg(unix.SOL_SOCKET, soTimestampingOld, le64s(0, 0, 0, 0, ts.Unix(), int64(ts.Nanosecond()))),
			control{rxTime: ts, rxSource: timestamp.SourceHardware}},
		{"timestamping both: hardware wins", cmsg(unix.SOL_SOCKET, soTimestampingNew, le64s(5, 6, 0, 0, ts.Unix(), int64(ts.Nanosecond()))),
			control{rxTime: ts, rxSource: timestamp.SourceHardware}},
		{"timestamp nsec out of range", cmsg(unix.SOL_SOCKET, soTimestampNSNew, le64s(5, 1e9)), control{}},
		{"timestamp wrong size", cmsg(unix.SOL_SOCKET, soTimestampNSNew, le64s(5, 1, 2)), control{}},
		{"ip tos 1 byte", cmsg(unix.IPPROTO_IP, ipTOS, []byte{0xb9}), control{tos: 0xb9, hasTOS: true}},
		{"ip tos int", cmsg(unix.IPPROTO_IP, ipTOS, le32(0x2a)), control{tos: 0x2a, hasTOS: true}},
		{"ip ttl", cmsg(unix.IPPROTO_IP, ipTTL, le32(63)), control{ttl: 63}},
		{"ipv6 tclass and hoplimit", cat(cmsg(unix.IPPROTO_IPV6, ipv6TClass, le32(0xbb)), cmsg(unix.IPPROTO_IPV6, ipv6HopLim, le32(7))),
			control{tos: 0xbb, hasTOS: true, ttl: 7}},
		{"all v4", cat(
			cmsg(unix.SOL_SOCKET, soTimestampNSNew, le64s(ts.Unix(), int64(ts.Nanosecond()))),
			cmsg(unix.IPPROTO_IP, ipTOS, []byte{0x03}),
			cmsg(unix.IPPROTO_IP, ipTTL, le32(1))),
			control{rxTime: ts, rxSource: timestamp.SourceKernel, tos: 3, hasTOS: true, ttl: 1}},
		{"tx stamp v4", cat(
			cmsg(unix.SOL_SOCKET, soTimestampingNew, le64s(ts.Unix(), int64(ts.Nanosecond()), 0, 0, 0, 0)),
			cmsg(unix.IPPROTO_IP, ipRecvErr, extErr(soEEOriginTimestamping, scmTstampSnd, 41))),
			control{rxTime: ts, rxSource: timestamp.SourceKernel, txID: 41, hasTxID: true}},
		{"tx stamp v6", cmsg(unix.IPPROTO_IPV6, ipv6RecvErr, extErr(soEEOriginTimestamping, scmTstampSnd, 7)),
			control{txID: 7, hasTxID: true}},
		{"sched stamp ignored", cmsg(unix.IPPROTO_IP, ipRecvErr, extErr(soEEOriginTimestamping, 1, 7)), control{}},
		{"icmp error ignored", cmsg(unix.IPPROTO_IP, ipRecvErr, extErr(2, 0, 7)), control{}},
		{"short extended err", cmsg(unix.IPPROTO_IP, ipRecvErr, make([]byte, 8)), control{}},
		{"ip pktinfo: header destination, not spec_dst", cmsg(unix.IPPROTO_IP, ipPktInfo, cat(le32(3), []byte{192, 0, 2, 9}, []byte{192, 0, 2, 1})),
			control{dst: netip.MustParseAddr("192.0.2.1"), ifIndex: 3}},
		{"ipv6 pktinfo", cmsg(unix.IPPROTO_IPV6, ipv6PktInfo, cat(netip.MustParseAddr("2001:db8::7").AsSlice(), le32(12))),
			control{dst: netip.MustParseAddr("2001:db8::7"), ifIndex: 12}},
		{"ipv6 pktinfo v4-mapped (dual-stack) unmapped", cmsg(unix.IPPROTO_IPV6, ipv6PktInfo, cat(netip.MustParseAddr("::ffff:127.0.0.2").AsSlice(), le32(1))),
			control{dst: netip.MustParseAddr("127.0.0.2"), ifIndex: 1}},
		{"pktinfo negative ifindex unknown", cmsg(unix.IPPROTO_IP, ipPktInfo, cat(le32(0xffffffff), make([]byte, 4), []byte{10, 0, 0, 1})),
			control{dst: netip.MustParseAddr("10.0.0.1")}},
		{"ip pktinfo short", cmsg(unix.IPPROTO_IP, ipPktInfo, make([]byte, 11)), control{}},
		{"ipv6 pktinfo short", cmsg(unix.IPPROTO_IPV6, ipv6PktInfo, make([]byte, 19)), control{}},
		{"pktinfo with tos, ttl, stamp", cat(
			cmsg(unix.SOL_SOCKET, soTimestampNSNew, le64s(ts.Unix(), int64(ts.Nanosecond()))),
			cmsg(unix.IPPROTO_IP, ipTOS, []byte{0x03}),
			cmsg(unix.IPPROTO_IP, ipPktInfo, cat(le32(2), []byte{198, 51, 100, 1}, []byte{198, 51, 100, 1})),
			cmsg(unix.IPPROTO_IP, ipTTL, le32(1))),
			control{rxTime: ts, rxSource: timestamp.SourceKernel, tos: 3, hasTOS: true, ttl: 1, dst: netip.MustParseAddr("198.51.100.1"), ifIndex: 2}},
		{"unknown level", cmsg(99, 1, []byte{1, 2, 3}), control{}},
		{"length past end", func() []byte {
			b := cmsg(unix.IPPROTO_IP, ipTOS, []byte{0xb8})
			binary.NativeEndian.PutUint64(b, 1000)
			return b
		}(), control{}},
		{"length below header", func() []byte {
			b := cmsg(unix.IPPROTO_IP, ipTOS, []byte{0xb8})
			binary.NativeEndian.PutUint64(b, 3)
			return b
		}(), control{}},
		{"truncated second header", cat(cmsg(unix.IPPROTO_IP, ipTTL, le32(9)), []byte{1, 2, 3}), control{ttl: 9}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := parseControl(tc.in)
			if !got.rxTime.Equal(tc.want.rxTime) || got.rxSource != tc.want.rxSource || got.tos != tc.want.tos ||
				got.hasTOS != tc.want.hasTOS || got.ttl != tc.want.ttl || got.txID != tc.want.txID || got.hasTxID != tc.want.hasTxID ||
				got.dst != tc.want.dst || got.ifIndex != tc.want.ifIndex {
				t.Errorf("parseControl = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestPutCmsgIntRoundTrip(t *testing.T) {
	b := make([]byte, 64)
	n := putCmsgInt(b, unix.IPPROTO_IPV6, ipv6TClass, 0xb8)
	if n != unix.CmsgSpace(4) {
		t.Fatalf("space %d, want %d", n, unix.CmsgSpace(4))
	}
	msgs, err := unix.ParseSocketControlMessage(b[:n])
	if err != nil || len(msgs) != 1 {
		t.Fatalf("x/sys parse: %v %v", msgs, err)
	}
	if msgs[0].Header.Level != unix.IPPROTO_IPV6 || msgs[0].Header.Type != ipv6TClass ||
		binary.NativeEndian.Uint32(msgs[0].Data) != 0xb8 {
		t.Errorf("cmsg %+v % x", msgs[0].Header, msgs[0].Data)
	}
	if c := parseControl(b[:n]); c.tos != 0xb8 || !c.hasTOS {
		t.Errorf("parse back: %+v", c)
	}
}

// TestPutPktInfo checks the source-address cmsgs WriteBatch builds with x/sys's parser, alone
// and after a TOS cmsg in the same buffer, over stale bytes left in the slot.
func TestPutPktInfo(t *testing.T) {
	for _, tc := range []struct {
		src   string
		v4    bool
		level int32
		typ   int32
		data  []byte
		err   error
	}{
		{"192.0.2.1", true, unix.IPPROTO_IP, ipPktInfo, []byte{0, 0, 0, 0, 192, 0, 2, 1, 0, 0, 0, 0}, nil},
		{"::ffff:192.0.2.1", true, unix.IPPROTO_IP, ipPktInfo, []byte{0, 0, 0, 0, 192, 0, 2, 1, 0, 0, 0, 0}, nil},
		{"2001:db8::1", false, unix.IPPROTO_IPV6, ipv6PktInfo, cat(netip.MustParseAddr("2001:db8::1").AsSlice(), make([]byte, 4)), nil},
		{"2001:db8::1", true, 0, 0, nil, ErrSourceFamily},
		{"192.0.2.1", false, 0, 0, nil, ErrSourceFamily},
	} {
		for _, withTOS := range []bool{false, true} {
			b := make([]byte, oobSize)
			for i := range b {
				b[i] = 0xee
			}
			n := 0
			if withTOS {
				n = putCmsgInt(b, unix.IPPROTO_IP, ipTOS, 0xb8)
			}
			k, err := putPktInfo(b[n:], netip.MustParseAddr(tc.src), tc.v4)
			if !errors.Is(err, tc.err) {
				t.Errorf("%s v4=%v: err %v, want %v", tc.src, tc.v4, err, tc.err)
				continue
			}
			if err != nil {
				continue
			}
			msgs, err := unix.ParseSocketControlMessage(b[:n+k])
			if err != nil {
				t.Fatalf("%s: x/sys parse: %v", tc.src, err)
			}
			m := msgs[len(msgs)-1]
			if len(msgs) != 1+bool2int(withTOS) || m.Header.Level != tc.level || m.Header.Type != tc.typ || string(m.Data) != string(tc.data) {
				t.Errorf("%s tos=%v: %d cmsgs, last %d/%d % x, want %d/%d % x", tc.src, withTOS, len(msgs), m.Header.Level, m.Header.Type, m.Data, tc.level, tc.typ, tc.data)
			}
			if k != unix.CmsgSpace(len(tc.data)) {
				t.Errorf("%s: space %d, want %d", tc.src, k, unix.CmsgSpace(len(tc.data)))
			}
		}
	}
}

func bool2int(b bool) int {
	if b {
		return 1
	}
	return 0
}

// kernelControls returns control-message buffers exactly as this kernel produced them.
func kernelControls(t *testing.T) map[string][]byte {
	out := map[string][]byte{}
	all := Options{RxTimestamps: true, RecvTOS: true, RecvTTL: true}
	withDst := all
	withDst.RecvDst = true
	for _, tc := range []struct {
		name, network, addr string
		opts                Options
		// to and the sender's socket when not rx's own address and family.
		to            string
		txNet, txAddr string
	}{
		{"v4_all", "udp4", "127.0.0.1:0", all, "", "", ""},
		{"v4_timestamping", "udp4", "127.0.0.1:0", Options{RxTimestamps: true, TxTimestamps: true, RecvTOS: true}, "", "", ""},
		{"v6_all", "udp6", "[::1]:0", all, "", "", ""},
		{"v4_pktinfo", "udp4", "0.0.0.0:0", withDst, "127.0.0.2", "udp4", "127.0.0.1:0"},
		{"v6_pktinfo", "udp6", "[::]:0", withDst, "::1", "udp6", "[::1]:0"},
		{"dual_v4_pktinfo", "udp", "[::]:0", withDst, "127.0.0.2", "udp4", "127.0.0.1:0"},
	} {
		rx := listen(t, tc.network, tc.addr, tc.opts)
		txNet, txAddr := tc.network, tc.addr
		if tc.txNet != "" {
			txNet, txAddr = tc.txNet, tc.txAddr
		}
		tx := listen(t, txNet, txAddr, Options{TxTimestamps: true})
		to := rx.LocalAddr()
		if tc.to != "" {
			to = netip.AddrPortFrom(netip.MustParseAddr(tc.to), to.Port())
		}
		m := Message{Buf: []byte("seed"), Addr: to, TOS: 0xb9}
		if err := tx.WriteTo(&m); err != nil {
			t.Fatal(err)
		}
		in := Message{Buf: make([]byte, 64)}
		rx.SetReadDeadline(time.Now().Add(2 * time.Second))
		if err := rx.ReadFrom(&in); err != nil {
			t.Fatal(err)
		}
		out[tc.name] = append([]byte(nil), rx.r.oob[:rx.r.hs[0].Hdr.Controllen]...)
		// The error queue of the sender holds the TX timestamp report.
		var got bool
		for i := 0; i < 20 && !got; i++ {
			n, err := tx.WaitTxTimestamps(100*time.Millisecond, func(uint32, time.Time, timestamp.Source) {})
			if err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				out[tc.name+"_errqueue"] = append([]byte(nil), tx.e.oob[:tx.e.hs[0].Hdr.Controllen]...)
				got = true
			}
		}
	}
	return out
}

// TestKernelControlGolden checks the parser against control buffers this kernel produced
// (testdata/cmsg, refreshed with -update), which also seed FuzzParseControl.
func TestKernelControlGolden(t *testing.T) {
	dir := filepath.Join("testdata", "cmsg")
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range kernelControls(t) {
			if err := os.WriteFile(filepath.Join(dir, name+".bin"), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := map[string]func(c control) error{
		"v4_all": func(c control) error {
			if c.rxSource != timestamp.SourceKernel || c.tos != 0xb9 || !c.hasTOS || c.ttl != 64 {
				return fmt.Errorf("got %+v", c)
			}
			return nil
		},
		"v4_timestamping": func(c control) error {
			if c.rxSource != timestamp.SourceKernel || c.tos != 0xb9 || c.hasTxID {
				return fmt.Errorf("got %+v", c)
			}
			return nil
		},
		"v6_all": func(c control) error {
			if c.rxSource != timestamp.SourceKernel || c.tos != 0xb9 || c.ttl != 64 {
				return fmt.Errorf("got %+v", c)
			}
			return nil
		},
	}
	pktinfo := func(dst string) func(c control) error {
		return func(c control) error {
			// Kernel stamp, TOS and TTL are still parsed next to the pktinfo; lo is index 1.
			if c.dst != netip.MustParseAddr(dst) || c.ifIndex != 1 || c.rxSource != timestamp.SourceKernel || c.tos != 0xb9 || c.ttl != 64 {
				return fmt.Errorf("got %+v", c)
			}
			return nil
		}
	}
	want["v4_pktinfo"] = pktinfo("127.0.0.2")
	want["v6_pktinfo"] = pktinfo("::1")
	want["dual_v4_pktinfo"] = pktinfo("127.0.0.2")
	for _, suffix := range []string{"v4_all", "v4_timestamping", "v6_all", "v4_pktinfo", "v6_pktinfo", "dual_v4_pktinfo"} {
		errq := suffix + "_errqueue"
		want[errq] = func(c control) error {
			if !c.hasTxID || c.txID != 0 || c.rxSource != timestamp.SourceKernel {
				return fmt.Errorf("got %+v", c)
			}
			return nil
		}
	}
	for name, check := range want {
		b, err := os.ReadFile(filepath.Join(dir, name+".bin"))
		if err != nil {
			t.Fatalf("%s: %v (regenerate with go test -run KernelControlGolden -update)", name, err)
		}
		c := parseControl(b)
		if err := check(c); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if c.rxTime.Year() < 2020 {
			t.Errorf("%s: timestamp %v not plausible", name, c.rxTime)
		}
	}
}

func FuzzParseControl(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "cmsg", "*.bin"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add(cmsg(unix.IPPROTO_IP, ipTOS, []byte{0xb8}))
	f.Add(cmsg(unix.IPPROTO_IP, ipPktInfo, cat(le32(1), []byte{127, 0, 0, 2, 127, 0, 0, 2})))
	f.Add(cmsg(unix.IPPROTO_IPV6, ipv6PktInfo, cat(netip.IPv6Loopback().AsSlice(), le32(1))))
	f.Add(cmsg(unix.SOL_SOCKET, soTimestampingNew, le64s(1, 2, 3, 4, 5, 6)))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := parseControl(b)
		if c.rxSource != timestamp.SourceNone && c.rxTime.IsZero() {
			t.Fatalf("source %v without a time", c.rxSource)
		}
		if c.rxSource == timestamp.SourceNone && !c.rxTime.IsZero() {
			t.Fatalf("time %v without a source", c.rxTime)
		}
		if c.tos != 0 && !c.hasTOS {
			t.Fatalf("tos %#x without hasTOS", c.tos)
		}
		if c.txID != 0 && !c.hasTxID {
			t.Fatalf("txID %d without hasTxID", c.txID)
		}
		if c.dst.IsValid() && (c.dst.Is4In6() || c.dst.Zone() != "") {
			t.Fatalf("dst %v not unmapped and zone-free", c.dst)
		}
		if c.ifIndex < 0 || (c.ifIndex != 0 && !c.dst.IsValid()) {
			t.Fatalf("ifIndex %d with dst %v", c.ifIndex, c.dst)
		}
	})
}

func FuzzParseSockaddr(f *testing.F) {
	var v4, v6 sockaddr
	c := &Conn{family: unix.AF_INET6}
	n4, _, _ := (&Conn{family: unix.AF_INET}).putSockaddr(&v4, netip.MustParseAddrPort("192.0.2.1:862"))
	n6, _, _ := c.putSockaddr(&v6, netip.MustParseAddrPort("[2001:db8::1]:862"))
	f.Add(v4[:n4])
	f.Add(v6[:n6])
	f.Fuzz(func(t *testing.T, b []byte) {
		ap := c.parseSockaddr(b)
		if !ap.IsValid() {
			return
		}
		// Whatever parsed must encode back to an equivalent sockaddr.
		var out sockaddr
		n, _, err := c.putSockaddr(&out, ap)
		if err != nil {
			t.Fatalf("%v parsed but does not encode: %v", ap, err)
		}
		if back := c.parseSockaddr(out[:n]); back.Addr().WithZone("") != ap.Addr().WithZone("") || back.Port() != ap.Port() {
			t.Fatalf("round trip %v -> %v", ap, back)
		}
	})
}

func TestSockaddrRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		family int
		in     string
		want   string
		v4     bool
	}{
		{unix.AF_INET, "192.0.2.1:862", "192.0.2.1:862", true},
		{unix.AF_INET, "[::ffff:192.0.2.1]:862", "192.0.2.1:862", true},
		{unix.AF_INET6, "[2001:db8::1]:9", "[2001:db8::1]:9", false},
		{unix.AF_INET6, "192.0.2.7:9", "192.0.2.7:9", true}, // v4-mapped on the wire, unmapped back
	} {
		c := &Conn{family: tc.family}
		var sa sockaddr
		n, v4, err := c.putSockaddr(&sa, netip.MustParseAddrPort(tc.in))
		if err != nil || v4 != tc.v4 {
			t.Errorf("%s: put %d %v %v", tc.in, n, v4, err)
			continue
		}
		if got := c.parseSockaddr(sa[:n]).String(); got != tc.want {
			t.Errorf("%s: round trip %s, want %s", tc.in, got, tc.want)
		}
	}
	c := &Conn{family: unix.AF_INET6}
	for _, bad := range [][]byte{nil, {2}, {2, 0, 0, 1}, make([]byte, 20)} {
		if ap := c.parseSockaddr(bad); ap.IsValid() {
			t.Errorf("% x parsed as %v", bad, ap)
		}
	}
}
