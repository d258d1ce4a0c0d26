package netlab

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestImpairmentValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		imp  Impairment
		ok   bool
	}{
		{"zero", Impairment{}, true},
		{"full", Impairment{Delay: time.Millisecond, Jitter: time.Millisecond, Loss: 0.5, RateBps: 1e6, Schedule: []Step{{time.Second, 0}}}, true},
		{"negative delay", Impairment{Delay: -1}, false},
		{"negative jitter", Impairment{Jitter: -1}, false},
		{"loss above 1", Impairment{Loss: 1.1}, false},
		{"negative loss", Impairment{Loss: -0.1}, false},
		{"negative rate", Impairment{RateBps: -1}, false},
		{"negative step", Impairment{Schedule: []Step{{-time.Second, time.Millisecond}}}, false},
	} {
		if err := tc.imp.validate(); (err == nil) != tc.ok {
			t.Errorf("%s: validate() = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestDelaySchedule(t *testing.T) {
	d := &Delayer{}
	d.setLocked(Impairment{Delay: 10 * time.Millisecond, Schedule: []Step{
		{At: 2 * time.Second, Delay: 20 * time.Millisecond}, // out of order on purpose: steps are sorted
		{At: time.Second, Delay: 40 * time.Millisecond},
	}}, 5*time.Second)
	for _, tc := range []struct {
		since time.Duration
		want  time.Duration
	}{
		{0, 10 * time.Millisecond},
		{999 * time.Millisecond, 10 * time.Millisecond},
		{time.Second, 40 * time.Millisecond},
		{1999 * time.Millisecond, 40 * time.Millisecond},
		{2 * time.Second, 20 * time.Millisecond},
		{time.Hour, 20 * time.Millisecond},
	} {
		if got := d.delayLocked(5*time.Second + tc.since); got != tc.want {
			t.Errorf("delay %v after epoch = %v, want %v", tc.since, got, tc.want)
		}
	}
}

// TestPathHosts checks addressing and routing both ways, IPv4 and IPv6, and that Do runs code
// inside the namespace.
func TestPathHosts(t *testing.T) {
	p := Path(t, PathConfig{})
	for _, dst := range []netip.Addr{PathB, PathB6} {
		e, err := startUDPEcho(p.B, 7100)
		if err != nil {
			t.Fatal(err)
		}
		res, err := udpPing(p.A, netip.AddrPortFrom(dst, 7100), 5, time.Millisecond, 100*time.Millisecond)
		e.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := len(res.received()); got != 5 {
			t.Errorf("%v: %d of 5 echoes", dst, got)
		}
	}
	var names []string
	if err := p.R.Do(func() error {
		ifs, err := net.Interfaces()
		for _, i := range ifs {
			names = append(names, i.Name)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names, ","); got != "lo,ra,rb" {
		t.Errorf("R interfaces = %s, want lo,ra,rb", got)
	}
	st, err := p.Stats(Out)
	if err != nil || st.Received < 10 || st.Released != st.Received || st.Dropped != 0 {
		t.Errorf("out delayer stats %+v, %v: want ≥ 10 packets, all released", st, err)
	}
	qd, ud, err := p.QueueDrops()
	if err != nil || qd != 0 || ud != 0 {
		t.Errorf("queue drops %d/%d, %v", qd, ud, err)
	}
	out, err := p.A.Exec("ip", "-br", "addr", "show", "a0")
	if err != nil || !strings.Contains(out, PathA.String()+"/24") {
		t.Errorf("A address: %q %v", out, err)
	}
}

// TestCloseRemovesEverything builds a lab, starts a process, a capture and the delayer, closes
// it and looks for anything left: namespaces, state marker, processes.
func TestCloseRemovesEverything(t *testing.T) {
	SkipUnlessAvailable(t)
	p, err := NewPath(PathConfig{Out: Impairment{Delay: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	proc, err := p.B.Start("sleep", "60")
	if err != nil {
		t.Fatal(err)
	}
	// A process the lab did not track: Close must still find it inside the namespace.
	untracked := p.A.Command(t.Context(), "sleep", "60")
	if err := untracked.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.A.StartCapture("a0", filepath.Join(t.TempDir(), "x.pcap"), ""); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	_ = untracked.Wait()
	select {
	case <-proc.Done():
	default:
		t.Error("process still running after Close")
	}
	out, _ := run("ip", "netns", "list")
	if strings.Contains(out, p.Prefix) {
		t.Errorf("namespaces left: %s", out)
	}
	if _, err := os.Stat(filepath.Join(StateDir, p.Prefix)); !os.IsNotExist(err) {
		t.Errorf("state marker left: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestPersistentDestroy builds an `up`-style lab, detaches it and removes it by prefix.
func TestPersistentDestroy(t *testing.T) {
	SkipUnlessAvailable(t)
	p, err := NewPath(PathConfig{Out: Impairment{Delay: 5 * time.Millisecond}, Persistent: true})
	if err != nil {
		t.Fatal(err)
	}
	p.Detach()
	t.Cleanup(func() { _ = Destroy(p.Prefix) })
	labs, err := List()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range labs {
		if l.Prefix == p.Prefix {
			found = true
			if l.Owner != persistentOwner || l.Orphan || len(l.Namespaces) != 3 {
				t.Errorf("listed as %+v", l)
			}
		}
	}
	if !found {
		t.Fatalf("lab %s not listed", p.Prefix)
	}
	// The delayer lives in R and still delays after the builder let go.
	e, err := startUDPEcho(p.B, 7200)
	if err != nil {
		t.Fatal(err)
	}
	res, err := udpPing(p.A, netip.AddrPortFrom(PathB, 7200), 20, 2*time.Millisecond, 100*time.Millisecond)
	e.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got := percentile(res.received(), 0); got < 5*time.Millisecond {
		t.Errorf("min RTT %v with 5 ms out delay", got)
	}
	if err := Destroy(p.Prefix); err != nil {
		t.Fatal(err)
	}
	out, _ := run("ip", "netns", "list")
	if strings.Contains(out, p.Prefix) {
		t.Errorf("namespaces left: %s", out)
	}
	if err := Destroy("eth0"); err == nil {
		t.Error("Destroy accepted a non-lab prefix")
	}
}

// TestOrphanListed: a lab whose owner died is listed as an orphan and Destroy removes it.
func TestOrphanListed(t *testing.T) {
	SkipUnlessAvailable(t)
	p, err := NewPath(PathConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	dead := p.A.Command(t.Context(), "true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(StateDir, p.Prefix)
	if err := os.WriteFile(marker, []byte(fmt.Sprintln(dead.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	labs, err := List()
	if err != nil {
		t.Fatal(err)
	}
	var orphan bool
	for _, l := range labs {
		if l.Prefix == p.Prefix {
			orphan = l.Orphan
		}
	}
	if !orphan {
		t.Fatalf("lab with a dead owner not listed as orphan: %+v", labs)
	}
	if err := Destroy(p.Prefix); err != nil {
		t.Fatal(err)
	}
	out, _ := run("ip", "netns", "list")
	if strings.Contains(out, p.Prefix) {
		t.Errorf("namespaces left: %s", out)
	}
}
