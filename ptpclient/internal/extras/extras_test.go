package extras

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	mrand "math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/probekit/probekit/shared/ptp"
)

// fakeClient delivers SendExtra to the other side's OnExtra as a decoded message would arrive,
// dropping 2 % at random.
type fakeClient struct {
	uuid  ptp.UUID
	addr  netip.AddrPort
	other *fakeClient
	ext   *Extras
	mu    sync.Mutex
	rng   *mrand.Rand
	cands []netip.AddrPort
}

func (f *fakeClient) SendExtra(peer ptp.UUID, tlvs []ptp.TLV) error {
	if peer != f.other.uuid {
		return os.ErrNotExist
	}
	f.mu.Lock()
	drop := f.rng.Float64() < 0.02
	f.mu.Unlock()
	if drop {
		return nil
	}
	m := &ptp.Message{}
	for _, t := range tlvs {
		m.Extra = append(m.Extra, ptp.TLV{Type: t.Type, Value: append([]byte(nil), t.Value...)})
	}
	f.other.ext.OnExtra(f.uuid, ptp.PathDirect, m)
	return nil
}

func (f *fakeClient) AddCandidate(a netip.AddrPort) { f.cands = append(f.cands, a) }
func (f *fakeClient) SetPortMaps(ps []ptp.PortMap)  {}
func (f *fakeClient) LocalAddr() netip.AddrPort     { return f.addr }
func (f *fakeClient) Peers() []PeerInfo {
	return []PeerInfo{{UUID: f.other.uuid, Address: f.other.addr.String(), Path: ptp.PathDirect}}
}

func TestSendAccept(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	data := make([]byte, 3<<20+17)
	rand.Read(data)
	file := filepath.Join(src, "big.bin")
	os.WriteFile(file, data, 0o644)
	log := logrus.New()
	log.SetOutput(os.Stderr)
	log.SetLevel(logrus.WarnLevel)
	a := &fakeClient{uuid: ptp.UUID{1}, addr: netip.MustParseAddrPort("45.71.0.101:20000"), rng: mrand.New(mrand.NewPCG(1, 2))}
	b := &fakeClient{uuid: ptp.UUID{2}, addr: netip.MustParseAddrPort("45.71.0.102:30000"), rng: mrand.New(mrand.NewPCG(3, 4))}
	a.other, b.other = b, a
	var aout, bout bytes.Buffer
	var amu sync.Mutex
	a.ext = New(Config{Send: file, To: b.addr.String()}, &lockedWriter{w: &aout, mu: &amu}, false, true, log)
	b.ext = New(Config{AcceptDir: dst}, &lockedWriter{w: &bout, mu: &amu}, false, true, log)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b.ext.Start(ctx, b)
	a.ext.Start(ctx, a)
	if err := <-a.ext.SendDone(); err != nil {
		t.Fatalf("send: %v\n%s", err, aout.String())
	}
	// The receiver records its report after telling the sender: wait for it.
	for deadline := time.Now().Add(20 * time.Second); len(b.ext.Summary().Transfers) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("receiver never finished")
		}
	}
	got, err := os.ReadFile(filepath.Join(dst, "big.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("received file differs (%v)", err)
	}
	rs := b.ext.Summary().Transfers[0]
	if !rs.OK || rs.Peer != a.uuid.String() || rs.Role != "receive" || rs.Size != int64(len(data)) {
		t.Fatalf("receiver report %+v", rs)
	}
	amu.Lock()
	defer amu.Unlock()
	// JSON lines: progress lines and one transfer line on each side.
	for name, out := range map[string]string{"sender": aout.String(), "receiver": bout.String()} {
		var transfers int
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var v struct {
				Type string `json:"type"`
				OK   bool   `json:"ok"`
			}
			if err := json.Unmarshal([]byte(l), &v); err != nil {
				t.Fatalf("%s: not JSON: %q", name, l)
			}
			if v.Type == "transfer" {
				transfers++
				if !v.OK {
					t.Errorf("%s: %s", name, l)
				}
			} else if v.Type != "progress" {
				t.Errorf("%s: line %q", name, l)
			}
		}
		if transfers != 1 {
			t.Errorf("%s: %d transfer lines", name, transfers)
		}
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]float64{"500000": 5e5, "500k": 5e5, "12.5M": 12.5e6, "80Mbit": 10e6, "1Gbit": 125e6, "2kB": 2000} {
		if got, err := ParseRate(in); err != nil || got != want {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "fast", "-5", "0", "5 M", "M"} {
		if _, err := ParseRate(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestHandoff: OnExtra copies a datagram's bulk TLVs into a buffer the transfer gave back (no
// allocation per datagram once warm), and a frame that finds the queue full is counted.
func TestHandoff(t *testing.T) {
	e := New(Config{}, &bytes.Buffer{}, false, true, logrus.New())
	peer := ptp.UUID{7}
	s := newSession(func() {})
	e.sessions[peer] = s
	p := &path{e: e, peer: peer, s: s}
	m := &ptp.Message{Extra: []ptp.TLV{{Type: ptp.TypeBulkData, Value: make([]byte, 12)}, {Type: ptp.TypeBulkChunk, Value: bytes.Repeat([]byte{9}, 253)}}}
	e.OnExtra(peer, ptp.PathDirect, m)
	want := ptp.AppendTLV(ptp.AppendTLV(nil, ptp.TypeBulkData, m.Extra[0].Value), ptp.TypeBulkChunk, m.Extra[1].Value)
	if got := <-p.Frames(); !bytes.Equal(got, want) {
		t.Fatalf("frame %x, want %x", got, want)
	} else {
		p.Release(got)
	}
	if a := testing.AllocsPerRun(1000, func() {
		e.OnExtra(peer, ptp.PathDirect, m)
		p.Release(<-p.Frames())
	}); a != 0 {
		t.Errorf("%.1f allocations per datagram", a)
	}
	for i := 0; i < sessionQueue+3; i++ {
		e.OnExtra(peer, ptp.PathDirect, m)
	}
	if d := s.drops.Load(); d != 3 {
		t.Errorf("%d drops counted, want 3", d)
	}
}
