package reflector

import (
	"errors"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/probekit/probekit/shared/testpkt"
)

// Format says which protocol's rules a session follows.
type Format uint8

const (
	// FormatSTAMP applies RFC 8762/8972: SSID copied, TLVs processed.
	FormatSTAMP Format = iota
	// FormatTWAMP applies RFC 5357 TWAMP-Test: no SSID, octets after the base copied as
	// padding, no TLV processing, and open-mode replies of max(request, 41) octets (the
	// reflector layout without STAMP's 3 trailing MBZ octets).
	FormatTWAMP
)

// String returns "stamp" or "twamp".
func (f Format) String() string {
	if f == FormatTWAMP {
		return "twamp"
	}
	return "stamp"
}

// SessionKey identifies a test session: the sender's address and port, the reflector's local
// address and port, and the SSID. TWAMP sessions have SSID 0.
type SessionKey struct {
	Peer  netip.AddrPort
	Local netip.AddrPort
	SSID  uint16
}

// Authenticator verifies and seals the test packets of an authenticated session. STAMP uses
// HMAC-SHA-256/128 (see NewSTAMPAuth); an embedding daemon such as twampd supplies its own for
// TWAMP's HMAC-SHA1 and AES. Authenticators of one session are only used by the goroutine
// serving that session's socket.
type Authenticator interface {
	// Open verifies (and, for encrypted modes, decrypts in place) a received test packet. A
	// false result drops the packet before any state changes (B-19).
	Open(pkt []byte) bool
	// Seal signs (and encrypts) a reply in place, after every field, T3 included, is final.
	Seal(pkt []byte)
}

// ReplyHook completes the replies of a session with what only the embedding daemon knows,
// such as TWAMP's RFC 6038 reflected octets, which twampctl's negotiated layout places.
type ReplyHook interface {
	// Reply is called once per reply with the reply at its final length (every field
	// written except T3 and the Authenticator's seal, which follow) and the request as
	// received (decrypted in encrypted modes). It runs under the session table's lock:
	// keep it short, allocation-free, and do not call the Reflector's Table from it.
	Reply(reply, req []byte)
}

// STAMPAuth is the STAMP authenticated-mode Authenticator.
type STAMPAuth struct{ s *testpkt.Signer }

// NewSTAMPAuth returns an Authenticator for STAMP HMAC-SHA-256/128 under key.
func NewSTAMPAuth(key []byte) *STAMPAuth { return &STAMPAuth{s: testpkt.NewSigner(key)} }

// Open verifies the base HMAC over the first 96 octets.
func (a *STAMPAuth) Open(pkt []byte) bool { return a.s.Verify(pkt) }

// Seal writes the base HMAC.
func (a *STAMPAuth) Seal(pkt []byte) { a.s.Sign(pkt) }

// Signer returns the underlying signer (for the HMAC TLV).
func (a *STAMPAuth) Signer() *testpkt.Signer { return a.s }

// Session is the reflector's state for one test session. Provisioned sessions are created by
// the operator (or by twampd after control negotiation) and never expire; others are created
// by the first valid packet and expire when idle.
type Session struct {
	Key SessionKey
	// Format and Mode select the rules and the packet layout.
	Format Format
	Mode   testpkt.Mode
	// Auth verifies/seals packets in authenticated modes; nil means the reflector's default
	// STAMP key.
	Auth Authenticator
	// DSCP, when non-zero, is the DSCP every reply of the session carries (TWAMP Type-P)
	// unless a Class of Service TLV asks for another.
	DSCP int
	// SenderDSCPECN (TWAMP, RFC 7750) writes the received DSCP/ECN byte into each reply's
	// "Sender DSCP and ECN" octet right after Sender TTL: offset 41 in the open layout, whose
	// replies are then at least 42 octets, or 81 in the authenticated one, inside the HMAC
	// and encryption span (the engine writes it before Auth.Seal).
	SenderDSCPECN bool
	// Hook, when set, completes each reply of the session (twampd's RFC 6038 reflected
	// octets).
	Hook ReplyHook
	// Provisioned sessions are never expired and are listed as such.
	Provisioned bool

	// state, guarded by the Table's lock
	created  time.Time
	lastSeen time.Time
	seq      uint32 // next reflector sequence number (stateful)
	rx, tx   uint32 // Direct Measurement counters
	prevSeq  uint32 // previous reply, for Follow-Up Telemetry
	prevT3   uint64
	hasPrev  bool
	hmacTLV  *testpkt.Signer
}

// SessionInfo is a snapshot of a session for monitoring.
type SessionInfo struct {
	Peer        string    `json:"peer"`
	Local       string    `json:"local"`
	SSID        uint16    `json:"ssid"`
	Format      string    `json:"format"`
	Mode        string    `json:"mode"`
	Provisioned bool      `json:"provisioned"`
	Received    uint32    `json:"received"`
	Reflected   uint32    `json:"reflected"`
	NextSeq     uint32    `json:"next_seq"`
	Created     time.Time `json:"created"`
	LastSeen    time.Time `json:"last_seen,omitzero"`
}

// ErrTableFull is returned by Provision when MaxSessions sessions exist.
var ErrTableFull = errors.New("reflector: session table full")

// ErrExists is returned by Provision for a key that is already provisioned.
var ErrExists = errors.New("reflector: session already provisioned")

// Table holds the sessions of one or more reflector sockets.
type Table struct {
	mu       sync.Mutex
	sessions map[SessionKey]*Session
	max      int
	dynamic  int // sessions that are not provisioned
}

// NewTable returns an empty table limited to max learned sessions (0 = unlimited).
// Provisioned sessions do not count against the limit.
func NewTable(max int) *Table {
	return &Table{sessions: make(map[SessionKey]*Session), max: max}
}

// Provision adds (or replaces, when replace is set) an operator-provisioned session. The
// Session's state starts fresh; its sequence counter starts at 0 (B-12).
func (t *Table) Provision(s *Session, replace bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.sessions[s.Key]; ok {
		if old.Provisioned && !replace {
			return ErrExists
		}
		if !old.Provisioned {
			t.dynamic--
		}
	}
	s.Provisioned = true
	s.created = time.Now()
	s.seq, s.rx, s.tx, s.hasPrev = 0, 0, 0, false
	t.sessions[s.Key] = s
	return nil
}

// Remove deletes a session and reports whether it existed.
func (t *Table) Remove(k SessionKey) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.sessions[k]
	if ok {
		if !s.Provisioned {
			t.dynamic--
		}
		delete(t.sessions, k)
	}
	return ok
}

// Len returns the number of sessions.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.sessions)
}

// Snapshot lists the sessions sorted by peer, local address and SSID.
func (t *Table) Snapshot() []SessionInfo {
	t.mu.Lock()
	out := make([]SessionInfo, 0, len(t.sessions))
	for _, s := range t.sessions {
		out = append(out, SessionInfo{
			Peer: s.Key.Peer.String(), Local: s.Key.Local.String(), SSID: s.Key.SSID,
			Format: s.Format.String(), Mode: s.Mode.String(), Provisioned: s.Provisioned,
			Received: s.rx, Reflected: s.tx, NextSeq: s.seq, Created: s.created, LastSeen: s.lastSeen,
		})
	}
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Peer != b.Peer {
			return a.Peer < b.Peer
		}
		if a.Local != b.Local {
			return a.Local < b.Local
		}
		return a.SSID < b.SSID
	})
	return out
}

// Expire removes learned sessions idle since before cutoff and returns how many it removed.
func (t *Table) Expire(cutoff time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for k, s := range t.sessions {
		if !s.Provisioned && s.lastSeen.Before(cutoff) {
			delete(t.sessions, k)
			t.dynamic--
			n++
		}
	}
	return n
}
