package tcpcraft

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/capture"
	"github.com/probekit/probekit/shared/netlab"
	"github.com/probekit/probekit/shared/testsupport/labtest"
)

var lo = netip.MustParseAddr("127.0.0.1")

func rstFrom(port uint16) func(*Segment) bool {
	return func(s *Segment) bool { return s.SrcPort == port && s.Has(FlagRST) }
}

// TestRawSendReceive: a crafted SYN over a raw socket reaches a kernel listener; the SYN/ACK
// is recorded with the SYN (both with kernel timestamps, in order); without a rule the local
// kernel resets the flow, with the managed nft table it does not, a marked crafted RST still
// leaves, an unmarked one is ErrLocalFirewall, and removing the table leaves nothing.
func TestRawSendReceive(t *testing.T) {
	labtest.InNetns(t, func() error {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer ln.Close()
		port := uint16(ln.Addr().(*net.TCPAddr).Port)
		rec, err := NewRecorder("any", lo, port)
		if err != nil {
			return err
		}
		defer rec.Close()
		raw, err := OpenRaw(DefaultMark)
		if err != nil {
			return err
		}
		defer raw.Close()
		ctx := context.Background()
		syn := func(sport uint16) (*Segment, error) {
			s := Segment{Src: lo, Dst: lo, TTL: 64, SrcPort: sport, DstPort: port, Seq: 252001, Flags: FlagSYN, Window: 8064,
				Options: []Option{MSS(512), SACKPermitted(), Timestamps(13572468, 0), WindowScale(2)}}
			cur := rec.Len() // before sending: the answer may be recorded before Send returns
			if err := raw.Send(s.Bytes()); err != nil {
				return nil, err
			}
			r, ok, err := rec.Next(ctx, &cur, time.Now().Add(5*time.Second), func(x *Segment) bool {
				return x.SrcPort == port && x.DstPort == sport && x.Has(FlagSYN|FlagACK)
			})
			if err != nil || !ok {
				return nil, errors.New("no SYN/ACK from the kernel listener")
			}
			if r.Seg.Ack != 252002 {
				return nil, errors.New("SYN/ACK does not ack the SYN")
			}
			return r.Seg, nil
		}
		if _, err := syn(40001); err != nil {
			return err
		}
		// No rule: the local kernel resets the flow it has no socket for.
		cur := 0
		if _, ok, _ := rec.Next(ctx, &cur, time.Now().Add(5*time.Second), rstFrom(40001)); !ok {
			t.Error("no kernel RST without a rule")
		}
		if sup, err := RSTSuppressed(netip.AddrPortFrom(lo, 40001), netip.AddrPortFrom(lo, port)); err != nil || sup {
			t.Errorf("RSTSuppressed without a rule: %v %v", sup, err)
		}
		rule := RSTRule{Peer: lo, Port: port, Mark: DefaultMark}
		fw, err := InstallFirewall("tcpcraft_test", rule)
		if err != nil {
			return err
		}
		defer fw.Remove()
		if sup, err := RSTSuppressed(netip.AddrPortFrom(lo, 40002), netip.AddrPortFrom(lo, port)); err != nil || !sup {
			t.Errorf("RSTSuppressed with the rule: %v %v", sup, err)
		}
		before := rec.Len()
		if _, err := syn(40003); err != nil {
			return err
		}
		time.Sleep(200 * time.Millisecond)
		if r, ok := rec.Find(before, rstFrom(40003)); ok {
			t.Errorf("kernel RST despite the rule: %s", r.Seg.Line())
		}
		// A marked crafted RST passes; an unmarked one is refused by the local firewall.
		rst := Segment{Src: lo, Dst: lo, TTL: 64, SrcPort: 40003, DstPort: port, Seq: 252002, Flags: FlagRST}
		if err := raw.Send(rst.Bytes()); err != nil {
			t.Errorf("marked RST: %v", err)
		}
		cur = before
		if _, ok, _ := rec.Next(ctx, &cur, time.Now().Add(5*time.Second), rstFrom(40003)); !ok {
			t.Error("marked crafted RST not seen")
		}
		plain, err := OpenRaw(0)
		if err != nil {
			return err
		}
		defer plain.Close()
		if err := plain.Send(rst.Bytes()); !errors.Is(err, ErrLocalFirewall) || !strings.Contains(err.Error(), "dropped by the local firewall") {
			t.Errorf("unmarked RST: %v, want ErrLocalFirewall", err)
		}
		if err := fw.Remove(); err != nil {
			t.Error(err)
		}
		if TableExists("tcpcraft_test") {
			t.Error("table left behind")
		}
		// Records are in kernel-timestamp order and all decode.
		recs := rec.Records()
		for i := range recs {
			var s Segment
			if err := Decode(recs[i].Data, &s); err != nil {
				t.Errorf("record %d: %v", i, err)
			}
			if i > 0 && recs[i].TimeNanos < recs[i-1].TimeNanos {
				t.Errorf("record %d earlier than %d", i, i-1)
			}
		}
		// pcap: read back with shared/capture, byte-identical.
		file := filepath.Join(t.TempDir(), "flow.pcap")
		f, err := os.Create(file)
		if err != nil {
			return err
		}
		if err := WritePcap(f, recs); err != nil {
			return err
		}
		f.Close()
		r, err := capture.Open(file)
		if err != nil {
			return err
		}
		defer r.Close()
		for i := range recs {
			p, err := r.Next()
			if err != nil {
				return err
			}
			if !bytes.Equal(p.Data, recs[i].Data) || p.TimeNanos != recs[i].TimeNanos || p.LinkType != capture.Raw {
				t.Errorf("pcap record %d differs", i)
			}
		}
		return nil
	})
}

// TestPacketSend: in the middlebox lab (client — router — server), the route to the server
// goes through the router, AF_PACKET addresses the router's MAC from the (static) neighbour
// table, and the crafted SYN reaches a kernel listener on the server, whose SYN/ACK the
// recorder catches.
func TestPacketSend(t *testing.T) {
	m := labtest.Middlebox(t, netlab.MiddleboxConfig{Mode: netlab.ModeTransparent})
	var ln net.Listener
	if err := m.Server.Do(func() (err error) { ln, err = net.Listen("tcp4", netlab.MiddleboxServer.String()+":8080"); return }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var rec *Recorder
	var pc *PacketConn
	if err := m.Client.Do(func() (err error) {
		if rec, err = NewRecorder("c0", netlab.MiddleboxServer, 8080); err != nil {
			return err
		}
		pc, err = OpenPacket(netlab.MiddleboxServer)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	defer pc.Close()
	if pc.Route.IfName != "c0" || pc.Route.Gateway != netlab.MiddleboxRouterC || pc.Route.Src != netlab.MiddleboxClient {
		t.Errorf("route %+v", pc.Route)
	}
	routerMAC, err := m.Router.Exec("cat", "/sys/class/net/mc/address")
	if err != nil {
		t.Fatal(err)
	}
	if pc.MAC.String() != strings.TrimSpace(routerMAC) {
		t.Errorf("next-hop MAC %v, router's mc is %s", pc.MAC, routerMAC)
	}
	s := Segment{Src: netlab.MiddleboxClient, Dst: netlab.MiddleboxServer, TTL: 64, SrcPort: 40010, DstPort: 8080, Seq: 1000,
		Flags: FlagSYN, Window: 8064, Options: []Option{MSS(1460)}}
	if err := pc.Send(s.Bytes()); err != nil {
		t.Fatal(err)
	}
	cur := 0
	r, ok, _ := rec.Next(context.Background(), &cur, time.Now().Add(5*time.Second), func(x *Segment) bool {
		return x.SrcPort == 8080 && x.Has(FlagSYN|FlagACK) && x.Ack == 1001
	})
	if !ok {
		t.Fatal("no SYN/ACK to the AF_PACKET SYN")
	}
	if r.Seg.TTL != 63 {
		t.Errorf("SYN/ACK TTL %d, want 63 (one router)", r.Seg.TTL)
	}
	// The SYN is recorded too (outgoing), before the SYN/ACK.
	if sent, ok := rec.Find(0, func(x *Segment) bool { return x.SrcPort == 40010 && x.Has(FlagSYN) }); !ok || sent.Index > r.Index || sent.TimeNanos > r.TimeNanos {
		t.Errorf("sent SYN not recorded before the SYN/ACK: %+v", sent)
	}
}

func TestRuleText(t *testing.T) {
	r := RSTRule{Peer: netip.MustParseAddr("10.199.2.2"), Port: 34343, Mark: DefaultMark}
	if got, want := r.IPTables(), "iptables -A OUTPUT -p tcp --tcp-flags RST RST -d 10.199.2.2 --dport 34343 -m mark ! --mark 0x7e57 -j DROP"; got != want {
		t.Errorf("iptables %q", got)
	}
	if got, want := r.NFTMatch(), "ip daddr 10.199.2.2 tcp dport 34343 tcp flags & rst == rst meta mark != 0x7e57 drop"; got != want {
		t.Errorf("nft %q", got)
	}
	r6 := RSTRule{Peer: netip.MustParseAddr("fd99:2::2"), Port: 34343, Responder: true}
	if got, want := r6.IPTables(), "ip6tables -A OUTPUT -p tcp --tcp-flags RST RST -s fd99:2::2 --sport 34343 -j DROP"; got != want {
		t.Errorf("ip6tables %q", got)
	}
	if got, want := r6.NFTMatch(), "ip6 saddr fd99:2::2 tcp sport 34343 tcp flags & rst == rst drop"; got != want {
		t.Errorf("nft %q", got)
	}
}
