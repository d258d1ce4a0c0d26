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
