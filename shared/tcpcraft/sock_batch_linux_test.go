package tcpcraft

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/capture"
	"github.com/probekit/probekit/shared/testsupport/labtest"
)

// TestSendBatch: one SendBatch call with IPv4 and IPv6 segments mixed, a packet that is no IP
// packet and an unmarked RST the OUTPUT rule drops delivers every other segment exactly once
// and in order (seen by an AF_PACKET capture), counts them, reports the refusal as
// ErrLocalFirewall, and allocates nothing.
func TestSendBatch(t *testing.T) {
	labtest.InNetns(t, func() error {
		const port = 34999
		lo6 := netip.MustParseAddr("::1")
		live, err := capture.OpenLive("any", capture.LiveOptions{Cooked: true, Filter: DstPortFilter(netip.Addr{}, port, 1<<16),
			Timeout: 100 * time.Millisecond, BlockTimeout: time.Millisecond})
		if err != nil {
			return err
		}
		defer live.Close()
		fw, err := InstallFirewall("tcpcraft_batch_test", RSTRule{Peer: lo, Port: port})
		if err != nil {
			return err
		}
		defer fw.Remove()
		raw, err := OpenRaw(0)
		if err != nil {
			return err
		}
		defer raw.Close()
		seg := func(i int, flags uint16) []byte {
			s := Segment{Src: lo, Dst: lo, TTL: 64, SrcPort: uint16(20000 + i), DstPort: port, Seq: uint32(i), Flags: flags, Window: 100}
			if i%3 == 1 {
				s.Src, s.Dst = lo6, lo6
			}
			return s.Bytes()
		}
		var pkts [][]byte
		var want []uint32
		for i := range 150 {
			switch i {
			case 5:
				pkts = append(pkts, []byte{0x45, 0}) // too short for an IP header
			case 69:
				pkts = append(pkts, seg(i, FlagRST|FlagACK)) // unmarked RST: EPERM
			default:
				pkts = append(pkts, seg(i, FlagACK))
				want = append(want, uint32(i))
			}
		}
		n, err := raw.SendBatch(pkts)
		if n != len(want) || !errors.Is(err, ErrLocalFirewall) {
			t.Errorf("SendBatch = %d, %v; want %d, ErrLocalFirewall", n, err, len(want))
		}
		var got []uint32
		var s Segment
		deadline := time.Now().Add(5 * time.Second) // hang guard only
		for len(got) < len(want) && time.Now().Before(deadline) {
			p, err := live.Next()
			if errors.Is(err, capture.ErrTimeout) {
				continue
			}
			if err != nil {
				return err
			}
			ip, _, err := capture.NetworkLayer(p.LinkType, p.Data)
			if err != nil || Decode(ip, &s) != nil || !s.ChecksumOK {
				t.Fatalf("captured a bad segment: %x", p.Data)
			}
			if s.Seq != 69 {
				got = append(got, s.Seq)
			} else {
				t.Error("the dropped RST was captured")
			}
			if want := s.Seq%3 == 1; s.IsV6() != want {
				t.Errorf("segment %d: IPv6 %v", s.Seq, s.IsV6())
			}
		}
		if len(got) != len(want) {
			t.Fatalf("captured %d of %d segments", len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("captured in the order %v, want %v", got, want)
			}
		}
		batch := pkts[6:69]
		if a := testing.AllocsPerRun(20, func() { _, _ = raw.SendBatch(batch) }); a != 0 {
			t.Errorf("%.1f allocations per SendBatch of %d", a, len(batch))
		}
		return nil
	})
}
