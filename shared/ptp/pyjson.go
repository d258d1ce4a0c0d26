package ptp

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"unicode/utf8"
)

// PyField is one member of a PyObject.
type PyField struct {
	Key   string
	Value any
}

// PyObject is a JSON object whose members keep their order, as a Python dict that produced a
// META did.
type PyObject []PyField

// AppendPyJSON appends v exactly as Python's json.dumps(v) with default arguments formats it:
// ", " and ": " separators, ensure_ascii escapes (\uXXXX in lower-case hex, surrogate pairs above
// U+FFFF), floats as Python repr (shortest round-trip digits, exponent below 1e-4 and from 1e16,
// "1.0" for integral values, NaN/Infinity). Accepted values: nil, bool, string, every integer
// kind, float32/float64, []any, PyObject (ordered) and map[string]any (keys sorted).
func AppendPyJSON(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case bool:
		if x {
			return append(b, "true"...), nil
		}
		return append(b, "false"...), nil
	case string:
		return appendPyString(b, x), nil
	case float64:
		return AppendPyFloat(b, x), nil
	case float32:
		return AppendPyFloat(b, float64(x)), nil
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ", "...)
			}
			var err error
			if b, err = AppendPyJSON(b, e); err != nil {
				return b, err
			}
		}
		return append(b, ']'), nil
	case PyObject:
		b = append(b, '{')
		for i, f := range x {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = appendPyString(b, f.Key)
			b = append(b, ": "...)
			var err error
			if b, err = AppendPyJSON(b, f.Value); err != nil {
				return b, err
			}
		}
		return append(b, '}'), nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		o := make(PyObject, 0, len(keys))
		for _, k := range keys {
			o = append(o, PyField{k, x[k]})
		}
		return AppendPyJSON(b, o)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.AppendInt(b, rv.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.AppendUint(b, rv.Uint(), 10), nil
	}
	return b, fmt.Errorf("ptp: META value of type %T not representable", v)
}

// AppendPyFloat appends f as Python's repr(float) (what json.dumps writes).
func AppendPyFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "Infinity"...)
	case math.IsInf(f, -1):
		return append(b, "-Infinity"...)
	}
	var buf [32]byte
	s := strconv.AppendFloat(buf[:0], f, 'e', -1, 64)
	if s[0] == '-' {
		b = append(b, '-')
		s = s[1:]
	}
	// s = d[.ddd]e±XX
	ei := 0
	for ei < len(s) && s[ei] != 'e' {
		ei++
	}
	mant, expPart := s[:ei], s[ei+1:]
	exp, _ := strconv.Atoi(string(expPart))
	var digits [24]byte
	nd := 0
	for _, c := range mant {
		if c != '.' {
			digits[nd] = c
			nd++
		}
	}
	d := digits[:nd]
	decpt := exp + 1 // value = 0.d × 10^decpt
	if decpt <= -4 || decpt > 16 {
		b = append(b, d[0])
		if nd > 1 {
			b = append(b, '.')
			b = append(b, d[1:]...)
		}
		b = append(b, 'e')
		if exp < 0 {
			b = append(b, '-')
			exp = -exp
		} else {
			b = append(b, '+')
		}
		if exp < 10 {
			b = append(b, '0')
		}
		return strconv.AppendInt(b, int64(exp), 10)
	}
	switch {
	case decpt <= 0:
		b = append(b, "0."...)
		for i := 0; i < -decpt; i++ {
			b = append(b, '0')
		}
		return append(b, d...)
	case decpt < nd:
		b = append(b, d[:decpt]...)
		b = append(b, '.')
		return append(b, d[decpt:]...)
	default:
		b = append(b, d...)
		for i := nd; i < decpt; i++ {
			b = append(b, '0')
		}
		return append(b, ".0"...)
	}
}

const hexDigits = "0123456789abcdef"

func appendPyString(b []byte, s string) []byte {
	b = append(b, '"')
	for _, r := range s {
		switch r {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		default:
			switch {
			case r >= 0x20 && r <= 0x7e:
				b = append(b, byte(r))
			case r > 0xFFFF:
				r -= 0x10000
				b = appendU(b, 0xD800|(r>>10)&0x3FF)
				b = appendU(b, 0xDC00|r&0x3FF)
			default:
				if r == utf8.RuneError {
					r = 0xFFFD
				}
				b = appendU(b, r)
			}
		}
	}
	return append(b, '"')
}

func appendU(b []byte, r rune) []byte {
	return append(b, '\\', 'u', hexDigits[r>>12&0xF], hexDigits[r>>8&0xF], hexDigits[r>>4&0xF], hexDigits[r&0xF])
}
