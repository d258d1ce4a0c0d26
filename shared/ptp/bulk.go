package ptp

import (
	"encoding/binary"
	"fmt"
)

// Bulk transfer TLVs (protocol version 3, types 20–29; the engine is shared/ptpbulk). A bulk
// frame is a sequence of these TLVs in the ordinary TLV encoding, sent between two v3 peers
// over whatever path the mesh found (directly, or inside RELAYTO/RELAYFROM packets); a packet
// carrying them needs no other v3 TLV. The receiver drives the transfer: it asks for blocks,
// the sender only answers. Multi-byte integers are big-endian.
//
//	20 BULK_OFFER  s→r  id:u32 size:u64 block:u16 sha256:[32] name:[0..207]   (46+ bytes)
//	               "I have this file for you"; repeated until the first BULK_REQUEST.
//	21 BULK_REQ    r→s  id:u32 have:u32 {start:u32 count:u16}[0..40]         (8+6n bytes)
//	               blocks have.. are wanted as listed; every block below `have` arrived
//	               (the sender may forget them). A frame may carry several.
//	22 BULK_DATA   s→r  id:u32 block:u32 length:u16                           (10 bytes)
//	               opens a block: its `length` bytes follow in the BULK_CHUNK TLVs after it.
//	23 BULK_CHUNK  s→r  data[1..253]                                          (the block's bytes, in order)
//	24 BULK_DONE   r→s, s→r  id:u32 status:u8 text:[0..248]                   (5+ bytes)
//	               the end: BulkOK (verified and renamed), or why the transfer stopped.
//	25–29          reserved.
const (
	TypeBulkOffer Type = 20
	TypeBulkReq   Type = 21
	TypeBulkData  Type = 22
	TypeBulkChunk Type = 23
	TypeBulkDone  Type = 24
)

// Sizes of the fixed parts of the bulk TLV values.
const (
	BulkOfferSize   = 46
	BulkNameMax     = MaxValue - BulkOfferSize
	BulkReqSize     = 8
	BulkRangeSize   = 6
	BulkRangesMax   = (MaxValue - BulkReqSize) / BulkRangeSize
	BulkDataSize    = 10
	BulkDoneSize    = 5
	BulkDoneTextMax = MaxValue - BulkDoneSize
)

// BulkDone status codes.
const (
	BulkOK        uint8 = 0
	BulkMismatch  uint8 = 1 // SHA-256 of what arrived differs from the offer
	BulkRefused   uint8 = 2 // the receiver does not take it (exists, bad name, no space)
	BulkCancelled uint8 = 3 // stopped by the user or a timeout
	BulkFailed    uint8 = 4 // local I/O error
)

// BulkOffer is a BULK_OFFER value.
type BulkOffer struct {
	ID     uint32
	Size   uint64
	Block  uint16
	SHA256 [32]byte
	Name   string
}

// AppendTo appends the value; the name is cut to BulkNameMax bytes.
func (o *BulkOffer) AppendTo(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, o.ID)
	b = binary.BigEndian.AppendUint64(b, o.Size)
	b = binary.BigEndian.AppendUint16(b, o.Block)
	b = append(b, o.SHA256[:]...)
	n := o.Name
	if len(n) > BulkNameMax {
		n = n[:BulkNameMax]
	}
	return append(b, n...)
}

// UnmarshalBinary decodes a BULK_OFFER value.
func (o *BulkOffer) UnmarshalBinary(v []byte) error {
	if len(v) < BulkOfferSize {
		return malformed(TypeBulkOffer, v)
	}
	o.ID = binary.BigEndian.Uint32(v)
	o.Size = binary.BigEndian.Uint64(v[4:])
	o.Block = binary.BigEndian.Uint16(v[12:])
	copy(o.SHA256[:], v[14:46])
	o.Name = string(v[46:])
	if o.Block == 0 {
		return fmt.Errorf("%w: BULK_OFFER block size 0", ErrMalformed)
	}
	return nil
}

// BulkRange is a run of wanted blocks.
type BulkRange struct {
	Start uint32
	Count uint16
}

// BulkReq is a BULK_REQ value.
type BulkReq struct {
	ID     uint32
	Have   uint32
	Ranges []BulkRange
}

// AppendTo appends the value with at most BulkRangesMax ranges (the caller splits longer
// lists over several TLVs).
func (r *BulkReq) AppendTo(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, r.ID)
	b = binary.BigEndian.AppendUint32(b, r.Have)
	for i, g := range r.Ranges {
		if i == BulkRangesMax {
			break
		}
		b = binary.BigEndian.AppendUint32(b, g.Start)
		b = binary.BigEndian.AppendUint16(b, g.Count)
	}
	return b
}

// UnmarshalBinary decodes a BULK_REQ value, reusing r.Ranges' storage.
func (r *BulkReq) UnmarshalBinary(v []byte) error {
	if len(v) < BulkReqSize || (len(v)-BulkReqSize)%BulkRangeSize != 0 {
		return malformed(TypeBulkReq, v)
	}
	r.ID = binary.BigEndian.Uint32(v)
	r.Have = binary.BigEndian.Uint32(v[4:])
	r.Ranges = r.Ranges[:0]
	for p := v[BulkReqSize:]; len(p) > 0; p = p[BulkRangeSize:] {
		r.Ranges = append(r.Ranges, BulkRange{binary.BigEndian.Uint32(p), binary.BigEndian.Uint16(p[4:])})
	}
	return nil
}

// BulkData is a BULK_DATA value (the block's bytes follow in BULK_CHUNK TLVs).
type BulkData struct {
	ID     uint32
	Block  uint32
	Length uint16
}

// AppendTo appends the value.
func (d *BulkData) AppendTo(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, d.ID)
	b = binary.BigEndian.AppendUint32(b, d.Block)
	return binary.BigEndian.AppendUint16(b, d.Length)
}

// UnmarshalBinary decodes a BULK_DATA value.
func (d *BulkData) UnmarshalBinary(v []byte) error {
	if len(v) != BulkDataSize {
		return malformed(TypeBulkData, v)
	}
	d.ID = binary.BigEndian.Uint32(v)
	d.Block = binary.BigEndian.Uint32(v[4:])
	d.Length = binary.BigEndian.Uint16(v[8:])
	return nil
}

// BulkDone is a BULK_DONE value.
type BulkDone struct {
	ID     uint32
	Status uint8
	Text   string
}

// AppendTo appends the value; the text is cut to BulkDoneTextMax bytes.
func (d *BulkDone) AppendTo(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, d.ID)
	b = append(b, d.Status)
	t := d.Text
	if len(t) > BulkDoneTextMax {
		t = t[:BulkDoneTextMax]
	}
	return append(b, t...)
}

// UnmarshalBinary decodes a BULK_DONE value.
func (d *BulkDone) UnmarshalBinary(v []byte) error {
	if len(v) < BulkDoneSize {
		return malformed(TypeBulkDone, v)
	}
	d.ID = binary.BigEndian.Uint32(v)
	d.Status = v[4]
	d.Text = string(v[5:])
	return nil
}
