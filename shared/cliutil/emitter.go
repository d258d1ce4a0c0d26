package cliutil

import (
	"bufio"
	"bytes"
	"encoding"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Format is how results are written on stdout.
type Format string

// Result formats.
const (
	FormatText Format = "text" // human lines (the original tool's layout where there is one)
	FormatJSON Format = "json" // one JSON object per line
	FormatCSV  Format = "csv"  // RFC 4180 with a header row
)

// ErrUnknownFormat is returned by ParseFormat for anything but text, json and csv.
var ErrUnknownFormat = errors.New("unknown format")

// ErrEmitterClosed is returned by Emit after Close.
var ErrEmitterClosed = errors.New("emitter: closed")

// ParseFormat parses "text", "json" or "csv".
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(s)); f {
	case FormatText, FormatJSON, FormatCSV:
		return f, nil
	}
	return "", fmt.Errorf("%w %q (text, json or csv)", ErrUnknownFormat, s)
}

func (f Format) String() string { return string(f) }

// Emitter writes result records with a fixed set of columns as text lines, JSON lines (keys in
// column order) or CSV with a header row. Output is buffered: call Flush to push complete
// records out (AutoFlush does it after every record) and Close at the end. Every write to the
// underlying writer holds whole records only (a record never straddles two writes), so output
// cut short by a second Ctrl-C (see SignalContext) ends at a record boundary. An Emitter is
// safe for concurrent use; records are written in the order Emit is called.
type Emitter struct {
	// Text, when set, renders one record in text format (without the newline); by default a
	// record is written as "col=value col=value".
	Text func(values []any) string
	// AutoFlush flushes after every record (for live output into pipes).
	AutoFlush bool

	mu      sync.Mutex
	format  Format
	columns []string
	keys    [][]byte // JSON-encoded column names with the ':' separator
	w       *bufio.Writer
	csv     *csv.Writer  // renders one CSV record into csvBuf
	csvBuf  bytes.Buffer // one rendered CSV record
	header  bool
	err     error
	closed  bool
	scratch []byte
	row     []string
}

// NewEmitter returns an Emitter writing records with the given columns to w.
func NewEmitter(w io.Writer, format Format, columns ...string) *Emitter {
	// Through OutputWriter: a second signal's exit waits for the record being written.
	e := &Emitter{format: format, columns: columns, w: bufio.NewWriter(OutputWriter(w))}
	if format == FormatCSV {
		e.csv = csv.NewWriter(&e.csvBuf)
		e.row = make([]string, len(columns))
	}
	for _, c := range columns {
		k, _ := json.Marshal(c)
		e.keys = append(e.keys, append(k, ':'))
	}
	return e
}

// Columns returns the emitter's column names in output order.
func (e *Emitter) Columns() []string { return e.columns }

// Format returns the emitter's output format.
func (e *Emitter) Format() Format { return e.format }

// Emit writes one record; values are in column order. Supported values: strings, integers,
// floats (NaN and ±Inf become null in JSON and empty in CSV), bools, time.Time (RFC 3339 UTC,
// nanoseconds), time.Duration (nanoseconds in JSON and CSV, Go syntax in text), nil, and anything
// implementing encoding.TextMarshaler or fmt.Stringer.
func (e *Emitter) Emit(values ...any) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return e.err
	}
	if len(values) != len(e.columns) {
		return fmt.Errorf("emitter: %d values for %d columns", len(values), len(e.columns))
	}
	switch e.format {
	case FormatJSON:
		e.err = e.emitJSON(values)
	case FormatCSV:
		e.err = e.emitCSV(values)
	default:
		e.err = e.emitText(values)
	}
	if e.err == nil && e.AutoFlush {
		e.err = e.flush()
	}
	return e.err
}

// Flush writes out everything buffered so far (a CSV header is written even with no records).
func (e *Emitter) Flush() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.flush()
}

func (e *Emitter) flush() error {
	if e.format == FormatCSV {
		if err := e.writeHeader(); err != nil {
			return err
		}
	}
	if err := e.w.Flush(); err != nil {
		return fmt.Errorf("emitter: %w", err)
	}
	return nil
}

// writeRecord adds one complete record (ending in a newline) to the buffer, first flushing
// what is buffered when the record does not fit, so the underlying writer only ever receives
// whole records (bufio writes a record larger than its buffer straight through, in one call).
func (e *Emitter) writeRecord(b []byte) error {
	if len(b) > e.w.Available() && e.w.Buffered() > 0 {
		if err := e.w.Flush(); err != nil {
			return fmt.Errorf("emitter: %w", err)
		}
	}
	if _, err := e.w.Write(b); err != nil {
		return fmt.Errorf("emitter: %w", err)
	}
	return nil
}

// csvRecord renders one CSV record and writes it as a whole.
func (e *Emitter) csvRecord(fields []string) error {
	e.csvBuf.Reset()
	if err := e.csv.Write(fields); err != nil {
		return fmt.Errorf("emitter: %w", err)
	}
	e.csv.Flush()
	if err := e.csv.Error(); err != nil {
		return fmt.Errorf("emitter: %w", err)
	}
	return e.writeRecord(e.csvBuf.Bytes())
}

// Close flushes the emitter; it does not close the underlying writer.
func (e *Emitter) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	if e.err != nil {
		return e.err
	}
	if err := e.flush(); err != nil {
		e.err = err
		return err
	}
	e.err = ErrEmitterClosed
	return nil
}

func (e *Emitter) writeHeader() error {
	if e.header {
		return nil
	}
	e.header = true
	return e.csvRecord(e.columns)
}

func (e *Emitter) emitText(values []any) error {
	var line string
	if e.Text != nil {
		line = e.Text(values)
	} else {
		var b strings.Builder
		for i, v := range values {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(e.columns[i])
			b.WriteByte('=')
			s, ok := plain(v, true)
			if !ok {
				s = "-"
			}
			if s == "" || strings.ContainsAny(s, " \t\r\n\"=\\") {
				s = strconv.Quote(s)
			}
			b.WriteString(s)
		}
		line = b.String()
	}
	e.scratch = append(append(e.scratch[:0], line...), '\n')
	return e.writeRecord(e.scratch)
}

func (e *Emitter) emitCSV(values []any) error {
	if err := e.writeHeader(); err != nil {
		return err
	}
	for i, v := range values {
		s, _ := plain(v, false)
		e.row[i] = s
	}
	return e.csvRecord(e.row)
}

func (e *Emitter) emitJSON(values []any) error {
	b := append(e.scratch[:0], '{')
	for i, v := range values {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e.keys[i]...)
		var err error
		b, err = appendJSON(b, v)
		if err != nil {
			return fmt.Errorf("emitter: column %s: %w", e.columns[i], err)
		}
	}
	b = append(b, '}', '\n')
	e.scratch = b
	return e.writeRecord(b)
}

func appendJSON(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		s, _ := json.Marshal(x)
		return append(b, s...), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int8:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int16:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int32:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case uint:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case uint8:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case uint16:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case uint32:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case uint64:
		return strconv.AppendUint(b, x, 10), nil
	case float32:
		return appendFloatJSON(b, float64(x), 32), nil
	case float64:
		return appendFloatJSON(b, x, 64), nil
	case time.Duration:
		return strconv.AppendInt(b, int64(x), 10), nil
	case time.Time:
		return strconv.AppendQuote(b, x.UTC().Format(time.RFC3339Nano)), nil
	case json.Marshaler, encoding.TextMarshaler:
		s, err := json.Marshal(x)
		if err != nil {
			return b, err
		}
		return append(b, s...), nil
	case fmt.Stringer:
		s, _ := json.Marshal(x.String())
		return append(b, s...), nil
	}
	s, err := json.Marshal(v)
	if err != nil {
		return b, err
	}
	return append(b, s...), nil
}

func appendFloatJSON(b []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits)
}

// plain renders a value for text and CSV; ok is false for "no value" (nil, NaN, ±Inf).
func plain(v any, text bool) (string, bool) {
	switch x := v.(type) {
	case nil:
		return "", false
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case int:
		return strconv.Itoa(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case int32:
		return strconv.FormatInt(int64(x), 10), true
	case uint64:
		return strconv.FormatUint(x, 10), true
	case uint32:
		return strconv.FormatUint(uint64(x), 10), true
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return "", false
		}
		return strconv.FormatFloat(float64(x), 'g', -1, 32), true
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return "", false
		}
		return strconv.FormatFloat(x, 'g', -1, 64), true
	case time.Duration:
		if text {
			return x.String(), true
		}
		return strconv.FormatInt(int64(x), 10), true
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano), true
	case encoding.TextMarshaler:
		s, err := x.MarshalText()
		if err != nil {
			return "", false
		}
		return string(s), true
	case fmt.Stringer:
		return x.String(), true
	}
	return fmt.Sprint(v), true
}
