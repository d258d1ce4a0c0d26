// Package wire holds what tcpexpose's initiator and responder agree on: the original
// TCPExposure parameters, payload markers, the MP_DATA/MP_ACK options and the layout of the
// header-reflection payload.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/probekit/probekit/shared/tcpcraft"
)

// Fixed parameters of the original (tcpexpose.md §2).
const (
	DefaultPort = 34343

	ClientISN    = 252001
	ClientWindow = 8064
	ClientMSS    = 512
	ClientTSval  = 13572468
	ClientWScale = 2

	ServerISN    = 0xabcdef
	ServerWindow = 32768
	ServerMSS    = 512
	ServerWScale = 6
	ServerTSval  = 12345678
)

// Payload markers (first payload byte).
const (
	// MarkerReflect asks the responder to ACK with the IP+TCP header it received followed by
	// the IP+TCP header of its ACK.
	MarkerReflect = 0xa1
	// MarkerDupAck asks the responder to ACK as if the segment was lost (a duplicate ACK).
	MarkerDupAck = 0xb2
)

// The MPTCP-draft options the original used (experimental kinds at the time).
const (
	OptMPCapable = tcpcraft.OptMPTCP // kind 30, length 12: subtype/version, flags, 64-bit key
	OptMPData    = 31                // length 16: 64-bit DSN, 32-bit subflow sequence, 16-bit data length
	OptMPAck     = 32                // length 10: 64-bit data ACK (DSN + data length)
	MPDataLen    = 16
	MPAckLen     = 10
)

// MPCapable is the MP_CAPABLE option of the SynOpt tests (version 0, checksum flag, key).
func MPCapable(key uint64) tcpcraft.Option {
	d := []byte{0x00, 0x81}
	return tcpcraft.Option{Kind: OptMPCapable, Data: binary.BigEndian.AppendUint64(d, key)}
}

// MPData is an MP_DATA option.
func MPData(dsn uint64, subSeq uint32, n uint16) tcpcraft.Option {
	d := binary.BigEndian.AppendUint64(nil, dsn)
	d = binary.BigEndian.AppendUint32(d, subSeq)
	return tcpcraft.Option{Kind: OptMPData, Data: binary.BigEndian.AppendUint16(d, n)}
}

// MPDataValue returns DSN and data length of an MP_DATA option.
func MPDataValue(o tcpcraft.Option) (dsn uint64, n uint16, ok bool) {
	if o.Kind != OptMPData || len(o.Data) != MPDataLen-2 || o.Len() != MPDataLen {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(o.Data), binary.BigEndian.Uint16(o.Data[12:]), true
}

// MPAckValue returns the data ACK of an MP_ACK option.
func MPAckValue(o tcpcraft.Option) (uint64, bool) {
	if o.Kind != OptMPAck || len(o.Data) != MPAckLen-2 || o.Len() != MPAckLen {
		return 0, false
	}
	return binary.BigEndian.Uint64(o.Data), true
}

// ErrReflection reports a reflection payload that does not hold two whole headers.
var ErrReflection = errors.New("wire: malformed reflection")

// HeaderLen returns the length of the IP+TCP header at the start of b (IPv4 IHL or IPv6 fixed
// header, plus the TCP data offset), checking every length against b.
func HeaderLen(b []byte) (int, error) {
	if len(b) < 1 {
		return 0, fmt.Errorf("%w: empty", ErrReflection)
	}
	var ipLen int
	switch b[0] >> 4 {
	case 4:
		ipLen = int(b[0]&0xf) * 4
		if ipLen < tcpcraft.IPv4HeaderLen {
			return 0, fmt.Errorf("%w: IPv4 header length %d", ErrReflection, ipLen)
		}
	case 6:
		ipLen = tcpcraft.IPv6HeaderLen
	default:
		return 0, fmt.Errorf("%w: IP version %d", ErrReflection, b[0]>>4)
	}
	if len(b) < ipLen+tcpcraft.TCPHeaderLen {
		return 0, fmt.Errorf("%w: %d bytes, header needs %d", ErrReflection, len(b), ipLen+tcpcraft.TCPHeaderLen)
	}
	doff := int(b[ipLen+12]>>4) * 4
	if doff < tcpcraft.TCPHeaderLen || len(b) < ipLen+doff {
		return 0, fmt.Errorf("%w: TCP data offset %d with %d bytes", ErrReflection, doff, len(b)-ipLen)
	}
	return ipLen + doff, nil
}

// Reflection is a decoded reflection payload: the header the responder received and the
// header it sent (whose TCP checksum field is zero: the checksum covers the payload holding
// the copy). Received and Sent decode the headers with their payload lengths taken from the
// IP length fields; Payload of each is empty.
type Reflection struct {
	ReceivedRaw, SentRaw []byte
	Received, Sent       tcpcraft.Segment
	// ReceivedLen is the TCP payload length the responder received (from the IP length).
	ReceivedLen, SentLen int
}

// ParseReflection splits a reflection payload into the two headers and decodes them.
func ParseReflection(p []byte) (*Reflection, error) {
	n1, err := HeaderLen(p)
	if err != nil {
		return nil, fmt.Errorf("received header: %w", err)
	}
	n2, err := HeaderLen(p[n1:])
	if err != nil {
		return nil, fmt.Errorf("sent header: %w", err)
	}
	if n1+n2 != len(p) {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrReflection, len(p)-n1-n2)
	}
	r := &Reflection{ReceivedRaw: p[:n1:n1], SentRaw: p[n1 : n1+n2 : n1+n2]}
	var err1, err2 error
	r.ReceivedLen, err1 = decodeHeader(r.ReceivedRaw, &r.Received)
	r.SentLen, err2 = decodeHeader(r.SentRaw, &r.Sent)
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	return r, nil
}

// decodeHeader decodes a header-only copy: the IP length field counts a payload that is not
// there, so the copy is decoded with the length fields rewritten to the header alone.
func decodeHeader(h []byte, s *tcpcraft.Segment) (int, error) {
	c := append([]byte(nil), h...)
	var payload int
	if c[0]>>4 == 4 {
		tot := int(binary.BigEndian.Uint16(c[2:]))
		payload = tot - len(c)
		binary.BigEndian.PutUint16(c[2:], uint16(len(c)))
	} else {
		plen := int(binary.BigEndian.Uint16(c[4:]))
		payload = plen - (len(c) - tcpcraft.IPv6HeaderLen)
		binary.BigEndian.PutUint16(c[4:], uint16(len(c)-tcpcraft.IPv6HeaderLen))
	}
	if err := tcpcraft.Decode(c, s); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrReflection, err)
	}
	if payload < 0 {
		return 0, fmt.Errorf("%w: IP length shorter than the header", ErrReflection)
	}
	return payload, nil
}
