// Package ptpbulk moves a file between two PtP peers over whatever path the mesh found
// (direct or relayed): the receiver drives a sliding window of block requests with selective
// re-requests, an RTT-based retransmission timeout (RFC 6298) and AIMD congestion control; the
// sender serves what is asked, paced to an optional rate. The receiver writes to a temporary
// file, keeps a resumable record of the blocks it has, verifies SHA-256 and renames the file
// into place. Frames are PtP v3 bulk TLVs (shared/ptp/bulk.go).
package ptpbulk

import (
	"context"
	"errors"
	"time"
)

// Path carries bulk frames between the two peers: one frame per datagram, in any order, with
// any loss. Recv returns the next frame addressed to this transfer (the caller demultiplexes)
// and an error once ctx ends or the path is closed.
type Path interface {
	Send(frame []byte) error
	Recv(ctx context.Context) ([]byte, error)
}

// FramePath is a Path that already queues the frames it receives on a channel (a client's
// socket reader hands them over): Send and Receive read Frames directly instead of moving each
// frame through a goroutine of their own, and give every frame back with Release once they are
// done with it, so the path can reuse its buffer instead of allocating one per datagram.
type FramePath interface {
	Path
	Frames() <-chan []byte
	Release(frame []byte)
}

// inbox returns the channel the transfer reads frames from and the function that gives a
// frame back: the path's own for a FramePath, else a goroutine that pumps Recv into a channel
// of n (until ctx ends).
func inbox(ctx context.Context, p Path, n int) (<-chan []byte, func([]byte)) {
	if fp, ok := p.(FramePath); ok {
		return fp.Frames(), fp.Release
	}
	ch := make(chan []byte, n)
	go pump(ctx, p, ch)
	return ch, func([]byte) {}
}

// BlockSize is the data per block: five full BULK_CHUNK TLVs, so a block's frame (1,289
// bytes) fits one PtP packet (1,400) with the sender's header TLVs and a RELAYTO. (The
// original's PTP_BLOB_SIZE of 1,024 was never used; bigger blocks mean fewer packets.)
const BlockSize = 5 * 253

// Errors callers branch on.
var (
	ErrRefused  = errors.New("ptpbulk: receiver refused the transfer")
	ErrMismatch = errors.New("ptpbulk: SHA-256 of the received file differs from the offer")
	ErrTimeout  = errors.New("ptpbulk: peer silent for too long")
	ErrCanceled = errors.New("ptpbulk: transfer cancelled by the peer")
)

// Progress is a snapshot during a transfer.
type Progress struct {
	Role        string        `json:"role"` // "send" or "receive"
	Name        string        `json:"name"`
	Size        int64         `json:"size"`
	Done        int64         `json:"done"` // bytes the receiver holds (resumed ones included)
	Elapsed     time.Duration `json:"-"`
	GoodputBps  float64       `json:"goodput_bps"` // new file bytes per second since the start
	Retransmits int64         `json:"retransmits"` // blocks asked or sent again
	RTT         time.Duration `json:"-"`
	Window      int           `json:"window,omitempty"` // receiver's request window in blocks
}

// Report is the outcome of a transfer.
type Report struct {
	Role        string        `json:"role"`
	Name        string        `json:"name"`
	File        string        `json:"file,omitempty"` // where the receiver put it
	Size        int64         `json:"size"`
	SHA256      string        `json:"sha256"`
	Resumed     int64         `json:"resumed_bytes"` // already held from an earlier attempt
	Moved       int64         `json:"moved_bytes"`   // file bytes carried in this run (first copies)
	Duplicates  int64         `json:"duplicate_blocks"`
	Retransmits int64         `json:"retransmits"`
	Timeouts    int64         `json:"timeouts"`
	Duration    time.Duration `json:"-"`
	GoodputBps  float64       `json:"goodput_bps"` // Moved / Duration
	RTTMin      time.Duration `json:"-"`
	RTTAvg      time.Duration `json:"-"` // smoothed RTT at the end
	MaxWindow   int           `json:"max_window,omitempty"`
	SentBytes   int64         `json:"sent_bytes,omitempty"`  // sender: block bytes sent, repeats included
	QueueDrops  int64         `json:"queue_drops,omitempty"` // sender: requested blocks not queued (queue full)
	OK          bool          `json:"ok"`
}
