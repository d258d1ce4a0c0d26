package reflector

import (
	"encoding/binary"
	"errors"
	"hash/maphash"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
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
	// received (decrypted in encrypted modes). It holds no lock and may run concurrently for
	// one session when several workers share a socket: keep it short, allocation-free and
	// safe for concurrent use.
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
// by the first valid packet and expire when idle, or give way to a newcomer when the table is
// full and they are the least recently used.
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

	created time.Time

	// guarded by the shard's lock
	lastSeen   int64 // Unix ns of the latest packet
	prev, next *Session

	// guarded by mu: per-session state, locked only for the few field updates of one packet
	// (never across TLV or HMAC work), so workers serving other sessions never wait for it.
	mu      sync.Mutex
	seq     uint32 // next reflector sequence number (stateful)
	rx, tx  uint32 // Direct Measurement counters
	prevSeq uint32 // latest reply, for Follow-Up Telemetry
	prevT3  uint64
	hasPrev bool
	replay  replayWindow
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

// ErrTableFull is returned by Provision when the table holds its limit of sessions and none
// of them is a learned one that could make room.
var ErrTableFull = errors.New("reflector: session table full")

// ErrExists is returned by Provision for a key that is already provisioned.
var ErrExists = errors.New("reflector: session already provisioned")

// numShards splits the table so workers looking up different sessions rarely share a lock;
// each lock is held only for a map access and a list move.
const numShards = 64

type shard struct {
	mu sync.Mutex
	m  map[SessionKey]*Session
	// Learned sessions, most recently used first (provisioned ones are not listed).
	head, tail *Session
	_          [32]byte
}

// Table holds the sessions of one or more reflector sockets. Lookups lock one of numShards
// shards; a session's own state has its own lock.
type Table struct {
	seed    uint64
	shards  [numShards]shard
	max     int
	dynamic atomic.Int64 // learned sessions (reserved before insertion)
	prov    atomic.Int64 // provisioned sessions
	total   atomic.Int64
}

// DefaultMaxSessions bounds the learned sessions of a table when no limit is given
// (at most 65536 × SessionBytes = 32 MiB of session state).
const DefaultMaxSessions = 65536

// SessionBytes bounds the memory one learned session costs (the Session and its share of the
// table's maps; TestSessionBytes measures it).
const SessionBytes = 512

// NewTable returns an empty table limited to max sessions, learned and provisioned together
// (DefaultMaxSessions when max ≤ 0), so provisioning cannot raise the memory bound. When it
// is full, a new learned session replaces the least recently used learned one (a table full
// of provisioned sessions refuses it); Provision refuses a new key with ErrTableFull, so the
// operator's provisioning never evicts a sender that is measuring.
func NewTable(max int) *Table {
	if max <= 0 {
		max = DefaultMaxSessions
	}
	t := &Table{seed: maphash.Comparable(maphash.MakeSeed(), 0), max: max}
	for i := range t.shards {
		t.shards[i].m = make(map[SessionKey]*Session)
	}
	return t
}

// Max returns the session limit (learned plus provisioned).
func (t *Table) Max() int { return t.max }

func (t *Table) shard(k *SessionKey) *shard {
	// A multiply-xorshift mix of the key's words under a per-table seed: cheaper than a
	// general hash, and a sender cannot aim all its sessions at one shard without the seed.
	p, l := k.Peer.Addr().As16(), k.Local.Addr().As16()
	h := t.seed
	h = mix(h ^ binary.LittleEndian.Uint64(p[:8]))
	h = mix(h ^ binary.LittleEndian.Uint64(p[8:]))
	h = mix(h ^ binary.LittleEndian.Uint64(l[8:]) ^ uint64(k.Peer.Port())<<32 ^ uint64(k.Local.Port())<<16 ^ uint64(k.SSID))
	return &t.shards[h%numShards]
}

func mix(h uint64) uint64 {
	h *= 0x9E3779B97F4A7C15
	return h ^ h>>29
}

func (sh *shard) unlink(s *Session) {
	if s.prev != nil {
		s.prev.next = s.next
	} else if sh.head == s {
		sh.head = s.next
	}
	if s.next != nil {
		s.next.prev = s.prev
	} else if sh.tail == s {
		sh.tail = s.prev
	}
	s.prev, s.next = nil, nil
}

func (sh *shard) pushFront(s *Session) {
	s.prev, s.next = nil, sh.head
	if sh.head != nil {
		sh.head.prev = s
	}
	sh.head = s
	if sh.tail == nil {
		sh.tail = s
	}
}

// lookup returns the session for k (nil if none) and marks it used at now.
func (t *Table) lookup(k *SessionKey, now int64) *Session {
	sh := t.shard(k)
	sh.mu.Lock()
	s := sh.m[*k]
	if s != nil {
		s.lastSeen = now
		if !s.Provisioned && sh.head != s {
			sh.unlink(s)
			sh.pushFront(s)
		}
	}
	sh.mu.Unlock()
	return s
}

// learn returns the session for k, creating a learned one when there is none. When the table
// is full the least recently used learned session makes room (evicted is true); ok is false
// when there was none to evict.
func (t *Table) learn(k *SessionKey, format Format, mode testpkt.Mode, now time.Time) (s *Session, evicted, ok bool) {
	ns := now.UnixNano()
	if t.dynamic.Add(1)+t.prov.Load() > int64(t.max) {
		if !t.evictLRU() {
			t.dynamic.Add(-1)
			return nil, false, false
		}
		evicted = true
	}
	s = &Session{Key: *k, Format: format, Mode: mode, created: now, lastSeen: ns}
	sh := t.shard(k)
	sh.mu.Lock()
	if cur := sh.m[*k]; cur != nil { // created meanwhile by another worker
		cur.lastSeen = ns
		sh.mu.Unlock()
		t.dynamic.Add(-1)
		return cur, evicted, true
	}
	sh.m[*k] = s
	sh.pushFront(s)
	sh.mu.Unlock()
	t.total.Add(1)
	return s, evicted, true
}

// evictLRU removes the learned session used least recently (the oldest of the shards' list
// tails) and reports whether there was one.
func (t *Table) evictLRU() bool {
	for try := 0; try < 4; try++ {
		var best *shard
		var oldest int64
		for i := range t.shards {
			sh := &t.shards[i]
			sh.mu.Lock()
			if sh.tail != nil && (best == nil || sh.tail.lastSeen < oldest) {
				best, oldest = sh, sh.tail.lastSeen
			}
			sh.mu.Unlock()
		}
		if best == nil {
			return false
		}
		best.mu.Lock()
		if s := best.tail; s != nil {
			best.unlink(s)
			delete(best.m, s.Key)
			best.mu.Unlock()
			t.dynamic.Add(-1)
			t.total.Add(-1)
			return true
		}
		best.mu.Unlock()
	}
	return false
}

// Provision adds (or replaces, when replace is set) an operator-provisioned session. The
// Session's state starts fresh; its sequence counter starts at 0 (B-12). A new key is
// refused with ErrTableFull when the table holds Max sessions, learned and provisioned.
func (t *Table) Provision(s *Session, replace bool) error {
	sh := t.shard(&s.Key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	old, ok := sh.m[s.Key]
	if !ok && t.prov.Load()+t.dynamic.Load() >= int64(t.max) {
		return ErrTableFull
	}
	if ok {
		if old.Provisioned && !replace {
			return ErrExists
		}
		if !old.Provisioned {
			sh.unlink(old)
			t.dynamic.Add(-1)
		} else {
			t.prov.Add(-1)
		}
		t.total.Add(-1)
	}
	t.prov.Add(1)
	s.Provisioned = true
	s.created = time.Now()
	s.prev, s.next = nil, nil
	s.mu.Lock()
	s.seq, s.rx, s.tx, s.hasPrev, s.replay = 0, 0, 0, false, replayWindow{}
	s.mu.Unlock()
	sh.m[s.Key] = s
	t.total.Add(1)
	return nil
}

// Remove deletes a session and reports whether it existed.
func (t *Table) Remove(k SessionKey) bool {
	sh := t.shard(&k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s, ok := sh.m[k]
	if ok {
		if !s.Provisioned {
			sh.unlink(s)
			t.dynamic.Add(-1)
		} else {
			t.prov.Add(-1)
		}
		delete(sh.m, k)
		t.total.Add(-1)
	}
	return ok
}

// LastSeen returns when the session k last received a test packet (zero before its first)
// and whether it exists. It takes the session's shard lock: for control paths, not per packet.
func (t *Table) LastSeen(k SessionKey) (time.Time, bool) {
	sh := t.shard(&k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s, ok := sh.m[k]
	if !ok || s.lastSeen == 0 {
		return time.Time{}, ok
	}
	return time.Unix(0, s.lastSeen), true
}

// Len returns the number of sessions.
func (t *Table) Len() int { return int(t.total.Load()) }

// Learned returns the number of learned (not provisioned) sessions.
func (t *Table) Learned() int { return int(t.dynamic.Load()) }

// Snapshot lists the sessions sorted by peer, local address and SSID.
func (t *Table) Snapshot() []SessionInfo {
	out := make([]SessionInfo, 0, t.Len())
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for _, s := range sh.m {
			si := SessionInfo{
				Peer: s.Key.Peer.String(), Local: s.Key.Local.String(), SSID: s.Key.SSID,
				Format: s.Format.String(), Mode: s.Mode.String(), Provisioned: s.Provisioned, Created: s.created,
			}
			if s.lastSeen != 0 {
				si.LastSeen = time.Unix(0, s.lastSeen)
			}
			s.mu.Lock()
			si.Received, si.Reflected, si.NextSeq = s.rx, s.tx, s.seq
			s.mu.Unlock()
			out = append(out, si)
		}
		sh.mu.Unlock()
	}
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
	c := cutoff.UnixNano()
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for s := sh.tail; s != nil && s.lastSeen < c; s = sh.tail {
			sh.unlink(s)
			delete(sh.m, s.Key)
			t.dynamic.Add(-1)
			t.total.Add(-1)
			n++
		}
		sh.mu.Unlock()
	}
	return n
}

// replayWindow remembers which of the latest replayWindowSize sender sequence numbers of an
// authenticated session were answered (RFC 4303 §3.4.3 style): a number already seen, or
// older than the window, is a replay.
type replayWindow struct {
	top  uint32 // highest sequence number accepted
	bits uint64 // bit i: top−i was accepted
	used bool
}

const replayWindowSize = 64

// check reports whether seq is fresh and, if so, records it.
func (w *replayWindow) check(seq uint32) bool {
	if !w.used {
		w.used, w.top, w.bits = true, seq, 1
		return true
	}
	if d := seq - w.top; d != 0 && d < 1<<31 { // ahead of top (serial arithmetic)
		if d >= replayWindowSize {
			w.bits = 1
		} else {
			w.bits = w.bits<<d | 1
		}
		w.top = seq
		return true
	}
	back := w.top - seq
	if back >= replayWindowSize || w.bits&(1<<back) != 0 {
		return false
	}
	w.bits |= 1 << back
	return true
}
