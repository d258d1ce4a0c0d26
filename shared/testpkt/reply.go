package testpkt

// AppendHMACTLV appends an HMAC TLV (RFC 8972 §4.8) to pkt, which holds a complete packet of
// base length base followed by its TLVs; the HMAC covers the Sequence Number and every TLV
// already present, so call it after the other TLVs (Extra Padding may still follow, T-08).
// flags is FlagU for a sender and 0 for a reflector.
func AppendHMACTLV(pkt []byte, base int, flags uint8, s *Signer) []byte {
	off := len(pkt)
	mac := s.TLVSum(pkt, base, off)
	return AppendTLV(pkt, flags, TypeHMAC, mac[:])
}

// ReplyTLVs is what a Session-Sender learns from the TLVs of a reflected packet, decoded by
// the rules of X-11: TLVs with U=1 are skipped (the reflector did not understand them),
// processing stops at the first TLV with M=1, and every TLV is discarded when one carries
// I=1 or the HMAC TLV does not verify.
type ReplyTLVs struct {
	// Count is the number of TLVs in the reply (before any were discarded).
	Count int
	// Unrecognized lists the types the reflector returned with U=1.
	Unrecognized []TLVType
	// Malformed is set when the reflector flagged a TLV with M=1 or the framing was broken;
	// MalformedType names the first such TLV's type (0 for a framing error).
	Malformed     bool
	MalformedType TLVType
	// IntegrityFailed is set when a TLV carried I=1 or the reply's HMAC TLV did not verify; no
	// other field is then filled.
	IntegrityFailed bool

	ClassOfService       *ClassOfService
	TimestampInformation *TimestampInformation
	DirectMeasurement    *DirectMeasurement
	AccessReport         *AccessReport
	FollowUpTelemetry    *FollowUpTelemetry
	Location             *Location
	// ExtraPadding is the total value length of Extra Padding TLVs.
	ExtraPadding int
	// HMACVerified is set when the reply carried an HMAC TLV that verified.
	HMACVerified bool
}

// ParseReplyTLVs decodes the TLVs of a reflected packet pkt whose base packet is base octets
// long (44 or 112). signer verifies the HMAC TLV in authenticated mode and may be nil.
func ParseReplyTLVs(pkt []byte, base int, signer *Signer) ReplyTLVs {
	var r ReplyTLVs
	if len(pkt) <= base {
		return r
	}
	ext := pkt[base:]
	// First pass: integrity before believing anything.
	it := NewTLVIterator(ext)
	for it.Next() {
		t := it.TLV()
		r.Count++
		if t.Flags&FlagI != 0 {
			r.IntegrityFailed = true
		}
		if t.Type == TypeHMAC && t.Flags&(FlagU|FlagM) == 0 && signer != nil {
			if signer.VerifyTLV(pkt, base, base+it.Offset(), t.Value) {
				r.HMACVerified = true
			} else {
				r.IntegrityFailed = true
			}
		}
	}
	if r.IntegrityFailed {
		return r
	}
	it = NewTLVIterator(ext)
	for it.Next() {
		t := it.TLV()
		if t.Flags&FlagM != 0 {
			r.Malformed, r.MalformedType = true, t.Type
			return r
		}
		if t.Flags&FlagU != 0 {
			r.Unrecognized = append(r.Unrecognized, t.Type)
			continue
		}
		switch t.Type {
		case TypeExtraPadding:
			r.ExtraPadding += len(t.Value)
		case TypeClassOfService:
			if v, err := ParseClassOfService(t.Value); err == nil {
				r.ClassOfService = &v
			}
		case TypeTimestampInformation:
			if v, err := ParseTimestampInformation(t.Value); err == nil {
				r.TimestampInformation = &v
			}
		case TypeDirectMeasurement:
			if v, err := ParseDirectMeasurement(t.Value); err == nil {
				r.DirectMeasurement = &v
			}
		case TypeAccessReport:
			if v, err := ParseAccessReport(t.Value); err == nil {
				r.AccessReport = &v
			}
		case TypeFollowUpTelemetry:
			if v, err := ParseFollowUpTelemetry(t.Value); err == nil {
				r.FollowUpTelemetry = &v
			}
		case TypeLocation:
			if v, err := ParseLocation(t.Value); err == nil {
				r.Location = &v
			}
		}
	}
	if it.Err() != nil {
		r.Malformed = true
	}
	return r
}
