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
package reflector
