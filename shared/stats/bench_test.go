package stats

import (
	"testing"
	"time"
)

func BenchmarkSeriesAdd(b *testing.B) {
	var s Series
	v := 20 * time.Millisecond
	b.ReportAllocs()
	for b.Loop() {
		s.Add(v)
		v += 7919 // walk through many buckets
		if v > 40*time.Millisecond {
			v = 20 * time.Millisecond
		}
	}
}

func BenchmarkSeriesPercentileHistogram(b *testing.B) {
	var s Series
	for i := range 4 * ExactLimit {
		s.Add(20*time.Millisecond + time.Duration(i*997%5000000))
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = s.Percentile(99)
	}
}

func BenchmarkSeriesMerge(b *testing.B) {
	var x, y Series
	for i := range 4 * ExactLimit {
		x.Add(time.Duration(i) * time.Microsecond)
		y.Add(time.Duration(i) * time.Millisecond)
	}
	b.ReportAllocs()
	for b.Loop() {
		x.Merge(&y)
	}
}

func BenchmarkJitterAdd(b *testing.B) {
	var j Jitter
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		j.Add(time.Duration(i%1000) * time.Microsecond)
	}
}

func BenchmarkIPDVAdd(b *testing.B) {
	var p IPDV
	for i := range 2 * ExactLimit {
		p.Add(uint64(i), time.Duration(i%1000)*time.Microsecond)
	}
	b.ReportAllocs()
	for i := uint64(2 * ExactLimit); b.Loop(); i++ {
		p.Add(i, time.Duration(i%1000)*time.Microsecond)
	}
}

func BenchmarkSequenceAdd(b *testing.B) {
	var q Sequence
	b.ReportAllocs()
	for i := uint64(0); b.Loop(); i++ {
		// In order, with a swap every 16 packets (one reordered packet, extent 1).
		s := i
		switch i % 16 {
		case 14:
			s = i + 1
		case 15:
			s = i - 1
		}
		q.Add(s)
	}
}
