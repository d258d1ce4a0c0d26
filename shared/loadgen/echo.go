package loadgen

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/timestamp"
	"github.com/probekit/probekit/shared/udpsock"
)

// Echo sends every datagram straight back to its sender — one recvmmsg, one sendmmsg per
// batch, no parsing, no timestamps — until ctx is done or conn is closed. It is the least work
// a UDP reflector can do on this machine, the "limit" reflectors are compared with. count, if
// non-nil, is advanced by the number of datagrams echoed.
func Echo(ctx context.Context, conn *udpsock.Conn, batch int, count *atomic.Uint64) error {
	return echo(ctx, conn, batch, count, false)
}

// StampingEcho is Echo plus the two timestamps of a STAMP/TWAMP reply: T2 (offset 16, NTP)
// from each datagram's receive time and T3 (offset 4) read just before the sendmmsg, in
// datagrams of at least 24 octets. Open conn with RxTimestamps so T2 is the kernel's: the
// residence time it shows is the machine's floor for any reflector's T3 − T2 (the wake-up
// from the kernel's receive stamp to the reading thread), with no protocol work added.
func StampingEcho(ctx context.Context, conn *udpsock.Conn, batch int, count *atomic.Uint64) error {
	return echo(ctx, conn, batch, count, true)
}

func echo(ctx context.Context, conn *udpsock.Conn, batch int, count *atomic.Uint64, stamp bool) error {
	if batch <= 0 {
		batch = udpsock.DefaultBatch
	}
	msgs := make([]udpsock.Message, batch)
	buf := make([]byte, batch*2048)
	for i := range msgs {
		msgs[i].Buf = buf[i*2048 : (i+1)*2048]
	}
	for {
		n, err := conn.ReadBatch(msgs)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, udpsock.ErrClosed) {
				return nil
			}
			return fmt.Errorf("echo: %w", err)
		}
		if stamp {
			for i := 0; i < n; i++ {
				if msgs[i].N >= 24 {
					testpkt.PutReceiveTimestamp(msgs[i].Buf, uint64(timestamp.NTPFromTime(msgs[i].RxTime)))
				}
			}
			t3 := timestamp.NTPFromTime(time.Now())
			for i := 0; i < n; i++ {
				if msgs[i].N >= 24 {
					testpkt.PutTimestamp(msgs[i].Buf, testpkt.ModeUnauthenticated, uint64(t3))
				}
			}
		}
		if _, err := conn.WriteBatch(msgs[:n]); err != nil {
			if ctx.Err() != nil || errors.Is(err, udpsock.ErrClosed) {
				return nil
			}
			return fmt.Errorf("echo: %w", err)
		}
		if count != nil {
			count.Add(uint64(n))
		}
	}
}
