// Package format renders SPP pairs as the original's text lines (C printf formats, byte for
// byte), as JSON lines or as CSV rows, appending to a caller's buffer without allocating.
package format

import (
	"strconv"

	"github.com/probekit/probekit/spp/internal/engine"
)

// Stamp selects the pair timestamp printed in the first column.
type Stamp uint8

// Timestamp choices of the original: the REF midpoint (default), the MON midpoint (-m, not
// corrected by -o) and the first packet at REF (-b).
const (
	StampMid Stamp = iota
	StampMon
	StampBegin
)

// Options are the original's output switches.
type Options struct {
	Count bool // -c: running pair count
	SPT   bool // -p: server processing time column
	Stamp Stamp
}

// floorHalf halves a µs duration as the original halves a normalised struct timeval:
// tv_sec/2 and (tv_sec%2)*500000 + tv_usec/2, which equals floor(us/2).
func floorHalf(us int64) int64 {
	if us >= 0 {
		return us / 2
	}
	return -((-us + 1) / 2)
}

// Timestamp returns the pair's timestamp in µs for the given mode.
func Timestamp(p engine.Pair, s Stamp) int64 {
	switch s {
	case StampMon:
		return p.In.Mon - floorHalf(p.SPT())
	case StampBegin:
		return p.Out.Ref
	default:
		return p.In.Ref - floorHalf(p.TPT())
	}
}

// AppendSeconds appends a µs quantity as the original prints a normalised timeval with
// "%lld.%06lld": whole seconds rounded towards −∞, then six digits of µs.
func AppendSeconds(b []byte, us int64) []byte {
	s, u := us/1e6, us%1e6
	if u < 0 {
		s--
		u += 1e6
	}
	b = strconv.AppendInt(b, s, 10)
	b = append(b, '.')
	return appendPad(b, u, 6)
}

// AppendDecimal appends a µs quantity as a signed decimal number of seconds with six
// decimals ("-0.000500"), the form used in JSON and CSV.
func AppendDecimal(b []byte, us int64) []byte {
	if us < 0 {
		b = append(b, '-')
		us = -us
	}
	b = strconv.AppendInt(b, us/1e6, 10)
	b = append(b, '.')
	return appendPad(b, us%1e6, 6)
}

// appendPad appends v (0 ≤ v < 10^width) zero-padded to width digits.
func appendPad(b []byte, v int64, width int) []byte {
	var tmp [20]byte
	i := len(tmp)
	for v >= 100 || i > len(tmp)-width+1 {
		q := v / 100
		d := (v - q*100) * 2
		i -= 2
		tmp[i], tmp[i+1] = digits[d], digits[d+1]
		v = q
	}
	for v > 0 || i > len(tmp)-width {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, tmp[i:]...)
}

const digits = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
	"404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"

// appendCount appends n as printf("%6u ", n) with n an unsigned int.
func appendCount(b []byte, n uint64) []byte {
	v := uint32(n)
	var tmp [10]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	for pad := 6 - (len(tmp) - i); pad > 0; pad-- {
		b = append(b, ' ')
	}
	b = append(b, tmp[i:]...)
	return append(b, ' ')
}

// AppendText appends the original's output line for pair number n:
// "[%6u ]%lld.%06lld %lld.%06lld[ %lld.%06lld]\n" (count, ts, rtt, spt). A negative RTT
// prints as 0.000000, as in the original.
func AppendText(b []byte, n uint64, p engine.Pair, o Options) []byte {
	if o.Count {
		b = appendCount(b, n)
	}
	b = AppendSeconds(b, Timestamp(p, o.Stamp))
	b = append(b, ' ')
	b = AppendSeconds(b, max(p.RTT(), 0))
	if o.SPT {
		b = append(b, ' ')
		b = AppendSeconds(b, p.SPT())
	}
	return append(b, '\n')
}

// CSVHeader is the header row of the CSV output.
const CSVHeader = "n,ts,rtt,spt,out_ref,out_mon,in_ref,in_mon\n"

// AppendCSV appends one CSV row: pair number, timestamp, signed RTT, SPT and the four
// packet timestamps (seconds with six decimals, each on its own point's clock).
func AppendCSV(b []byte, n uint64, p engine.Pair, o Options) []byte {
	b = strconv.AppendUint(b, n, 10)
	for _, v := range [...]int64{Timestamp(p, o.Stamp), p.RTT(), p.SPT(), p.Out.Ref, p.Out.Mon, p.In.Ref, p.In.Mon} {
		b = append(b, ',')
		b = AppendDecimal(b, v)
	}
	return append(b, '\n')
}

// AppendJSON appends one JSON object and a newline with the same fields as AppendCSV;
// the seconds are JSON numbers with exactly six decimals.
func AppendJSON(b []byte, n uint64, p engine.Pair, o Options) []byte {
	b = append(b, `{"n":`...)
	b = strconv.AppendUint(b, n, 10)
	names := [...]string{`,"ts":`, `,"rtt":`, `,"spt":`, `,"out_ref":`, `,"out_mon":`, `,"in_ref":`, `,"in_mon":`}
	vals := [...]int64{Timestamp(p, o.Stamp), p.RTT(), p.SPT(), p.Out.Ref, p.Out.Mon, p.In.Ref, p.In.Mon}
	for i, v := range vals {
		b = append(b, names[i]...)
		b = AppendDecimal(b, v)
	}
	return append(b, "}\n"...)
}
