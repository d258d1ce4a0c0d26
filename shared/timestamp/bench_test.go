package timestamp

import (
	"testing"
	"time"
)

var sinkNTP NTP

func BenchmarkNTPAppend(b *testing.B) {
	buf := make([]byte, 0, Size)
	tm := time.Date(2026, 11, 23, 5, 0, 0, 123456789, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		buf = NTPFromTime(tm).AppendTo(buf[:0])
	}
}

func BenchmarkNTPParse(b *testing.B) {
	src := []byte{0xee, 0xae, 0x46, 0x49, 0xe6, 0x9e, 0x7f, 0xb2}
	var tm time.Time
	b.ReportAllocs()
	for b.Loop() {
		n, err := NTPFromBytes(src)
		if err != nil {
			b.Fatal(err)
		}
		tm = n.Time()
	}
	sinkNTP = NTPFromTime(tm)
}

func BenchmarkPTPAppendParse(b *testing.B) {
	buf := make([]byte, 0, Size)
	tm := time.Date(2026, 11, 23, 5, 0, 0, 123456789, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		buf = PTPFromTime(tm).AppendTo(buf[:0])
		p, _ := PTPFromBytes(buf)
		tm = p.Time()
	}
}

func BenchmarkNewErrorEstimate(b *testing.B) {
	var e ErrorEstimate
	b.ReportAllocs()
	for b.Loop() {
		e = NewErrorEstimate(true, false, 1234567*time.Nanosecond)
	}
	_ = e
}
