package spp

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/probekit/probekit/spp/internal/pktid"
)

// TestDefaults: -G is 10000 for files and 500 for live or remote points; -# defaults to 63,
// or to the IPv6 field set for IPv6 targets (SPP-R1).
func TestDefaults(t *testing.T) {
	c := fileConfig("a", "b")
	if err := c.Validate(); err != nil || c.MaxSearch != 10000 || c.Code != pktid.Default {
		t.Fatalf("files: %v G=%d #=%d", err, c.MaxSearch, c.Code)
	}
	c = fileConfig("a", "")
	c.MonFile, c.MonIface = "", "eth0"
	if err := c.Validate(); err != nil || c.MaxSearch != 500 {
		t.Fatalf("live: %v G=%d", err, c.MaxSearch)
	}
	c = fileConfig("a", "b")
	c.A, c.B = netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	if err := c.Validate(); err != nil || c.Code != pktid.DefaultIPv6 {
		t.Fatalf("ipv6: %v #=%d", err, c.Code)
	}
	c = fileConfig("a", "b")
	c.MaxSearch, c.Code = 7, 4095
	if err := c.Validate(); err != nil || c.MaxSearch != 7 || c.Code != 4095 {
		t.Fatalf("explicit: %v G=%d #=%d", err, c.MaxSearch, c.Code)
	}
	c = fileConfig("a", "b")
	c.Slave, c.MonIface = "10.0.0.1", ""
	if err := c.Validate(); !errors.Is(err, ErrUsage) {
		t.Fatalf("slave without -I: %v", err)
	}
}

// TestVerbosity: -v 4 logs every pair, -v 8 every record, -v 16 every instance, -v 32 every
// packet (on the logger, never on stdout).
func TestVerbosity(t *testing.T) {
	log, hook := test.NewNullLogger()
	cfg := fileConfig(ping[0], ping[1])
	cfg.Verbose, cfg.Log = VerbPairs|VerbRecords|VerbInstances|VerbPackets, log
	out, err := run(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.InfoLevel {
			count[e.Message]++
		}
	}
	want := map[string]int{"pair": 299, "record": 600, "instance": 1200, "packet": 1200}
	for k, v := range want {
		if count[k] != v {
			t.Errorf("%d %q log entries, want %d", count[k], k, v)
		}
	}
	if strings.Count(out, "\n") != 299 {
		t.Errorf("stdout has %d lines", strings.Count(out, "\n"))
	}
}
