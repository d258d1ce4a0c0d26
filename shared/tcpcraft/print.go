package tcpcraft

import (
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/probekit/probekit/shared/checksum"
)

// FlagString is tcpdump's flag field: S, F, R, P, . (ACK), U, E (ECE), W (CWR), e (AE), or "none".
func FlagString(f uint16) string {
	var b strings.Builder
	for _, x := range []struct {
		bit uint16
		c   byte
	}{{FlagFIN, 'F'}, {FlagSYN, 'S'}, {FlagRST, 'R'}, {FlagPSH, 'P'}, {FlagACK, '.'}, {FlagURG, 'U'}, {FlagECE, 'E'}, {FlagCWR, 'W'}, {FlagAE, 'e'}} {
		if f&x.bit != 0 {
			b.WriteByte(x.c)
		}
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

var mptcpSubtypes = []string{"capable", "join", "dss", "add-addr", "rem-addr", "prio", "fail", "fast-close", "tcprst"}

// String prints the option as tcpdump does inside "options [...]": mss 1460, sackOK,
// TS val 1 ecr 0, nop, wscale 7, sack 1 {a:b}, eol, unknown-253 0x1234cafe. An option whose
// length does not fit its kind is printed as "KIND-NAME [len N] 0xDATA".
func (o Option) String() string {
	switch o.Kind {
	case OptEOL:
		return "eol"
	case OptNOP:
		return "nop"
	}
	if o.Lone {
		return "[bad opt]"
	}
	switch o.Kind {
	case OptMSS:
		if v, ok := o.MSSValue(); ok {
			return "mss " + strconv.Itoa(int(v))
		}
	case OptWindowScale:
		if v, ok := o.WindowScaleValue(); ok {
			return "wscale " + strconv.Itoa(int(v))
		}
	case OptSACKPermitted:
		if o.Len() == 2 && len(o.Data) == 0 {
			return "sackOK"
		}
	case OptTimestamps:
		if v, e, ok := o.TimestampsValue(); ok {
			return "TS val " + strconv.FormatUint(uint64(v), 10) + " ecr " + strconv.FormatUint(uint64(e), 10)
		}
	case OptSACK:
		if len(o.Data)%8 == 0 && int(o.Len()) == 2+len(o.Data) {
			s := "sack " + strconv.Itoa(len(o.Data)/8) + " "
			for i := 0; i < len(o.Data); i += 8 {
				s += "{" + strconv.FormatUint(uint64(binary.BigEndian.Uint32(o.Data[i:])), 10) + ":" +
					strconv.FormatUint(uint64(binary.BigEndian.Uint32(o.Data[i+4:])), 10) + "}"
			}
			return s
		}
	case OptFastOpen:
		if len(o.Data) == 0 && o.Len() == 2 {
			return "tfo cookiereq"
		}
		if int(o.Len()) == 2+len(o.Data) {
			return "tfo cookie " + hex.EncodeToString(o.Data)
		}
	case OptMPTCP:
		if len(o.Data) > 0 && o.Data[0]>>4 == 0 && (len(o.Data) == 10 || len(o.Data) == 18) && int(o.Len()) == 2+len(o.Data) {
			// tcpdump's mp_capable_print: version, "csum" for the checksum-required bit, keys.
			s := "mptcp " + strconv.Itoa(int(o.Len())) + " capable v" + strconv.Itoa(int(o.Data[0]&0xf))
			if o.Data[1]&0x80 != 0 {
				s += " csum"
			}
			s += " {0x" + strconv.FormatUint(binary.BigEndian.Uint64(o.Data[2:]), 16)
			if len(o.Data) == 18 {
				s += ",0x" + strconv.FormatUint(binary.BigEndian.Uint64(o.Data[10:]), 16)
			}
			return s + "}"
		}
		if len(o.Data) > 0 && int(o.Len()) == 2+len(o.Data) {
			sub := int(o.Data[0] >> 4)
			name := "subtype-" + strconv.Itoa(sub)
			if sub < len(mptcpSubtypes) {
				name = mptcpSubtypes[sub]
			}
			return "mptcp " + strconv.Itoa(int(o.Len())) + " " + name + " 0x" + hex.EncodeToString(o.Data)
		}
	}
	name := optionName(o.Kind)
	if int(o.Len()) != 2+len(o.Data) {
		name += " [len " + strconv.Itoa(int(o.Len())) + "]"
	}
	if len(o.Data) > 0 {
		name += " 0x" + hex.EncodeToString(o.Data)
	}
	return name
}

func optionName(k uint8) string {
	switch k {
	case OptMSS:
		return "mss"
	case OptWindowScale:
		return "wscale"
	case OptSACKPermitted:
		return "sackOK"
	case OptSACK:
		return "sack"
	case OptTimestamps:
		return "TS"
	case OptMD5:
		return "md5"
	case OptUserTimeout:
		return "uto"
	case OptAuth:
		return "tcp-ao"
	case OptMPTCP:
		return "mptcp"
	case OptFastOpen:
		return "tfo"
	}
	return "unknown-" + strconv.Itoa(int(k))
}

// FormatOptions prints opts as tcpdump's "[mss 1460,sackOK,...]", with "[bad opt]" appended
// when bad is set.
func FormatOptions(opts []Option, bad bool) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, o := range opts {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(o.String())
	}
	if bad {
		if len(opts) > 0 {
			b.WriteByte(',')
		}
		b.WriteString("[bad opt]")
	}
	b.WriteByte(']')
	return b.String()
}

func ecnName(tos uint8) string {
	switch tos & 3 {
	case 1:
		return ",ECT(1)"
	case 2:
		return ",ECT(0)"
	case 3:
		return ",CE"
	}
	return ""
}

func ipFlagString(f uint8) string {
	var parts []string
	if f&IPFlagMF != 0 {
		parts = append(parts, "+")
	}
	if f&IPFlagDF != 0 {
		parts = append(parts, "DF")
	}
	if f&IPFlagReserved != 0 {
		parts = append(parts, "rsvd")
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func hostPort(a interface{ String() string }, port uint16) string {
	return a.String() + "." + strconv.Itoa(int(port))
}

// Format prints the segment as `tcpdump -S -v -n` does: the IP line, then the TCP line
// indented by four spaces. The segment must come from Decode (its checksums and lengths are
// the received ones) or be fully built (checksums are then computed as AppendTo would).
func (s *Segment) Format() string {
	if s.TCPHeaderLen == 0 {
		return s.decodedCopy().Format()
	}
	var b strings.Builder
	tcpLen := s.TCPHeaderLen
	if tcpLen == 0 {
		tcpLen = TCPHeaderLen + OptionsLen(s.Options)
		if s.DataOffset != 0 {
			tcpLen = max(tcpLen, int(s.DataOffset)*4)
		}
	}
	if s.IsV6() {
		b.WriteString("IP6 (")
		if s.TOS != 0 {
			b.WriteString("class 0x" + strconv.FormatUint(uint64(s.TOS), 16) + ecnName(s.TOS) + ", ")
		}
		if s.FlowLabel != 0 {
			b.WriteString("flowlabel 0x" + strconv.FormatUint(uint64(s.FlowLabel), 16) + ", ")
		}
		plen := int(s.TotalLen)
		if plen == 0 {
			plen = tcpLen + len(s.Payload)
		}
		b.WriteString("hlim " + strconv.Itoa(int(s.TTL)) + ", next-header TCP (6) payload length: " + strconv.Itoa(plen) + ") ")
	} else {
		tot := int(s.TotalLen)
		if tot == 0 {
			tot = IPv4HeaderLen + len(s.IPOptions) + tcpLen + len(s.Payload)
		}
		b.WriteString("IP (tos 0x" + strconv.FormatUint(uint64(s.TOS), 16) + ecnName(s.TOS) +
			", ttl " + strconv.Itoa(int(s.TTL)) + ", id " + strconv.Itoa(int(s.ID)) +
			", offset " + strconv.Itoa(int(s.FragOff)*8) + ", flags [" + ipFlagString(s.IPFlags) +
			"], proto TCP (6), length " + strconv.Itoa(tot))
		if len(s.IPOptions) > 0 {
			b.WriteString(", options (0x" + hex.EncodeToString(s.IPOptions) + ")")
		}
		b.WriteString(")\n    ")
	}
	b.WriteString(s.Line())
	return b.String()
}

// Line prints the TCP part of the tcpdump -S -v -n output on one line:
// `A.P > B.Q: Flags [S.], cksum 0x1234 (correct), seq 1, ack 2, win 3, options [...], length 0`.
func (s *Segment) Line() string {
	if s.TCPHeaderLen == 0 {
		return s.decodedCopy().Line()
	}
	return s.line(len(s.Payload), true)
}

// HeaderLine prints a header without its payload (a reflected copy) as Line does, with the
// payload length taken from payloadLen and the checksum shown as it is, unverified.
func (s *Segment) HeaderLine(payloadLen int) string { return s.line(payloadLen, false) }

func (s *Segment) line(n int, verify bool) string {
	var b strings.Builder
	b.WriteString(hostPort(s.Src, s.SrcPort) + " > " + hostPort(s.Dst, s.DstPort) + ": Flags [" + FlagString(s.Flags) + "]")
	b.WriteString(", cksum 0x" + hex4(s.TCPChecksum))
	if verify {
		if s.ChecksumOK {
			b.WriteString(" (correct)")
		} else {
			b.WriteString(" (incorrect -> 0x" + hex4(s.rightChecksum()) + ")")
		}
	}
	// As tcpdump: the sequence number only when the segment occupies sequence space.
	if n > 0 || s.Flags&(FlagSYN|FlagFIN|FlagRST) != 0 {
		b.WriteString(", seq " + strconv.FormatUint(uint64(s.Seq), 10))
		if n > 0 {
			b.WriteString(":" + strconv.FormatUint(uint64(s.Seq+uint32(n)), 10))
		}
	}
	if s.Flags&FlagACK != 0 {
		b.WriteString(", ack " + strconv.FormatUint(uint64(s.Ack), 10))
	}
	b.WriteString(", win " + strconv.Itoa(int(s.Window)))
	if s.Flags&FlagURG != 0 {
		b.WriteString(", urg " + strconv.Itoa(int(s.Urgent)))
	}
	if len(s.Options) > 0 || s.OptErr != nil {
		b.WriteString(", options " + FormatOptions(s.Options, s.OptErr != nil))
	}
	if s.OptErr == nil {
		// tcpdump stops printing the segment at a bad option.
		b.WriteString(", length " + strconv.Itoa(n))
	}
	return b.String()
}

func hex4(v uint16) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[v>>12], digits[v>>8&0xf], digits[v>>4&0xf], digits[v&0xf]})
}

// decodedCopy encodes a built segment and decodes it, so it prints as received.
func (s *Segment) decodedCopy() *Segment {
	var d Segment
	if err := Decode(s.AppendTo(nil), &d); err != nil {
		// Not decodable (e.g. a lying length field): print the fields as built.
		c := *s
		c.TCPHeaderLen = TCPHeaderLen + OptionsLen(s.Options)
		c.DataOffset = uint8(c.TCPHeaderLen / 4)
		c.ChecksumOK = true
		return &c
	}
	return &d
}

// rightChecksum is the TCP checksum a decoded segment's bytes call for.
func (s *Segment) rightChecksum() uint16 {
	b := make([]byte, 0, s.TCPHeaderLen+len(s.Payload))
	var t [TCPHeaderLen]byte
	binary.BigEndian.PutUint16(t[0:], s.SrcPort)
	binary.BigEndian.PutUint16(t[2:], s.DstPort)
	binary.BigEndian.PutUint32(t[4:], s.Seq)
	binary.BigEndian.PutUint32(t[8:], s.Ack)
	t[12] = s.DataOffset<<4 | uint8(s.Flags>>8)&0xf
	t[13] = uint8(s.Flags)
	binary.BigEndian.PutUint16(t[14:], s.Window)
	binary.BigEndian.PutUint16(t[18:], s.Urgent)
	b = append(b, t[:]...)
	b = append(b, s.OptionBytes...)
	b = append(b, s.Payload...)
	return checksum.Transport(s.Src, s.Dst, ProtoTCP, b)
}
