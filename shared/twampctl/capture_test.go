package twampctl

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

var update = flag.Bool("update", false, "rewrite golden files")

type udpPkt struct {
	src, dst uint16
	tos      uint8
	payload  []byte
}

type tcpSeg struct {
	seq  uint32
	data []byte
}

type capture struct {
	c2s, s2c []byte // reassembled control streams (client → server, server → client)
	udp      []udpPkt
}

// readCapture reassembles the single TCP conversation (direction from the SYN) and lists UDP
// datagrams of a pcap.
func readCapture(t testing.TB, name string) capture {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var c capture
	segs := map[bool][]tcpSeg{}
	var clientPort uint16
	for {
		data, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := gopacket.NewPacket(data, r.LinkType(), gopacket.Default)
		var tos uint8
		if ip4, ok := p.NetworkLayer().(*layers.IPv4); ok {
			tos = ip4.TOS
		}
		if ip6, ok := p.NetworkLayer().(*layers.IPv6); ok {
			tos = ip6.TrafficClass
		}
		switch l := p.TransportLayer().(type) {
		case *layers.UDP:
			c.udp = append(c.udp, udpPkt{uint16(l.SrcPort), uint16(l.DstPort), tos, append([]byte(nil), l.Payload...)})
		case *layers.TCP:
			if l.SYN && !l.ACK {
				clientPort = uint16(l.SrcPort)
			}
			if len(l.Payload) > 0 {
				fromClient := uint16(l.SrcPort) == clientPort
				segs[fromClient] = append(segs[fromClient], tcpSeg{l.Seq, append([]byte(nil), l.Payload...)})
			}
		}
	}
	join := func(s []tcpSeg) []byte {
		sort.SliceStable(s, func(i, j int) bool { return s[i].seq-s[0].seq < s[j].seq-s[0].seq })
		var out []byte
		var next uint32
		for i, sg := range s {
			if i == 0 {
				next = sg.seq
			}
			if int32(sg.seq-next) < 0 { // retransmission
				continue
			}
			if sg.seq != next {
				t.Fatalf("%s: gap in TCP stream", name)
			}
			out = append(out, sg.data...)
			next += uint32(len(sg.data))
		}
		return out
	}
	c.c2s, c.s2c = join(segs[true]), join(segs[false])
	return c
}

// transcript decodes a whole control conversation, decrypting and checking HMACs with
// secret, and returns a line per message plus the decoded session state.
type transcript struct {
	lines    []string
	mode     Mode
	keys     SessionKeys
	requests []RequestTWSession
	accepts  []AcceptSession
}

func (tr *transcript) add(format string, args ...any) {
	tr.lines = append(tr.lines, fmt.Sprintf(format, args...))
}

type reader struct {
	b   []byte
	off int
}

func (r *reader) next(n int) ([]byte, error) {
	if r.off+n > len(r.b) {
		return nil, io.ErrUnexpectedEOF
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p, nil
}

func decodeConversation(c2s, s2c []byte, secret []byte) (*transcript, error) {
	tr := &transcript{}
	cr, sr := &reader{b: bytes.Clone(c2s)}, &reader{b: bytes.Clone(s2c)}
	b, err := sr.next(ServerGreetingLen)
	if err != nil {
		return nil, err
	}
	var g ServerGreeting
	if err := g.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	if got := g.AppendTo(nil); !bytes.Equal(got, b) {
		return nil, fmt.Errorf("Server-Greeting round trip: %x != %x", got, b)
	}
	tr.add("Server-Greeting modes=%d(%s) count=%d", g.Modes, g.Modes, g.Count)
	if b, err = cr.next(SetUpResponseLen); err != nil {
		return nil, err
	}
	var su SetUpResponse
	if err := su.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	if err := su.Mode.ValidChoice(g.Modes); err != nil {
		return nil, err
	}
	tr.mode = su.Mode
	if got := su.AppendTo(nil); !bytes.Equal(got, b) {
		return nil, fmt.Errorf("Set-Up-Response round trip: %x != %x", got, b)
	}
	tr.add("Set-Up-Response mode=%d(%s) keyid=%q", su.Mode, su.Mode, su.Identity())
	cs, ss := NewOpenStream(), NewOpenStream()
	if b, err = sr.next(ServerStartLen); err != nil {
		return nil, err
	}
	var st ServerStart
	if su.Mode.Secure() {
		if err := ValidCount(g.Count); err != nil {
			return nil, err
		}
		keys, err := DecryptToken(KDFKey(secret, g.Salt, g.Count), g.Challenge, su.Token)
		if err != nil {
			return nil, err
		}
		tr.keys = keys
		cs = NewSecureStream(keys, su.ClientIV)
		ss = NewSecureStream(keys, [16]byte(b[16:32]))
		if b[15] == 0 {
			if err := ss.Decrypt(b[32:48]); err != nil {
				return nil, err
			}
		}
	}
	if err := st.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	if got := st.AppendTo(nil); !bytes.Equal(got, b) {
		return nil, fmt.Errorf("Server-Start round trip: %x != %x", got, b)
	}
	tr.add("Server-Start accept=%d start-time-set=%v", st.Accept, st.StartTime != 0)
	for cr.off < len(cr.b) {
		hdr, err := cr.next(16)
		if err != nil {
			return nil, fmt.Errorf("command header: %w", err)
		}
		if err := cs.Decrypt(hdr); err != nil {
			return nil, err
		}
		var rest int
		switch Command(hdr[0]) {
		case CmdRequestTWSession:
			rest = RequestTWSessionLen - 16
		case CmdStartSessions, CmdStopSessions:
			rest = 16
		default:
			return nil, fmt.Errorf("%w: %s", ErrCommand, Command(hdr[0]))
		}
		body, err := cr.next(rest)
		if err != nil {
			return nil, err
		}
		if err := cs.Decrypt(body[:rest-HMACLen]); err != nil {
			return nil, err
		}
		if err := cs.OpenHMAC(body[rest-HMACLen:]); err != nil {
			return nil, fmt.Errorf("%s: %w", Command(hdr[0]), err)
		}
		msg := append(bytes.Clone(hdr), body...)
		if err := roundTrip(Command(hdr[0]), msg); err != nil {
			return nil, err
		}
		switch Command(hdr[0]) {
		case CmdRequestTWSession:
			var rq RequestTWSession
			if err := rq.UnmarshalBinary(msg); err != nil {
				return nil, err
			}
			tr.requests = append(tr.requests, rq)
			sa, _ := AddrFromField(rq.IPVN, rq.SenderAddress)
			ra, _ := AddrFromField(rq.IPVN, rq.ReceiverAddress)
			tr.add("Request-TW-Session ipvn=%d sender=%v:%d receiver=%v:%d padding=%d start-time-set=%v timeout=%.3fs type-p=%#x",
				rq.IPVN, sa, rq.SenderPort, ra, rq.ReceiverPort, rq.PaddingLength, rq.StartTime != 0,
				float64(rq.Timeout)/(1<<32), rq.TypeP)
			a, err := sr.next(AcceptSessionLen)
			if err != nil {
				return nil, err
			}
			if err := ss.Open(a); err != nil {
				return nil, fmt.Errorf("Accept-Session: %w", err)
			}
			var as AcceptSession
			if err := as.UnmarshalBinary(a); err != nil {
				return nil, err
			}
			if got := as.AppendTo(nil); !bytes.Equal(got, a) {
				return nil, fmt.Errorf("Accept-Session round trip: %x != %x", got, a)
			}
			tr.accepts = append(tr.accepts, as)
			tr.add("Accept-Session accept=%d port=%d sid=%x", as.Accept, as.Port, as.SID)
		case CmdStartSessions:
			var m StartSessions
			if err := m.UnmarshalBinary(msg); err != nil {
				return nil, err
			}
			tr.add("Start-Sessions")
			a, err := sr.next(StartAckLen)
			if err != nil {
				return nil, err
			}
			if err := ss.Open(a); err != nil {
				return nil, fmt.Errorf("Start-Ack: %w", err)
			}
			var ack StartAck
			if err := ack.UnmarshalBinary(a); err != nil {
				return nil, err
			}
			if got := ack.AppendTo(nil); !bytes.Equal(got, a) {
				return nil, fmt.Errorf("Start-Ack round trip: %x != %x", got, a)
			}
			tr.add("Start-Ack accept=%d", ack.Accept)
		case CmdStopSessions:
			var m StopSessions
			if err := m.UnmarshalBinary(msg); err != nil {
				return nil, err
			}
			tr.add("Stop-Sessions accept=%d sessions=%d", m.Accept, m.NumSessions)
		}
	}
	if sr.off != len(sr.b) {
		return nil, fmt.Errorf("%d trailing server octets", len(sr.b)-sr.off)
	}
	return tr, nil
}

var captureCases = []struct {
	file       string
	mode       Mode
	sid        string
	senderPort uint16
	port       uint16
	padding    uint32
	packets    int
	size       int
}{
	{"twamp-owamp-open.pcap", ModeUnauthenticated, "7f000001eeae4648cd2849cb483372ed", 19004, 18771, 27, 10, 41},
	{"twamp-owamp-modeA.pcap", ModeAuthenticated, "7f000001eeae46633084e831632db59f", 19003, 18764, 64, 10, 112},
	{"twamp-owamp-modeE.pcap", ModeEncrypted, "7f000001eeae46693ed1aeb33a8525fa", 19001, 18773, 64, 10, 112},
	{"twamp-owamp-modeM-mixed.pcap", ModeMixed, "7f000001eeae47d25c116ebd959db8b1", 19008, 18812, 27, 5, 41},
	{"twamp-owamp-ipv6.pcap", ModeUnauthenticated, "00000001eeae468032fd1138792d2e77", 19005, 18948, 27, 5, 41},
	{"twamp-twamp-protocol-client-vs-owamp.pcap", ModeUnauthenticated, "", 30218, 18780, 27, 10, 41},
}

var testSecret = []byte("testsecret")

// TestCaptures decodes every control message of the peer captures (TW-C2, TW-C8),
// verifies HMACs with the README's pass-phrase, and compares the transcript to a golden file.
func TestCaptures(t *testing.T) {
	for _, tc := range captureCases {
		t.Run(tc.file, func(t *testing.T) {
			c := readCapture(t, tc.file)
			tr, err := decodeConversation(c.c2s, c.s2c, testSecret)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if tr.mode != tc.mode {
				t.Errorf("mode %s, want %s", tr.mode, tc.mode)
			}
			if len(tr.requests) != 1 || len(tr.accepts) != 1 {
				t.Fatalf("got %d requests / %d accepts, want 1/1", len(tr.requests), len(tr.accepts))
			}
			rq, as := tr.requests[0], tr.accepts[0]
			if as.Accept != AcceptOK || as.Port != tc.port || rq.SenderPort != tc.senderPort {
				t.Errorf("accept=%d port=%d sender port=%d, want 0/%d/%d", as.Accept, as.Port, rq.SenderPort, tc.port, tc.senderPort)
			}
			if tc.sid != "" && hex.EncodeToString(as.SID[:]) != tc.sid {
				t.Errorf("SID %x, want %s", as.SID, tc.sid)
			}
			if rq.PaddingLength != tc.padding {
				t.Errorf("padding %d, want %d", rq.PaddingLength, tc.padding)
			}
			checkTestPackets(t, c, tr, tc.senderPort, tc.port, tc.packets, tc.size)
			golden(t, strings.TrimSuffix(tc.file, ".pcap")+".txt", strings.Join(tr.lines, "\n")+"\n")
			// A wrong secret must be detected at the token (TW-C8).
			if tc.mode.Secure() {
				if _, err := decodeConversation(c.c2s, c.s2c, []byte("wrongsecret")); !errors.Is(err, ErrChallenge) {
					t.Errorf("wrong secret: err %v, want ErrChallenge", err)
				}
			}
		})
	}
}

// checkTestPackets decrypts/authenticates every test packet (TW-T5) and checks sequence
// numbers, sizes and that the reflector copied the sender fields (TW-T1).
func checkTestPackets(t *testing.T, c capture, tr *transcript, sport, rport uint16, n, size int) {
	t.Helper()
	var tc *TestCrypto
	if ts := tr.mode.TestSecurity(); ts == ModeAuthenticated || ts == ModeEncrypted {
		var err error
		if tc, err = NewTestCrypto(ts, tr.accepts[0].SID, tr.keys); err != nil {
			t.Fatal(err)
		}
	}
	var sent, refl int
	senderTS := map[uint32][]byte{}
	for _, p := range c.udp {
		if len(p.payload) != size {
			t.Errorf("test packet of %d octets, want %d", len(p.payload), size)
			continue
		}
		pl := bytes.Clone(p.payload)
		switch {
		case p.src == sport && p.dst == rport:
			if tc != nil {
				if err := tc.OpenSender(pl); err != nil {
					t.Fatalf("sender packet %d: %v", sent, err)
				}
				// Corrupting one octet of the protected span must break the HMAC.
				bad := bytes.Clone(p.payload)
				bad[5] ^= 1
				if err := tc.OpenSender(bad); !errors.Is(err, ErrHMAC) {
					t.Errorf("corrupted sender packet: %v, want ErrHMAC", err)
				}
			}
			seq := binary.BigEndian.Uint32(pl)
			if seq != uint32(sent) {
				t.Errorf("sender seq %d, want %d", seq, sent)
			}
			tsOff := 4
			if tc != nil {
				tsOff = 16
				if !allZero(pl[4:16]) {
					t.Errorf("sender MBZ not zero after decryption: %x", pl[4:16])
				}
			}
			senderTS[seq] = pl[tsOff : tsOff+8]
			sent++
		case p.src == rport && p.dst == sport:
			if tc != nil {
				if err := tc.OpenReflector(pl); err != nil {
					t.Fatalf("reflector packet %d: %v", refl, err)
				}
			}
			seq := binary.BigEndian.Uint32(pl)
			sseqOff, stsOff, ttlOff := 24, 28, 40
			if tc != nil {
				sseqOff, stsOff, ttlOff = 48, 64, 80
			}
			sseq := binary.BigEndian.Uint32(pl[sseqOff:])
			if seq != uint32(refl) {
				t.Errorf("reflector seq %d, want %d", seq, refl)
			}
			if want, ok := senderTS[sseq]; !ok || !bytes.Equal(want, pl[stsOff:stsOff+8]) {
				t.Errorf("reflector packet %d: sender timestamp not copied for seq %d", refl, sseq)
			}
			if pl[ttlOff] != 255 {
				t.Errorf("sender TTL %d, want 255 on loopback", pl[ttlOff])
			}
			refl++
		}
	}
	if sent != n || refl != n {
		t.Errorf("%d sender / %d reflector packets, want %d each", sent, refl, n)
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if string(want) != got {
		t.Errorf("%s mismatch:\n got:\n%s\nwant:\n%s", name, got, want)
	}
}

// roundTrip re-encodes a decoded (plaintext) client command and requires identical octets:
// the peers send MBZ as zero, so any difference is a layout bug (TW-C2).
func roundTrip(c Command, msg []byte) error {
	var m interface {
		UnmarshalBinary([]byte) error
		AppendTo([]byte) []byte
	}
	switch c {
	case CmdRequestTWSession:
		m = &RequestTWSession{}
	case CmdStartSessions:
		m = &StartSessions{}
	case CmdStopSessions:
		m = &StopSessions{}
	default:
		return fmt.Errorf("%w: %s", ErrCommand, c)
	}
	if err := m.UnmarshalBinary(msg); err != nil {
		return err
	}
	if got := m.AppendTo(nil); !bytes.Equal(got, msg) {
		return fmt.Errorf("%s round trip:\n got %x\nwant %x", c, got, msg)
	}
	return nil
}
