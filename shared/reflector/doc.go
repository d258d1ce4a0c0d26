// Package reflector is the STAMP / TWAMP-Test Session-Reflector data path shared by stampref
// and twampd: batched recvmmsg/sendmmsg, the kernel receive timestamp as T2, T3 taken as late
// as possible, per-session state keyed by 4-tuple and SSID, stateless or stateful sequence
// numbers, symmetric reply size, TTL copy and the RFC 8972 TLV rules, without allocating per
// packet.
//
// A Reflector holds the configuration, the session Table, the default key and the Stats; Serve
// (or Run for several sockets) drives one udpsock.Conn each; Worker.Reflect is the per-packet
// core, usable without sockets (tests, fuzzing).
//
// Embedding daemons plug in through the Table: twampd provisions each control-negotiated
// session with Format FormatTWAMP, its layout (testpkt.Mode), an Authenticator for TWAMP's
// HMAC-SHA1/AES, its Type-P DSCP, RFC 7750 monitoring (Session.SenderDSCPECN) and an RFC 6038
// ReplyHook, serves each session's socket with ServeWith and ServeOptions.Idle (REFWAIT), and
// runs the reflector with Config.ProvisionedOnly so only negotiated sessions are answered.
//
// Scaling: the session table has 64 shards whose locks cover a map lookup and an LRU move;
// each session's few state fields have their own lock, taken briefly twice per packet and
// never across TLV or HMAC work; counters are per worker (Stats slots) and summed on read.
// Several workers serve one socket (Config.Workers, ServeOptions.Workers) or one
// SO_REUSEPORT socket each (udpsock.ListenGroup with Run).
//
// Limits a remote sender cannot lift (issue 11): sessions, learned and provisioned together, are
// bounded (MaxSessions, DefaultMaxSessions = 65536, each at most SessionBytes = 512 bytes of heap, so 32 MiB); a
// full table evicts its least recently used learned session for a newcomer (Stats.Evicted),
// so flooding it locks nobody out, and a new session needs a token of its source prefix
// (IPv4 /24, IPv6 /64; 100 per second, bursts of 1000 by default; DropRateLimited). The
// limiters are fixed-size hashed token-bucket arrays: spoofed sources cannot grow them.
// Warnings about refusals and evictions are logged at most once per 10 s with a count.
//
// Authenticated sessions in stateful mode keep a replay window of 64 sender sequence
// numbers: a number already answered, or more than 64 behind the highest, is dropped
// (DropReplay) before any state changes. Stateless mode keeps no per-session state and so
// cannot tell a replay from the original: it answers every copy that carries a valid HMAC;
// only a key change (SIGHUP) invalidates captured packets there.
//
// Reply size: a reply is never longer than its request except where the layouts require it
// (an unauthenticated STAMP reply is 44 octets and answers requests from 14 octets, RFC 8762
// §4.6; a TWAMP open reply is 41). Those replies are limited to ShortReplyRate per source
// address (1000 per second, bursts of 1000: at most 44 kB/s towards any one address;
// DropAmplification), or refused with StrictSize. Provisioned sessions (operator, TWAMP-
// Control) are exempt.
package reflector
