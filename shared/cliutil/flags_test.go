package cliutil

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
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

func TestParsePortRange(t *testing.T) {
	tests := []struct {
		in   string
		want PortRange
		err  bool
	}{
		{"", PortRange{}, false},
		{"0", PortRange{}, false},
		{"8760-8790", PortRange{8760, 8790}, false},
		{"08760-08790", PortRange{8760, 8790}, false}, // decimal, not octal
		{" 5000 ", PortRange{5000, 5000}, false},
		{"1-65535", PortRange{1, 65535}, false},
		{"9000-8000", PortRange{}, true},
		{"0-10", PortRange{}, true},
		{"10-65536", PortRange{}, true},
		{"0x10-0x20", PortRange{}, true},
		{"10-", PortRange{}, true},
		{"-10", PortRange{}, true},
		{"a-b", PortRange{}, true},
		{"1-2-3", PortRange{}, true},
	}
	for _, tt := range tests {
		got, err := ParsePortRange(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParsePortRange(%q) = %v, %v; want %v, err %v", tt.in, got, err, tt.want, tt.err)
		}
		if err == nil && got.String() != "" {
			if back, err := ParsePortRange(got.String()); err != nil || back != got {
				t.Errorf("round trip of %v: %v, %v", got, back, err)
			}
		}
	}
	r := PortRange{8760, 8790}
	if r.Size() != 31 || !r.Contains(8760) || !r.Contains(8790) || r.Contains(8791) || (PortRange{}).Size() != 0 || (PortRange{}).Contains(0) {
		t.Errorf("Size/Contains wrong for %v", r)
	}
}

func TestUintAndPortRangeFlags(t *testing.T) {
	var seed uint64
	var ports PortRange
	mk := func() *cli.App {
		app := NewApp("probe", "test", "1")
		app.Flags = append(app.Flags,
			UintFlag("seed", "seed", 0, 0, math.MaxUint64),
			UintFlag("count", "count", 5, 1, 100, "c"),
			PortRangeFlag("test-ports", "ports", "P"))
		app.Action = func(c *cli.Context) error {
			seed, ports = Uint(c, "seed"), PortRangeOf(c, "test-ports")
			return nil
		}
		return app
	}
	if errs := Lint(mk()); len(errs) > 0 {
		t.Fatal(errs)
	}
	for _, tt := range []struct {
		args  []string
		code  int
		seed  uint64
		ports PortRange
	}{
		{[]string{"--seed", "010", "-P", "08760-8761"}, 0, 10, PortRange{8760, 8761}},
		{[]string{"--seed", "18446744073709551615"}, 0, math.MaxUint64, PortRange{}},
		{[]string{"--seed", "0x10"}, ExitUsage, 0, PortRange{}},
		{[]string{"--seed", "-1"}, ExitUsage, 0, PortRange{}},
		{[]string{"-c", "0"}, ExitUsage, 0, PortRange{}},
		{[]string{"-c", "101"}, ExitUsage, 0, PortRange{}},
		{[]string{"--test-ports", "9-8"}, ExitUsage, 0, PortRange{}},
	} {
		seed, ports = 0, PortRange{}
		code, _, stderr := RunCapture(context.Background(), mk(), tt.args...)
		if code != tt.code || seed != tt.seed || ports != tt.ports {
			t.Errorf("%v: code %d seed %d ports %v (%s); want %d %d %v", tt.args, code, seed, ports, stderr, tt.code, tt.seed, tt.ports)
		}
		if code == ExitUsage && strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: usage error not one line: %q", tt.args, stderr)
		}
	}
}
