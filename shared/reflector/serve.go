package reflector

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/probekit/probekit/shared/timestamp"
	"github.com/probekit/probekit/shared/udpsock"
)

// ListenOptions are the udpsock options a reflector socket needs: kernel receive timestamps
// for T2, the received TOS for Class of Service and the TTL for the Sender TTL field, each
// datagram's destination address (RecvDst) so that on a wildcard address Serve answers from
// the address the sender used and fills the Location TLV with it, and a 16 MiB receive buffer
// (about 150 ms of 100 kpps) so a reflector starved of CPU for a moment loses nothing. A
// socket bound to one address may clear RecvDst: its datagrams can only be for that address.
func ListenOptions(batch int) udpsock.Options {
	return udpsock.Options{RxTimestamps: true, RecvTOS: true, RecvTTL: true, RecvDst: true, Batch: batch,
		ReadBuffer: 16 << 20, WriteBuffer: 4 << 20}
}

// ErrIdle ends ServeWith when ServeOptions.Idle passed without a datagram.
var ErrIdle = errors.New("reflector: socket idle")

// ServeOptions are the options of one ServeWith loop (one socket); the zero value serves
// until cancellation like Serve.
type ServeOptions struct {
	// Idle, when positive, ends the loop with ErrIdle once this long passes without a
	// datagram (TWAMP's REFWAIT, RFC 5357 §4.2). The read deadline is armed once and moved
	// only when it fires, to the last datagram's receive time plus Idle, so a busy socket
	// pays no timer work per batch. It needs Workers ≤ 1.
	Idle time.Duration
	// Workers is the number of goroutines reading the socket (Config.Workers when 0 and
	// there is no Idle timeout, 1 when that is ≤ 0), each with its own
	// Worker and buffers: the way to use several cores for one socket, even for one session.
	// With SO_REUSEPORT sockets (udpsock.ListenGroup, one per worker) the kernel spreads
	// flows instead, which keeps each session on one worker.
	Workers int
}

// ErrWorkersIdle is returned by ServeWith for ServeOptions with Idle and several Workers.
var ErrWorkersIdle = errors.New("reflector: an idle timeout needs a single worker")

// Serve reflects the test packets arriving on conn until ctx is cancelled or conn is closed,
// with one recvmmsg and one sendmmsg per batch and no allocation per packet. Open conn with
// ListenOptions. Serve returns nil on cancellation or close.
//
// Sessions are keyed by conn's bound address (Packet.Listener). On a wildcard address with
// RecvDst, each packet's Local is the address it was sent to, and its reply leaves from that
// address (IP_PKTINFO/IPV6_PKTINFO), as a sender expects of a multi-homed reflector.
func (r *Reflector) Serve(ctx context.Context, conn *udpsock.Conn) error {
	return r.ServeWith(ctx, conn, ServeOptions{})
}

// ServeWith is Serve with per-socket options. It returns nil on cancellation or close,
// ErrIdle when opts.Idle expires, and other receive errors as they come.
func (r *Reflector) ServeWith(ctx context.Context, conn *udpsock.Conn, opts ServeOptions) error {
	if opts.Workers == 0 && opts.Idle == 0 {
		opts.Workers = r.cfg.Workers
	}
	if opts.Workers <= 1 {
		return r.serveLoop(ctx, conn, opts)
	}
	if opts.Idle > 0 {
		return ErrWorkersIdle
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, opts.Workers)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = r.serveLoop(ctx, conn, opts); errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// serveLoop is one worker's read-reflect-send loop on conn.
func (r *Reflector) serveLoop(ctx context.Context, conn *udpsock.Conn, opts ServeOptions) error {
	batch := r.cfg.Batch
	if batch <= 0 {
		batch = udpsock.DefaultBatch
	}
	if r.cfg.Realtime > 0 {
		if err := lockRealtime(r.cfg.Realtime); err != nil {
			r.log.WithError(err).Warn("reflector: running without real-time priority")
		}
	}
	w := r.NewWorker()
	listener := conn.LocalAddr()
	local := netip.AddrPortFrom(listener.Addr().Unmap(), listener.Port())
	wildcard := local.Addr().IsUnspecified()
	in := make([]udpsock.Message, batch)
	out := make([]udpsock.Message, batch)
	// One spare octet per receive buffer tells a maximal packet from a longer, truncated one.
	rbuf := make([]byte, batch*(r.cfg.MaxPacket+1))
	wbuf := make([]byte, batch*r.cfg.MaxPacket)
	for i := range in {
		in[i].Buf = rbuf[i*(r.cfg.MaxPacket+1) : (i+1)*(r.cfg.MaxPacket+1) : (i+1)*(r.cfg.MaxPacket+1)]
		out[i].Buf = wbuf[i*r.cfg.MaxPacket : (i+1)*r.cfg.MaxPacket : (i+1)*r.cfg.MaxPacket]
	}
	// The deadline is set before the cancellation hook below, which must have the last word;
	// without Idle it is cleared, in case an earlier loop on conn left one behind.
	last := time.Now() // receive time of the latest datagram, for Idle
	deadline := time.Time{}
	if opts.Idle > 0 {
		deadline = last.Add(opts.Idle)
	}
	_ = conn.SetReadDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()
	if r.cfg.BusyPoll > 0 {
		conn.SetBusyPoll(r.cfg.BusyPoll)
	}
	var pkt Packet
	for {
		n, err := conn.ReadBatch(in)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			if errors.Is(err, os.ErrDeadlineExceeded) && opts.Idle > 0 {
				if time.Since(last) >= opts.Idle {
					return ErrIdle
				}
				_ = conn.SetReadDeadline(last.Add(opts.Idle))
				if ctx.Err() != nil { // cancelled while re-arming: its deadline was overwritten
					return nil
				}
				continue
			}
			// An ICMP error for an earlier reply (the sender's port closed or unreachable),
			// a signal or a full device queue is no reason to stop.
			if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, syscall.ECONNREFUSED) ||
				errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) ||
				errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.ENOBUFS) {
				continue
			}
			return err
		}
		if n > 0 {
			last = in[n-1].RxTime
			if in[0].RxSource == timestamp.SourceKernel {
				// Kernel stamp of the oldest datagram → this thread running again.
				r.Stats.observeWakeup(w.slot, time.Since(in[0].RxTime))
			}
		}
		k := 0
		for i := 0; i < n; i++ {
			m := &in[i]
			if m.Truncated || m.N > r.cfg.MaxPacket {
				r.Stats.Received.add(w.slot, 1)
				r.Stats.Drops[DropTooLong].add(w.slot, 1)
				continue
			}
			pkt = Packet{Data: m.Buf[:m.N], Peer: m.Addr, Local: local, Listener: listener,
				RxTime: m.RxTime, RxSource: m.RxSource, TOS: m.TOS, TTL: m.TTL}
			var src netip.Addr // zero: the kernel's choice, right for a bound address
			if wildcard && m.Dst.IsValid() {
				pkt.Local = netip.AddrPortFrom(m.Dst, local.Port())
				if !m.Dst.IsMulticast() && m.Dst != limitedBroadcast {
					src = m.Dst // a group or broadcast address cannot be a source (EINVAL)
				}
			}
			reply, tos, ok := w.Reflect(&pkt, out[k].Buf[:0])
			if !ok {
				continue
			}
			out[k].N, out[k].Addr, out[k].TOS, out[k].Dst = len(reply), m.Addr, tos, src
			k++
		}
		if k == 0 {
			continue
		}
		// sendmmsg stops at a message the kernel refuses (a peer or source address it
		// rejects, a full device queue): count that one and send the rest.
		for off := 0; off < k; {
			sent, err := conn.WriteBatch(out[off:k])
			off += sent
			if err == nil {
				break
			}
			if errors.Is(err, net.ErrClosed) {
				r.Stats.Drops[DropSendError].add(w.slot, uint64(k-off))
				r.Stats.Reflected.add(w.slot, ^uint64(k-off-1)) // not reflected after all
				return nil
			}
			r.Stats.Drops[DropSendError].add(w.slot, 1)
			r.Stats.Reflected.add(w.slot, ^uint64(0))
			r.log.WithError(err).WithField("peer", out[off].Addr.String()).Debug("reflector: send failed")
			off++
		}
	}
}

// limitedBroadcast is 255.255.255.255, a destination that is no source address.
var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// Run serves every conn until ctx is cancelled, expiring idle sessions meanwhile, and
// returns the first error a socket reported.
func (r *Reflector) Run(ctx context.Context, conns ...*udpsock.Conn) error {
	return r.RunWith(ctx, ServeOptions{}, conns...)
}

// RunWith is Run with per-socket options (Workers goroutines on each conn).
func (r *Reflector) RunWith(ctx context.Context, opts ServeOptions, conns ...*udpsock.Conn) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(conns))
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.ServeWith(ctx, c, opts); err != nil {
				errs[i] = err
				cancel()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(max(r.cfg.IdleTimeout/4, 10*time.Millisecond))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				if n := r.ExpireIdle(now); n > 0 {
					r.log.WithField("expired", n).Debug("reflector: idle sessions expired")
				}
			}
		}
	}()
	wg.Wait()
	return errors.Join(errs...)
}
