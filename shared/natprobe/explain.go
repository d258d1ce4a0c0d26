package natprobe

import "fmt"

// mappingWords and filteringWords describe behaviours in the words reachability reasons use.
func mappingWords(b Behavior) string {
	switch b {
	case EndpointIndependent:
		return "keeps one public port for every destination (endpoint-independent)"
	case AddressDependent:
		return "maps per destination address (address-dependent)"
	case AddressPortDependent:
		return "maps per destination (address-and-port-dependent)"
	}
	return "maps in an unknown way"
}

func filteringWords(b Behavior) string {
	switch b {
	case EndpointIndependent:
		return "accepts packets from anyone (endpoint-independent)"
	case AddressDependent:
		return "filters per address"
	case AddressPortDependent:
		return "filters per address and port"
	}
	return "filters in an unknown way"
}

func dependent(b Behavior) bool { return b == AddressDependent || b == AddressPortDependent }

// PunchOK predicts whether simultaneous hole punching with peer-reflexive learning works
// between two NATs, and ok is false when a behaviour it needs is unknown.
//
// Each side sends to the address the rendezvous server saw for the other. A side whose NAT maps
// per destination reaches the other from a port the other never sent to: that only gets in
// when the other side filters no finer than per address; and nothing reaches the mapped port
// the server saw of a side that maps per destination, so two such sides never meet.
func PunchOK(ours, peer Info) (works, known bool) {
	if ours.Mapping == Unknown || peer.Mapping == Unknown {
		return false, false
	}
	if dependent(ours.Mapping) && dependent(peer.Mapping) {
		return false, true
	}
	if dependent(peer.Mapping) {
		if ours.Filtering == Unknown {
			return false, false
		}
		return ours.Filtering != AddressPortDependent, true
	}
	if dependent(ours.Mapping) {
		if peer.Filtering == Unknown {
			return false, false
		}
		return peer.Filtering != AddressPortDependent, true
	}
	return true, true
}

// WhyNotDirect explains in words, from the two NATs' behaviours, why no direct path exists
// between us and a peer (or that the behaviours allow one, so something else dropped the
// packets).
func WhyNotDirect(ours, peer Info) string {
	switch {
	case dependent(ours.Mapping) && dependent(peer.Mapping):
		return fmt.Sprintf("both NATs map per destination (ours %s, the peer's %s): neither side can learn the port the other uses towards it",
			ours.Mapping, peer.Mapping)
	case dependent(peer.Mapping) && ours.Filtering == AddressPortDependent:
		return fmt.Sprintf("peer's NAT %s and ours %s", mappingWords(peer.Mapping), filteringWords(ours.Filtering))
	case dependent(ours.Mapping) && peer.Filtering == AddressPortDependent:
		return fmt.Sprintf("our NAT %s and the peer's %s", mappingWords(ours.Mapping), filteringWords(peer.Filtering))
	case peer.Mapping == Unknown && ours.Mapping == Unknown:
		return "NAT behaviour unknown on both sides (no STUN answer with OTHER-ADDRESS)"
	case peer.Mapping == Unknown:
		return "the peer's NAT behaviour is unknown (it reported none)"
	case ours.Mapping == Unknown:
		return "our NAT behaviour is unknown (no STUN answer)"
	case dependent(peer.Mapping) && ours.Filtering == Unknown, dependent(ours.Mapping) && peer.Filtering == Unknown:
		return "one NAT maps per destination and the other side's filtering is unknown"
	}
	return fmt.Sprintf("both NATs allow hole punching (ours %s/%s, the peer's %s/%s) yet no direct packet got through: a firewall or loss on the way",
		ours.Mapping.Short('M'), ours.Filtering.Short('F'), peer.Mapping.Short('M'), peer.Filtering.Short('F'))
}
