//go:build !linux

package capture

import (
	"errors"
	"fmt"
)

// Live is a live capture handle; live capture needs Linux AF_PACKET.
type Live struct{}

// OpenLive is unsupported on this platform.
func OpenLive(iface string, opts LiveOptions) (*Live, error) {
	return nil, fmt.Errorf("capture: open live %q: %w", iface, errors.ErrUnsupported)
}

// LinkType returns 0.
func (h *Live) LinkType() LinkType { return 0 }

// FilterLinkType returns 0.
func (h *Live) FilterLinkType() LinkType { return 0 }

// Snaplen returns 0.
func (h *Live) Snaplen() int { return 0 }

// Next returns ErrClosed.
func (h *Live) Next() (Packet, error) { return Packet{}, ErrClosed }

// Stats returns ErrClosed.
func (h *Live) Stats() (LiveStats, error) { return LiveStats{}, ErrClosed }

// Close does nothing.
func (h *Live) Close() error { return nil }
