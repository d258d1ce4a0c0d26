package reflector

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// limiter is a fixed-size set of token buckets indexed by a seeded hash of a source key
// (an address or its prefix). Its memory does not grow with the number of sources, so spoofed
// floods cannot inflate it; sources whose keys share a bucket share its rate, which errs on
// the side of refusing. A zero rate disables it (every take succeeds).
type limiter struct {
	seed    maphash.Seed
	rate    float64 // tokens per second
	burst   float64
	stripes [limiterStripes]limiterStripe
}

const (
	limiterBuckets = 4096
	limiterStripes = 64
)

type limiterStripe struct {
	mu      sync.Mutex
	buckets [limiterBuckets / limiterStripes]tokenBucket
	_       [40]byte
}

type tokenBucket struct {
	tokens float64
	last   int64 // Unix ns of the last refill; 0: never used (full)
}

func newLimiter(rate float64, burst int) *limiter {
	if rate <= 0 {
		return nil
	}
	return &limiter{seed: maphash.MakeSeed(), rate: rate, burst: float64(max(burst, 1))}
}

// take removes one token from key's bucket at now and reports whether there was one.
func (l *limiter) take(key [18]byte, now int64) bool {
	if l == nil {
		return true
	}
	h := maphash.Bytes(l.seed, key[:])
	st := &l.stripes[h%limiterStripes]
	b := &st.buckets[(h/limiterStripes)%uint64(len(st.buckets))]
	st.mu.Lock()
	if b.last == 0 {
		b.tokens, b.last = l.burst, now
	} else if now > b.last {
		b.tokens = min(l.burst, b.tokens+float64(now-b.last)*l.rate/1e9)
		b.last = now
	}
	ok := b.tokens >= 1
	if ok {
		b.tokens--
	}
	st.mu.Unlock()
	return ok
}

// addrKey is the limiter key of a whole address; prefixKey of its /24 (IPv4) or /64 (IPv6),
// the unit one host or customer typically controls.
func addrKey(a netip.Addr) [18]byte {
	var k [18]byte
	a16 := a.Unmap().As16()
	copy(k[:16], a16[:])
	return k
}

func prefixKey(a netip.Addr) [18]byte {
	a = a.Unmap()
	var k [18]byte
	if a.Is4() {
		a4 := a.As4()
		copy(k[:3], a4[:3])
		k[16] = 4
		return k
	}
	a16 := a.As16()
	copy(k[:8], a16[:8])
	k[16] = 6
	return k
}

// rateLog logs an event at most once per interval with the number of occurrences since the
// previous line, so an attack cannot flood the log.
type rateLog struct {
	last  atomic.Int64
	count atomic.Uint64
}

const rateLogInterval = 10 * time.Second

func (l *rateLog) warn(log logrus.FieldLogger, now int64, msg string, fields func() logrus.Fields) {
	n := l.count.Add(1)
	last := l.last.Load()
	if last != 0 && now-last < int64(rateLogInterval) {
		return
	}
	if !l.last.CompareAndSwap(last, now) {
		return
	}
	l.count.Add(^(n - 1)) // the ones reported now
	f := fields()
	f["events"] = n
	log.WithFields(f).Warn(msg)
}
