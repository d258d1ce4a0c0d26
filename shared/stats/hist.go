package stats

import (
	"fmt"
	"math/bits"
)

// The histogram is log-linear like HDR histograms: magnitudes below 2^(subBits+1) ns get one
// bucket per nanosecond, and every octave above that is split into 2^subBits equal buckets,
// so a bucket is never wider than 1/2^subBits of the values in it (0.098 %). Reported values
// are bucket midpoints, so a percentile read from the histogram is within 0.049 % of a value
// that was recorded (for |v| < 2.048 µs it is exact). Counters live in one 8 KiB chunk per
// (sign, octave), allocated the first time a value lands there, so a series of RTTs spanning
// a few octaves costs a few chunks, and Add allocates nothing once its octaves exist.
const (
	subBits    = 10
	subCount   = 1 << subBits
	chunkCount = 64 - subBits // chunk c covers magnitudes [2^(c+subBits-1), 2^(c+subBits)) for c ≥ 1
)

type chunk [subCount]uint64

type hist struct {
	// pos[c] counts values ≥ 0, neg[c] values < 0 by magnitude.
	pos, neg       [chunkCount]*chunk
	posTot, negTot [chunkCount]uint64
}

// bucketOf maps a magnitude to its (chunk, offset).
func bucketOf(m uint64) (c, off int) {
	top := bits.Len64(m) // m < 2^top
	if top <= subBits+1 {
		return int(m >> subBits), int(m & (subCount - 1))
	}
	shift := top - subBits - 1
	return shift + 1, int(m>>shift) - subCount
}

// bucketValue returns the midpoint magnitude of bucket (c, off), rounded down.
func bucketValue(c, off int) uint64 {
	if c <= 1 {
		return uint64(c<<subBits | off)
	}
	shift := c - 1
	lower := uint64(off+subCount) << shift
	return lower + (uint64(1)<<shift-1)/2
}

func (h *hist) record(v int64, n uint64) {
	m, arr, tot := uint64(v), &h.pos, &h.posTot
	if v < 0 {
		m, arr, tot = -uint64(v), &h.neg, &h.negTot
		if m > 1<<63-1 {
			m = 1<<63 - 1 // math.MinInt64: keep the magnitude inside the last chunk
		}
	}
	c, off := bucketOf(m)
	if arr[c] == nil {
		arr[c] = new(chunk)
	}
	arr[c][off] += n
	tot[c] += n
}

func (h *hist) merge(o *hist) {
	for c := range chunkCount {
		mergeChunk(&h.pos[c], &h.posTot[c], o.pos[c], o.posTot[c])
		mergeChunk(&h.neg[c], &h.negTot[c], o.neg[c], o.negTot[c])
	}
}

func mergeChunk(dst **chunk, dstTot *uint64, src *chunk, srcTot uint64) {
	if src == nil || srcTot == 0 {
		return
	}
	if *dst == nil {
		*dst = new(chunk)
	}
	for i, n := range src {
		(*dst)[i] += n
	}
	*dstTot += srcTot
}

// valueAtRank returns the midpoint of the bucket holding the rank-th smallest value
// (1-based). rank must be in [1, total].
func (h *hist) valueAtRank(rank uint64) int64 {
	// Negative values, most negative (largest magnitude) first.
	for c := chunkCount - 1; c >= 0; c-- {
		if h.negTot[c] < rank {
			rank -= h.negTot[c]
			continue
		}
		for off := subCount - 1; off >= 0; off-- {
			if n := h.neg[c][off]; n >= rank {
				return -int64(bucketValue(c, off))
			} else {
				rank -= n
			}
		}
	}
	for c := range chunkCount {
		if h.posTot[c] < rank {
			rank -= h.posTot[c]
			continue
		}
		for off := range subCount {
			if n := h.pos[c][off]; n >= rank {
				return int64(bucketValue(c, off))
			} else {
				rank -= n
			}
		}
	}
	panic(fmt.Sprintf("stats: rank %d beyond histogram", rank)) // callers check rank ≤ count
}

// bucketJSON is one non-empty bucket on the wire: a representative value in ns and its count.
// Re-recording the value lands in the same bucket, so the encoding round-trips exactly.
type bucketJSON [2]int64

func (h *hist) buckets() []bucketJSON {
	var out []bucketJSON
	for c := chunkCount - 1; c >= 0; c-- {
		if h.negTot[c] == 0 {
			continue
		}
		for off := subCount - 1; off >= 0; off-- {
			if n := h.neg[c][off]; n != 0 {
				out = append(out, bucketJSON{-int64(bucketValue(c, off)), int64(n)})
			}
		}
	}
	for c := range chunkCount {
		if h.posTot[c] == 0 {
			continue
		}
		for off := range subCount {
			if n := h.pos[c][off]; n != 0 {
				out = append(out, bucketJSON{int64(bucketValue(c, off)), int64(n)})
			}
		}
	}
	return out
}
