//go:build !linux

package capture

// TryNext never has a packet on this platform.
func (h *Live) TryNext() (Packet, bool) { return Packet{}, false }
