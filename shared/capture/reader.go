package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"time"
)

// Sentinel errors of the file readers.
var (
	// ErrTruncated reports a capture that ends inside a record or block. The packets before it
	// were good; callers usually warn and keep what they read (tcpdump does the same).
	ErrTruncated = errors.New("capture file truncated")
	// ErrUnknownFormat reports a file that is neither pcap nor pcapng (unknown magic number).
	ErrUnknownFormat = errors.New("unknown capture file format")
	// ErrCorrupt reports a structurally invalid file: impossible lengths, undefined interfaces,
	// unsupported versions or timestamp resolutions.
	ErrCorrupt = errors.New("corrupt capture file")
)

// Format is a capture file format.
type Format uint8

// Capture file formats.
const (
	FormatPcap Format = iota + 1
	FormatPcapNG
)

func (f Format) String() string {
	switch f {
	case FormatPcap:
		return "pcap"
	case FormatPcapNG:
		return "pcapng"
	}
	return fmt.Sprintf("Format(%d)", uint8(f))
}

// Packet is one captured frame. Data aliases the reader's buffer and is valid only until the
// next call to Next; copy it to keep it.
type Packet struct {
	Time       time.Time // capture time
	TimeNanos  int64     // capture time in nanoseconds since the Unix epoch (same instant as Time)
	Data       []byte    // captured bytes, starting at the link header
	CaptureLen int       // len(Data)
	OrigLen    int       // length of the frame on the wire
	LinkType   LinkType  // link type of Data
	Interface  int       // pcapng interface index (0 for pcap and live captures)
}

// pcap file magic numbers as read in little-endian order.
const (
	magicMicros        = 0xa1b2c3d4
	magicNanos         = 0xa1b23c4d
	magicMicrosSwapped = 0xd4c3b2a1
	magicNanosSwapped  = 0x4d3cb2a1
	magicNG            = 0x0a0d0d0a // pcapng Section Header Block type (a palindrome)
	ngByteOrderMagic   = 0x1a2b3c4d

	pcapFileHeaderLen   = 24
	pcapRecordHeaderLen = 16
	// minMaxRecord is the capture length accepted regardless of the file's snaplen: libpcap's
	// MAXIMUM_SNAPLEN. Larger records are accepted when the file's snaplen says so, up to
	// maxBlock.
	minMaxRecord = 262144
	// maxBlock bounds a pcapng block (libpcap's MAX_BLOCKSIZE) and a pcap record, so a corrupt
	// length cannot make the reader allocate without limit.
	maxBlock = 16 * 1024 * 1024

	// DefaultBufferSize is the read buffer of Open and NewReader.
	DefaultBufferSize = 1 << 20
)

// pcapng block types.
const (
	blockSHB = 0x0a0d0d0a
	blockIDB = 0x00000001
	blockOPB = 0x00000002 // obsolete Packet Block
	blockSPB = 0x00000003
	blockEPB = 0x00000006
)

// Interface describes one pcapng interface (or the single link of a pcap file).
type Interface struct {
	Name     string // if_name option ("" when absent, and for pcap)
	LinkType LinkType
	Snaplen  int
	// TSResol is the raw if_tsresol option value (6 = µs when absent).
	TSResol uint8
	// TSOffset is if_tsoffset, seconds added to every timestamp.
	TSOffset int64

	unitsPerSec uint64 // timestamp units per second
	mul         int64  // units → ns multiplier when 10^-n with n ≤ 9, else 0
	divDec      uint64 // 10^(n-9) when 10^-n with n > 9
	shift       uint   // n when 2^-n
	binary      bool
}

// Reader reads pcap and pcapng files, detecting the format from the magic number.
type Reader struct {
	src    io.Reader
	closer io.Closer
	buf    []byte
	pos    int
	end    int
	srcErr error // sticky error of src
	err    error // sticky error returned by Next

	format    Format
	be        bool // file (or current pcapng section) is big-endian
	nanos     bool // pcap: ns timestamps
	fracMul   int64
	linkType  LinkType
	snaplen   int
	maxRecord int
	ifaces    []Interface
	records   int // records or blocks consumed, for error messages
}

// Open opens a pcap or pcapng file. Close the reader to close the file.
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	r, err := NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("capture: %s: %w", path, err)
	}
	r.closer = f
	return r, nil
}

// NewReader reads a pcap or pcapng stream (a file, stdin) with a DefaultBufferSize buffer.
func NewReader(src io.Reader) (*Reader, error) {
	return NewReaderSize(src, DefaultBufferSize)
}

// NewReaderSize is NewReader with a read buffer of size bytes (at least 64); the buffer grows
// when a record does not fit.
func NewReaderSize(src io.Reader, size int) (*Reader, error) {
	size = max(size, 64)
	r := &Reader{src: src, buf: make([]byte, size)}
	if err := r.fill(4); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("capture: read file header: empty or short file: %w", ErrTruncated)
		}
		return nil, fmt.Errorf("capture: read file header: %w", err)
	}
	magic := binary.LittleEndian.Uint32(r.buf[r.pos:])
	switch magic {
	case magicMicros, magicNanos, magicMicrosSwapped, magicNanosSwapped:
		return r, r.openPcap(magic)
	case magicNG:
		return r, r.openNG()
	}
	return nil, fmt.Errorf("capture: magic number %#08x is neither pcap nor pcapng: %w", magic, ErrUnknownFormat)
}

func (r *Reader) openPcap(magic uint32) error {
	if err := r.fill(pcapFileHeaderLen); err != nil {
		return r.headerErr("pcap file header", err)
	}
	r.format = FormatPcap
	r.be = magic == magicMicrosSwapped || magic == magicNanosSwapped
	r.nanos = magic == magicNanos || magic == magicNanosSwapped
	r.fracMul = 1000
	if r.nanos {
		r.fracMul = 1
	}
	h := r.buf[r.pos : r.pos+pcapFileHeaderLen]
	major, minor := r.u16(h[4:]), r.u16(h[6:])
	if major != 2 {
		return fmt.Errorf("capture: pcap version %d.%d: %w", major, minor, ErrCorrupt)
	}
	r.snaplen = int(r.u32(h[16:]))
	// The upper 16 bits of the link-type field carry FCS information (pcap-savefile(5)).
	r.linkType = LinkType(r.u32(h[20:]) & 0xffff)
	r.maxRecord = min(max(r.snaplen, minMaxRecord), maxBlock)
	r.pos += pcapFileHeaderLen
	res := uint8(6)
	if r.nanos {
		res = 9
	}
	r.ifaces = []Interface{{LinkType: r.linkType, Snaplen: r.snaplen, TSResol: res}}
	return nil
}

func (r *Reader) openNG() error {
	r.format = FormatPcapNG
	// Read blocks up to the first interface description so that LinkType is known before the
	// first packet; a packet block before any IDB is an error either way.
	for len(r.ifaces) == 0 {
		p, isPacket, err := r.ngBlock()
		if err == io.EOF && r.records > 0 {
			return nil // a section without interfaces: no packets
		}
		if err != nil {
			return err
		}
		if isPacket {
			return fmt.Errorf("capture: pcapng packet on interface %d before any interface description: %w", p.Interface, ErrCorrupt)
		}
	}
	return nil
}

// Format returns the file's format.
func (r *Reader) Format() Format { return r.format }

// LinkType returns the link type of the pcap file, or of the first pcapng interface (0 for a
// pcapng file without interfaces, which holds no packets). Packets carry their own link type,
// since pcapng interfaces may differ.
func (r *Reader) LinkType() LinkType {
	if len(r.ifaces) > 0 {
		return r.ifaces[0].LinkType
	}
	return r.linkType
}

// Snaplen returns the snapshot length of the pcap file or of the first pcapng interface.
func (r *Reader) Snaplen() int {
	if len(r.ifaces) > 0 {
		return r.ifaces[0].Snaplen
	}
	return r.snaplen
}

// Nanosecond reports whether a pcap file stores nanosecond timestamps (pcapng: whether the
// first interface's resolution is finer than a microsecond).
func (r *Reader) Nanosecond() bool {
	if r.format == FormatPcap {
		return r.nanos
	}
	return len(r.ifaces) > 0 && r.ifaces[0].unitsPerSec > 1e6
}

// Interfaces returns the interfaces seen so far (pcapng) or the file's single link (pcap).
func (r *Reader) Interfaces() []Interface { return r.ifaces }

// Close closes the file opened by Open; it is a no-op for NewReader.
func (r *Reader) Close() error {
	if r.closer == nil {
		return nil
	}
	c := r.closer
	r.closer = nil
	return c.Close()
}

// Next returns the next packet. Its Data is valid until the next call. At the end it returns
// io.EOF; a file that ends inside a record returns an error wrapping ErrTruncated after the
// last complete packet. Errors are sticky.
func (r *Reader) Next() (Packet, error) {
	if r.err != nil {
		return Packet{}, r.err
	}
	if r.format == FormatPcapNG {
		if p, ok := r.fastEPB(); ok {
			return p, nil
		}
		for {
			p, isPacket, err := r.ngBlock()
			if err != nil {
				r.err = err
				return Packet{}, err
			}
			if isPacket {
				return p, nil
			}
		}
	}
	if r.end-r.pos < pcapRecordHeaderLen {
		if err := r.fill(pcapRecordHeaderLen); err != nil {
			r.err = r.recordErr("record header", pcapRecordHeaderLen, err)
			return Packet{}, r.err
		}
	}
	h := r.buf[r.pos : r.pos+pcapRecordHeaderLen]
	var sec, frac, capLen, origLen uint32
	if r.be {
		sec, frac = binary.BigEndian.Uint32(h), binary.BigEndian.Uint32(h[4:])
		capLen, origLen = binary.BigEndian.Uint32(h[8:]), binary.BigEndian.Uint32(h[12:])
	} else {
		sec, frac = binary.LittleEndian.Uint32(h), binary.LittleEndian.Uint32(h[4:])
		capLen, origLen = binary.LittleEndian.Uint32(h[8:]), binary.LittleEndian.Uint32(h[12:])
	}
	if capLen > uint32(r.maxRecord) {
		r.err = fmt.Errorf("capture: pcap record %d: capture length %d exceeds maximum %d: %w", r.records+1, capLen, r.maxRecord, ErrCorrupt)
		return Packet{}, r.err
	}
	need := pcapRecordHeaderLen + int(capLen)
	if r.end-r.pos < need {
		if err := r.fill(need); err != nil {
			r.err = r.recordErr("record", need, err)
			return Packet{}, r.err
		}
	}
	start := r.pos + pcapRecordHeaderLen
	r.pos += need
	r.records++
	ns := int64(sec)*1e9 + int64(frac)*r.fracMul
	return Packet{
		Time:       time.Unix(0, ns),
		TimeNanos:  ns,
		Data:       r.buf[start:r.pos:r.pos],
		CaptureLen: int(capLen),
		OrigLen:    int(origLen),
		LinkType:   r.linkType,
	}, nil
}

// fastEPB decodes a well-formed Enhanced Packet Block that is already buffered, the common
// case; anything else (other blocks, errors, refills) is left to ngBlock.
func (r *Reader) fastEPB() (Packet, bool) {
	avail := r.end - r.pos
	if avail < 32 {
		return Packet{}, false
	}
	b := r.buf[r.pos:r.end]
	var typ, blen, ifc, hi, lo, capLen, origLen uint32
	if r.be {
		typ, blen, ifc = binary.BigEndian.Uint32(b), binary.BigEndian.Uint32(b[4:]), binary.BigEndian.Uint32(b[8:])
		hi, lo = binary.BigEndian.Uint32(b[12:]), binary.BigEndian.Uint32(b[16:])
		capLen, origLen = binary.BigEndian.Uint32(b[20:]), binary.BigEndian.Uint32(b[24:])
	} else {
		typ, blen, ifc = binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:]), binary.LittleEndian.Uint32(b[8:])
		hi, lo = binary.LittleEndian.Uint32(b[12:]), binary.LittleEndian.Uint32(b[16:])
		capLen, origLen = binary.LittleEndian.Uint32(b[20:]), binary.LittleEndian.Uint32(b[24:])
	}
	if typ != blockEPB || blen < 32 || blen%4 != 0 || blen > uint32(avail) || ifc >= uint32(len(r.ifaces)) || capLen > blen-32 {
		return Packet{}, false
	}
	n := int(blen)
	if r.u32(b[n-4:]) != blen {
		return Packet{}, false
	}
	in := &r.ifaces[ifc]
	ns := in.nanos(uint64(hi)<<32 | uint64(lo))
	end := 28 + int(capLen)
	r.pos += n
	r.records++
	return Packet{
		Time:       time.Unix(0, ns),
		TimeNanos:  ns,
		Data:       b[28:end:end],
		CaptureLen: int(capLen),
		OrigLen:    int(origLen),
		LinkType:   in.LinkType,
		Interface:  int(ifc),
	}, true
}

// ngBlock consumes one pcapng block; for packet blocks it returns the packet and true.
func (r *Reader) ngBlock() (Packet, bool, error) {
	if r.end-r.pos < 12 {
		if err := r.fill(8); err != nil {
			return Packet{}, false, r.recordErr("block header", 8, err)
		}
	}
	typ := r.u32(r.buf[r.pos:])
	if typ == blockSHB {
		// The byte order of a section is only known from its header's byte-order magic.
		if err := r.fill(12); err != nil {
			return Packet{}, false, r.recordErr("section header", 12, err)
		}
		switch binary.LittleEndian.Uint32(r.buf[r.pos+8:]) {
		case ngByteOrderMagic:
			r.be = false
		case 0x4d3c2b1a:
			r.be = true
		default:
			return Packet{}, false, fmt.Errorf("capture: pcapng block %d: bad byte-order magic %#08x: %w", r.records+1, binary.LittleEndian.Uint32(r.buf[r.pos+8:]), ErrCorrupt)
		}
	}
	blen := r.u32(r.buf[r.pos+4:])
	if blen < 12 || blen%4 != 0 || blen > maxBlock {
		return Packet{}, false, fmt.Errorf("capture: pcapng block %d (type %#x): invalid length %d: %w", r.records+1, typ, blen, ErrCorrupt)
	}
	n := int(blen)
	if r.end-r.pos < n {
		if err := r.fill(n); err != nil {
			return Packet{}, false, r.recordErr("block", n, err)
		}
	}
	b := r.buf[r.pos : r.pos+n : r.pos+n]
	r.pos += n
	r.records++
	if trailer := r.u32(b[n-4:]); trailer != blen {
		return Packet{}, false, fmt.Errorf("capture: pcapng block %d: length %d in header but %d in trailer: %w", r.records, blen, trailer, ErrCorrupt)
	}
	switch typ {
	case blockEPB:
		if n < 32 {
			return Packet{}, false, r.ngShort("enhanced packet", n)
		}
		p, err := r.ngPacket(b, r.u32(b[8:]), r.u32(b[12:]), r.u32(b[16:]), r.u32(b[20:]), r.u32(b[24:]), 28)
		return p, err == nil, err
	case blockOPB:
		if n < 32 {
			return Packet{}, false, r.ngShort("packet", n)
		}
		p, err := r.ngPacket(b, uint32(r.u16(b[8:])), r.u32(b[12:]), r.u32(b[16:]), r.u32(b[20:]), r.u32(b[24:]), 28)
		return p, err == nil, err
	case blockSPB:
		if n < 16 {
			return Packet{}, false, r.ngShort("simple packet", n)
		}
		if len(r.ifaces) == 0 {
			return Packet{}, false, fmt.Errorf("capture: pcapng block %d: simple packet before any interface description: %w", r.records, ErrCorrupt)
		}
		orig := r.u32(b[8:])
		capLen := min(orig, uint32(n-16))
		if s := r.ifaces[0].Snaplen; s > 0 {
			capLen = min(capLen, uint32(s))
		}
		data := b[12 : 12+capLen : 12+capLen]
		return Packet{Time: time.Unix(0, 0), Data: data, CaptureLen: int(capLen), OrigLen: int(orig), LinkType: r.ifaces[0].LinkType}, true, nil
	case blockIDB:
		return Packet{}, false, r.ngInterface(b)
	case blockSHB:
		if n < 28 {
			return Packet{}, false, r.ngShort("section header", n)
		}
		if major := r.u16(b[12:]); major != 1 {
			return Packet{}, false, fmt.Errorf("capture: pcapng section version %d.%d: %w", major, r.u16(b[14:]), ErrCorrupt)
		}
		r.ifaces = r.ifaces[:0] // interface IDs are per section
	}
	return Packet{}, false, nil // other blocks (name resolution, statistics, custom) are skipped
}

func (r *Reader) ngPacket(b []byte, ifc, hi, lo, capLen, origLen uint32, off int) (Packet, error) {
	if ifc >= uint32(len(r.ifaces)) {
		return Packet{}, fmt.Errorf("capture: pcapng block %d: packet on undefined interface %d (%d defined): %w", r.records, ifc, len(r.ifaces), ErrCorrupt)
	}
	if capLen > uint32(len(b)-off-4) {
		return Packet{}, fmt.Errorf("capture: pcapng block %d: capture length %d exceeds block length %d: %w", r.records, capLen, len(b), ErrCorrupt)
	}
	in := &r.ifaces[ifc]
	ns := in.nanos(uint64(hi)<<32 | uint64(lo))
	end := off + int(capLen)
	return Packet{
		Time:       time.Unix(0, ns),
		TimeNanos:  ns,
		Data:       b[off:end:end],
		CaptureLen: int(capLen),
		OrigLen:    int(origLen),
		LinkType:   in.LinkType,
		Interface:  int(ifc),
	}, nil
}

// nanos converts a pcapng timestamp to ns since the epoch, truncating sub-ns units as
// libpcap does.
func (in *Interface) nanos(t uint64) int64 {
	off := in.TSOffset * 1e9
	if in.mul != 0 {
		return int64(t)*in.mul + off
	}
	var sec, frac uint64
	if in.binary {
		sec, frac = t>>in.shift, t&(1<<in.shift-1)
		hi, lo := bits.Mul64(frac, 1e9)
		if in.shift > 0 {
			frac = hi<<(64-in.shift) | lo>>in.shift
		}
	} else {
		sec, frac = t/in.unitsPerSec, t%in.unitsPerSec/in.divDec
	}
	return int64(sec)*1e9 + int64(frac) + off
}

func (r *Reader) ngInterface(b []byte) error {
	if len(b) < 20 {
		return r.ngShort("interface description", len(b))
	}
	in := Interface{LinkType: LinkType(r.u16(b[8:])), Snaplen: int(r.u32(b[12:])), TSResol: 6}
	opts := b[16 : len(b)-4]
	for len(opts) >= 4 {
		code, olen := r.u16(opts), int(r.u16(opts[2:]))
		if code == 0 { // opt_endofopt
			break
		}
		padded := (olen + 3) &^ 3
		if 4+padded > len(opts) {
			return fmt.Errorf("capture: pcapng block %d: interface option %d length %d overruns the block: %w", r.records, code, olen, ErrCorrupt)
		}
		v := opts[4 : 4+olen]
		switch code {
		case 2: // if_name
			in.Name = string(v)
		case 9: // if_tsresol
			if olen != 1 {
				return fmt.Errorf("capture: pcapng block %d: if_tsresol length %d: %w", r.records, olen, ErrCorrupt)
			}
			in.TSResol = v[0]
		case 14: // if_tsoffset
			if olen != 8 {
				return fmt.Errorf("capture: pcapng block %d: if_tsoffset length %d: %w", r.records, olen, ErrCorrupt)
			}
			in.TSOffset = int64(r.u64(v))
		}
		opts = opts[4+padded:]
	}
	if err := in.setResolution(); err != nil {
		return fmt.Errorf("capture: pcapng block %d: %w", r.records, err)
	}
	r.ifaces = append(r.ifaces, in)
	return nil
}

func (in *Interface) setResolution() error {
	n := uint(in.TSResol & 0x7f)
	if in.TSResol&0x80 != 0 {
		if n > 63 {
			return fmt.Errorf("if_tsresol 2^-%d: %w", n, ErrCorrupt)
		}
		in.binary, in.shift, in.unitsPerSec = true, n, 1<<n
		return nil
	}
	if n > 19 {
		return fmt.Errorf("if_tsresol 10^-%d: %w", n, ErrCorrupt)
	}
	in.unitsPerSec = pow10(n)
	if n <= 9 {
		in.mul = int64(pow10(9 - n))
	} else {
		in.divDec = pow10(n - 9)
	}
	return nil
}

func pow10(n uint) uint64 {
	p := uint64(1)
	for range n {
		p *= 10
	}
	return p
}

func (r *Reader) ngShort(what string, n int) error {
	return fmt.Errorf("capture: pcapng block %d: %s block of %d bytes is too short: %w", r.records, what, n, ErrCorrupt)
}

// fill makes at least n bytes available at r.buf[r.pos:], compacting and growing the buffer.
func (r *Reader) fill(n int) error {
	if r.end-r.pos >= n {
		return nil
	}
	if r.pos+n > len(r.buf) && r.pos > 0 {
		r.end = copy(r.buf, r.buf[r.pos:r.end])
		r.pos = 0
	}
	zero := 0
	for r.end-r.pos < n {
		if r.srcErr != nil {
			return r.srcErr
		}
		if r.end == len(r.buf) {
			// Grow in steps as data arrives, so a corrupt length in a short file does not
			// allocate the full claimed size.
			nb := make([]byte, min(2*len(r.buf), r.pos+n))
			r.end = copy(nb, r.buf[r.pos:r.end])
			r.pos = 0
			r.buf = nb
		}
		m, err := r.src.Read(r.buf[r.end:])
		r.end += m
		if err != nil {
			r.srcErr = err
		} else if m == 0 {
			if zero++; zero > 100 {
				r.srcErr = io.ErrNoProgress
			}
		}
	}
	return nil
}

// recordErr turns a fill error for a record that needs `need` bytes into the error Next returns.
func (r *Reader) recordErr(what string, need int, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		have := r.end - r.pos
		if have == 0 && what != "record" && what != "block" {
			return io.EOF
		}
		return fmt.Errorf("capture: %v %s %d needs %d bytes, file ends after %d: %w", r.format, what, r.records+1, need, have, ErrTruncated)
	}
	return fmt.Errorf("capture: read %v %s %d: %w", r.format, what, r.records+1, err)
}

func (r *Reader) headerErr(what string, err error) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("capture: %s: file ends after %d bytes: %w", what, r.end-r.pos, ErrTruncated)
	}
	return fmt.Errorf("capture: read %s: %w", what, err)
}

func (r *Reader) u16(b []byte) uint16 {
	if r.be {
		return binary.BigEndian.Uint16(b)
	}
	return binary.LittleEndian.Uint16(b)
}

func (r *Reader) u32(b []byte) uint32 {
	if r.be {
		return binary.BigEndian.Uint32(b)
	}
	return binary.LittleEndian.Uint32(b)
}

func (r *Reader) u64(b []byte) uint64 {
	if r.be {
		return binary.BigEndian.Uint64(b)
	}
	return binary.LittleEndian.Uint64(b)
}
