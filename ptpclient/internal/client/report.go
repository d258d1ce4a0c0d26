package client

import (
	"fmt"
	"math"
	"net/netip"
	"sort"
	"time"

	"github.com/probekit/probekit/shared/natprobe"
	"github.com/probekit/probekit/shared/ptp"
)

// RTT is an RTT summary in milliseconds.
type RTT struct {
	Min float64 `json:"min"`
	Avg float64 `json:"avg"`
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// PeerReport is one peer's row of the summary.
type PeerReport struct {
	UUID    string `json:"uuid"`
	Address string `json:"address"`
	Path    string `json:"path"`
	Reason  string `json:"reason"`
	Learned bool   `json:"learned"`
	// Left is set for a peer the server stopped listing (it shut down or expired).
	Left     bool    `json:"left,omitempty"`
	Version  int     `json:"version"`
	Sent     uint64  `json:"sent"`
	Received uint64  `json:"received"`
	Lost     uint64  `json:"lost"`
	LossPct  float64 `json:"loss_pct"`
	RTT      RTT     `json:"rtt_ms"`
	JitterMs float64 `json:"jitter_ms"`
	// LastRTTMs is the latest sample (the original's "Avg RTT" column showed it).
	LastRTTMs float64 `json:"last_rtt_ms"`
	// Rcvd counts every valid packet from the peer (the original's Pkts Rcvd).
	Rcvd uint64 `json:"packets_received"`
}

// NATReport is our NAT behaviour.
type NATReport struct {
	Mapping         string `json:"mapping"`
	Filtering       string `json:"filtering"`
	Hairpin         string `json:"hairpin"`
	Method          string `json:"method,omitempty"`
	MappingReason   string `json:"mapping_reason,omitempty"`
	FilteringReason string `json:"filtering_reason,omitempty"`
	HairpinReason   string `json:"hairpin_reason,omitempty"`
}

// SelfReport describes this client.
type SelfReport struct {
	Local  string    `json:"local"`
	Public string    `json:"public"`
	NAT    NATReport `json:"nat"`
	// PortMaps is what SetPortMaps gave (the status pane's line; the JSON summary has the
	// full results under port_mapping).
	PortMaps []ptp.PortMap `json:"-"`
}

// Summary is the final (or current) report: the last JSON line of --json.
type Summary struct {
	Type    string       `json:"type"`
	UUID    string       `json:"uuid"`
	Server  string       `json:"server"`
	Mesh    string       `json:"mesh,omitempty"`
	Self    SelfReport   `json:"self"`
	ServerR PeerReport   `json:"server_path"`
	Peers   []PeerReport `json:"peers"`
	// Timestamps says where the RTT samples' send times came from.
	Timestamps struct {
		KernelTx uint64 `json:"kernel_tx"`
		UserTx   uint64 `json:"user_tx"`
	} `json:"timestamps"`
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// Summary returns the figures so far.
func (c *Client) Summary() Summary {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Summary{Type: "summary", UUID: c.uuid.String(), Server: c.server.String(), Mesh: c.cfg.Mesh}
	s.Self.Local = c.local.String()
	s.Self.PortMaps = append([]ptp.PortMap(nil), c.portMaps...)
	if c.public.IsValid() {
		s.Self.Public = c.public.String()
	} else if c.nat.Public.IsValid() {
		s.Self.Public = c.nat.Public.String()
	}
	n := c.nat
	s.Self.NAT = NATReport{Mapping: n.Mapping.String(), Filtering: n.Filtering.String(), Hairpin: n.Hairpin.String(),
		Method: n.Method, MappingReason: n.MappingReason, FilteringReason: n.FilteringReason, HairpinReason: n.HairpinReason}
	if !c.natDone && !c.cfg.NoSTUN {
		s.Self.NAT.MappingReason = "STUN discovery still running"
	}
	s.Timestamps.KernelTx, s.Timestamps.UserTx = c.counters.kernelTx.Load(), c.counters.userTx.Load()
	s.ServerR = c.peerReport(&c.srv)
	s.ServerR.Path = ptp.PathDirect.String()
	s.ServerR.Version = int(c.serverVer)
	if c.srv.rcvd == 0 {
		s.ServerR.Path = ptp.PathNone.String()
		s.ServerR.Reason = "no answer from the server"
	}
	s.Peers = make([]PeerReport, 0, len(c.peers))
	for _, p := range c.peers {
		s.Peers = append(s.Peers, c.peerReport(p))
	}
	for _, p := range c.gone {
		if p.hasUUID && c.byUUID[p.uuid] != nil {
			continue // back in the list
		}
		s.Peers = append(s.Peers, c.peerReport(p))
	}
	sort.SliceStable(s.Peers, func(i, j int) bool { return s.Peers[i].Address < s.Peers[j].Address })
	return s
}

func (c *Client) peerReport(p *peer) PeerReport {
	st := p.activeStats()
	r := PeerReport{Path: p.reportPath().String(), Learned: p.learned && p.path == ptp.PathDirect, Version: int(p.version),
		Sent: st.sent, Received: st.received, Lost: st.lost, Rcvd: p.rcvd,
		RTT:      RTT{Min: ms(st.rtt.Min()), Avg: ms(st.rtt.Mean()), P50: ms(st.rtt.Percentile(50)), P99: ms(st.rtt.Percentile(99)), Max: ms(st.rtt.Max())},
		JitterMs: ms(st.jitter.Value()), LastRTTMs: ms(st.last), Left: p.left}
	if p.hasUUID {
		r.UUID = p.uuid.String()
	}
	switch {
	case p.active.IsValid() && p.path != ptp.PathRelay:
		r.Address = p.active.String()
	case p.ext.IsValid():
		r.Address = p.ext.String()
	}
	if r.Received+r.Lost > 0 {
		r.LossPct = math.Round(float64(r.Lost)/float64(r.Received+r.Lost)*1e4) / 100
	}
	if p != &c.srv {
		r.Reason = c.reason(p)
	}
	return r
}

// reason says in words why the path to p is not a plain direct one.
func (c *Client) reason(p *peer) string {
	ours := c.nat.Info
	if !c.natDone {
		ours = natprobe.Info{}
	}
	theirs := p.nat
	switch p.reportPath() {
	case ptp.PathDirect:
		return ""
	case ptp.PathLAN:
		return fmt.Sprintf("behind our public address %v: reached on its LAN address %v", addrOnly(c.public), p.active)
	case ptp.PathHairpin:
		return fmt.Sprintf("behind our public address %v: reached through our NAT's hairpin at %v (LAN address unreachable)", addrOnly(c.public), p.active)
	case ptp.PathRelay:
		return natprobe.WhyNotDirect(ours, theirs) + ": relayed"
	}
	// No path at all.
	if p.rcvd == 0 && !p.everDirect {
		switch {
		case c.serverVer < ptp.ProtoV3 || c.cfg.Legacy:
			return "no answer from the peer, and the server (protocol version 2) cannot relay: " + natprobe.WhyNotDirect(ours, theirs)
		case !p.hasUUID:
			return "no answer from the peer, and the server's list gives no UUID to relay to"
		case !p.relaying:
			return "hole punching in progress"
		}
		return "no answer from the peer, neither directly nor through the server's relay"
	}
	if p.version != 0 && p.version < ptp.ProtoV3 {
		return "legacy (version 2) peer: its packets arrive but it cannot be relayed, and " + natprobe.WhyNotDirect(ours, theirs)
	}
	return "the peer's packets arrive but none of our probes is answered: " + natprobe.WhyNotDirect(ours, theirs)
}

func addrOnly(a netip.AddrPort) string {
	if !a.IsValid() {
		return "(unknown)"
	}
	return a.Addr().String()
}
