package client

import (
	"net/netip"
	"time"

	"github.com/probekit/probekit/shared/natprobe"
	"github.com/probekit/probekit/shared/ptp"
	"github.com/probekit/probekit/shared/stats"
	"github.com/probekit/probekit/shared/timestamp"
)

// ringFor returns how many packets' probe slots a peer keeps: every packet to a peer (probes
// and replies) takes a SEQUENCE, so twice the probes sent within the loss timeout, plus slack,
// rounded up to a power of two (64 with the original's 0.5 s and a 3 s timeout).
func ringFor(lossTimeout, interval time.Duration) int {
	n := 2*int(lossTimeout/interval) + 16
	r := 64
	for r < n {
		r *= 2
	}
	return r
}

// via says how a probe was sent.
type via uint8

const (
	viaDirect via = iota
	viaRelay
)

type probeState uint8

const (
	probeFree probeState = iota
	probePending
	probeAnswered // reply received, waiting for the kernel send time
	probeDone
)

// probe is one outstanding MYTS.
type probe struct {
	seq     uint32
	myts    timestamp.Fixed32
	sent    time.Time // user-space time just before the send
	tx      time.Time // kernel send time (zero until known)
	rx      time.Time // reply receive time
	state   probeState
	via     via
	counted bool // sent on an established path: counts in sent/received/lost
}

// pathStats are the figures of one way of reaching a peer.
type pathStats struct {
	sent, received, lost, dup uint64
	rtt                       stats.Series
	jitter                    stats.Jitter
	last                      time.Duration
}

// candKind says where a candidate address came from.
type candKind uint8

const (
	candPublic  candKind = iota // CLIENTLIST_EXT: the address the server sees
	candLAN                     // CLIENTLIST_INT: same public IP as ours, its PTPADDR
	candExtra                   // v3 CANDIDATE (e.g. a port mapping) or AddCandidate
	candLearned                 // peer-reflexive: a packet with the peer's UUID came from it
)

func (k candKind) String() string {
	return [...]string{"public", "lan", "extra", "learned"}[k]
}

type candidate struct {
	addr   netip.AddrPort
	kind   candKind
	lastRx time.Time
}

// peer is one mesh member (or the server, which has the same probe machinery).
type peer struct {
	uuid    ptp.UUID
	hasUUID bool
	// uuidListed: the UUID came from the server's list (v3 PEERUUID), not from packets.
	uuidListed bool
	ext        netip.AddrPort // the server's CLIENTLIST_EXT for it
	lan        netip.AddrPort // CLIENTLIST_INT
	cands      []candidate
	version    uint8 // CLIENTVER it sent (0: not heard yet)
	nat        natprobe.Info
	hasNAT     bool

	seqOut    uint32  // per-peer SEQUENCE counter (every packet sent to it)
	probes    []probe // ring indexed by SEQUENCE % len
	direct    pathStats
	relay     pathStats
	rcvd      uint64 // every valid packet from it (the original's rcvd)
	firstSeen time.Time

	// Path state.
	path       ptp.Path
	active     netip.AddrPort // direct destination when path is direct/lan/hairpin
	activeKind candKind
	lastDirect time.Time // last reply on the direct path
	lastRelay  time.Time
	relaying   bool
	punchStart time.Time
	nextProbe  time.Time
	nextPunch  time.Time
	nextExpire time.Time
	learned    bool
	everDirect bool
	gotRelayed bool
	seen       bool // in the latest list
	left       bool // removed from the server's list
}

func (p *peer) slot(seq uint32) *probe { return &p.probes[seq%uint32(len(p.probes))] }

func (p *peer) stats(v via) *pathStats {
	if v == viaRelay {
		return &p.relay
	}
	return &p.direct
}

func (p *peer) candidate(a netip.AddrPort) *candidate {
	for i := range p.cands {
		if p.cands[i].addr == a {
			return &p.cands[i]
		}
	}
	return nil
}

func (p *peer) addCandidate(a netip.AddrPort, k candKind) (*candidate, bool) {
	if !a.IsValid() {
		return nil, false
	}
	if c := p.candidate(a); c != nil {
		return c, false
	}
	p.cands = append(p.cands, candidate{addr: a, kind: k})
	return &p.cands[len(p.cands)-1], true
}

// rank orders paths: a LAN address beats the public one, which beats hairpinning; the relay is last.
func rank(p ptp.Path) int {
	switch p {
	case ptp.PathLAN:
		return 4
	case ptp.PathDirect:
		return 3
	case ptp.PathHairpin:
		return 2
	case ptp.PathRelay:
		return 1
	}
	return 0
}

// established reports whether probes to the peer go over a path that answered.
func (p *peer) established() bool {
	return p.path != ptp.PathNone
}
