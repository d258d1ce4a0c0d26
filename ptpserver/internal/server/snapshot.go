package server

import (
	"net/netip"
	"sort"
	"time"

	"github.com/probekit/probekit/shared/ptp"
)

// ClientState is one client as the server sees it.
type ClientState struct {
	ClientInfo
	Joined   time.Time
	LastSeen time.Time
	Received uint64 // packets received from it
	Sent     uint64 // beacons sent to it (packets carrying MYTS)
	Acked    uint64 // beacons it answered (YOURTS)
	Lost     uint64 // beacons unanswered after Config.AckTimeout
	RTTLast  time.Duration
	RTTMin   time.Duration
	RTTAvg   time.Duration
	RTTMax   time.Duration
	Relayed  uint64 // packets relayed on its behalf
	Dropped  uint64 // relay requests refused (rate, unknown or legacy peer)
	Peers    []PeerState
}

// PeerState is the last REACH a client reported about one peer of its mesh.
type PeerState struct {
	PeerReport
	At time.Time
}

// Snapshot is a consistent copy of the server's state.
type Snapshot struct {
	Time    time.Time
	Local   netip.AddrPort
	Clients []ClientState // ordered by mesh, then join time
	Stats   Stats
}

// Snapshot copies the state (for the UI, the summary, the web page).
func (s *Server) Snapshot() Snapshot {
	s.mu.Lock()
	now := s.cfg.Now()
	out := Snapshot{Time: now, Local: s.local, Clients: make([]ClientState, 0, len(s.clients))}
	for _, c := range s.clients {
		if c.mesh == nil {
			continue // a v3 client not yet in a mesh
		}
		cs := ClientState{
			ClientInfo: s.info(c, now), Joined: c.joined, LastSeen: c.lastSeen, Received: c.rcvd, Sent: c.sent,
			Acked: c.acked, Lost: c.lost, RTTLast: c.rttLast, RTTMin: c.rttMin, RTTMax: c.rttMax,
			Relayed: c.relayed, Dropped: c.relayDrops,
		}
		if c.acked > 0 {
			cs.RTTAvg = c.rttSum / time.Duration(c.acked)
		}
		for id, e := range c.reach {
			peer := c.mesh.byUUID[id]
			if peer == nil {
				continue
			}
			cs.Peers = append(cs.Peers, PeerState{PeerReport: PeerReport{Reach: e.r, PeerAddr: peer.addr, Reason: s.reason(c, peer, e.r.Path)}, At: time.Unix(0, e.at)})
		}
		sort.Slice(cs.Peers, func(i, j int) bool { return cs.Peers[i].PeerAddr.Compare(cs.Peers[j].PeerAddr) < 0 })
		out.Clients = append(out.Clients, cs)
	}
	s.mu.Unlock()
	out.Stats = s.Stats()
	sort.Slice(out.Clients, func(i, j int) bool {
		a, b := &out.Clients[i], &out.Clients[j]
		if a.Mesh != b.Mesh {
			return a.Mesh < b.Mesh
		}
		if !a.Joined.Equal(b.Joined) {
			return a.Joined.Before(b.Joined)
		}
		return a.Addr.Compare(b.Addr) < 0
	})
	return out
}

// Matrix returns the reachability matrix of a mesh: for each reporting client, its peers.
func (snap *Snapshot) Matrix(mesh string) map[ptp.UUID][]PeerState {
	m := map[ptp.UUID][]PeerState{}
	for i := range snap.Clients {
		c := &snap.Clients[i]
		if c.Mesh == mesh {
			m[c.UUID] = c.Peers
		}
	}
	return m
}
