package sender

import (
	"fmt"
	"time"

	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/timestamp"
)

// builder writes test packets from a template: the base packet, the TLVs in the order given,
// Extra Padding to reach the requested size, then (authenticated mode) the HMAC TLV and the
// base HMAC. Per packet only the sequence number, T1, the Direct Measurement counter and the
// HMACs change, so building allocates nothing.
type builder struct {
	mode     testpkt.Mode
	tmpl     []byte
	ptp      bool
	signer   *testpkt.Signer
	hmacTLV  int // offset of the HMAC TLV, -1 for none
	dmOffset int // offset of the Direct Measurement TLV's value, -1 for none
	arOffset int // offset of the Access Report TLV header, -1 for none
	arValue  []byte
}

// newBuilder lays out the template. size, when larger than what the TLVs need, is reached with an
// Extra Padding TLV (at least 4 octets of room are needed for its header).
func newBuilder(mode testpkt.Mode, ssid uint16, ee timestamp.ErrorEstimate, ptp bool, key []byte,
	tlvs []TLVSpec, size int) (*builder, error) {
	p := testpkt.SenderPacket{Mode: mode, ErrorEstimate: ee, SSID: ssid}
	b := &builder{mode: mode, ptp: ptp, hmacTLV: -1, dmOffset: -1, arOffset: -1}
	t := p.AppendTo(nil)
	for _, s := range tlvs {
		if s.Type == testpkt.TypeDirectMeasurement {
			b.dmOffset = len(t) + testpkt.TLVHeaderLen
		}
		if s.Type == testpkt.TypeAccessReport && b.arOffset < 0 {
			b.arOffset, b.arValue = len(t), s.Value
		}
		t = testpkt.AppendTLV(t, testpkt.FlagU, s.Type, s.Value) // U=1, M=0, I=0
	}
	hmacLen := 0
	if mode.Authenticated() && len(tlvs) > 0 {
		hmacLen = testpkt.TLVHeaderLen + testpkt.HMACLen
	}
	if size > 0 {
		room := size - len(t) - hmacLen
		switch {
		case room == 0:
		case room >= testpkt.TLVHeaderLen:
			// Extra Padding alone needs no HMAC TLV (RFC 8972 §4.8), hence hmacLen above.
			t = testpkt.AppendTLV(t, testpkt.FlagU, testpkt.TypeExtraPadding, make([]byte, room-testpkt.TLVHeaderLen))
		default:
			return nil, fmt.Errorf("--size %d: the packet needs at least %d octets (or %d for padding)",
				size, len(t)+hmacLen, len(t)+hmacLen+testpkt.TLVHeaderLen)
		}
	}
	if len(key) > 0 {
		b.signer = testpkt.NewSigner(key)
	}
	if hmacLen > 0 {
		b.hmacTLV = len(t)
		t = testpkt.AppendTLV(t, testpkt.FlagU, testpkt.TypeHMAC, make([]byte, testpkt.HMACLen))
	}
	b.tmpl = t
	return b, nil
}

// Len is the size of every packet.
func (b *builder) Len() int { return len(b.tmpl) }

// build writes packet seq with transmit time t1 into dst (len(dst) ≥ Len) and returns it.
// Without withAR the Access Report TLV's place holds Extra Padding of the same size, so every
// packet has the same length whether or not it carries the report (T-06 retransmission).
func (b *builder) build(dst []byte, seq uint32, t1 time.Time, sentSoFar uint32, withAR bool) []byte {
	p := dst[:len(b.tmpl)]
	copy(p, b.tmpl)
	if b.arOffset >= 0 && !withAR {
		testpkt.PutTLVHeader(p[b.arOffset:], testpkt.FlagU, testpkt.TypeExtraPadding, len(b.arValue))
		clear(p[b.arOffset+testpkt.TLVHeaderLen : b.arOffset+testpkt.TLVHeaderLen+len(b.arValue)])
	}
	testpkt.PutSequenceNumber(p, seq)
	testpkt.PutTimestamp(p, b.mode, testpkt.Stamp(t1, b.ptp))
	if b.dmOffset >= 0 {
		testpkt.DirectMeasurement{SenderTx: sentSoFar}.Put(p[b.dmOffset:])
	}
	if b.signer != nil {
		if b.hmacTLV >= 0 {
			mac := b.signer.TLVSum(p, b.mode.SenderLen(), b.hmacTLV)
			copy(p[b.hmacTLV+testpkt.TLVHeaderLen:], mac[:])
		}
		if b.mode.Authenticated() {
			b.signer.Sign(p)
		}
	}
	return p
}
