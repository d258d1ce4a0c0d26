package netlab

import (
	"strings"
	"testing"
)

func TestSelftestNAT(t *testing.T) {
	SkipUnlessAvailable(t)
	var out strings.Builder
	_, failed := Selftest(SelftestConfig{Out: &out, Only: "nat"})
	t.Log("\n" + out.String())
	if failed > 0 {
		t.Fatalf("%d checks failed", failed)
	}
}

func TestParseNATKind(t *testing.T) {
	for _, k := range []NATKind{FullCone, AddressRestricted, PortRestricted, Symmetric} {
		got, err := ParseNATKind(k.String())
		if err != nil || got != k {
			t.Errorf("%v: %v %v", k, got, err)
		}
	}
	if _, err := ParseNATKind("cone"); err == nil {
		t.Error("accepted an unknown kind")
	}
}

func TestNATConfigErrors(t *testing.T) {
	for _, cfg := range []NATConfig{
		{},
		{NATs: []NATSpec{{Kind: Symmetric, Hairpin: true}}},
		{NATs: []NATSpec{{Kind: FullCone, Clients: 5}}},
		{NATs: []NATSpec{{Kind: NATKind(9)}}},
	} {
		if _, err := NewNAT(cfg); err == nil {
			t.Errorf("NewNAT(%+v) accepted", cfg)
		}
	}
}
