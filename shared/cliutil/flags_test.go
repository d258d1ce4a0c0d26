package cliutil

import (
	"errors"
	"testing"
)

func TestParseInt(t *testing.T) {
	tests := []struct {
		in       string
		min, max int64
		want     int64
		err      bool
		rangeErr bool
	}{
		{"0", 0, 10, 0, false, false},
		{"010", 0, 63, 10, false, false},
		{" 42 ", 0, 63, 42, false, false},
		{"-5", -10, 10, -5, false, false},
		{"+7", 0, 10, 7, false, false},
		{"0x2e", 0, 63, 0, true, false},
		{"1e3", 0, 5000, 0, true, false},
		{"", 0, 10, 0, true, false},
		{"11", 0, 10, 0, true, true},
		{"-1", 0, 10, 0, true, true},
		{"99999999999999999999", 0, 10, 0, true, true},
	}
	for _, tt := range tests {
		got, err := ParseInt(tt.in, tt.min, tt.max)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseInt(%q) = %d, %v; want %d, err %v", tt.in, got, err, tt.want, tt.err)
		}
		if tt.rangeErr != errors.Is(err, ErrRange) {
			t.Errorf("ParseInt(%q) error %v: ErrRange %v, want %v", tt.in, err, errors.Is(err, ErrRange), tt.rangeErr)
		}
	}
}

func TestParseDSCP(t *testing.T) {
	tests := []struct {
		in   string
		want uint8
		err  bool
	}{
		{"0", 0, false}, {"010", 10, false}, {"46", 46, false}, {"63", 63, false},
		{"ef", 46, false}, {"EF", 46, false}, {"af41", 34, false}, {"af11", 10, false}, {"af43", 38, false},
		{"cs1", 8, false}, {"cs6", 48, false}, {"cs7", 56, false}, {"le", 1, false}, {"va", 44, false},
		{"64", 0, true}, {"-1", 0, true}, {"0x2e", 0, true}, {"af44", 0, true}, {"", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseDSCP(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseDSCP(%q) = %d, %v; want %d, err %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestParsePort(t *testing.T) {
	tests := []struct {
		in        string
		allowZero bool
		want      uint16
		err       bool
	}{
		{"862", false, 862, false}, {"65535", false, 65535, false}, {"0", true, 0, false},
		{"0", false, 0, true}, {"65536", true, 0, true}, {"0862", false, 862, false}, {"http", false, 0, true},
	}
	for _, tt := range tests {
		got, err := ParsePort(tt.in, tt.allowZero)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParsePort(%q, %v) = %d, %v; want %d, err %v", tt.in, tt.allowZero, got, err, tt.want, tt.err)
		}
	}
}

func TestIntFlagBadDefaultPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("IntFlag with a default outside its range did not panic")
		}
	}()
	IntFlag("n", "", 11, 0, 10)
}

func FuzzParseDSCP(f *testing.F) {
	for _, s := range []string{"0", "010", "63", "64", "ef", "AF41", "0x2e", "-1", " 7"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseDSCP(s)
		if err == nil && v > 63 {
			t.Fatalf("ParseDSCP(%q) = %d > 63", s, v)
		}
	})
}
