package server

import (
	"fmt"

	"github.com/probekit/probekit/shared/ptp"
)

// Reason explains in words why a client reaches a peer by path rather than directly, from the
// NAT behaviour both reported (NATINFO; nil when not reported). It is "" for a direct path.
func Reason(path ptp.Path, self, peer *ptp.NATInfo) string {
	switch path {
	case ptp.PathDirect:
		return ""
	case ptp.PathLAN:
		return "same public address: reached on its LAN address (CLIENTLIST_INT)"
	case ptp.PathHairpin:
		return "same public address: reached through the NAT's hairpin"
	}
	why := natWhy(self, peer)
	if path == ptp.PathRelay {
		return why + ": relayed"
	}
	return why + ": no path"
}

func perDest(b ptp.Behavior) bool {
	return b == ptp.BehaviorAddressDependent || b == ptp.BehaviorAddressAndPortDependent
}

func natWhy(self, peer *ptp.NATInfo) string {
	if self == nil || peer == nil || self.Mapping == ptp.BehaviorUnknown || peer.Mapping == ptp.BehaviorUnknown {
		return "no direct packet answered (NAT behaviour not known for both ends)"
	}
	switch {
	case perDest(self.Mapping) && perDest(peer.Mapping):
		return fmt.Sprintf("both NATs map per destination (ours %v, peer's %v)", self.Mapping, peer.Mapping)
	case perDest(peer.Mapping) && perDest(self.Filtering):
		return fmt.Sprintf("peer's NAT maps per destination (%v) and ours filters per %s", peer.Mapping, filterWords(self.Filtering))
	case perDest(self.Mapping) && perDest(peer.Filtering):
		return fmt.Sprintf("our NAT maps per destination (%v) and the peer's filters per %s", self.Mapping, filterWords(peer.Filtering))
	case perDest(self.Filtering) && perDest(peer.Filtering):
		return "both NATs filter unsolicited packets and the simultaneous probes did not open them"
	}
	return "no direct packet answered although both NATs allow it (firewall or lost mapping)"
}

func filterWords(b ptp.Behavior) string {
	if b == ptp.BehaviorAddressDependent {
		return "address"
	}
	return "address and port"
}
