package engine

// ring is a growable FIFO of T with removal from the middle by shifting the shorter prefix.
// Capacity is a power of two and only grows, so steady-state operation allocates nothing.
type ring[T any] struct {
	buf  []T
	head int
	n    int
}

func (r *ring[T]) len() int { return r.n }

func (r *ring[T]) push(v T) {
	if r.n == len(r.buf) {
		r.grow()
	}
	r.buf[(r.head+r.n)&(len(r.buf)-1)] = v
	r.n++
}

func (r *ring[T]) grow() {
	size := 2 * len(r.buf)
	if size == 0 {
		size = 64
	}
	nb := make([]T, size)
	for i := 0; i < r.n; i++ {
		nb[i] = r.buf[(r.head+i)&(len(r.buf)-1)]
	}
	r.buf = nb
	r.head = 0
}

// at returns a pointer to the i-th element from the head (0 ≤ i < len).
func (r *ring[T]) at(i int) *T { return &r.buf[(r.head+i)&(len(r.buf)-1)] }

func (r *ring[T]) pop() T {
	v := r.buf[r.head]
	r.head = (r.head + 1) & (len(r.buf) - 1)
	r.n--
	return v
}

// remove deletes the i-th element, keeping the order of the others. The caller has just
// visited elements 0..i, so shifting that prefix costs no more than the visit did.
func (r *ring[T]) remove(i int) {
	mask := len(r.buf) - 1
	for j := i; j > 0; j-- {
		r.buf[(r.head+j)&mask] = r.buf[(r.head+j-1)&mask]
	}
	r.head = (r.head + 1) & mask
	r.n--
}
