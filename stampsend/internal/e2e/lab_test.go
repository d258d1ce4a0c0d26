package e2e

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/capture"
	"github.com/probekit/probekit/shared/netlab"
	"github.com/probekit/probekit/shared/testpkt"
)

// wirePkt is a STAMP datagram seen in the capture on the sender's interface.
type wirePkt struct {
	at      time.Time
	payload []byte
}

// readSTAMP returns the requests (to port) and replies (from port) of an Ethernet pcap, keyed
// by the sender sequence number.
func readSTAMP(t *testing.T, file string, port uint16) (req, rep map[uint32]wirePkt) {
	t.Helper()
	r, err := capture.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	req, rep = map[uint32]wirePkt{}, map[uint32]wirePkt{}
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ip, et, err := capture.NetworkLayer(p.LinkType, p.Data)
		if err != nil || et != 0x0800 || len(ip) < 20 || ip[9] != 17 {
			continue
		}
		hl := int(ip[0]&0xF) * 4
		if len(ip) < hl+8 {
			continue
		}
		udp := ip[hl:]
		sp, dp := binary.BigEndian.Uint16(udp[0:]), binary.BigEndian.Uint16(udp[2:])
		pl := append([]byte(nil), udp[8:]...)
		switch {
		case dp == port && len(pl) >= 4:
			req[binary.BigEndian.Uint32(pl)] = wirePkt{p.Time, pl}
		case sp == port && len(pl) >= testpkt.BaseLen:
			rep[binary.BigEndian.Uint32(pl[24:])] = wirePkt{p.Time, pl}
		}
	}
	return req, rep
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// TestLabPath runs stampsend in A against stampref in B across the path topology's router,
// which delays each direction by a known amount and drops a known random fraction. Ground
// truth is a capture on A's interface (one clock with the sender): per packet, the captured
// round trip minus the reflector residence carried in the reply. The median of the per-packet
// differences between stampsend's RTT and the capture's must be within 10 µs, and
// the packets stampsend counts lost are exactly those the lab dropped.
func TestLabPath(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test skipped in -short mode")
	}
	lab := netlab.Path(t, netlab.PathConfig{
		Out: netlab.Impairment{Delay: 4 * time.Millisecond, Loss: 0.04},
		In:  netlab.Impairment{Delay: 2 * time.Millisecond, Loss: 0.03},
	})
	target := netlab.PathB.String() + ":8620"
	ref, err := lab.B.Start(bins.stampref, "--listen", target, "--no-monitor")
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Stop()
	// The timing comparison is repeated (up to 3 runs) because on a loaded 2-core VM the
	// send path between the capture tap and the driver's transmit stamp is sometimes stalled
	// by CPU steal for tens of µs; the loss check must hold in every run.
	for attempt := 1; attempt <= 3; attempt++ {
		md, ok := labRun(t, lab, ref, target)
		if ok {
			return
		}
		t.Logf("run %d: per-packet RTT difference median %.2f µs", attempt, md)
		if t.Failed() {
			return
		}
	}
	t.Error("per-packet RTT difference median above 10 µs in 3 runs")
}

// labRun is one measurement; it reports the per-packet difference median and whether it is
// within 10 µs. Loss and matching errors fail the test directly.
func labRun(t *testing.T, lab *netlab.PathLab, ref *netlab.Proc, target string) (float64, bool) {
	const port = 8620
	const n = 600
	pcap := filepath.Join(t.TempDir(), "a0.pcap")
	stop := netlab.StartCapture(t, lab.A, lab.A.Iface, pcap, "udp port 8620")
	time.Sleep(500 * time.Millisecond) // stampref binding, tcpdump attaching
	so0, err := lab.Stats(netlab.Out)
	if err != nil {
		t.Fatal(err)
	}
	si0, err := lab.Stats(netlab.In)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := lab.A.Command(ctx, bins.stampsend, "--json", "-c", "600", "-i", "2ms", "-W", "1s", target)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("stampsend: %v\n%s\nstampref: %s", err, out, ref.Output())
	}
	time.Sleep(200 * time.Millisecond)
	stop()
	recs, sum := parseJSONLines(t, out)
	req, rep := readSTAMP(t, pcap, port)
	if len(req) != n {
		t.Fatalf("capture holds %d of %d requests", len(req), n)
	}
	// Loss: the delayer's drops in both directions are exactly the unanswered packets.
	so, err := lab.Stats(netlab.Out)
	if err != nil {
		t.Fatal(err)
	}
	si, err := lab.Stats(netlab.In)
	if err != nil {
		t.Fatal(err)
	}
	dOut, dIn := so.Dropped-so0.Dropped, si.Dropped-si0.Dropped
	if drops := dOut + dIn; sum.Lost != drops || sum.Sent != n || sum.Received != uint64(n)-drops {
		t.Errorf("stampsend lost %d of %d (received %d); the lab dropped %d+%d", sum.Lost, sum.Sent, sum.Received, dOut, dIn)
	}
	if dOut == 0 || dIn == 0 {
		t.Errorf("the lab dropped nothing in one direction (%d, %d): the loss check proves little", dOut, dIn)
	}
	got := map[uint32]record{}
	for _, r := range recs {
		got[r.Seq] = r
	}
	var ours, truth, diffs []float64
	for seq := uint32(0); seq < n; seq++ {
		w, ok := rep[seq]
		r, answered := got[seq]
		if ok != answered {
			t.Errorf("seq %d: reply in capture %v, in stampsend %v", seq, ok, answered)
			continue
		}
		if !ok {
			continue
		}
		var rp testpkt.ReflectedPacket
		if err := rp.UnmarshalBinary(w.payload); err != nil {
			t.Fatal(err)
		}
		capRTT := float64(w.at.Sub(req[seq].at)-rp.Residence()) / 1e3
		ours = append(ours, r.RTTUS)
		truth = append(truth, capRTT)
		diffs = append(diffs, r.RTTUS-capRTT)
		if r.TxSource != "kernel" || r.RxSource != "kernel" {
			t.Fatalf("seq %d: timestamps %s/%s", seq, r.TxSource, r.RxSource)
		}
	}
	mo, mt, md := median(ours), median(truth), median(diffs)
	t.Logf("RTT median: stampsend %.1f µs, capture %.1f µs, per-packet difference median %.2f µs; lost %d (lab %d+%d)",
		mo, mt, md, sum.Lost, dOut, dIn)
	if mt < 6000 || mt > 10000 {
		t.Errorf("capture RTT median %.1f µs, want about 6 ms of injected delay", mt)
	}
	return md, md <= 10 && md >= -10
}
