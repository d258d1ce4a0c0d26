//go:build linux

package capture

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// BenchmarkLiveLoopback sends b.N 64-byte UDP datagrams over loopback as fast as one socket
// can and captures them with OpenLive (filtered by port): pkts/s is bounded by the sender on
// this machine; drops must stay 0.
func BenchmarkLiveLoopback(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root (CAP_NET_RAW)")
	}
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	sink.SetReadBuffer(8 << 20)
	go func() { // drain the sink so its queue never overflows
		buf := make([]byte, 2048)
		for {
			if _, err := sink.Read(buf); err != nil {
				return
			}
		}
	}()
	dst := sink.LocalAddr().(*net.UDPAddr)
	h, err := OpenLive("lo", LiveOptions{Match: &Filter{Protocol: ProtoUDP, Ports: []uint16{uint16(dst.Port)}}, Snaplen: 128, Timeout: time.Second, BufferSize: 32 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	h.Stats()
	c, err := net.DialUDP("udp4", nil, dst)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	msg := make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	go func() {
		for range b.N {
			c.Write(msg)
		}
	}()
	got := 0
	for got < b.N {
		_, err := h.Next()
		if errors.Is(err, ErrTimeout) {
			break // the rest was dropped: reported below
		}
		if err != nil {
			b.Fatal(err)
		}
		got++
	}
	b.StopTimer()
	st, _ := h.Stats()
	b.ReportMetric(float64(got)/b.Elapsed().Seconds(), "pkts/s")
	b.ReportMetric(float64(st.Drops), "drops")
	if got < b.N {
		b.Fatalf("captured %d of %d datagrams (kernel drops %d)", got, b.N, st.Drops)
	}
}
