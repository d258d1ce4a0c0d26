// Package syncbuf is a bytes.Buffer that a process (or goroutines) may write while a test
// reads it.
package syncbuf

import (
	"bytes"
	"sync"
)

// Buffer is safe for concurrent Write, String and Bytes; the zero value is ready.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer

	match string // OnMatch's
	fn    func()
}

// OnMatch makes Write call fn once (under the buffer's lock: fn must not use the buffer),
// as soon as what was written so far contains match: a test acts when a process has said
// it is ready instead of after a fixed sleep.
func (s *Buffer) OnMatch(match string, fn func()) *Buffer {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.match, s.fn = match, fn
	return s
}

// Write appends p.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.b.Write(p)
	if s.fn != nil && bytes.Contains(s.b.Bytes(), []byte(s.match)) {
		fn := s.fn
		s.fn = nil
		fn()
	}
	return n, err
}

// String returns what was written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Bytes returns a copy of what was written so far.
func (s *Buffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// Len is how many bytes were written so far.
func (s *Buffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}

// Contains reports whether sub occurs in what was written from offset from on (without
// copying: a test polling a large output calls it often).
func (s *Buffer) Contains(from int, sub []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Contains(s.b.Bytes()[min(max(from, 0), s.b.Len()):], sub)
}
