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
}

type block struct {
	hdr ptp.BulkData
	b   []byte // aliases the datagram unless copied
}

// parseFrame decodes the bulk TLVs of a datagram's TLV stream. Non-bulk TLVs are skipped (the
// caller may hand over a whole PtP TLV stream). A BULK_DATA's chunks must follow it and add up
// to its length.
func parseFrame(b []byte, f *frame) error {
	*f = frame{reqs: f.reqs[:0], data: f.data[:0]}
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
			f.data = append(f.data, block{hdr: h})
			cur, need = &f.data[len(f.data)-1], int(h.Length)
		case ptp.TypeBulkChunk:
			if cur == nil || len(t.Value) > need || len(t.Value) == 0 {
				return fmt.Errorf("%w: stray BULK_CHUNK", ErrFrame)
			}
			if cur.b == nil {
				cur.b = t.Value[:len(t.Value):len(t.Value)]
			} else {
				cur.b = append(cur.b, t.Value...) // a copy: chunks are not contiguous
			}
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
