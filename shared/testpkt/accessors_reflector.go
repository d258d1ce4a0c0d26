package testpkt

import "encoding/binary"

// SSIDOf returns the SSID of a STAMP packet of mode m (either direction), or 0 when the layout
// has none (TWAMP) or b is too short to hold it.
func SSIDOf(m Mode, b []byte) uint16 {
	off := SSIDOffset(m)
	if off < 0 || len(b) < off+2 {
		return 0
	}
	return binary.BigEndian.Uint16(b[off:])
}
