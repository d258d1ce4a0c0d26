// Package synth writes synthetic two-point capture pairs with known one-way delays, and the
// pairs SPP must form from them, for tests and benchmarks that need more traffic (or other
// protocols, address families and link types) than the shipped captures hold.
package synth

import (
	"bufio"
	"container/heap"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"slices"

	"github.com/probekit/probekit/shared/capture"
	"github.com/probekit/probekit/spp/internal/engine"
)

// Protocols the generator can write.
const (
	UDP  = 17
	TCP  = 6
	ICMP = 1 // ICMP echo (ICMPv6 echo for IPv6 targets)
)

// Spec describes the traffic: rounds of Burst OUT packets (REF→MON) followed, Think µs
// after the last of them reached MON, by one IN packet (MON→REF).
type Spec struct {
	A, B     netip.Addr // near REF, near MON
	Proto    uint8
	Link     capture.LinkType // Ethernet, Raw or LinuxSLL2
	Nanos    bool             // nanosecond pcaps
	Rounds   int
	Burst    int   // OUT packets per round (≥ 1)
	Start    int64 // µs since the epoch of the first packet at REF
	Period   int64 // µs between rounds
	Gap      int64 // µs between the OUT packets of a burst
	Think    int64 // µs at MON between the last OUT arriving and the IN leaving
	OWDOut   int64 // base one-way delays, µs
	OWDIn    int64
	Jitter   int64 // each OWD gets a uniform extra 0..Jitter µs (may reorder packets)
	LossOut  float64
	LossIn   float64
	MonShift int64 // µs added to every MON timestamp (clock offset)
	Seed     uint64
}

// Packet is one generated packet's truth: its times at both points (MON time without
// MonShift, i.e. on the shared clock) and whether it was lost between the points.
type Packet struct {
	Dir      engine.Dir
	Ref, Mon int64
	Lost     bool
}

type ev struct {
	t   int64
	seq int64 // tie-break: generation order
	k   int   // packet index
}

type evHeap []ev

func (h evHeap) Len() int { return len(h) }
func (h evHeap) Less(i, j int) bool {
	return h[i].t < h[j].t || (h[i].t == h[j].t && h[i].seq < h[j].seq)
}
func (h evHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *evHeap) Push(x any)   { *h = append(*h, x.(ev)) }
func (h *evHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Write writes the REF and MON captures and, when keep is true, returns every packet's
// truth in generation order (nil otherwise, so benchmark-sized runs stay small).
func Write(ref, mon io.Writer, s Spec, keep bool) ([]Packet, error) {
	if s.Burst < 1 {
		s.Burst = 1
	}
	if s.Link == 0 && !s.A.IsValid() {
		return nil, fmt.Errorf("synth: no addresses")
	}
	bw := [2]*bufio.Writer{bufio.NewWriterSize(ref, 1<<20), bufio.NewWriterSize(mon, 1<<20)}
	var w [2]*capture.Writer
	for i := range w {
		var err error
		if w[i], err = capture.NewWriter(bw[i], s.Link, 65535, s.Nanos); err != nil {
			return nil, err
		}
	}
	r := rand.New(rand.NewPCG(s.Seed, 0x5bd1e995))
	g := newBuilder(s)
	var truth []Packet
	var pkts []Packet // in flight, indexed by k - base
	base := 0
	var hs [2]evHeap // pending captures per point
	var seq int64
	push := func(p int, t int64, k int) {
		heap.Push(&hs[p], ev{t: t, seq: seq, k: k})
		seq++
	}
	frame := make([]byte, 0, 256)
	// emit writes every pending capture at point p that happens before t.
	emit := func(p int, t int64) error {
		for hs[p].Len() > 0 && hs[p][0].t < t {
			e := heap.Pop(&hs[p]).(ev)
			pk := pkts[e.k-base]
			frame = g.frame(frame[:0], e.k, pk.Dir)
			ts := e.t
			if p == 1 {
				ts += s.MonShift
			}
			if err := w[p].WritePacketNanos(ts*1000, frame, len(frame)); err != nil {
				return err
			}
		}
		return nil
	}
	jit := func() int64 {
		if s.Jitter <= 0 {
			return 0
		}
		return r.Int64N(s.Jitter + 1)
	}
	k := 0
	for round := 0; round < s.Rounds; round++ {
		t0 := s.Start + int64(round)*s.Period
		last := int64(0)
		for b := 0; b < s.Burst; b++ {
			t := t0 + int64(b)*s.Gap
			if err := emit(0, t); err != nil {
				return nil, err
			}
			pk := Packet{Dir: engine.Out, Ref: t, Mon: t + s.OWDOut + jit(), Lost: r.Float64() < s.LossOut}
			pkts = append(pkts, pk)
			push(0, t, k)
			if !pk.Lost {
				push(1, pk.Mon, k)
			}
			last = max(last, pk.Mon)
			k++
		}
		tm := last + s.Think
		if err := emit(1, tm); err != nil {
			return nil, err
		}
		pk := Packet{Dir: engine.In, Mon: tm, Ref: tm + s.OWDIn + jit(), Lost: r.Float64() < s.LossIn}
		pkts = append(pkts, pk)
		push(1, tm, k)
		if !pk.Lost {
			push(0, pk.Ref, k)
		}
		k++
		// Forget packets both points have written.
		if !keep && len(pkts) > 4096 {
			minK := k
			for p := range hs {
				for _, e := range hs[p] {
					minK = min(minK, e.k)
				}
			}
			drop := minK - base
			pkts = append(pkts[:0], pkts[drop:]...)
			base = minK
		}
	}
	for p := range hs {
		if err := emit(p, 1<<62); err != nil {
			return nil, err
		}
		if err := bw[p].Flush(); err != nil {
			return nil, err
		}
	}
	if keep {
		truth = pkts
	}
	return truth, nil
}

// Pairs applies SPP's pairing rule (spp.md §5) to perfectly identified packets: records are
// the packets seen at both points, in MON time order per direction.
func Pairs(pkts []Packet) []engine.Pair {
	var recs [2][]engine.Record
	for _, p := range pkts {
		if !p.Lost {
			recs[p.Dir] = append(recs[p.Dir], engine.Record{Ref: p.Ref, Mon: p.Mon})
		}
	}
	for d := range recs {
		slices.SortStableFunc(recs[d], func(a, b engine.Record) int { return int(a.Mon - b.Mon) })
	}
	outs, ins := recs[engine.Out], recs[engine.In]
	var res []engine.Pair
	i, j := 0, 0
	if len(outs) == 0 {
		return nil
	}
	out := outs[0]
	i = 1
	for {
		for j < len(ins) && !(out.Mon < ins[j].Mon) {
			j++
		}
		if j == len(ins) {
			return res
		}
		in := ins[j]
		j++
		for i < len(outs) && outs[i].Mon < in.Mon {
			out = outs[i]
			i++
		}
		if i == len(outs) {
			return res // no OUT record after the pair: never printed
		}
		res = append(res, engine.Pair{Out: out, In: in})
		out = outs[i]
		i++
	}
}

// builder writes frames with per-direction IP IDs / sequence numbers derived from the
// packet index, so each packet is unique under SPP's default ID.
type builder struct {
	s      Spec
	v6     bool
	src    [2][]byte // per direction
	dst    [2][]byte
	link   capture.LinkType
	ethHdr [2][]byte
}

func newBuilder(s Spec) *builder {
	b := &builder{s: s, v6: s.A.Is6(), link: s.Link}
	a, bb := s.A.AsSlice(), s.B.AsSlice()
	b.src = [2][]byte{a, bb}
	b.dst = [2][]byte{bb, a}
	return b
}

func (b *builder) frame(f []byte, k int, d engine.Dir) []byte {
	et := uint16(0x0800)
	if b.v6 {
		et = 0x86dd
	}
	switch b.link {
	case capture.Ethernet:
		f = append(f, 2, 0, 0, 0, 0, byte(2-d), 2, 0, 0, 0, 0, byte(1+d))
		f = binary.BigEndian.AppendUint16(f, et)
	case capture.LinuxSLL2:
		f = binary.BigEndian.AppendUint16(f, et)
		f = append(f, 0, 0, 0, 0, 0, 2, 0, 1, byte(4*d), 6, 2, 0, 0, 0, 0, 1, 0, 0)
	}
	// L4
	var l4 [32]byte
	n := 0
	proto := b.s.Proto
	id := uint32(k)
	switch proto {
	case UDP:
		binary.BigEndian.PutUint16(l4[0:], 40000+uint16(d))
		binary.BigEndian.PutUint16(l4[2:], 7+uint16(d)*100)
		binary.BigEndian.PutUint16(l4[4:], 8+12)
		binary.BigEndian.PutUint32(l4[8:], id)
		binary.BigEndian.PutUint32(l4[12:], ^id)
		n = 20
	case TCP:
		binary.BigEndian.PutUint16(l4[0:], 40000+uint16(d)*1201)
		binary.BigEndian.PutUint16(l4[2:], 5201-uint16(d)*1201)
		binary.BigEndian.PutUint32(l4[4:], id*1200)
		binary.BigEndian.PutUint32(l4[8:], id*7)
		l4[12], l4[13] = 0x50, 0x10
		binary.BigEndian.PutUint16(l4[14:], 501)
		n = 20
	default:
		l4[0] = 8 - byte(d)*8 // echo request OUT, reply IN
		if b.v6 {
			l4[0] = 128 + byte(d)
			proto = 58
		}
		binary.BigEndian.PutUint16(l4[4:], 77)
		binary.BigEndian.PutUint16(l4[6:], uint16(k))
		binary.BigEndian.PutUint32(l4[8:], id)
		n = 16
	}
	if b.v6 {
		f = append(f, 0x60, 0, 0, 0)
		f = binary.BigEndian.AppendUint16(f, uint16(n))
		f = append(f, proto, 64)
		f = append(f, b.src[d]...)
		f = append(f, b.dst[d]...)
	} else {
		f = append(f, 0x45, 0)
		f = binary.BigEndian.AppendUint16(f, uint16(20+n))
		f = binary.BigEndian.AppendUint16(f, uint16(k))
		f = append(f, 0x40, 0, 64, proto, 0, 0)
		f = append(f, b.src[d]...)
		f = append(f, b.dst[d]...)
	}
	return append(f, l4[:n]...)
}
