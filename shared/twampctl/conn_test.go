package twampctl

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func pipeHandshake(t *testing.T, srv ServerConfig, cli ClientConfig) (*Conn, *Conn, error, error) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	_ = a.SetDeadline(time.Now().Add(10 * time.Second))
	_ = b.SetDeadline(time.Now().Add(10 * time.Second))
	type res struct {
		c   *Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ServerHandshake(a, srv)
		if err != nil {
			a.Close() // as a server does, so the client's read fails instead of hanging
		}
		ch <- res{c, err}
	}()
	cc, cerr := ClientHandshake(b, cli)
	if cerr != nil {
		b.Close()
	}
	r := <-ch
	return r.c, cc, r.err, cerr
}

func keys(id string) func(string) ([]byte, bool) {
	return func(s string) ([]byte, bool) {
		if s == id {
			return []byte("testsecret"), true
		}
		return nil, false
	}
}

// Client and server exchange every command in every security mode (TW-C8).
func TestConnAllModes(t *testing.T) {
	all := SecurityModes | ModeIndividualSessionControl
	for _, m := range []Mode{ModeUnauthenticated, ModeAuthenticated, ModeEncrypted, ModeMixed} {
		t.Run(m.String(), func(t *testing.T) {
			s, c, serr, cerr := pipeHandshake(t, ServerConfig{Modes: all, Count: 1024, Secret: keys("alice")},
				ClientConfig{Modes: m, Extensions: ModeIndividualSessionControl | ModeReflectOctets, Identity: "alice", Secret: []byte("testsecret")})
			if serr != nil || cerr != nil {
				t.Fatalf("handshake: server %v, client %v", serr, cerr)
			}
			if c.Mode() != m|ModeIndividualSessionControl || s.Mode() != c.Mode() {
				t.Fatalf("modes client %s server %s", c.Mode(), s.Mode())
			}
			if s.Keys() != c.Keys() || s.StartTime != c.StartTime || c.StartTime == 0 {
				t.Fatal("keys or start time differ")
			}
			done := make(chan error, 1)
			go func() {
				done <- func() error {
					for i := 0; i < 5; i++ {
						cmd, msg, err := s.ReadCommand()
						if err != nil {
							return err
						}
						switch cmd {
						case CmdRequestTWSession:
							var rq RequestTWSession
							if err := rq.UnmarshalBinary(msg); err != nil {
								return err
							}
							if err := s.Send(&AcceptSession{Port: rq.ReceiverPort + 1, SID: [16]byte{1}}); err != nil {
								return err
							}
						case CmdStartSessions:
							if err := s.Send(&StartAck{}); err != nil {
								return err
							}
						case CmdStartNSessions, CmdStopNSessions:
							var n NSessions
							if err := n.UnmarshalBinary(msg); err != nil {
								return err
							}
							if err := s.Send(&NSessions{Command: cmd + 1, SIDs: n.SIDs}); err != nil {
								return err
							}
						case CmdStopSessions:
							var st StopSessions
							if err := st.UnmarshalBinary(msg); err != nil {
								return err
							}
							if st.NumSessions != 1 {
								return errors.New("wrong session count")
							}
						}
					}
					return nil
				}()
			}()
			as, err := c.RequestSession(&RequestTWSession{IPVN: 4, ReceiverPort: 5000})
			if err != nil || as.Port != 5001 {
				t.Fatalf("request: %+v %v", as, err)
			}
			if err := c.StartSessions(); err != nil {
				t.Fatal(err)
			}
			if ack, err := c.NSessionsCommand(CmdStartNSessions, [][16]byte{{1}, {2}}); err != nil || len(ack.SIDs) != 2 {
				t.Fatalf("start-n: %+v %v", ack, err)
			}
			if _, err := c.NSessionsCommand(CmdStopNSessions, [][16]byte{{1}}); err != nil {
				t.Fatal(err)
			}
			if err := c.StopSessions(1, AcceptOK); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatalf("server: %v", err)
			}
		})
	}
}

// A wrong key or unknown identity fails on both sides with clear errors.
func TestConnWrongKey(t *testing.T) {
	for _, tc := range []struct{ id, secret string }{{"alice", "wrong"}, {"mallory", "testsecret"}} {
		_, _, serr, cerr := pipeHandshake(t, ServerConfig{Modes: SecurityModes, Count: 1024, Secret: keys("alice")},
			ClientConfig{Modes: ModeEncrypted, Identity: tc.id, Secret: []byte(tc.secret)})
		if !errors.Is(serr, ErrAuth) {
			t.Errorf("%s: server err %v, want ErrAuth", tc.id, serr)
		}
		var rej *RejectError
		if !errors.As(cerr, &rej) || rej.Accept != AcceptFailure {
			t.Errorf("%s: client err %v, want RejectError accept=1", tc.id, cerr)
		}
	}
}

func TestConnModeMismatch(t *testing.T) {
	s, _, serr, cerr := pipeHandshake(t, ServerConfig{Modes: ModeUnauthenticated}, ClientConfig{Modes: ModeEncrypted})
	if !errors.Is(cerr, ErrMode) || s != nil || serr != nil {
		t.Fatalf("client %v, server %v %v", cerr, s, serr)
	}
	_, _, _, cerr = pipeHandshake(t, ServerConfig{Modes: 0}, ClientConfig{Modes: ModeUnauthenticated})
	if !errors.Is(cerr, ErrRejected) {
		t.Fatalf("modes 0: %v", cerr)
	}
	_, _, _, cerr = pipeHandshake(t, ServerConfig{Modes: ModeEncrypted, Secret: keys("a")}, ClientConfig{Modes: ModeEncrypted, Identity: "a"})
	if cerr == nil {
		t.Fatal("encrypted mode without secret accepted")
	}
}

func TestConnUnknownCommand(t *testing.T) {
	s, c, serr, cerr := pipeHandshake(t, ServerConfig{Modes: ModeUnauthenticated}, ClientConfig{Modes: ModeUnauthenticated})
	if serr != nil || cerr != nil {
		t.Fatal(serr, cerr)
	}
	go func() { _, _ = c.NetConn().Write(append([]byte{byte(CmdForbidden)}, make([]byte, 31)...)) }()
	cmd, _, err := s.ReadCommand()
	if cmd != CmdForbidden || !errors.Is(err, ErrCommand) {
		t.Fatalf("cmd %s err %v", cmd, err)
	}
}

// The client side accepts what perfSONAR's twampd really sent (open-mode captures replayed
// as the server), and sends messages of the sizes twping sent.
func TestClientAgainstOwampServerBytes(t *testing.T) {
	for _, name := range []string{"twamp-owamp-open.pcap", "twamp-owamp-ipv6.pcap", "twamp-twamp-protocol-client-vs-owamp.pcap"} {
		c := readCapture(t, name)
		a, b := net.Pipe()
		_ = a.SetDeadline(time.Now().Add(5 * time.Second))
		_ = b.SetDeadline(time.Now().Add(5 * time.Second))
		sent := make(chan []byte, 1)
		go func() {
			// Replay the server's stream, reading the client's messages in between as twampd did.
			var got []byte
			s := c.s2c
			step := func(serverBytes, clientBytes int) bool {
				if serverBytes > 0 {
					if _, err := b.Write(s[:serverBytes]); err != nil {
						return false
					}
					s = s[serverBytes:]
				}
				buf := make([]byte, clientBytes)
				if _, err := io.ReadFull(b, buf); err != nil {
					return false
				}
				got = append(got, buf...)
				return true
			}
			_ = step(ServerGreetingLen, SetUpResponseLen) &&
				step(ServerStartLen, RequestTWSessionLen) &&
				step(AcceptSessionLen, StartSessionsLen) &&
				step(StartAckLen, StopSessionsLen)
			sent <- got
			b.Close()
		}()
		cl, err := ClientHandshake(a, ClientConfig{Modes: ModeUnauthenticated})
		if err != nil {
			t.Fatalf("%s: handshake: %v", name, err)
		}
		as, err := cl.RequestSession(&RequestTWSession{IPVN: 4, SenderPort: 1000, ReceiverPort: 1000, PaddingLength: 27})
		if err != nil {
			t.Fatalf("%s: request: %v", name, err)
		}
		if err := cl.StartSessions(); err != nil {
			t.Fatalf("%s: start: %v", name, err)
		}
		if err := cl.StopSessions(1, AcceptOK); err != nil {
			t.Fatalf("%s: stop: %v", name, err)
		}
		got := <-sent
		if len(got) != len(c.c2s) {
			t.Errorf("%s: client sent %d octets, twping %d", name, len(got), len(c.c2s))
		}
		var want AcceptSession
		_ = want.UnmarshalBinary(c.s2c[ServerGreetingLen+ServerStartLen : ServerGreetingLen+ServerStartLen+AcceptSessionLen])
		if as.Port != want.Port || as.SID != want.SID {
			t.Errorf("%s: accept %d %x, capture %d %x", name, as.Port, as.SID, want.Port, want.SID)
		}
		a.Close()
	}
}
