package syncbuf

import (
	"strings"
	"sync"
	"testing"
)

// TestConcurrent: writers and a reader at once (run with -race); every write is kept whole.
func TestConcurrent(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				b.Write([]byte("line\n"))
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	if n := strings.Count(b.String(), "line\n"); n != 400 || len(b.Bytes()) != 2000 {
		t.Errorf("%d lines, %d bytes", n, len(b.Bytes()))
	}
}

// TestOnMatch: the callback runs once, when the match is complete across writes.
func TestOnMatch(t *testing.T) {
	calls := 0
	b := new(Buffer).OnMatch("ready", func() { calls++ })
	for _, w := range []string{"starting\nrea", "dy\n", "ready again\n"} {
		if calls != 0 && w == "dy\n" {
			t.Fatal("called before the match was complete")
		}
		b.Write([]byte(w))
	}
	if calls != 1 {
		t.Errorf("%d calls, want 1", calls)
	}
}
