package server

import (
	"github.com/probekit/probekit/shared/natprobe"
	"github.com/probekit/probekit/shared/ptp"
)

// Reason explains in words why a client reaches a peer by path rather than directly, from the
// NAT behaviour both reported (NATINFO; nil when not reported). It is "" for a direct path;
// the NAT explanation itself is natprobe.WhyNotDirect, the one ptpclient gives too.
func Reason(path ptp.Path, self, peer *ptp.NATInfo) string {
	switch path {
	case ptp.PathDirect:
		return ""
	case ptp.PathLAN:
		return "same public address: reached on its LAN address (CLIENTLIST_INT)"
	case ptp.PathHairpin:
		return "same public address: reached through the NAT's hairpin"
	}
	why := natprobe.WhyNotDirect(infoOf(self), infoOf(peer))
	if path == ptp.PathRelay {
		return why + ": relayed"
	}
	return why + ": no path"
}

// infoOf converts a NATINFO value (same numbering as natprobe's behaviours).
func infoOf(n *ptp.NATInfo) natprobe.Info {
	if n == nil {
		return natprobe.Info{}
	}
	return natprobe.Info{Mapping: natprobe.Behavior(n.Mapping), Filtering: natprobe.Behavior(n.Filtering), Hairpin: natprobe.Hairpin(n.Hairpin), Public: n.Public}
}
