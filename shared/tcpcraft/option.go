package tcpcraft

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// TCP option kinds (IANA "TCP Option Kind Numbers").
const (
	OptEOL           uint8 = 0  // End of Option List (RFC 9293)
	OptNOP           uint8 = 1  // No-Operation (RFC 9293)
	OptMSS           uint8 = 2  // Maximum Segment Size (RFC 9293)
	OptWindowScale   uint8 = 3  // Window Scale (RFC 7323)
	OptSACKPermitted uint8 = 4  // SACK Permitted (RFC 2018)
	OptSACK          uint8 = 5  // SACK (RFC 2018)
	OptTimestamps    uint8 = 8  // Timestamps (RFC 7323)
	OptMD5           uint8 = 19 // MD5 signature (RFC 2385)
	OptUserTimeout   uint8 = 28 // User Timeout (RFC 5482)
	OptAuth          uint8 = 29 // TCP-AO (RFC 5925)
	OptMPTCP         uint8 = 30 // Multipath TCP (RFC 8684)
	OptFastOpen      uint8 = 34 // TCP Fast Open cookie (RFC 7413)
	OptExp1          uint8 = 253
	OptExp2          uint8 = 254
)

// MaxOptionsLen is the largest TCP options area (data offset 15).
const MaxOptionsLen = 40

// Errors of the option codec.
var (
	// ErrOptionLength reports a malformed options area: a length byte below 2 or past the end.
	ErrOptionLength = errors.New("tcpcraft: bad option length")
	// ErrOptionSpec reports a bad symbolic option specification.
	ErrOptionSpec = errors.New("tcpcraft: bad option spec")
)

// Option is one TCP option. EOL and NOP are single bytes; every other kind is written as kind,
// length, Data. Length 0 means 2+len(Data); any other value is written as given, so malformed
// options can be crafted on purpose. Decoded options alias the packet's bytes.
type Option struct {
	Kind   uint8
	Length uint8
	Data   []byte
	// Lone writes only the kind byte (a truncated option at the end of a malformed area).
	Lone bool
}

// WireLen is the number of bytes AppendOption writes for o.
func (o Option) WireLen() int {
	if o.Kind == OptEOL || o.Kind == OptNOP || o.Lone {
		return 1
	}
	return 2 + len(o.Data)
}

// Len is the option's length byte as written.
func (o Option) Len() uint8 {
	if o.Length != 0 {
		return o.Length
	}
	return uint8(2 + len(o.Data))
}

// Equal reports whether two options have the same kind, length and data.
func (o Option) Equal(p Option) bool {
	if o.Kind != p.Kind || o.Lone != p.Lone {
		return false
	}
	if o.Kind == OptEOL || o.Kind == OptNOP {
		return true
	}
	return o.Len() == p.Len() && string(o.Data) == string(p.Data)
}

// AppendOption appends o's bytes (no padding).
func AppendOption(b []byte, o Option) []byte {
	if o.Kind == OptEOL || o.Kind == OptNOP || o.Lone {
		return append(b, o.Kind)
	}
	b = append(b, o.Kind, o.Len())
	return append(b, o.Data...)
}

// AppendOptions appends the options in order and then zero bytes (EOL) up to the next multiple
// of 4, the explicit padding a TCP header needs.
func AppendOptions(b []byte, opts []Option) []byte {
	start := len(b)
	for _, o := range opts {
		b = AppendOption(b, o)
	}
	for (len(b)-start)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// OptionsLen is the padded length of opts on the wire.
func OptionsLen(opts []Option) int {
	n := 0
	for _, o := range opts {
		n += o.WireLen()
	}
	return (n + 3) &^ 3
}

// ParseOptions appends the options in b to dst (Data aliases b) and returns them. Parsing
// stops at an EOL (which is returned; the rest of b is padding). A length byte below 2 or
// past the end of b stops parsing with ErrOptionLength; the options before it are returned.
func ParseOptions(dst []Option, b []byte) ([]Option, error) {
	for i := 0; i < len(b); {
		k := b[i]
		switch k {
		case OptEOL:
			return append(dst, Option{Kind: OptEOL}), nil
		case OptNOP:
			dst = append(dst, Option{Kind: OptNOP})
			i++
			continue
		}
		if i+1 >= len(b) {
			return dst, fmt.Errorf("%w: kind %d at offset %d has no length byte", ErrOptionLength, k, i)
		}
		l := int(b[i+1])
		if l < 2 || i+l > len(b) {
			return dst, fmt.Errorf("%w: kind %d at offset %d has length %d (%d bytes left)", ErrOptionLength, k, i, l, len(b)-i)
		}
		dst = append(dst, Option{Kind: k, Length: uint8(l), Data: b[i+2 : i+l : i+l]})
		i += l
	}
	return dst, nil
}

// Constructors of the common options.

// MSS is a Maximum Segment Size option.
func MSS(v uint16) Option { return Option{Kind: OptMSS, Data: binary.BigEndian.AppendUint16(nil, v)} }

// WindowScale is a Window Scale option.
func WindowScale(shift uint8) Option { return Option{Kind: OptWindowScale, Data: []byte{shift}} }

// SACKPermitted is a SACK-Permitted option.
func SACKPermitted() Option { return Option{Kind: OptSACKPermitted} }

// Timestamps is a Timestamps option.
func Timestamps(val, ecr uint32) Option {
	d := make([]byte, 8)
	binary.BigEndian.PutUint32(d, val)
	binary.BigEndian.PutUint32(d[4:], ecr)
	return Option{Kind: OptTimestamps, Data: d}
}

// SACK is a SACK option with (left, right) edge pairs.
func SACK(blocks ...[2]uint32) Option {
	d := make([]byte, 0, 8*len(blocks))
	for _, bl := range blocks {
		d = binary.BigEndian.AppendUint32(d, bl[0])
		d = binary.BigEndian.AppendUint32(d, bl[1])
	}
	return Option{Kind: OptSACK, Data: d}
}

// NOP is a No-Operation option.
func NOP() Option { return Option{Kind: OptNOP} }

// EOL is an End of Option List option.
func EOL() Option { return Option{Kind: OptEOL} }

// Values of the common options; ok is false when the kind or length does not match.

// MSSValue returns the MSS of an MSS option.
func (o Option) MSSValue() (uint16, bool) {
	if o.Kind != OptMSS || len(o.Data) != 2 || o.Len() != 4 {
		return 0, false
	}
	return binary.BigEndian.Uint16(o.Data), true
}

// WindowScaleValue returns the shift of a Window Scale option.
func (o Option) WindowScaleValue() (uint8, bool) {
	if o.Kind != OptWindowScale || len(o.Data) != 1 || o.Len() != 3 {
		return 0, false
	}
	return o.Data[0], true
}

// TimestampsValue returns TSval and TSecr of a Timestamps option.
func (o Option) TimestampsValue() (val, ecr uint32, ok bool) {
	if o.Kind != OptTimestamps || len(o.Data) != 8 || o.Len() != 10 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint32(o.Data), binary.BigEndian.Uint32(o.Data[4:]), true
}

// FindOption returns the first option of kind in opts.
func FindOption(opts []Option, kind uint8) (Option, bool) {
	for _, o := range opts {
		if o.Kind == kind {
			return o, true
		}
	}
	return Option{}, false
}

// OptionKinds lists the kinds of opts without NOP and EOL (the comparison Linux NOP-filling
// middleboxes require: compare kinds, not header length).
func OptionKinds(opts []Option) []uint8 {
	var k []uint8
	for _, o := range opts {
		if o.Kind != OptNOP && o.Kind != OptEOL {
			k = append(k, o.Kind)
		}
	}
	return k
}

var specNames = map[string]uint8{
	"eol": OptEOL, "nop": OptNOP, "mss": OptMSS, "ws": OptWindowScale, "wscale": OptWindowScale,
	"sackok": OptSACKPermitted, "sack": OptSACK, "ts": OptTimestamps, "md5": OptMD5,
	"uto": OptUserTimeout, "ao": OptAuth, "mptcp": OptMPTCP, "tfo": OptFastOpen,
}

// ParseOptionSpec parses the symbolic option syntax: comma-separated items, each one of
//
//	eol | nop | sackok
//	mss:N | ws:N | ts:VAL:ECR | sack:L-R[:L-R...] | uto:N
//	KIND[:0xHEX] | NAME:0xHEX   (any kind with raw data; KIND decimal, 0-255)
//	KIND:len=N[:0xHEX]          (explicit, possibly wrong, length byte)
//	hex:HEX                     (raw bytes of the whole area, split into options)
//
// Numbers may be decimal or 0x-hex. The empty string is no options.
func ParseOptionSpec(spec string) ([]Option, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, nil
	}
	if h, ok := strings.CutPrefix(spec, "hex:"); ok {
		b, err := hex.DecodeString(strings.TrimPrefix(h, "0x"))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrOptionSpec, err)
		}
		if len(b) > MaxOptionsLen {
			return nil, fmt.Errorf("%w: %d bytes exceed the %d-byte options area", ErrOptionSpec, len(b), MaxOptionsLen)
		}
		return rawOptions(b), nil
	}
	var opts []Option
	for _, item := range strings.Split(spec, ",") {
		o, err := parseSpecItem(strings.TrimSpace(item))
		if err != nil {
			return nil, err
		}
		opts = append(opts, o)
	}
	return opts, nil
}

// rawOptions splits raw bytes into options as well as it can; a malformed tail is kept as one
// option with its (wrong) length byte so that AppendOptions reproduces b exactly.
func rawOptions(b []byte) []Option {
	var opts []Option
	for i := 0; i < len(b); {
		k := b[i]
		if k == OptEOL || k == OptNOP {
			opts = append(opts, Option{Kind: k})
			i++
			continue
		}
		if i+1 >= len(b) {
			opts = append(opts, Option{Kind: k, Lone: true})
			break
		}
		l := int(b[i+1])
		end := i + l
		if l < 2 || end > len(b) {
			end = len(b)
		}
		opts = append(opts, Option{Kind: k, Length: b[i+1], Data: append([]byte(nil), b[i+2:end]...)})
		i = end
	}
	return opts
}

func parseNum(s string, bits int) (uint64, error) {
	v, err := strconv.ParseUint(s, 0, bits)
	if err != nil {
		return 0, fmt.Errorf("%w: number %q: %v", ErrOptionSpec, s, err)
	}
	return v, nil
}

func parseSpecItem(item string) (Option, error) {
	parts := strings.Split(item, ":")
	name := strings.ToLower(parts[0])
	args := parts[1:]
	kind, known := specNames[name]
	if !known {
		k, err := strconv.ParseUint(name, 0, 8)
		if err != nil {
			return Option{}, fmt.Errorf("%w: unknown option %q", ErrOptionSpec, item)
		}
		kind = uint8(k)
		return rawSpec(kind, args, item)
	}
	want := func(n int) error {
		if len(args) != n {
			return fmt.Errorf("%w: %q wants %d value(s)", ErrOptionSpec, item, n)
		}
		return nil
	}
	switch kind {
	case OptEOL, OptNOP, OptSACKPermitted:
		if err := want(0); err != nil {
			return Option{}, err
		}
		return Option{Kind: kind}, nil
	case OptMSS, OptUserTimeout:
		if len(args) == 1 && !strings.HasPrefix(args[0], "0x") {
			v, err := parseNum(args[0], 16)
			if err != nil {
				return Option{}, err
			}
			return Option{Kind: kind, Data: binary.BigEndian.AppendUint16(nil, uint16(v))}, nil
		}
	case OptWindowScale:
		if len(args) == 1 {
			v, err := parseNum(args[0], 8)
			if err != nil {
				return Option{}, err
			}
			return WindowScale(uint8(v)), nil
		}
	case OptTimestamps:
		if len(args) == 2 {
			v, err := parseNum(args[0], 32)
			if err != nil {
				return Option{}, err
			}
			e, err := parseNum(args[1], 32)
			if err != nil {
				return Option{}, err
			}
			return Timestamps(uint32(v), uint32(e)), nil
		}
	case OptSACK:
		if len(args) > 0 && strings.Contains(args[0], "-") {
			var blocks [][2]uint32
			for _, a := range args {
				l, r, ok := strings.Cut(a, "-")
				if !ok {
					return Option{}, fmt.Errorf("%w: SACK block %q is not L-R", ErrOptionSpec, a)
				}
				lv, err := parseNum(l, 32)
				if err != nil {
					return Option{}, err
				}
				rv, err := parseNum(r, 32)
				if err != nil {
					return Option{}, err
				}
				blocks = append(blocks, [2]uint32{uint32(lv), uint32(rv)})
			}
			return SACK(blocks...), nil
		}
	}
	if len(args) == 0 && (kind == OptMSS || kind == OptWindowScale || kind == OptTimestamps || kind == OptSACK || kind == OptUserTimeout) {
		return Option{}, fmt.Errorf("%w: %q needs a value", ErrOptionSpec, item)
	}
	return rawSpec(kind, args, item)
}

// rawSpec parses KIND[:len=N][:0xHEX].
func rawSpec(kind uint8, args []string, item string) (Option, error) {
	o := Option{Kind: kind}
	if kind == OptEOL || kind == OptNOP {
		if len(args) != 0 {
			return Option{}, fmt.Errorf("%w: %q: kinds 0 and 1 have no data", ErrOptionSpec, item)
		}
		return o, nil
	}
	for _, a := range args {
		switch {
		case a == "lone":
			o.Lone = true
		case strings.HasPrefix(a, "len="):
			v, err := parseNum(a[4:], 8)
			if err != nil {
				return Option{}, err
			}
			if v == 0 {
				return Option{}, fmt.Errorf("%w: %q: len=0 cannot be written (0 means computed)", ErrOptionSpec, item)
			}
			o.Length = uint8(v)
		case strings.HasPrefix(a, "0x"):
			d, err := hex.DecodeString(a[2:])
			if err != nil {
				return Option{}, fmt.Errorf("%w: %q: %v", ErrOptionSpec, item, err)
			}
			o.Data = d
		default:
			return Option{}, fmt.Errorf("%w: %q: data must be 0xHEX or len=N", ErrOptionSpec, item)
		}
	}
	if len(o.Data) > MaxOptionsLen-2 {
		return Option{}, fmt.Errorf("%w: %q: %d data bytes do not fit the options area", ErrOptionSpec, item, len(o.Data))
	}
	return o, nil
}

// FormatOptionSpec writes opts in the syntax ParseOptionSpec reads (the canonical form:
// names for well-formed common options, KIND[:len=N][:0xHEX] otherwise).
func FormatOptionSpec(opts []Option) string {
	var b strings.Builder
	for i, o := range opts {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(specItem(o))
	}
	return b.String()
}

func specItem(o Option) string {
	if o.Lone {
		return strconv.Itoa(int(o.Kind)) + ":lone"
	}
	switch o.Kind {
	case OptEOL:
		return "eol"
	case OptNOP:
		return "nop"
	case OptSACKPermitted:
		if o.Len() == 2 && len(o.Data) == 0 {
			return "sackok"
		}
	case OptMSS:
		if v, ok := o.MSSValue(); ok {
			return "mss:" + strconv.Itoa(int(v))
		}
	case OptWindowScale:
		if v, ok := o.WindowScaleValue(); ok {
			return "ws:" + strconv.Itoa(int(v))
		}
	case OptTimestamps:
		if v, e, ok := o.TimestampsValue(); ok {
			return "ts:" + strconv.FormatUint(uint64(v), 10) + ":" + strconv.FormatUint(uint64(e), 10)
		}
	case OptSACK:
		if len(o.Data) > 0 && len(o.Data)%8 == 0 && int(o.Len()) == 2+len(o.Data) {
			s := "sack"
			for i := 0; i < len(o.Data); i += 8 {
				s += fmt.Sprintf(":%d-%d", binary.BigEndian.Uint32(o.Data[i:]), binary.BigEndian.Uint32(o.Data[i+4:]))
			}
			return s
		}
	}
	s := strconv.Itoa(int(o.Kind))
	if o.Length != 0 && int(o.Length) != 2+len(o.Data) {
		s += ":len=" + strconv.Itoa(int(o.Length))
	}
	if len(o.Data) > 0 {
		s += ":0x" + hex.EncodeToString(o.Data)
	}
	return s
}
