package client

import (
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"time"

	"github.com/probekit/probekit/shared/ptp"
)

// onTick runs the timers: server beacon (PTP-C1: 7 s), peer probes (0.5 s), hole punching,
// relay fallback, loss timeouts and reachability reports.
func (c *Client) onTick(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shutdown {
		return
	}
	defer c.flush()
	c.drainTx()
	if !now.Before(c.nextBeacon) {
		c.nextBeacon = now.Add(c.cfg.ServerInterval)
		if !c.listed {
			// Not registered yet (no list from the server): a lost first beacon, or a lost
			// v3 re-registration, would otherwise cost a whole interval.
			c.nextBeacon = now.Add(min(time.Second, c.cfg.ServerInterval))
		}
		c.probe(&c.srv, c.server, viaDirect, true, now)
	}
	c.expire(&c.srv, now)
	for _, p := range c.peers {
		c.tickPeer(p, now)
	}
	if c.serverVer >= ptp.ProtoV3 && !c.cfg.Legacy && !now.Before(c.nextReach) && len(c.peers) > 0 {
		c.nextReach = now.Add(c.cfg.ServerInterval)
		c.sendReach(now)
	}
}

// expireEvery is how often a peer's outstanding probes are checked for the loss timeout.
const expireEvery = 200 * time.Millisecond

// beaconFields adds the registration TLVs to a server beacon (c.mu held). No META: the
// original server only logs it, and a Python peer re-measures it by its own json.dumps, so
// anything not byte-identical (or over 253 bytes, B4) would break its parse; SHUTDOWN carries
// the original's constant `{}` (TestGoldenLegacyRegistration, TestGoldenLegacyPackets).
func (c *Client) beaconFields(m *ptp.Message) {
	m.Has |= ptp.FieldPTPAddr
	m.PTPAddr = c.local
	if c.v3ok(c.serverVer) {
		if c.cfg.Mesh != "" {
			m.Has |= ptp.FieldMesh
			m.Mesh = append(m.Mesh[:0], c.cfg.Mesh...)
		}
		if ni, ok := c.natInfo(); ok {
			m.Has |= ptp.FieldNATInfo
			m.NAT = ni
		}
		m.Candidates = append(m.Candidates[:0], c.candidates...)
		m.PortMaps = append(m.PortMaps[:0], c.portMaps...)
	}
}

func (c *Client) tickPeer(p *peer, now time.Time) {
	if !now.Before(p.nextExpire) {
		// Loss timeouts need no finer grain than this; scanning every ring on every tick
		// was the largest user-space cost with hundreds of peers.
		p.nextExpire = now.Add(expireEvery)
		c.expire(p, now)
	}
	if p.punchStart.IsZero() {
		p.punchStart = now
	}
	// A direct path that stopped answering is dropped; punching (and the relay) take over.
	if p.path != ptp.PathNone && p.path != ptp.PathRelay && now.Sub(p.lastDirect) > c.cfg.PathTimeout {
		c.event("path", p, ptp.PathNone.String(), fmt.Sprintf("path to %v: %s via %v stopped answering", p.ext, p.path, p.active))
		p.path, p.active = ptp.PathNone, netip.AddrPort{}
		p.punchStart = now
	}
	if p.path == ptp.PathRelay && now.Sub(p.lastRelay) > c.cfg.PathTimeout && now.Sub(p.lastDirect) > c.cfg.PathTimeout {
		c.event("path", p, ptp.PathNone.String(), fmt.Sprintf("path to %v: relay stopped answering", p.ext))
		p.path = ptp.PathNone
		p.punchStart = now
	}
	canRelay := c.serverVer >= ptp.ProtoV3 && !c.cfg.Legacy && p.hasUUID
	if p.path == ptp.PathNone && !p.relaying && canRelay && now.Sub(p.punchStart) >= c.cfg.RelayAfter {
		p.relaying = true
		p.lastRelay = now
		c.event("relay", p, ptp.PathRelay.String(), fmt.Sprintf("no direct answer from %v after %v: probing via the server", p.ext, c.cfg.RelayAfter))
	}
	if now.Before(p.nextProbe) {
		return
	}
	// On a schedule, not "now + interval": ticks come late and would stretch the interval.
	p.nextProbe = p.nextProbe.Add(c.cfg.ProbeInterval)
	if p.nextProbe.Before(now) {
		p.nextProbe = now.Add(c.cfg.ProbeInterval)
	}
	switch {
	case p.path != ptp.PathNone && p.path != ptp.PathRelay:
		c.probe(p, p.active, viaDirect, true, now)
		// Look for a better direct path now and then (a LAN address beats the public one).
		if !now.Before(p.nextPunch) {
			p.nextPunch = now.Add(c.cfg.PunchInterval)
			for _, cand := range p.cands {
				if cand.addr != p.active {
					if path, _ := c.pathOf(p, cand.addr); rank(path) > rank(p.path) {
						c.probe(p, cand.addr, viaDirect, false, now)
					}
				}
			}
		}
	case p.relaying:
		c.probe(p, netip.AddrPort{}, viaRelay, true, now)
		if !now.Before(p.nextPunch) {
			p.nextPunch = now.Add(c.cfg.PunchInterval)
			c.punch(p, now)
		}
	default:
		c.punch(p, now)
	}
}

// punch probes every candidate address of p (simultaneous probing: the peer does the same).
func (c *Client) punch(p *peer, now time.Time) {
	for i := range p.cands {
		c.probe(p, p.cands[i].addr, viaDirect, false, now)
	}
}

// expire counts the probes unanswered after the loss timeout as lost, and finishes answered
// probes whose kernel send time never came.
func (c *Client) expire(p *peer, now time.Time) {
	for i := range p.probes {
		pr := &p.probes[i]
		switch pr.state {
		case probePending:
			if now.Sub(pr.sent) > c.cfg.LossTimeout {
				if pr.counted {
					p.stats(pr.via).lost++
				}
				pr.state = probeFree
			}
		case probeAnswered:
			if now.Sub(pr.rx) > 200*time.Millisecond {
				c.complete(p, pr)
			}
		}
	}
}

// list applies a server list (PTP-C3: only when CLIENTLEN matches; v3 pages are collected first).
func (c *Client) list(m *ptp.Message) {
	c.listed = true
	if !m.ListComplete() {
		c.event("list", nil, "", fmt.Sprintf("ignored a server list: CLIENTLEN %d, %d entries", m.ClientLen, len(m.Entries)))
		return
	}
	entries := m.Entries
	if m.Has&ptp.FieldListPage != 0 && m.Pages > 1 {
		var ok bool
		entries, ok = c.pages.add(m)
		if !ok {
			return
		}
	}
	for _, p := range c.peers {
		p.seen = false
	}
	for i := range entries {
		e := &entries[i]
		if e.HasUUID && e.UUID == c.uuid {
			continue // ourselves
		}
		var p *peer
		if e.HasUUID {
			p = c.byUUID[e.UUID]
		}
		if p == nil {
			if q := c.byAddr[e.Ext]; q != nil && (!e.HasUUID || !q.hasUUID || q.uuid == e.UUID) {
				p = q
			}
		}
		if p == nil {
			now := time.Now()
			p = &peer{ext: e.Ext, firstSeen: now, probes: make([]probe, ringFor(c.cfg.LossTimeout, c.cfg.ProbeInterval))}
			// Spread the peers. probes over the interval (the first within one interval):
			// a burst of hundreds of replies would overflow socket buffers.
			p.nextProbe = now.Add(time.Duration(mrand.Int64N(int64(c.cfg.ProbeInterval))))
			p.punchStart = now
			c.peers = append(c.peers, p)
			c.event("peer-added", p, "", fmt.Sprintf("Received new client %v from the server", e.Ext))
		}
		p.seen = true
		if e.HasUUID && (!p.hasUUID || !p.uuidListed) {
			if p.hasUUID && p.uuid != e.UUID && c.byUUID[p.uuid] == p {
				delete(c.byUUID, p.uuid)
			}
			p.uuid, p.hasUUID, p.uuidListed = e.UUID, true, true
		}
		if p.hasUUID {
			c.byUUID[p.uuid] = p
		}
		if p.ext != e.Ext {
			p.ext = e.Ext
		}
		if _, added := p.addCandidate(e.Ext, candPublic); added {
			c.byAddr[e.Ext] = p
		}
		if e.Int.IsValid() {
			p.lan = e.Int
			if _, added := p.addCandidate(e.Int, candLAN); added {
				c.byAddr[e.Int] = p
			} else if cand := p.candidate(e.Int); cand != nil && cand.kind == candPublic {
				cand.kind = candLAN
			}
		}
		for _, a := range e.CandidateList() {
			if _, added := p.addCandidate(a, candExtra); added {
				c.byAddr[a] = p
			}
		}
	}
	kept := c.peers[:0]
	for _, p := range c.peers {
		if p.seen {
			kept = append(kept, p)
			continue
		}
		c.event("peer-removed", p, "", fmt.Sprintf("Expiring client %v (no longer in the server's list)", p.ext))
		if p.rcvd > 0 || p.direct.sent+p.relay.sent > 0 {
			p.left = true
			c.gone = append(c.gone, p) // kept for the final report
			if len(c.gone) > 1000 {
				c.gone = c.gone[1:]
			}
		}
		for _, cand := range p.cands {
			if c.byAddr[cand.addr] == p {
				delete(c.byAddr, cand.addr)
			}
		}
		if p.hasUUID && c.byUUID[p.uuid] == p {
			delete(c.byUUID, p.uuid)
		}
	}
	for i := len(kept); i < len(c.peers); i++ {
		c.peers[i] = nil
	}
	c.peers = kept
}

// pageSet collects the pages of a paged v3 list.
type pageSet struct {
	pages   uint8
	got     []bool
	entries [][]ptp.Entry
}

func (s *pageSet) add(m *ptp.Message) ([]ptp.Entry, bool) {
	if m.Pages != s.pages || len(s.got) != int(m.Pages) {
		s.pages = m.Pages
		s.got = make([]bool, m.Pages)
		s.entries = make([][]ptp.Entry, m.Pages)
	}
	if int(m.Page) >= len(s.got) {
		return nil, false
	}
	s.got[m.Page] = true
	s.entries[m.Page] = append(s.entries[m.Page][:0], m.Entries...)
	for _, g := range s.got {
		if !g {
			return nil, false
		}
	}
	var all []ptp.Entry
	for _, e := range s.entries {
		all = append(all, e...)
	}
	for i := range s.got {
		s.got[i] = false
	}
	return all, true
}

// sendReach reports what we measured towards each peer (v3 REACH, c→s), as many per packet as
// fit.
func (c *Client) sendReach(now time.Time) {
	const perPacket = 20
	for i := 0; i < len(c.peers); i += perPacket {
		m := c.base(&c.srv, c.ourVersion())
		for _, p := range c.peers[i:min(i+perPacket, len(c.peers))] {
			if !p.hasUUID {
				continue
			}
			m.Reach = append(m.Reach, c.reachOf(p))
		}
		if len(m.Reach) == 0 {
			continue
		}
		if err := c.finishSend(m, c.server); err != nil {
			c.log.WithError(err).Debug("REACH report")
		}
	}
}

func (c *Client) reachOf(p *peer) ptp.Reach {
	st := p.activeStats()
	us := func(d time.Duration) uint32 {
		v := d.Microseconds()
		if v < 0 {
			return 0
		}
		if v > 1<<32-1 {
			return 1<<32 - 1
		}
		return uint32(v)
	}
	return ptp.Reach{Peer: p.uuid, Path: p.reportPath(), Sent: uint32(st.sent), Received: uint32(st.received), Lost: uint32(st.lost),
		RTTMin: us(st.rtt.Min()), RTTAvg: us(st.rtt.Mean()), RTTP50: us(st.rtt.Percentile(50)), RTTP99: us(st.rtt.Percentile(99)),
		RTTMax: us(st.rtt.Max()), Jitter: us(st.jitter.Value())}
}

// reportPath is the path a report names: the relay while relaying, none while nothing answers.
func (p *peer) reportPath() ptp.Path {
	if p.path == ptp.PathNone && p.relaying && p.gotRelayed {
		return ptp.PathRelay
	}
	return p.path
}

// activeStats are the figures of the path in use (the relay's while relaying).
func (p *peer) activeStats() *pathStats {
	if p.path == ptp.PathRelay || (p.path == ptp.PathNone && p.relaying) {
		return &p.relay
	}
	return &p.direct
}

// sendShutdown tells the server we leave (PTP-C4): the beacon with SHUTDOWN in place of MYTS.
func (c *Client) sendShutdown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shutdown || c.tr == nil {
		return
	}
	c.shutdown = true
	m := c.base(&c.srv, c.ourVersion())
	m.Has |= ptp.FieldPTPAddr | ptp.FieldShutdown | ptp.FieldMeta
	m.PTPAddr = c.local
	m.Meta = append(m.Meta[:0], "{}"...)
	if err := c.finishSend(m, c.server); err != nil {
		c.log.WithError(err).Warn("sending SHUTDOWN")
		return
	}
	c.flush()
	c.event("shutdown", nil, "", "sent SHUTDOWN to the server")
}
