package ptpbulk

import (
	"errors"
	"fmt"

	"github.com/probekit/probekit/shared/ptp"
)

// ErrFrame wraps every decoding error of a bulk frame.
var ErrFrame = errors.New("ptpbulk: bad frame")

// frame is a decoded bulk frame: what one datagram carried.
type frame struct {
	offer  *ptp.BulkOffer
	reqs   []ptp.BulkReq
	data   []block // blocks with their bytes
	done   *ptp.BulkDone
	others int // non-bulk TLVs (skipped)
	// buf holds the blocks' bytes joined from their chunks (which are not contiguous in the
	// datagram); reused from frame to frame, sized to the datagram so it never moves while
	// blocks point into it.
	buf []byte
}

type block struct {
	hdr   ptp.BulkData
	b     []byte // in the frame's buf, valid until the next parseFrame
	start int    // where b starts in buf
}

// parseFrame decodes the bulk TLVs of a datagram's TLV stream. Non-bulk TLVs are skipped (the
// caller may hand over a whole PtP TLV stream). A BULK_DATA's chunks must follow it and add up
// to its length.
func parseFrame(b []byte, f *frame) error {
	*f = frame{reqs: f.reqs[:0], data: f.data[:0], buf: f.buf[:0]}
	if cap(f.buf) < len(b) { // the chunks' bytes are fewer than the datagram's
		f.buf = make([]byte, 0, max(len(b), 2048))
	}
	var cur *block
	var need int
	for len(b) > 0 {
		t, rest, err := ptp.NextTLV(b)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrFrame, err)
		}
		b = rest
		if cur != nil && t.Type != ptp.TypeBulkChunk {
			return fmt.Errorf("%w: block %d short by %d bytes", ErrFrame, cur.hdr.Block, need)
		}
		switch t.Type {
		case ptp.TypeBulkOffer:
			var o ptp.BulkOffer
			if err := o.UnmarshalBinary(t.Value); err != nil {
				return fmt.Errorf("%w: %v", ErrFrame, err)
			}
			f.offer = &o
		case ptp.TypeBulkReq:
			f.reqs = append(f.reqs, ptp.BulkReq{})
			if err := f.reqs[len(f.reqs)-1].UnmarshalBinary(t.Value); err != nil {
				return fmt.Errorf("%w: %v", ErrFrame, err)
			}
		case ptp.TypeBulkData:
			var h ptp.BulkData
			if err := h.UnmarshalBinary(t.Value); err != nil {
				return fmt.Errorf("%w: %v", ErrFrame, err)
			}
			if h.Length == 0 {
				return fmt.Errorf("%w: empty block %d", ErrFrame, h.Block)
			}
			f.data = append(f.data, block{hdr: h, start: len(f.buf)})
			cur, need = &f.data[len(f.data)-1], int(h.Length)
		case ptp.TypeBulkChunk:
			if cur == nil || len(t.Value) > need || len(t.Value) == 0 {
				return fmt.Errorf("%w: stray BULK_CHUNK", ErrFrame)
			}
			f.buf = append(f.buf, t.Value...) // within cap: no reallocation
			cur.b = f.buf[cur.start:len(f.buf):len(f.buf)]
			need -= len(t.Value)
			if need == 0 {
				cur = nil
			}
		case ptp.TypeBulkDone:
			var d ptp.BulkDone
			if err := d.UnmarshalBinary(t.Value); err != nil {
				return fmt.Errorf("%w: %v", ErrFrame, err)
			}
			f.done = &d
		default:
			f.others++
		}
	}
	if cur != nil {
		return fmt.Errorf("%w: block %d short by %d bytes", ErrFrame, cur.hdr.Block, need)
	}
	return nil
}

// appendData appends a BULK_DATA TLV and the chunks of p.
func appendData(b []byte, id, blk uint32, p []byte) []byte {
	h := ptp.BulkData{ID: id, Block: blk, Length: uint16(len(p))}
	b = append(b, byte(ptp.TypeBulkData), byte(ptp.BulkDataSize+2))
	b = h.AppendTo(b)
	for len(p) > 0 {
		n := min(len(p), ptp.MaxValue)
		b = ptp.AppendTLV(b, ptp.TypeBulkChunk, p[:n])
		p = p[n:]
	}
	return b
}

func appendTLV(b []byte, t ptp.Type, fill func([]byte) []byte) []byte {
	at := len(b)
	b = append(b, byte(t), 0)
	b = fill(b)
	b[at+1] = byte(len(b) - at)
	return b
}
