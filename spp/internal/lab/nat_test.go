package lab

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/netlab"
	"github.com/probekit/probekit/shared/testsupport/labtest"
	"github.com/probekit/probekit/spp/internal/engine"
	"github.com/probekit/probekit/spp/internal/synth"
)

// TestLabNAT: the REF point sits behind a NAT (client 10.0.1.2, public 45.71.0.101), the MON
// point at the server. With -n the NAT address counts as the client's and addresses leave
// the packet ID, so spp pairs the two views of every packet exactly as the truth does;
// without -n it finds no traffic at MON and says so.
func TestLabNAT(t *testing.T) {
	needTcpdump(t)
	lab := labtest.NAT(t, netlab.NATConfig{NATs: []netlab.NATSpec{{Kind: netlab.FullCone}}})
	router := lab.NATs[0]
	client := router.Clients[0]
	srv := lab.Rendezvous
	dir := t.TempDir()
	ref, mon := filepath.Join(dir, "client.pcap"), filepath.Join(dir, "server.pcap")
	stopRef := labtest.StartCapture(t, client.Host, "e0", ref, "udp port 7")
	stopMon := labtest.StartCapture(t, srv, "e0", mon, "udp port 7")

	var sc, cc *net.UDPConn
	if err := srv.Do(func() (err error) {
		sc, err = net.ListenUDP("udp4", &net.UDPAddr{IP: netlab.Rendezvous.AsSlice(), Port: 7})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := sc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			time.Sleep(time.Millisecond)
			sc.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	if err := client.Do(func() (err error) {
		cc, err = net.DialUDP("udp4", &net.UDPAddr{Port: int(client.Ports[0])}, &net.UDPAddr{IP: netlab.Rendezvous.AsSlice(), Port: 7})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, err := cc.Read(buf); err != nil {
				return
			}
		}
	}()
	msg := make([]byte, 48)
	for i := range 200 {
		binary.BigEndian.PutUint32(msg, uint32(i))
		cc.Write(msg)
		time.Sleep(4 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	stopRef()
	stopMon()

	a, b, natA := client.Addr.String(), netlab.Rendezvous.String(), router.WAN.String()
	cmd := exec.Command(sppBinary(t), "-a", a, "-A", b, "-n", natA, "-f", ref, "-F", mon, "--format", "csv")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("spp -n: %v", err)
	}
	checkAgainstTruth(t, parseCSV(t, string(out)), natTruth(t, ref, mon, client.Addr, router.WAN, netlab.Rendezvous))

	cmd = exec.Command(sppBinary(t), "-a", a, "-A", b, "-f", ref, "-F", mon)
	msgOut, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(msgOut), "MON "+mon+" has no packet between") {
		t.Fatalf("without -n: %v %s", err, msgOut)
	}
}

// natTruth identifies packets across the NAT by what it does not rewrite: protocol, IP ID,
// length and the UDP payload (the NAT changes addresses and the UDP checksum).
func natTruth(t *testing.T, refFile, monFile string, client, wan, server netip.Addr) []synth.Packet {
	t.Helper()
	type inst struct {
		us  int64
		dir engine.Dir
	}
	read := func(file string, near netip.Addr) (map[string][]inst, []string) {
		pkts, err := netlab.ReadCapture(file)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string][]inst{}
		var order []string
		for _, p := range pkts {
			if p.IPv4 == nil || p.UDP == nil {
				continue
			}
			var d engine.Dir
			switch {
			case p.Src.Addr() == near && p.Dst.Addr() == server:
				d = engine.Out
			case p.Src.Addr() == server && p.Dst.Addr() == near:
				d = engine.In
			default:
				continue
			}
			key := fmt.Sprintf("%d/%d/%d/%x", d, p.IPv4.Id, p.IPv4.Length, p.Payload)
			if _, ok := m[key]; !ok {
				order = append(order, key)
			}
			m[key] = append(m[key], inst{p.Time.UnixMicro(), d})
		}
		return m, order
	}
	r, order := read(refFile, client)
	m, _ := read(monFile, wan)
	var res []synth.Packet
	for _, k := range order {
		for i, ri := range r[k] {
			p := synth.Packet{Dir: ri.dir, Ref: ri.us, Lost: i >= len(m[k])}
			if !p.Lost {
				p.Mon = m[k][i].us
			}
			res = append(res, p)
		}
	}
	return res
}
