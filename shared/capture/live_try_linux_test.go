//go:build linux

package capture

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestLiveTryNext: TryNext returns nothing while the ring is empty; after traffic, a blocking
// Next followed by TryNext drains every datagram exactly once and in order (mixed with Next,
// nothing is lost or repeated); after Close it returns nothing.
func TestLiveTryNext(t *testing.T) {
	needRoot(t)
	dst := liveSink(t, "udp4", "127.0.0.1:0")
	port := uint16(dst.Port)
	h, err := OpenLive("lo", LiveOptions{
		Snaplen:      256,
		Match:        &Filter{Hosts: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Protocol: ProtoUDP, Ports: []uint16{port}},
		Timeout:      100 * time.Millisecond,
		BlockTimeout: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if p, ok := h.TryNext(); ok {
		t.Fatalf("TryNext on an empty ring returned %x", p.Data)
	}
	const n = 60
	done := make(chan []sent, 1)
	go func() { done <- sendUDP(t, dst, 0, n, 40) }()
	var order []int
	seq := func(p Packet) int {
		_, payload, ok := udpPayload(t, p.LinkType, p.Data)
		var i int
		if !ok {
			t.Fatalf("not UDP: %x", p.Data)
		}
		if _, err := fmt.Sscanf(string(payload), "probekit live %d;", &i); err != nil {
			t.Fatalf("payload %q: %v", payload, err)
		}
		return i
	}
	tried := 0
	deadline := time.Now().Add(10 * time.Second) // hang guard only
	for len(order) < n && time.Now().Before(deadline) {
		p, err := h.Next()
		if errors.Is(err, ErrTimeout) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		order = append(order, seq(p))
		for {
			p, ok := h.TryNext()
			if !ok {
				break
			}
			tried++
			order = append(order, seq(p))
		}
	}
	<-done
	for i, v := range order {
		if v != i {
			t.Fatalf("datagrams in the order %v, want 0…%d once each", order, n-1)
		}
	}
	if len(order) != n {
		t.Fatalf("got %d of %d datagrams", len(order), n)
	}
	t.Logf("%d of %d datagrams came from TryNext", tried, n)
	// A burst sent at once lands in one block: TryNext drains what Next leaves.
	burst(t, dst, n, 20)
	time.Sleep(20 * time.Millisecond) // let the block retire (BlockTimeout 1 ms)
	p, err := h.Next()
	if err != nil {
		t.Fatal(err)
	}
	got := []int{seq(p)}
	for {
		p, ok := h.TryNext()
		if !ok {
			break
		}
		got = append(got, seq(p))
	}
	if len(got) != 20 || got[0] != n || got[19] != n+19 {
		t.Errorf("burst: Next+TryNext gave %v, want %d…%d", got, n, n+19)
	}
	h.Close()
	if _, ok := h.TryNext(); ok {
		t.Error("TryNext after Close returned a packet")
	}
}

// burst sends datagrams "probekit live first…first+k-1" back to back.
func burst(t *testing.T, dst *net.UDPAddr, first, k int) {
	t.Helper()
	c, err := net.DialUDP("udp", nil, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range k {
		if _, err := fmt.Fprintf(c, "probekit live %d;", first+i); err != nil {
			t.Fatal(err)
		}
	}
}
