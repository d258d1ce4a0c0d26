package loadgen

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/probekit/probekit/shared/udpsock"
)

// Echo sends every datagram straight back to its sender — one recvmmsg, one sendmmsg per
// batch, no parsing, no timestamps — until ctx is done or conn is closed. It is the least work
// a UDP reflector can do on this machine, the "limit" reflectors are compared with. count, if
// non-nil, is advanced by the number of datagrams echoed.
func Echo(ctx context.Context, conn *udpsock.Conn, batch int, count *atomic.Uint64) error {
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
