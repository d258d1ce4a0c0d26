package capture

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// Writer writes a little-endian pcap file (version 2.4) with microsecond or nanosecond
// timestamps. It does no buffering of its own: wrap w in a bufio.Writer for throughput.
type Writer struct {
	w       io.Writer
	nanos   bool
	snaplen int
	hdr     [pcapRecordHeaderLen]byte
}

// NewWriter writes the pcap file header for link type lt and returns a Writer. snaplen ≤ 0
// means minMaxRecord (262144, libpcap's maximum); packets longer than snaplen are truncated.
func NewWriter(w io.Writer, lt LinkType, snaplen int, nanos bool) (*Writer, error) {
	if snaplen <= 0 {
		snaplen = minMaxRecord
	}
	if snaplen > maxBlock {
		return nil, fmt.Errorf("capture: pcap writer: snaplen %d exceeds %d", snaplen, maxBlock)
	}
	var h [pcapFileHeaderLen]byte
	magic := uint32(magicMicros)
	if nanos {
		magic = magicNanos
	}
	binary.LittleEndian.PutUint32(h[0:], magic)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], uint32(snaplen))
	binary.LittleEndian.PutUint32(h[20:], uint32(lt))
	if _, err := w.Write(h[:]); err != nil {
		return nil, fmt.Errorf("capture: pcap writer: write file header: %w", err)
	}
	return &Writer{w: w, nanos: nanos, snaplen: snaplen}, nil
}

// WritePacket appends one record. origLen is the frame's length on the wire; values below
// len(data) are raised to len(data). Times before 1970 or after 2106 cannot be stored.
func (w *Writer) WritePacket(ts time.Time, data []byte, origLen int) error {
	return w.WritePacketNanos(ts.UnixNano(), data, origLen)
}

// WritePacketNanos is WritePacket with the time in ns since the Unix epoch. Microsecond
// files truncate the time to the microsecond, as the kernel does.
func (w *Writer) WritePacketNanos(ns int64, data []byte, origLen int) error {
	if ns < 0 || ns/1e9 > 0xffffffff {
		return fmt.Errorf("capture: pcap writer: time %d ns outside the pcap range", ns)
	}
	capLen := min(len(data), w.snaplen)
	origLen = max(origLen, len(data))
	frac := uint32(ns % 1e9)
	if !w.nanos {
		frac /= 1000
	}
	binary.LittleEndian.PutUint32(w.hdr[0:], uint32(ns/1e9))
	binary.LittleEndian.PutUint32(w.hdr[4:], frac)
	binary.LittleEndian.PutUint32(w.hdr[8:], uint32(capLen))
	binary.LittleEndian.PutUint32(w.hdr[12:], uint32(origLen))
	if _, err := w.w.Write(w.hdr[:]); err != nil {
		return fmt.Errorf("capture: pcap writer: %w", err)
	}
	if _, err := w.w.Write(data[:capLen]); err != nil {
		return fmt.Errorf("capture: pcap writer: %w", err)
	}
	return nil
}
