// Command peerfarm simulates many protocol-v3 PtP mesh peers in one process for ptpclient's
// benchmark (scripts/bench.d/ptp.sh): each peer has its own UDP socket, registers with the
// server in one mesh on the original timers, answers every MYTS with YOURTS and ECHOSEQ, and
// probes the peers that are not its own (the client under test) at a fixed interval. Farm peers
// ignore each other, so the only mesh traffic is to and from the measured client.
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/probekit/probekit/shared/ptp"
	"github.com/probekit/probekit/shared/timestamp"
)

var (
	server   = flag.String("server", "127.0.0.1:23456", "ptpserver address")
	peers    = flag.Int("peers", 250, "simulated peers")
	mesh     = flag.String("mesh", "bench", "mesh name")
	interval = flag.Duration("interval", 500*time.Millisecond, "probe interval per peer towards the measured client")
	duration = flag.Duration("duration", time.Minute, "run time")
	bind     = flag.String("bind", "127.0.0.1", "local address of the sockets")
)

var (
	farm          sync.Map // UUID -> true
	sent, replies atomic.Uint64
)

type fpeer struct {
	c      *net.UDPConn
	uuid   ptp.UUID
	srv    netip.AddrPort
	mu     sync.Mutex
	seq    uint32
	target []netip.AddrPort
	out    ptp.Message
	buf    []byte
}

func main() {
	flag.Parse()
	srv, err := netip.ParseAddrPort(*server)
	if err != nil {
		fmt.Fprintln(os.Stderr, "peerfarm:", err)
		os.Exit(2)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	ctx, cancel2 := context.WithTimeout(ctx, *duration)
	defer cancel2()
	var all []*fpeer
	for i := 0; i < *peers; i++ {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(*bind)})
		if err != nil {
			fmt.Fprintln(os.Stderr, "peerfarm:", err)
			os.Exit(1)
		}
		p := &fpeer{c: c, srv: srv, buf: make([]byte, 0, ptp.MaxPacket)}
		rand.Read(p.uuid[:])
		farm.Store(p.uuid, true)
		all = append(all, p)
	}
	var wg sync.WaitGroup
	for i, p := range all {
		wg.Add(2)
		go func() { defer wg.Done(); p.read() }()
		go func() { defer wg.Done(); p.run(ctx, time.Duration(i)*(*interval)/time.Duration(len(all))) }()
	}
	<-ctx.Done()
	for _, p := range all {
		p.shutdown()
		p.c.Close()
	}
	wg.Wait()
	fmt.Printf("peerfarm: %d peers, %d probes sent, %d replies received\n", len(all), sent.Load(), replies.Load())
}

func (p *fpeer) send(m *ptp.Message, to netip.AddrPort) {
	m.Role, m.Version, m.UUID = ptp.RoleClient, ptp.ProtoV3, p.uuid
	m.Has |= ptp.FieldSequence | ptp.FieldUUID
	m.Sequence = p.seq
	p.seq++
	b, err := m.AppendTo(p.buf[:0])
	if err != nil {
		return
	}
	p.buf = b
	p.c.WriteToUDPAddrPort(b, to)
}

func (p *fpeer) beacon(shutdown bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := &p.out
	m.Reset()
	m.Has = ptp.FieldPTPAddr | ptp.FieldMesh
	m.PTPAddr = p.c.LocalAddr().(*net.UDPAddr).AddrPort()
	m.Mesh = append(m.Mesh[:0], *mesh...)
	if shutdown {
		m.Has |= ptp.FieldShutdown
	} else {
		m.Has |= ptp.FieldMyTS
		m.MyTS = timestamp.Fixed32FromTime(time.Now())
	}
	p.send(m, p.srv)
}

func (p *fpeer) shutdown() { p.beacon(true) }

func (p *fpeer) run(ctx context.Context, phase time.Duration) {
	p.beacon(false)
	beacon := time.NewTicker(7 * time.Second)
	defer beacon.Stop()
	select {
	case <-ctx.Done():
		return
	case <-time.After(phase):
	}
	probe := time.NewTicker(*interval)
	defer probe.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-beacon.C:
			p.beacon(false)
		case <-probe.C:
			p.mu.Lock()
			for _, t := range p.target {
				m := &p.out
				m.Reset()
				m.Has = ptp.FieldMyTS
				m.MyTS = timestamp.Fixed32FromTime(time.Now())
				p.send(m, t)
				sent.Add(1)
			}
			p.mu.Unlock()
		}
	}
}

func (p *fpeer) read() {
	buf := make([]byte, 2048)
	var m ptp.Message
	for {
		n, src, err := p.c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if m.UnmarshalBinary(buf[:n]) != nil {
			continue
		}
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		p.mu.Lock()
		if src == p.srv && m.Has&ptp.FieldList != 0 {
			if m.Has&ptp.FieldListPage == 0 || m.Page == 0 {
				p.target = p.target[:0] // a new list (pages after the first add to it)
			}
			for _, e := range m.Entries {
				if _, mine := farm.Load(e.UUID); e.HasUUID && !mine {
					p.target = append(p.target, e.Ext)
				}
			}
		}
		if m.Has&ptp.FieldYourTS != 0 && src != p.srv {
			replies.Add(1)
		}
		if m.Has&ptp.FieldMyTS != 0 {
			seq, ts := m.Sequence, m.MyTS
			o := &p.out
			o.Reset()
			o.Has = ptp.FieldYourTS | ptp.FieldEchoSeq
			o.YourTS, o.EchoSeq = ts, seq
			p.send(o, src)
		}
		p.mu.Unlock()
	}
}
