package server

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/timestamp"
	"github.com/probekit/probekit/shared/twampctl"
)

// rfc6038Packet builds a Session-Sender packet by the RFC 6038 §4.2.1 offsets written out
// here (independently of twampctl's layout helpers): open 0 Seq · 4 Timestamp · 12 EE ·
// [14 MBZ(27) when symmetric] · 14|41 Packet Padding; authenticated/encrypted 0 Seq · 4 MBZ ·
// 16 Timestamp · 24 EE · 26 MBZ · 32 HMAC · [48 MBZ(64) when symmetric] · 48|112 Packet
// Padding. The padding starts with the 2 Server Octets, then a recognisable pattern.
func rfc6038Packet(auth, symmetric bool, seq uint32, serverOctets uint16, pad int) (pkt []byte, padOff int) {
	switch {
	case !auth && !symmetric:
		padOff = 14
	case !auth:
		padOff = 41
	case !symmetric:
		padOff = 48
	default:
		padOff = 112
	}
	pkt = make([]byte, padOff+pad)
	binary.BigEndian.PutUint32(pkt[0:], seq)
	ts := testpkt.Stamp(time.Now(), false)
	ee := timestamp.NewErrorEstimate(false, false, time.Millisecond)
	if auth {
		binary.BigEndian.PutUint64(pkt[16:], ts)
		ee.Put(pkt[24:])
	} else {
		binary.BigEndian.PutUint64(pkt[4:], ts)
		ee.Put(pkt[12:])
	}
	for i := padOff; i < len(pkt); i++ {
		pkt[i] = byte(0xa0 + i)
	}
	if pad >= 2 {
		binary.BigEndian.PutUint16(pkt[padOff:], serverOctets)
	}
	return pkt, padOff
}

// RFC 6038 end to end at the protocol level in every mode: the Modes bits are advertised,
// Accept-Session echoes Octets to be Reflected and sets Server Octets, the reply carries the
// first Length-of-Padding-to-Reflect octets of the sender's padding at 41 (open) or 112
// (authenticated/encrypted), symmetric requests get replies of their own length, and
// sender packets with the wrong Server Octets are counted.
func TestRFC6038ReflectOctets(t *testing.T) {
	ts := startServer(t, Config{})
	for _, m := range []twampctl.Mode{twampctl.ModeUnauthenticated, twampctl.ModeAuthenticated, twampctl.ModeEncrypted, twampctl.ModeMixed} {
		for _, symmetric := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/symmetric=%v", m, symmetric), func(t *testing.T) {
				cfg := clientCfg(m)
				cfg.Extensions = twampctl.ModeReflectOctets
				if symmetric {
					cfg.Extensions |= twampctl.ModeSymmetricalSize
				}
				ctl, err := dial(t, ts.ctl, cfg)
				if err != nil {
					t.Fatal(err)
				}
				if ctl.Mode()&cfg.Extensions != cfg.Extensions {
					t.Fatalf("negotiated %s, want %s", ctl.Mode(), cfg.Extensions)
				}
				auth := m == twampctl.ModeAuthenticated || m == twampctl.ModeEncrypted
				// Padding: the format difference (non-symmetric) plus 20 reflected octets.
				const reflect = 20
				pad := reflect
				if !symmetric {
					pad += 27
					if auth {
						pad = reflect + 64
					}
				}
				local := ctl.NetConn().LocalAddr().(*net.TCPAddr)
				uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: local.IP})
				if err != nil {
					t.Fatal(err)
				}
				defer uc.Close()
				rq := twampctl.RequestTWSession{IPVN: 4, SenderPort: uint16(uc.LocalAddr().(*net.UDPAddr).Port),
					PaddingLength: uint32(pad), Timeout: 1 << 31, OctetsToBeReflected: 0xbeef, PaddingToReflect: reflect}
				// One octet more than the reply can carry is refused (Accept=3).
				big := rq
				big.PaddingToReflect = uint16(reflect + 1)
				var rej *twampctl.RejectError
				if _, err := ctl.RequestSession(&big); err == nil || !errors.As(err, &rej) || rej.Accept != twampctl.AcceptNotSupported {
					t.Fatalf("oversized Length of Padding to Reflect: %v, want accept=3", err)
				}
				as, err := ctl.RequestSession(&rq)
				if err != nil {
					t.Fatal(err)
				}
				if as.ReflectedOctets != 0xbeef || as.ServerOctets == 0 {
					t.Fatalf("Accept-Session Reflected Octets %04x Server Octets %04x, want beef and non-zero", as.ReflectedOctets, as.ServerOctets)
				}
				var tc *twampctl.TestCrypto
				if auth {
					if tc, err = twampctl.NewTestCrypto(m, as.SID, ctl.Keys()); err != nil {
						t.Fatal(err)
					}
				}
				if err := ctl.StartSessions(); err != nil {
					t.Fatal(err)
				}
				remote := &net.UDPAddr{IP: ctl.NetConn().RemoteAddr().(*net.TCPAddr).IP, Port: int(as.Port)}
				buf := make([]byte, 2048)
				for seq := uint32(0); seq < 4; seq++ {
					so := as.ServerOctets
					if seq == 3 {
						so ^= 0xffff // wrong Server Octets: still reflected, counted
					}
					pkt, padOff := rfc6038Packet(auth, symmetric, seq, so, pad)
					want := append([]byte(nil), pkt[padOff:padOff+reflect]...)
					if tc != nil {
						if err := tc.SealSender(pkt); err != nil {
							t.Fatal(err)
						}
					}
					if _, err := uc.WriteToUDP(pkt, remote); err != nil {
						t.Fatal(err)
					}
					_ = uc.SetReadDeadline(time.Now().Add(2 * time.Second))
					n, _, err := uc.ReadFromUDP(buf)
					if err != nil {
						t.Fatalf("seq %d: %v", seq, err)
					}
					reply := buf[:n]
					if tc != nil {
						if err := tc.OpenReflector(reply); err != nil {
							t.Fatalf("reply HMAC: %v", err)
						}
					}
					reflOff, minLen := 41, 41
					if auth {
						reflOff, minLen = 112, 112
					}
					if wantLen := max(len(pkt), minLen); n != wantLen {
						t.Errorf("seq %d: reply %d octets, want %d", seq, n, wantLen)
					}
					if symmetric && n != len(pkt) {
						t.Errorf("symmetrical size: request %d octets, reply %d", len(pkt), n)
					}
					if got := reply[reflOff : reflOff+reflect]; !bytes.Equal(got, want) {
						t.Errorf("seq %d: reflected octets at %d = %x, want %x", seq, reflOff, got, want)
					}
					var rp testpkt.ReflectedPacket
					rp.Mode = testpkt.ModeUnauthenticated
					if auth {
						rp.Mode = testpkt.ModeTWAMPAuthenticated
					}
					if err := rp.UnmarshalBinary(reply); err != nil || rp.SenderSeq != seq || rp.Seq != seq {
						t.Errorf("seq %d: reply %+v %v", seq, rp, err)
					}
				}
				var r6 *Reflect6038Status
				for _, ss := range ts.Status().Sessions {
					if ss.SID == fmt.Sprintf("%x", as.SID) {
						r6 = ss.RFC6038
					}
				}
				if r6 == nil || r6.ServerOctetsMismatches != 1 || r6.RepliesReflected != 4 || r6.PaddingReflected != reflect ||
					r6.ServerOctets != fmt.Sprintf("%04x", as.ServerOctets) {
					t.Errorf("status RFC 6038 accounting %+v, want 1 mismatch, 4 replies, %d octets, server octets %04x", r6, reflect, as.ServerOctets)
				}
				if err := ctl.StopSessions(1, twampctl.AcceptOK); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// Without the Reflect Octets mode, RFC 6038 fields stay zero in Accept-Session.
func TestRFC6038NotNegotiated(t *testing.T) {
	ts := startServer(t, Config{})
	ctl, err := dial(t, ts.ctl, clientCfg(twampctl.ModeUnauthenticated))
	if err != nil {
		t.Fatal(err)
	}
	if ctl.Mode() != twampctl.ModeUnauthenticated {
		t.Fatalf("mode %s", ctl.Mode())
	}
	_, as := newSender(t, ctl, 27, 0)
	if as.ReflectedOctets != 0 || as.ServerOctets != 0 {
		t.Errorf("Accept-Session RFC 6038 fields %04x/%04x without the mode", as.ReflectedOctets, as.ServerOctets)
	}
}
