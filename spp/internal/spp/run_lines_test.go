package spp

import (
	"bytes"
	"testing"
)

// chunkWriter records every Write it gets.
type chunkWriter struct{ chunks [][]byte }

func (c *chunkWriter) Write(b []byte) (int, error) {
	c.chunks = append(c.chunks, bytes.Clone(b))
	return len(b), nil
}

// Every write a file run makes to stdout ends at a line boundary (more output than the 64 KiB
// buffer, so the buffer flushes mid-run).
func TestOutputWritesWholeLines(t *testing.T) {
	var w chunkWriter
	cfg := fileConfig(tcpbulk[0], tcpbulk[1])
	cfg.Stdout = &w
	if err := Run(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	total := 0
	for i, c := range w.chunks {
		total += len(c)
		if len(c) == 0 || c[len(c)-1] != '\n' {
			t.Fatalf("write %d of %d (%d bytes) does not end a line", i, len(w.chunks), len(c))
		}
	}
	if len(w.chunks) < 2 {
		t.Fatalf("%d writes of %d bytes: the test needs output larger than the buffer", len(w.chunks), total)
	}
}
