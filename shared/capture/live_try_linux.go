package capture

// TryNext returns the next packet the kernel has already handed to user space, without
// waiting; ok is false when none is ready or the handle is closed. A busy reader drains a
// batch with it after a blocking Next. Data points into the ring and is valid until the next
// call to Next or TryNext (or Close).
func (h *Live) TryNext() (p Packet, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p, ok, _ = h.nextLocked(false)
	return p, ok
}
