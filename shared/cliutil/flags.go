package cliutil

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"
)

// ErrRange is wrapped by the integer parsers when a value is outside its allowed range.
var ErrRange = errors.New("out of range")

// ParseInt parses a base-10 integer in [min, max]. Unlike cli.IntFlag (base 0, where "010" is 8
// and "0x2e" is 46) a leading zero is just a zero.
func ParseInt(s string, min, max int64) (int64, error) {
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return 0, fmt.Errorf("%q: %w [%d, %d]", s, ErrRange, min, max)
		}
		return 0, fmt.Errorf("%q is not a decimal integer", s)
	}
	if v < min || v > max {
		return 0, fmt.Errorf("%d: %w [%d, %d]", v, ErrRange, min, max)
	}
	return v, nil
}

// ParsePort parses a UDP/TCP port number, 1..65535 (or 0..65535 when zero, meaning "any", is allowed).
func ParsePort(s string, allowZero bool) (uint16, error) {
	min := int64(1)
	if allowZero {
		min = 0
	}
	v, err := ParseInt(s, min, 65535)
	return uint16(v), err
}

// dscpNames are the code points of RFC 2474 (CS), RFC 2597 (AF), RFC 3246 (EF), RFC 5865 (VOICE-ADMIT)
// and RFC 8622 (LE).
var dscpNames = map[string]uint8{
	"cs0": 0, "cs1": 8, "cs2": 16, "cs3": 24, "cs4": 32, "cs5": 40, "cs6": 48, "cs7": 56,
	"af11": 10, "af12": 12, "af13": 14, "af21": 18, "af22": 20, "af23": 22,
	"af31": 26, "af32": 28, "af33": 30, "af41": 34, "af42": 36, "af43": 38,
	"ef": 46, "va": 44, "voice-admit": 44, "le": 1, "be": 0, "default": 0,
}

var dscpCompletions = []string{"ef", "af11", "af12", "af13", "af21", "af22", "af23", "af31", "af32", "af33",
	"af41", "af42", "af43", "cs0", "cs1", "cs2", "cs3", "cs4", "cs5", "cs6", "cs7", "le", "va"}

// ParseDSCP parses a DSCP as a decimal number 0..63 ("010" is 10, not 8) or a name such as
// ef, af41, cs6, le (case-insensitive).
func ParseDSCP(s string) (uint8, error) {
	if v, ok := dscpNames[strings.ToLower(strings.TrimSpace(s))]; ok {
		return v, nil
	}
	v, err := ParseInt(s, 0, 63)
	if err != nil {
		return 0, fmt.Errorf("DSCP %w (0..63 or a name like ef, af41, cs1)", err)
	}
	return uint8(v), nil
}

// IntValue is a cli.Generic holding a base-10 integer restricted to [Min, Max]; errors surface
// as usage errors (exit 2) while parsing the command line.
type IntValue struct {
	Min, Max int64
	v        int64
	parse    func(string) (int64, error)
	names    []string // symbolic values offered by shell completion
}

// Set implements flag.Value.
func (iv *IntValue) Set(s string) error {
	parse := iv.parse
	if parse == nil {
		parse = func(s string) (int64, error) { return ParseInt(s, iv.Min, iv.Max) }
	}
	v, err := parse(s)
	if err != nil {
		return err
	}
	iv.v = v
	return nil
}

// String implements flag.Value.
func (iv *IntValue) String() string {
	if iv == nil {
		return ""
	}
	return strconv.FormatInt(iv.v, 10)
}

// Value returns the parsed integer.
func (iv *IntValue) Value() int64 { return iv.v }

// IntFlag returns a flag taking a base-10 integer in [min, max] with default def, and optional
// aliases (e.g. "c"). Read it with cliutil.Int(c, name). Set EnvVars or Category on the result
// as with any cli flag.
func IntFlag(name, usage string, def, min, max int64, aliases ...string) *cli.GenericFlag {
	if def < min || def > max {
		panic(fmt.Sprintf("cliutil.IntFlag %s: default %d outside [%d, %d]", name, def, min, max))
	}
	return &cli.GenericFlag{Name: name, Aliases: aliases, Usage: usage, Value: &IntValue{Min: min, Max: max, v: def}}
}

// PortFlag returns a port flag (1..65535, or 0..65535 with allowZero).
func PortFlag(name, usage string, def uint16, allowZero bool, aliases ...string) *cli.GenericFlag {
	min := int64(1)
	if allowZero {
		min = 0
	}
	return IntFlag(name, usage, int64(def), min, 65535, aliases...)
}

// DSCPFlag returns a DSCP flag accepting 0..63 in decimal or a code point name (see ParseDSCP).
func DSCPFlag(name, usage string, def uint8, aliases ...string) *cli.GenericFlag {
	if def > 63 {
		panic(fmt.Sprintf("cliutil.DSCPFlag %s: default %d outside [0, 63]", name, def))
	}
	iv := &IntValue{Min: 0, Max: 63, v: int64(def)}
	iv.parse = func(s string) (int64, error) {
		v, err := ParseDSCP(s)
		return int64(v), err
	}
	iv.names = dscpCompletions
	return &cli.GenericFlag{Name: name, Aliases: aliases, Usage: usage, Value: iv}
}

// Int returns the value of a flag made by IntFlag, PortFlag or DSCPFlag. It panics when name is
// not such a flag in the context's lineage, so a misspelled name fails the first test that runs it.
func Int(c *cli.Context, name string) int64 {
	iv, ok := c.Generic(name).(*IntValue)
	if !ok {
		panic(fmt.Sprintf("cliutil.Int: no integer flag --%s", name))
	}
	return iv.v
}

// UintValue is a cli.Generic holding a base-10 unsigned integer restricted to [Min, Max] (for
// values that need the whole uint64 range, such as seeds); errors surface as usage errors.
type UintValue struct {
	Min, Max uint64
	v        uint64
}

// Set implements flag.Value.
func (uv *UintValue) Set(s string) error {
	v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return fmt.Errorf("%q: %w [%d, %d]", s, ErrRange, uv.Min, uv.Max)
		}
		return fmt.Errorf("%q is not a decimal integer", s)
	}
	if v < uv.Min || v > uv.Max {
		return fmt.Errorf("%d: %w [%d, %d]", v, ErrRange, uv.Min, uv.Max)
	}
	uv.v = v
	return nil
}

// String implements flag.Value.
func (uv *UintValue) String() string {
	if uv == nil {
		return ""
	}
	return strconv.FormatUint(uv.v, 10)
}

// Value returns the parsed integer.
func (uv *UintValue) Value() uint64 { return uv.v }

// UintFlag returns a flag taking a base-10 unsigned integer in [min, max] with default def
// ("010" is 10, "0x10" is an error): the replacement for cli.UintFlag/Uint64Flag, which parse
// base 0. Read it with cliutil.Uint(c, name).
func UintFlag(name, usage string, def, min, max uint64, aliases ...string) *cli.GenericFlag {
	if def < min || def > max {
		panic(fmt.Sprintf("cliutil.UintFlag %s: default %d outside [%d, %d]", name, def, min, max))
	}
	return &cli.GenericFlag{Name: name, Aliases: aliases, Usage: usage, Value: &UintValue{Min: min, Max: max, v: def}}
}

// Uint returns the value of a flag made by UintFlag; it panics when name is not such a flag.
func Uint(c *cli.Context, name string) uint64 {
	uv, ok := c.Generic(name).(*UintValue)
	if !ok {
		panic(fmt.Sprintf("cliutil.Uint: no unsigned integer flag --%s", name))
	}
	return uv.v
}

// PortRange is an inclusive range of UDP/TCP ports; the zero value means "no range" (the
// kernel chooses).
type PortRange struct{ Lo, Hi uint16 }

// ParsePortRange parses a port range as --test-ports takes it: "LO-HI" or a single port
// "N" (= N-N), decimal, 1 ≤ LO ≤ HI ≤ 65535; "" and "0" give the zero PortRange.
func ParsePortRange(s string) (PortRange, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return PortRange{}, nil
	}
	los, his, found := strings.Cut(s, "-")
	if !found {
		his = los
	}
	lo, err := ParsePort(los, false)
	if err != nil {
		return PortRange{}, fmt.Errorf("port range %q: %w (want LO-HI, 1 ≤ LO ≤ HI ≤ 65535)", s, err)
	}
	hi, err := ParsePort(his, false)
	if err != nil {
		return PortRange{}, fmt.Errorf("port range %q: %w (want LO-HI, 1 ≤ LO ≤ HI ≤ 65535)", s, err)
	}
	if hi < lo {
		return PortRange{}, fmt.Errorf("port range %q: %d > %d (want LO-HI, LO ≤ HI)", s, lo, hi)
	}
	return PortRange{lo, hi}, nil
}

// IsZero reports whether r is "no range".
func (r PortRange) IsZero() bool { return r.Lo == 0 }

// Size is the number of ports in the range (0 for no range).
func (r PortRange) Size() int {
	if r.IsZero() {
		return 0
	}
	return int(r.Hi) - int(r.Lo) + 1
}

// Contains reports whether port p is in the range.
func (r PortRange) Contains(p uint16) bool { return !r.IsZero() && p >= r.Lo && p <= r.Hi }

// String formats the range as ParsePortRange reads it ("" for no range).
func (r PortRange) String() string {
	switch {
	case r.IsZero():
		return ""
	case r.Lo == r.Hi:
		return strconv.Itoa(int(r.Lo))
	}
	return fmt.Sprintf("%d-%d", r.Lo, r.Hi)
}

// portRangeValue is the flag.Value of PortRangeFlag.
type portRangeValue struct{ r PortRange }

func (v *portRangeValue) Set(s string) error {
	r, err := ParsePortRange(s)
	if err != nil {
		return err
	}
	v.r = r
	return nil
}

func (v *portRangeValue) String() string {
	if v == nil {
		return ""
	}
	return v.r.String()
}

// PortRangeFlag returns a flag taking a port range (see ParsePortRange), e.g. --test-ports
// 8760-8790; a bad value is a usage error (exit 2). Read it with cliutil.PortRangeOf(c, name).
func PortRangeFlag(name, usage string, aliases ...string) *cli.GenericFlag {
	return &cli.GenericFlag{Name: name, Aliases: aliases, Usage: usage, Value: &portRangeValue{}}
}

// PortRangeOf returns the value of a flag made by PortRangeFlag (the zero PortRange when not
// given); it panics when name is not such a flag.
func PortRangeOf(c *cli.Context, name string) PortRange {
	v, ok := c.Generic(name).(*portRangeValue)
	if !ok {
		panic(fmt.Sprintf("cliutil.PortRangeOf: no port range flag --%s", name))
	}
	return v.r
}
