package tcpcraft

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/probekit/probekit/shared/capture"
)

// Record is one captured IP packet with the kernel's timestamp.
type Record struct {
	TimeNanos int64  // kernel capture timestamp, ns since the Unix epoch
	Data      []byte // the IP packet (link header removed), owned by the record
}

// Time returns the record's timestamp.
func (r Record) Time() time.Time { return time.Unix(0, r.TimeNanos) }

// Received is a decoded record.
type Received struct {
	Seg *Segment
	Record
	Index int // position in the recorder
}

// Recorder captures every segment to and from one peer (address and port) with AF_PACKET and
// a BPF filter, outgoing ones included, and keeps them raw with their kernel timestamps, so
// that what was sent and what came back are judged on the same clock and saved to a pcap.
type Recorder struct {
	live *capture.Live
	done chan struct{}

	mu     sync.Mutex
	recs   []Record
	notify chan struct{}
	err    error
	drops  uint64
	// stopping is when Close was called (unix ns; 0: running): the loop then drains the
	// ring until it has been idle for one poll timeout, so segments sent just before Close
	// are recorded too.
	stopping atomic.Int64
}

// drainMax bounds Close's drain when segments keep arriving.
const drainMax = 500 * time.Millisecond

// NewRecorder opens a capture on iface ("" or "any": every interface) for TCP packets from
// or to peer on port. It returns once the filter is attached; Close stops it.
func NewRecorder(iface string, peer netip.Addr, port uint16) (*Recorder, error) {
	live, err := capture.OpenLive(iface, capture.LiveOptions{
		Match:        &capture.Filter{Hosts: []netip.Addr{peer}, Protocol: capture.ProtoTCP, Ports: []uint16{port}},
		Timeout:      20 * time.Millisecond,
		BlockTimeout: time.Millisecond,
		BufferSize:   4 << 20,
	})
	if err != nil {
		return nil, err
	}
	r := &Recorder{live: live, done: make(chan struct{}), notify: make(chan struct{})}
	go r.loop()
	return r, nil
}

func (r *Recorder) loop() {
	defer close(r.done)
	for {
		p, err := r.live.Next()
		if errors.Is(err, capture.ErrTimeout) {
			if r.stopping.Load() != 0 {
				err = capture.ErrClosed // drained: nothing came for a whole poll timeout
			} else {
				continue
			}
		}
		if s := r.stopping.Load(); err == nil && s != 0 && time.Now().UnixNano()-s > int64(drainMax) {
			err = capture.ErrClosed
		}
		if err != nil {
			r.mu.Lock()
			if !errors.Is(err, capture.ErrClosed) {
				r.err = err
			}
			close(r.notify)
			r.notify = nil
			r.mu.Unlock()
			return
		}
		ip, _, err := capture.NetworkLayer(p.LinkType, p.Data)
		if err != nil {
			continue
		}
		rec := Record{TimeNanos: p.TimeNanos, Data: append([]byte(nil), ip...)}
		r.mu.Lock()
		r.recs = append(r.recs, rec)
		close(r.notify)
		r.notify = make(chan struct{})
		r.mu.Unlock()
	}
}

// Close stops the capture after recording what the kernel already captured (it waits until
// the ring has been idle for one poll timeout, 20 ms, at most about drainMax).
func (r *Recorder) Close() error {
	r.stopping.CompareAndSwap(0, time.Now().UnixNano())
	<-r.done
	return r.live.Close()
}

// Records returns a copy of the list of records so far.
func (r *Recorder) Records() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Record(nil), r.recs...)
}

// Len is the number of records so far.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.recs)
}

// ErrRecorderStopped reports that the capture ended (closed or failed).
var ErrRecorderStopped = errors.New("tcpcraft: recorder stopped")

// Next returns the first record at or after *cursor that decodes as a TCP segment and
// satisfies match, advancing *cursor past it. It waits until deadline (ok false when none
// arrived) or ctx ends (ctx's error).
func (r *Recorder) Next(ctx context.Context, cursor *int, deadline time.Time, match func(*Segment) bool) (Received, bool, error) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		r.mu.Lock()
		for *cursor < len(r.recs) {
			rec := r.recs[*cursor]
			*cursor++
			var s Segment
			if Decode(rec.Data, &s) != nil || !match(&s) {
				continue
			}
			r.mu.Unlock()
			return Received{Seg: s.Clone(), Record: rec, Index: *cursor - 1}, true, nil
		}
		ch, err := r.notify, r.err
		r.mu.Unlock()
		if ch == nil {
			if err == nil {
				err = ErrRecorderStopped
			}
			return Received{}, false, err
		}
		select {
		case <-ch:
		case <-timer.C:
			return Received{}, false, nil
		case <-ctx.Done():
			return Received{}, false, ctx.Err()
		}
	}
}

// Find returns the first record at or after index from that satisfies match, without waiting.
func (r *Recorder) Find(from int, match func(*Segment) bool) (Received, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := from; i < len(r.recs); i++ {
		var s Segment
		if Decode(r.recs[i].Data, &s) == nil && match(&s) {
			return Received{Seg: s.Clone(), Record: r.recs[i], Index: i}, true
		}
	}
	return Received{}, false
}

// WritePcap writes records as a pcap file with raw-IP link type and nanosecond timestamps
// (readable by tcpdump, tshark and gopacket).
func WritePcap(w io.Writer, recs []Record) error {
	bw := bufio.NewWriter(w)
	pw, err := capture.NewWriter(bw, capture.Raw, 0, true)
	if err != nil {
		return err
	}
	for _, rec := range recs {
		if err := pw.WritePacketNanos(rec.TimeNanos, rec.Data, len(rec.Data)); err != nil {
			return fmt.Errorf("tcpcraft: pcap: %w", err)
		}
	}
	return bw.Flush()
}
