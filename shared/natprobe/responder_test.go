package natprobe

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v3"
)

func TestIsSTUN(t *testing.T) {
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest)
	ptp, _ := hex.DecodeString("01020302030600000000041" + "20f1e2d3c4b5a69788796a5b4c3d2e1f0080a6666998080000000a8b6")
	for _, tc := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"binding request", req.Raw, true},
		{"ptp c2c beacon", ptp, false},
		{"short", req.Raw[:19], false},
		{"bad cookie", append(append([]byte{}, req.Raw[:4]...), append([]byte{0x21, 0x12, 0xa4, 0x43}, req.Raw[8:]...)...), false},
		{"leading bits", append([]byte{0x40}, req.Raw[1:]...), false},
		{"length overruns", append([]byte{0, 1, 0, 8}, req.Raw[4:]...), false},
	} {
		if got := IsSTUN(tc.b); got != tc.want {
			t.Errorf("%s: IsSTUN = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// The RFC 5769 §2.2 sample response maps 192.0.2.1:32853 with transaction ID
// b7e7a701bc34d686fa87dfae to XOR-MAPPED-ADDRESS value 0001 a147 e112a643 (bytes from the RFC,
// not from this code).
func TestRespondRFC5769Mapping(t *testing.T) {
	var r Responder
	req := stun.New()
	req.SetType(stun.BindingRequest)
	txid, _ := hex.DecodeString("b7e7a701bc34d686fa87dfae")
	copy(req.TransactionID[:], txid)
	req.WriteHeader()
	src := netip.MustParseAddrPort("192.0.2.1:32853")
	out, from, err := r.Respond(nil, req.Raw, src, netip.MustParseAddrPort("198.51.100.1:3478"))
	if err != nil {
		t.Fatal(err)
	}
	if from != netip.MustParseAddrPort("198.51.100.1:3478") {
		t.Errorf("from = %v", from)
	}
	want, _ := hex.DecodeString("00200008" + "0001a147e112a643")
	if !bytes.Contains(out, want) {
		t.Errorf("response %x lacks XOR-MAPPED-ADDRESS %x", out, want)
	}
	// MAPPED-ADDRESS in the clear for RFC 3489 clients: 0001 0008 0001 8055 c0000201.
	want, _ = hex.DecodeString("000100080001" + "8055c0000201")
	if !bytes.Contains(out, want) {
		t.Errorf("response %x lacks MAPPED-ADDRESS %x", out, want)
	}
	if !bytes.Equal(out[8:20], txid) || out[0] != 0x01 || out[1] != 0x01 {
		t.Errorf("header %x: want Binding success with the request's transaction ID", out[:20])
	}
}

func binding(t testing.TB, change Change) []byte {
	t.Helper()
	setters := []stun.Setter{stun.TransactionID, stun.BindingRequest}
	if change != 0 {
		setters = append(setters, changeAttr{change})
	}
	return stun.MustBuild(setters...).Raw
}

func decodeResp(t *testing.T, b []byte) *stun.Message {
	t.Helper()
	m := new(stun.Message)
	if err := stun.Decode(b, m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRespondChangeRequest(t *testing.T) {
	p1 := netip.MustParseAddrPort("198.51.100.1:3478")
	p2 := netip.MustParseAddrPort("198.51.100.2:3479")
	r := Responder{Primary: p1, Other: p2}
	src := netip.MustParseAddrPort("203.0.113.9:4000")
	for _, tc := range []struct {
		local  netip.AddrPort
		change Change
		from   string
		other  string
	}{
		{p1, 0, "198.51.100.1:3478", "198.51.100.2:3479"},
		{p1, ChangeIP | ChangePort, "198.51.100.2:3479", "198.51.100.2:3479"},
		{p1, ChangePort, "198.51.100.1:3479", "198.51.100.2:3479"},
		{p1, ChangeIP, "198.51.100.2:3478", "198.51.100.2:3479"},
		{netip.MustParseAddrPort("198.51.100.2:3478"), 0, "198.51.100.2:3478", "198.51.100.1:3479"},
		{p2, ChangeIP | ChangePort, "198.51.100.1:3478", "198.51.100.1:3478"},
	} {
		out, from, err := r.Respond(nil, binding(t, tc.change), src, tc.local)
		if err != nil {
			t.Fatal(err)
		}
		if from.String() != tc.from {
			t.Errorf("local %v change %#x: from %v, want %s", tc.local, tc.change, from, tc.from)
		}
		m := decodeResp(t, out)
		var oa stun.OtherAddress
		var ro stun.ResponseOrigin
		var xa stun.XORMappedAddress
		if err := m.Parse(&oa, &ro, &xa); err != nil {
			t.Fatal(err)
		}
		if oa.String() != tc.other || ro.String() != tc.from || xa.String() != src.String() {
			t.Errorf("local %v change %#x: OTHER %v ORIGIN %v XOR %v", tc.local, tc.change, oa, ro, xa)
		}
	}
}

func TestRespondRefusesChangeWithoutAlternate(t *testing.T) {
	r := Responder{Primary: netip.MustParseAddrPort("0.0.0.0:23456")}
	src := netip.MustParseAddrPort("203.0.113.9:4000")
	out, _, err := r.Respond(nil, binding(t, ChangePort), src, r.Primary)
	if err != nil {
		t.Fatal(err)
	}
	m := decodeResp(t, out)
	var ec stun.ErrorCodeAttribute
	if m.Type != stun.BindingError || ec.GetFrom(m) != nil || ec.Code != stun.CodeUnknownAttribute {
		t.Fatalf("want 420 error, got %v %v", m, ec)
	}
	var ua stun.UnknownAttributes
	if err := ua.GetFrom(m); err != nil || len(ua) != 1 || ua[0] != stun.AttrChangeRequest {
		t.Fatalf("UNKNOWN-ATTRIBUTES %v %v", ua, err)
	}
	// A plain request from IPv6 gets an IPv6 mapping and no RESPONSE-ORIGIN on a wildcard.
	src6 := netip.MustParseAddrPort("[2001:db8::7]:4000")
	out, _, err = r.Respond(nil, binding(t, 0), src6, r.Primary)
	if err != nil {
		t.Fatal(err)
	}
	m = decodeResp(t, out)
	var xa stun.XORMappedAddress
	if err := xa.GetFrom(m); err != nil || xa.String() != src6.String() {
		t.Errorf("XOR-MAPPED %v %v", xa, err)
	}
	if m.Contains(stun.AttrResponseOrigin) || m.Contains(stun.AttrOtherAddress) {
		t.Error("wildcard responder without alternate sent RESPONSE-ORIGIN/OTHER-ADDRESS")
	}
}

func TestRespondIgnores(t *testing.T) {
	var r Responder
	src := netip.MustParseAddrPort("203.0.113.9:4000")
	resp := stun.MustBuild(stun.TransactionID, stun.BindingSuccess)
	if _, _, err := r.Respond(nil, resp.Raw, src, src); !errors.Is(err, ErrNotBindingRequest) {
		t.Errorf("response: err %v", err)
	}
	if _, _, err := r.Respond(nil, []byte{1, 2, 3}, src, src); !errors.Is(err, ErrNotSTUN) {
		t.Errorf("garbage: err %v", err)
	}
	bad := binding(t, 0)
	bad = append(bad, 0, 1, 0, 9) // attribute header claiming 9 bytes that are not there
	bad[3] += 4
	if _, _, err := r.Respond(nil, bad, src, src); err == nil {
		t.Error("truncated attribute answered")
	}
}

// The server on loopback (127.0.0.1 and 127.0.0.2, which need no configuration) classified by
// coturn's turnutils_natdiscovery, an independent RFC 5780 client: no NAT, so endpoint-
// independent mapping and filtering.
func TestServerWithNatdiscovery(t *testing.T) {
	nd, err := exec.LookPath("turnutils_natdiscovery")
	if err != nil {
		t.Skip("turnutils_natdiscovery (coturn) not installed")
	}
	main, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer main.Close()
	p1 := main.LocalAddr().(*net.UDPAddr).AddrPort()
	var srv *Server
	for try := 0; ; try++ {
		srv, err = NewServer(context.Background(), ServerConfig{
			Primary: p1, Other: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), p1.Port()+1),
			Send: func(b []byte, to netip.AddrPort) error {
				_, err := main.WriteToUDPAddrPort(b, to)
				return err
			},
		})
		if err == nil || try > 5 {
			break
		}
		main.Close()
		main, _ = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		p1 = main.LocalAddr().(*net.UDPAddr).AddrPort()
	}
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, a, err := main.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if IsSTUN(buf[:n]) {
				srv.Handle(buf[:n], a)
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, nd, "-m", "-f", "-p", strconv.Itoa(int(p1.Port())), "127.0.0.1").CombinedOutput()
	if err != nil {
		t.Fatalf("natdiscovery: %v\n%s", err, out)
	}
	s := string(out)
	t.Logf("natdiscovery:\n%s", s)
	for _, want := range []string{"NAT with Endpoint Independent Mapping", "NAT with Endpoint Independent Filtering"} {
		if !strings.Contains(s, want) {
			t.Errorf("natdiscovery output lacks %q:\n%s", want, s)
		}
	}
	// The server counts an answer after its send returns, so natdiscovery may have its last
	// reply (and have exited) before the count: wait for it (30 s hang guard).
	st := srv.Stats()
	for deadline := time.Now().Add(30 * time.Second); st.Answered < 4 && time.Now().Before(deadline); st = srv.Stats() {
		time.Sleep(time.Millisecond)
	}
	if st.Answered < 4 {
		t.Errorf("server answered %d requests, want >= 4 (%+v)", st.Answered, st)
	}
}

// TestNewServerConfigErrors: alternate-address configurations that cannot work are refused
// before any socket is opened (port 65535 + 1 would wrap to 0: a random port announced as
// OTHER-ADDRESS).
func TestNewServerConfigErrors(t *testing.T) {
	send := func([]byte, netip.AddrPort) error { return nil }
	for _, c := range []struct {
		name           string
		primary, other string
		want           string
	}{
		{"no next port", "192.0.2.1:65535", "192.0.2.2:0", "has no next port"},
		{"unspecified primary", "0.0.0.0:3478", "192.0.2.2:3479", "specific primary address"},
		{"family", "192.0.2.1:3478", "[2001:db8::2]:3479", "not in the family"},
		{"same address", "192.0.2.1:3478", "192.0.2.1:3479", "must differ"},
		{"same port", "192.0.2.1:3478", "192.0.2.2:3478", "must differ"},
	} {
		_, err := NewServer(context.Background(), ServerConfig{Primary: netip.MustParseAddrPort(c.primary), Other: netip.MustParseAddrPort(c.other), Send: send})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
	}
}
