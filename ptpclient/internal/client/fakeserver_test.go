package client

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/natprobe"
	"github.com/probekit/probekit/shared/natprobe/natsim"
	"github.com/probekit/probekit/shared/ptp"
)

// fakeServer is a minimal rendezvous server for unit tests, written from the reference (§4, §5)
// and the v3 contract: it is not ptpserver (the e2e and lab tests run the real binary).
type fakeServer struct {
	t       testing.TB
	conn    *natsim.Conn
	addr    netip.AddrPort
	version uint8
	stun    *natprobe.Server

	mu      sync.Mutex
	clients map[netip.AddrPort]*fakeClient
	order   []netip.AddrPort
	seq     uint32
	reach   map[ptp.UUID][]ptp.Reach
	relayed int
}

type fakeClient struct {
	uuid    ptp.UUID
	ptpaddr netip.AddrPort
	version uint8
	nat     ptp.NATInfo
}

func newFakeServer(t testing.TB, n *natsim.Network, addr netip.AddrPort, version uint8) *fakeServer {
	c, err := n.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{t: t, conn: c, addr: addr, version: version, clients: map[netip.AddrPort]*fakeClient{}, reach: map[ptp.UUID][]ptp.Reach{}}
	s.stun, err = natprobe.NewServer(context.Background(), natprobe.ServerConfig{Primary: addr,
		Send: func(b []byte, to netip.AddrPort) error { _, err := c.WriteToAddrPort(b, to); return err }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go s.read()
	go func() {
		tk := time.NewTicker(300 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
				s.beaconAll()
			}
		}
	}()
	t.Cleanup(func() { cancel(); c.Close() })
	return s
}

func (s *fakeServer) read() {
	buf := make([]byte, 2048)
	var m ptp.Message
	for {
		n, src, err := s.conn.ReadFromAddrPort(buf)
		if err != nil {
			return
		}
		b := buf[:n]
		if natprobe.IsSTUN(b) {
			s.stun.Handle(b, src)
			continue
		}
		if m.UnmarshalBinary(b) != nil {
			continue
		}
		s.mu.Lock()
		cl := s.clients[src]
		if m.Has&ptp.FieldShutdown != 0 {
			delete(s.clients, src)
			s.mu.Unlock()
			s.beaconAll()
			continue
		}
		added := false
		if cl == nil {
			cl = &fakeClient{}
			s.clients[src] = cl
			s.order = append(s.order, src)
			added = true
		}
		cl.uuid = m.UUID
		cl.version = m.Version
		if m.Has&ptp.FieldPTPAddr != 0 {
			cl.ptpaddr = m.PTPAddr
		}
		if m.Has&ptp.FieldNATInfo != 0 {
			cl.nat = m.NAT
		}
		if len(m.Reach) > 0 {
			s.reach[cl.uuid] = append([]ptp.Reach(nil), m.Reach...)
		}
		if m.Has&ptp.FieldRelayTo != 0 {
			var dst netip.AddrPort
			for a, o := range s.clients {
				if o.uuid == m.RelayTo {
					dst = a
				}
			}
			if dst.IsValid() {
				if _, err := ptp.RewriteRelay(b, cl.uuid); err == nil {
					s.relayed++
					s.mu.Unlock()
					s.conn.WriteToAddrPort(b, dst)
					continue
				}
			}
			s.mu.Unlock()
			continue
		}
		v := min(s.version, cl.version)
		var out ptp.Message
		if m.Has&ptp.FieldMyTS != 0 {
			out = ptp.Message{Role: ptp.RoleServer, Version: v, Has: ptp.FieldSequence | ptp.FieldUUID | ptp.FieldYourTS,
				Sequence: s.seq, UUID: m.UUID, YourTS: m.MyTS}
			s.seq++
			if v >= ptp.ProtoV3 {
				out.Has |= ptp.FieldEchoSeq
				out.EchoSeq = m.Sequence
			}
		}
		s.mu.Unlock()
		if out.Has != 0 {
			pkt, err := out.AppendTo(nil)
			if err == nil {
				s.conn.WriteToAddrPort(pkt, src)
			}
		}
		if added {
			s.beaconAll()
		}
	}
}

// beaconAll sends every client the list of the others (reference §4 server beacon).
func (s *fakeServer) beaconAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for a, cl := range s.clients {
		v := min(s.version, cl.version)
		m := ptp.Message{Role: ptp.RoleServer, Version: v, Has: ptp.FieldSequence | ptp.FieldUUID | ptp.FieldYourAddr | ptp.FieldList,
			Sequence: s.seq, UUID: cl.uuid, YourAddr: a}
		s.seq++
		for _, oa := range s.order {
			o := s.clients[oa]
			if o == nil || oa == a {
				continue
			}
			e := ptp.Entry{Ext: oa}
			if oa.Addr() == a.Addr() {
				e.Int = o.ptpaddr
			}
			if v >= ptp.ProtoV3 {
				e.UUID, e.HasUUID = o.uuid, true
			}
			m.Entries = append(m.Entries, e)
		}
		pkt, err := m.AppendTo(nil)
		if err != nil {
			s.t.Error(err)
			continue
		}
		s.conn.WriteToAddrPort(pkt, a)
	}
}
