package client

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/probekit/probekit/shared/ptp"
	"github.com/probekit/probekit/shared/udpsock"
)

// Errors of the peer/path interface.
var (
	// ErrNoPeer: no listed peer has that UUID.
	ErrNoPeer = errors.New("ptpclient: no such peer")
	// ErrNoPath: the peer answers neither directly nor through the relay (yet).
	ErrNoPath = errors.New("ptpclient: no path to the peer")
	// ErrLegacyPeer: the peer speaks protocol version 2; v3 TLVs would kill its read loop (PTP-W5).
	ErrLegacyPeer = errors.New("ptpclient: peer speaks protocol version 2")
)

// PeerPath is a peer and how the mesh reaches it now.
type PeerPath struct {
	UUID    ptp.UUID
	HasUUID bool
	// Address is where packets go on a direct path (lan, direct, hairpin), else the address the
	// server lists.
	Address netip.AddrPort
	Path    ptp.Path
	Version uint8
}

// Peers lists the peers the server lists, with their current path.
func (c *Client) Peers() []PeerPath {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]PeerPath, 0, len(c.peers))
	for _, p := range c.peers {
		pp := PeerPath{UUID: p.uuid, HasUUID: p.hasUUID, Address: p.ext, Path: p.reportPath(), Version: p.version}
		if p.active.IsValid() && p.path != ptp.PathRelay && p.path != ptp.PathNone {
			pp.Address = p.active
		}
		out = append(out, pp)
	}
	return out
}

// SendExtra sends v3 TLVs (bulk transfer uses types 20–29) to a peer over the path the mesh
// found: to its address on a direct path, else through the server's relay (RELAYTO). The
// peer's Config.Extra receives them. Packets are at most ptp.MaxPacket bytes. The packet is
// built under the client's lock but written after it is released (its own buffer, serialised
// by xmu): a bulk sender calls this per block, and holding c.mu across the syscall made the
// receive path (the receiver's acknowledgements) wait behind every send.
func (c *Client) SendExtra(peer ptp.UUID, tlvs []ptp.TLV) error {
	c.xmu.Lock()
	defer c.xmu.Unlock()
	to, err := c.buildExtra(peer, tlvs)
	if err != nil {
		return err
	}
	// No transmit timestamp: nothing times these packets by the kernel's clock (the bulk
	// engine keeps its own send times), and at bulk rates a report per packet to read from
	// the error queue costs the sender CPU it needs (a trial without them moved goodput
	// against TCP from 76–81 % to 85–89 %).
	c.xout[0] = udpsock.Message{Buf: c.xbuf, N: len(c.xbuf), Addr: to, NoTxStamp: true}
	n, err := c.tr.WriteBatch(c.xout[:])
	c.counters.sent.Add(uint64(n))
	if err != nil {
		// Like a refused message of a batch: counted, not fatal (the bulk engine retransmits).
		c.counters.sendErrors.Add(1)
		c.log.WithError(err).WithField("to", to).Debug("send")
	}
	return nil
}

// buildExtra encodes the extra TLVs into c.xbuf (c.xmu held) and returns the destination.
func (c *Client) buildExtra(peer ptp.UUID, tlvs []ptp.TLV) (netip.AddrPort, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.byUUID[peer]
	if p == nil {
		return netip.AddrPort{}, ErrNoPeer
	}
	if c.cfg.Legacy || p.version < ptp.ProtoV3 {
		return netip.AddrPort{}, ErrLegacyPeer
	}
	m := c.base(p, ptp.ProtoV3)
	m.Extra = append(m.Extra[:0], tlvs...)
	defer func() { c.txm.Extra = c.txm.Extra[:0] }()
	var to netip.AddrPort
	switch {
	case p.path != ptp.PathNone && p.path != ptp.PathRelay && p.active.IsValid():
		to = p.active
	case (p.path == ptp.PathRelay || p.relaying) && c.serverVer >= ptp.ProtoV3:
		relayVia(m, p)
		to = c.server
	default:
		return netip.AddrPort{}, ErrNoPath
	}
	b, err := m.AppendTo(c.xbuf[:0])
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("ptpclient: extra TLVs: %w", err)
	}
	c.xbuf = b
	if c.cfg.Debug {
		c.log.Debugf("sending %d bytes to %v", len(b), to)
		if c.cfg.Hexdump {
			c.log.Debugf("%x", b)
		}
	}
	return to, nil
}

// AddCandidate adds an address of ours (a port mapping, say) that the server announces to the
// peers as a CANDIDATE (v3); the next beacon, sent at once, carries it.
func (c *Client) AddCandidate(a netip.AddrPort) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, x := range c.candidates {
		if x == a {
			return
		}
	}
	c.candidates = append(c.candidates, a)
	c.nextBeacon = time.Time{}
}

// SetPortMaps sets the port-mapping outcomes (one per protocol) that beacons to a v3 server
// carry as PORTMAP TLVs, so that its web page shows them; the next beacon is sent at once.
func (c *Client) SetPortMaps(ps []ptp.PortMap) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.portMaps = append(c.portMaps[:0], ps...)
	c.nextBeacon = time.Time{}
}

// AddPeerCandidate adds an address to try for a peer (besides what the server lists); it is
// probed like the others and used when it answers.
func (c *Client) AddPeerCandidate(peer ptp.UUID, a netip.AddrPort) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.byUUID[peer]
	if p == nil {
		return ErrNoPeer
	}
	if _, added := p.addCandidate(a, candExtra); added {
		c.byAddr[a] = p
	}
	return nil
}
