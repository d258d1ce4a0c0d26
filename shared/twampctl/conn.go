package twampctl

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/probekit/probekit/shared/timestamp"
)

// ErrRejected is returned when the peer answers with a non-zero Accept value.
var ErrRejected = errors.New("twamp control: rejected by server")

// ErrAuth is returned by the server handshake when the client's identity is unknown or its
// token does not decrypt with the shared secret.
var ErrAuth = errors.New("twamp control: authentication failed")

// RejectError carries the Accept value of a rejection.
type RejectError struct {
	Msg    string
	Accept Accept
}

func (e *RejectError) Error() string {
	return fmt.Sprintf("twamp control: %s rejected by server: accept=%d (%s)", e.Msg, e.Accept, e.Accept)
}

// Unwrap makes errors.Is(err, ErrRejected) work.
func (e *RejectError) Unwrap() error { return ErrRejected }

// Conn is an established TWAMP-Control connection (either side) after Server-Start: it
// frames, encrypts and authenticates the command/response messages in its Mode.
type Conn struct {
	nc     net.Conn
	mode   Mode
	keys   SessionKeys
	tx, rx *Stream
	buf    []byte
	// StartTime is the server's Server-Start Start-Time (NTP).
	StartTime uint64
	// Identity is the KeyID the client used (secure modes).
	Identity string
}

// Mode returns the mode chosen in Set-Up-Response (including extension bits).
func (c *Conn) Mode() Mode { return c.mode }

// Keys returns the session keys (zero in open mode); test-packet crypto derives from them.
func (c *Conn) Keys() SessionKeys { return c.keys }

// NetConn returns the underlying connection (deadlines, addresses).
func (c *Conn) NetConn() net.Conn { return c.nc }

// Close closes the connection.
func (c *Conn) Close() error { return c.nc.Close() }

func (c *Conn) send(m interface{ AppendTo([]byte) []byte }) error {
	c.buf = m.AppendTo(c.buf[:0])
	if err := c.tx.Seal(c.buf); err != nil {
		return err
	}
	_, err := c.nc.Write(c.buf)
	return err
}

// recv reads n octets, decrypts and authenticates them.
func (c *Conn) recv(n int) ([]byte, error) {
	if cap(c.buf) < n {
		c.buf = make([]byte, n)
	}
	b := c.buf[:n]
	if _, err := io.ReadFull(c.nc, b); err != nil {
		return nil, err
	}
	return b, c.rx.Open(b)
}

// randomBytes fills b from crypto/rand, which since Go 1.24 never returns an error (it
// aborts the process itself if the kernel's generator fails).
func randomBytes(b []byte) { _, _ = rand.Read(b) }

// ClientConfig selects what a Control-Client accepts.
type ClientConfig struct {
	// Modes the client is willing to use (security bits); the strongest offered is chosen:
	// encrypted, authenticated, mixed, then unauthenticated.
	Modes Mode
	// Extensions are extension bits (RFC 5938, 6038, 7750, ...) requested when the server
	// offers them.
	Extensions Mode
	// Identity and Secret are the KeyID and shared secret for modes A, E and M.
	Identity string
	Secret   []byte
}

// ChooseMode picks the strongest security mode both sides allow, plus the offered extensions.
func ChooseMode(offered Mode, cfg ClientConfig) (Mode, error) {
	for _, m := range []Mode{ModeEncrypted, ModeAuthenticated, ModeMixed, ModeUnauthenticated} {
		if offered&m != 0 && cfg.Modes&m != 0 {
			return m | (cfg.Extensions & offered &^ SecurityModes), nil
		}
	}
	return 0, fmt.Errorf("%w: server offers %s, client allows %s", ErrMode, offered.Security(), cfg.Modes.Security())
}

// ClientHandshake runs the client side of connection setup on nc: reads Server-Greeting,
// sends Set-Up-Response, reads Server-Start. The caller sets deadlines on nc.
func ClientHandshake(nc net.Conn, cfg ClientConfig) (*Conn, error) {
	b := make([]byte, SetUpResponseLen)
	if _, err := io.ReadFull(nc, b[:ServerGreetingLen]); err != nil {
		return nil, fmt.Errorf("twamp control: read greeting: %w", err)
	}
	var g ServerGreeting
	if err := g.UnmarshalBinary(b[:ServerGreetingLen]); err != nil {
		return nil, err
	}
	if g.Modes.Security() == 0 {
		return nil, fmt.Errorf("%w: server offers no mode (Modes=%d): it refuses service", ErrRejected, g.Modes)
	}
	mode, err := ChooseMode(g.Modes, cfg)
	if err != nil {
		// RFC 4656: answer with Mode 0 so the server can close cleanly.
		var su SetUpResponse
		_, _ = nc.Write(su.AppendTo(b[:0]))
		return nil, err
	}
	c := &Conn{nc: nc, mode: mode, tx: NewOpenStream(), rx: NewOpenStream(), Identity: cfg.Identity}
	su := SetUpResponse{Mode: mode}
	if mode.Secure() {
		if err := ValidCount(g.Count); err != nil {
			return nil, err
		}
		if len(cfg.Secret) == 0 {
			return nil, fmt.Errorf("twamp control: mode %s needs a shared secret (key file)", mode.Security())
		}
		if err := su.SetIdentity(cfg.Identity); err != nil {
			return nil, err
		}
		randomBytes(c.keys.AES[:])
		randomBytes(c.keys.HMAC[:])
		randomBytes(su.ClientIV[:])
		su.Token = EncryptToken(KDFKey(cfg.Secret, g.Salt, g.Count), g.Challenge, c.keys)
		c.tx = NewSecureStream(c.keys, su.ClientIV)
	}
	if _, err := nc.Write(su.AppendTo(b[:0])); err != nil {
		return nil, fmt.Errorf("twamp control: send set-up-response: %w", err)
	}
	if _, err := io.ReadFull(nc, b[:ServerStartLen]); err != nil {
		return nil, fmt.Errorf("twamp control: read server-start: %w", err)
	}
	var ss ServerStart
	if err := ss.UnmarshalBinary(b[:ServerStartLen]); err != nil {
		return nil, err
	}
	if ss.Accept != AcceptOK {
		msg := "connection"
		if mode.Secure() {
			msg = fmt.Sprintf("connection in %s mode as %q (wrong identity or key?)", mode.Security(), cfg.Identity)
		}
		return nil, &RejectError{Msg: msg, Accept: ss.Accept}
	}
	if mode.Secure() {
		c.rx = NewSecureStream(c.keys, ss.ServerIV)
		blk := b[32:48]
		if err := c.rx.Decrypt(blk); err != nil {
			return nil, err
		}
		_ = ss.UnmarshalBinary(b[:ServerStartLen])
	}
	c.StartTime = ss.StartTime
	return c, nil
}

// RequestSession sends Request-TW-Session and returns the server's Accept-Session. A
// non-zero Accept is returned as a *RejectError together with the message.
func (c *Conn) RequestSession(rq *RequestTWSession) (AcceptSession, error) {
	var as AcceptSession
	if err := c.send(rq); err != nil {
		return as, fmt.Errorf("twamp control: send request-tw-session: %w", err)
	}
	b, err := c.recv(AcceptSessionLen)
	if err != nil {
		return as, fmt.Errorf("twamp control: read accept-session: %w", err)
	}
	if err := as.UnmarshalBinary(b); err != nil {
		return as, err
	}
	if as.Accept != AcceptOK {
		return as, &RejectError{Msg: "Request-TW-Session", Accept: as.Accept}
	}
	return as, nil
}

// StartSessions sends Start-Sessions and waits for Start-Ack.
func (c *Conn) StartSessions() error {
	if err := c.send(&StartSessions{}); err != nil {
		return fmt.Errorf("twamp control: send start-sessions: %w", err)
	}
	b, err := c.recv(StartAckLen)
	if err != nil {
		return fmt.Errorf("twamp control: read start-ack: %w", err)
	}
	var ack StartAck
	if err := ack.UnmarshalBinary(b); err != nil {
		return err
	}
	if ack.Accept != AcceptOK {
		return &RejectError{Msg: "Start-Sessions", Accept: ack.Accept}
	}
	return nil
}

// StopSessions sends Stop-Sessions for n sessions (no reply is defined).
func (c *Conn) StopSessions(n uint32, accept Accept) error {
	if err := c.send(&StopSessions{Accept: accept, NumSessions: n}); err != nil {
		return fmt.Errorf("twamp control: send stop-sessions: %w", err)
	}
	return nil
}

// NSessionsCommand sends an RFC 5938 Start-N-Sessions or Stop-N-Sessions for sids and
// returns the acknowledgement.
func (c *Conn) NSessionsCommand(cmd Command, sids [][16]byte) (NSessions, error) {
	var ack NSessions
	if cmd != CmdStartNSessions && cmd != CmdStopNSessions {
		return ack, fmt.Errorf("%w: %s is not a client N-sessions command", ErrCommand, cmd)
	}
	if err := c.send(&NSessions{Command: cmd, SIDs: sids}); err != nil {
		return ack, fmt.Errorf("twamp control: send %s: %w", cmd, err)
	}
	b, err := c.readNSessions()
	if err != nil {
		return ack, err
	}
	if err := ack.UnmarshalBinary(b); err != nil {
		return ack, err
	}
	if want := cmd + 1; ack.Command != want {
		return ack, fmt.Errorf("%w: got %s, want %s", ErrCommand, ack.Command, want)
	}
	if ack.Accept != AcceptOK {
		return ack, &RejectError{Msg: cmd.String(), Accept: ack.Accept}
	}
	return ack, nil
}

// readNSessions reads a whole N-sessions message: header block first for its count.
func (c *Conn) readNSessions() ([]byte, error) {
	hdr := make([]byte, 16)
	if _, err := io.ReadFull(c.nc, hdr); err != nil {
		return nil, fmt.Errorf("twamp control: read N-sessions: %w", err)
	}
	if err := c.rx.Decrypt(hdr); err != nil {
		return nil, err
	}
	return c.readRest(hdr)
}

func (c *Conn) readRest(hdr []byte) ([]byte, error) {
	n, err := NSessionsCount(hdr)
	if err != nil {
		return nil, err
	}
	msg := make([]byte, NSessionsLen(n))
	copy(msg, hdr)
	if _, err := io.ReadFull(c.nc, msg[16:]); err != nil {
		return nil, fmt.Errorf("twamp control: read N-sessions: %w", err)
	}
	if err := c.rx.Decrypt(msg[16 : len(msg)-HMACLen]); err != nil {
		return nil, err
	}
	if err := c.rx.OpenHMAC(msg[len(msg)-HMACLen:]); err != nil {
		return nil, err
	}
	return msg, nil
}

// ServerConfig selects what a Server offers.
type ServerConfig struct {
	// Modes offered in Server-Greeting (security and extension bits).
	Modes Mode
	// Count is the PBKDF2 iteration count (0 = 2048, owamp's default).
	Count uint32
	// Secret returns the shared secret for an identity, or false if unknown.
	Secret func(identity string) ([]byte, bool)
}

// Refuse tells a client the server will not serve it, as RFC 4656 §3.1 provides: a
// Server-Greeting with Modes 0 ("the server does not wish to communicate"), after which the
// caller closes nc. A client can then report a refusal (ClientHandshake: ErrRejected, "it
// refuses service") instead of an unexplained EOF. The caller sets a write deadline on nc.
func Refuse(nc net.Conn) error {
	var g ServerGreeting
	randomBytes(g.Challenge[:])
	randomBytes(g.Salt[:])
	g.Count = 1024
	if _, err := nc.Write(g.AppendTo(make([]byte, 0, ServerGreetingLen))); err != nil {
		return fmt.Errorf("twamp control: send refusal greeting: %w", err)
	}
	return nil
}

// ServerHandshake runs the server side of connection setup: sends Server-Greeting, reads
// Set-Up-Response, authenticates the client and sends Server-Start. On failure it has
// already told the client (Server-Start with Accept≠0) where the protocol allows.
// It returns ErrAuth (wrapped) for unknown identities or wrong keys, and a nil Conn with
// a nil error when the client abandoned the connection with Mode 0.
func ServerHandshake(nc net.Conn, cfg ServerConfig) (*Conn, error) {
	if cfg.Count == 0 {
		cfg.Count = 2048
	}
	g := ServerGreeting{Modes: cfg.Modes, Count: cfg.Count}
	randomBytes(g.Challenge[:])
	randomBytes(g.Salt[:])
	b := make([]byte, SetUpResponseLen)
	if _, err := nc.Write(g.AppendTo(b[:0])); err != nil {
		return nil, fmt.Errorf("twamp control: send greeting: %w", err)
	}
	if _, err := io.ReadFull(nc, b); err != nil {
		return nil, fmt.Errorf("twamp control: read set-up-response: %w", err)
	}
	var su SetUpResponse
	if err := su.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	if su.Mode == 0 {
		return nil, nil
	}
	reject := func(a Accept, err error) (*Conn, error) {
		ss := ServerStart{Accept: a}
		_, _ = nc.Write(ss.AppendTo(b[:0]))
		return nil, err
	}
	if err := su.Mode.ValidChoice(cfg.Modes); err != nil {
		return reject(AcceptNotSupported, err)
	}
	c := &Conn{nc: nc, mode: su.Mode, tx: NewOpenStream(), rx: NewOpenStream()}
	var ss ServerStart
	if su.Mode.Secure() {
		c.Identity = su.Identity()
		var key []byte
		ok := false
		if cfg.Secret != nil {
			key, ok = cfg.Secret(c.Identity)
		}
		if !ok {
			return reject(AcceptFailure, fmt.Errorf("%w: unknown identity %q", ErrAuth, c.Identity))
		}
		keys, err := DecryptToken(KDFKey(key, g.Salt, g.Count), g.Challenge, su.Token)
		if err != nil {
			return reject(AcceptFailure, fmt.Errorf("%w: identity %q: %w", ErrAuth, c.Identity, err))
		}
		c.keys = keys
		c.rx = NewSecureStream(keys, su.ClientIV)
		randomBytes(ss.ServerIV[:])
		c.tx = NewSecureStream(keys, ss.ServerIV)
	}
	ss.StartTime = uint64(timestamp.NTPFromTime(time.Now()))
	c.StartTime = ss.StartTime
	out := ss.AppendTo(b[:0])
	if err := c.tx.Encrypt(out[32:48]); err != nil {
		return nil, err
	}
	if _, err := nc.Write(out); err != nil {
		return nil, fmt.Errorf("twamp control: send server-start: %w", err)
	}
	return c, nil
}

// ReadCommand reads the next client command, decrypting and authenticating it. For an
// unknown or forbidden command it returns ErrCommand with only the first block read: the
// server answers Accept-Session with Accept=3 and closes (RFC 5357 §3.5).
func (c *Conn) ReadCommand() (Command, []byte, error) {
	hdr := make([]byte, 16)
	if _, err := io.ReadFull(c.nc, hdr); err != nil {
		return 0, nil, err
	}
	if err := c.rx.Decrypt(hdr); err != nil {
		return 0, nil, err
	}
	cmd := Command(hdr[0])
	var n int
	switch cmd {
	case CmdRequestTWSession:
		n = RequestTWSessionLen
	case CmdStartSessions:
		n = StartSessionsLen
	case CmdStopSessions:
		n = StopSessionsLen
	case CmdStartNSessions, CmdStopNSessions:
		msg, err := c.readRest(hdr)
		return cmd, msg, err
	default:
		return cmd, hdr, fmt.Errorf("%w: %s", ErrCommand, cmd)
	}
	msg := make([]byte, n)
	copy(msg, hdr)
	if _, err := io.ReadFull(c.nc, msg[16:]); err != nil {
		return cmd, nil, err
	}
	if err := c.rx.Decrypt(msg[16 : n-HMACLen]); err != nil {
		return cmd, nil, err
	}
	if err := c.rx.OpenHMAC(msg[n-HMACLen:]); err != nil {
		return cmd, nil, fmt.Errorf("%s: %w", cmd, err)
	}
	return cmd, msg, nil
}

// Send encrypts and writes a server message (Accept-Session, Start-Ack, N-acks).
func (c *Conn) Send(m interface{ AppendTo([]byte) []byte }) error { return c.send(m) }
