package ptpbulk

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/netlab"
	"github.com/probekit/probekit/shared/ptp"
	"github.com/probekit/probekit/shared/testsupport/labtest"
)

// udpPath carries frames as PtP packets (version byte, the bulk TLVs, RFC 1071 checksum) over
// a UDP socket to one peer: what ptpclient does on a direct path, minus its header TLVs.
type udpPath struct {
	c    *net.UDPConn
	peer netip.AddrPort
	buf  []byte
}

func (u *udpPath) Send(frame []byte) error {
	u.buf = ptp.Seal(append(append(u.buf[:0], 1), frame...))
	_, err := u.c.WriteToUDPAddrPort(u.buf, u.peer)
	return err
}

func (u *udpPath) Recv(ctx context.Context) ([]byte, error) {
	b := make([]byte, 2048)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		u.c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, _, err := u.c.ReadFromUDPAddrPort(b)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return nil, err
		}
		tlvs, err := ptp.Open(b[:n])
		if err != nil {
			continue // bad checksum: counted as loss by the protocol
		}
		return tlvs, nil
	}
}

// labPaths opens a UDP socket in A and one in B of the path lab and returns the two ends.
func labPaths(t *testing.T, p *netlab.PathLab) (a, b *udpPath) {
	var ca, cb *net.UDPConn
	if err := p.A.Do(func() (err error) {
		ca, err = net.ListenUDP("udp4", &net.UDPAddr{IP: netlab.PathA.AsSlice(), Port: 23456})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := p.B.Do(func() (err error) {
		cb, err = net.ListenUDP("udp4", &net.UDPAddr{IP: netlab.PathB.AsSlice(), Port: 23456})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*net.UDPConn{ca, cb} {
		c.SetReadBuffer(4 << 20)
		c.SetWriteBuffer(4 << 20)
	}
	t.Cleanup(func() { ca.Close(); cb.Close() })
	return &udpPath{c: ca, peer: netip.AddrPortFrom(netlab.PathB, 23456)}, &udpPath{c: cb, peer: netip.AddrPortFrom(netlab.PathA, 23456)}
}

func labTransfer(t *testing.T, a, b *udpPath, size int, scfg SendConfig) (Report, Report) {
	t.Helper()
	src, dst := t.TempDir(), t.TempDir()
	file, data := randomFile(t, src, size)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	scfg.File, scfg.ID = file, nextID.Add(1)
	rc := make(chan result, 1)
	go func() { rep, err := Receive(ctx, b, RecvConfig{Dir: dst}); rc <- result{rep, err} }()
	srep, serr := Send(ctx, a, scfg)
	rr := <-rc
	if serr != nil || rr.err != nil {
		t.Fatalf("send: %v, receive: %v", serr, rr.err)
	}
	checkFile(t, filepath.Join(dst, "payload.bin"), data)
	return srep, rr.rep
}

// TestLabLossReordering: 20 MB from A to B through the lab router with 5 % random loss each
// way and 1 ms ± 1 ms of delay per packet released in any order (the NFQUEUE delayer).
func TestLabLossReordering(t *testing.T) {
	imp := netlab.Impairment{Delay: time.Millisecond, Jitter: time.Millisecond, Reorder: true, Loss: 0.05}
	p := labtest.Path(t, netlab.PathConfig{Out: imp, In: imp})
	a, b := labPaths(t, p)
	srep, rrep := labTransfer(t, a, b, 20<<20, SendConfig{})
	t.Logf("%s", Summary(rrep))
	t.Logf("sender: %d bytes sent for %d, %d blocks again; receiver: %d duplicates, %d timeouts, window max %d",
		srep.SentBytes, srep.Size, srep.Retransmits, rrep.Duplicates, rrep.Timeouts, rrep.MaxWindow)
	st, err := p.Stats(netlab.Out)
	if err == nil {
		t.Logf("delayer A→B: %+v", st)
	}
	// The delayer holds each packet 0–2 ms (mean 1 ms) each way: the smoothed RTT cannot be
	// far below the 2 ms mean round trip; and with 5 % loss blocks must have been sent again.
	if srep.Retransmits == 0 || rrep.RTTAvg < time.Millisecond || rrep.RTTMin <= 0 {
		t.Fatalf("through 5 %% loss and 1 ms ± 1 ms each way: %d retransmissions, RTT min %v avg %v", srep.Retransmits, rrep.RTTMin, rrep.RTTAvg)
	}
}

// TestLabRateVsTCP: on a path limited to 100 Mbit/s (tbf) each way, the bulk transfer's
// goodput is at least 80 % of what TCP (socat) moves on the same path in the same run.
func TestLabRateVsTCP(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("a throughput comparison: not under -race or -short")
	}
	if _, err := exec.LookPath("socat"); err != nil {
		t.Skip("socat not installed (Debian package socat)")
	}
	const rate = 100e6
	imp := netlab.Impairment{RateBps: rate}
	p := labtest.Path(t, netlab.PathConfig{Out: imp, In: imp})
	const size = 20 << 20
	src := t.TempDir()
	file, _ := randomFile(t, src, size)
	a, b := labPaths(t, p)
	// Best of two runs each, alternating, so a burst of load on the shared machine during one
	// run does not decide the comparison.
	var tcp, bulk float64
	var best Report
	for i := 0; i < 2; i++ {
		// TCP: socat in B discards, socat in A sends the file; timed from A's start until B's
		// socat has seen the end of the stream and exited.
		port := 5001 + i
		srv, err := p.B.Start("socat", "-u", fmt.Sprintf("TCP-LISTEN:%d,reuseaddr", port), "OPEN:/dev/null")
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		start := time.Now()
		if out, err := p.A.Exec("socat", "-u", "FILE:"+file, fmt.Sprintf("TCP:%s:%d", netlab.PathB, port)); err != nil {
			t.Fatalf("socat: %v %s", err, out)
		}
		<-srv.Done()
		tcp = max(tcp, float64(size)/time.Since(start).Seconds())
		_, rrep := labTransfer(t, a, b, size, SendConfig{})
		if rrep.GoodputBps > bulk {
			bulk, best = rrep.GoodputBps, rrep
		}
	}
	t.Logf("TCP (socat) %.1f Mbit/s; bulk %.1f Mbit/s (%.0f %%); %s", tcp*8/1e6, bulk*8/1e6, 100*bulk/tcp, Summary(best))
	if bulk < 0.8*tcp {
		t.Fatalf("bulk goodput %.1f Mbit/s below 80 %% of TCP's %.1f Mbit/s", bulk*8/1e6, tcp*8/1e6)
	}
}
