package capture

import (
	"encoding/binary"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// TryNext returns the next packet the kernel has already handed to user space, without
// waiting; ok is false when none is ready or the handle is closed. A busy reader drains a
// batch with it after a blocking Next. Data points into the ring and is valid until the next
// call to Next or TryNext (or Close).
func (h *Live) TryNext() (p Packet, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for !h.closed.Load() {
		if h.left > 0 {
			if p, ok := h.packet(); ok {
				return p, true
			}
			continue
		}
		if h.held {
			atomic.StoreUint32(h.status(h.block), unix.TP_STATUS_KERNEL)
			h.held = false
			h.block = (h.block + 1) % h.nBlocks
		}
		if atomic.LoadUint32(h.status(h.block))&unix.TP_STATUS_USER == 0 {
			return Packet{}, false
		}
		base := h.block * h.blockSz
		h.held = true
		h.left = int(binary.NativeEndian.Uint32(h.ring[base+tpNumPktsOff:]))
		h.off = base + int(binary.NativeEndian.Uint32(h.ring[base+tpFirstPktOff:]))
	}
	return Packet{}, false
}
