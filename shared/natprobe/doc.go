// Package natprobe discovers how a NAT treats a UDP socket and answers the STUN requests that
// discovery sends: STUN (RFC 8489) Binding on the measurement socket itself, demultiplexed from
// the measurement protocol by the magic cookie, RFC 5780 mapping and filtering tests when the
// server offers OTHER-ADDRESS (else the mappings seen by several servers are compared), and a
// hairpin test.
//
// # Server side
//
// IsSTUN tells a STUN message from a PtP packet (a PtP packet starts with version byte 1, a STUN
// message with two zero bits and carries the cookie 0x2112A442 at offset 4). Responder answers a
// Binding request with XOR-MAPPED-ADDRESS (RFC 8489), MAPPED-ADDRESS (RFC 3489 clients) and,
// when an alternate address is configured, OTHER-ADDRESS and RESPONSE-ORIGIN (RFC 5780); it
// says from which of the server's addresses the answer must leave when the request carries
// CHANGE-REQUEST. Without an alternate address a CHANGE-REQUEST is refused with 420 Unknown
// Attribute, as RFC 5780 §6.1 asks of servers that cannot honour it, so clients never mistake
// a reply from the same address for a changed one. Server wraps a Responder around the
// caller's main socket and opens the three extra sockets RFC 5780 needs (IP1:P2, IP2:P1,
// IP2:P2).
//
// # Client side
//
// Prober sends requests through the caller's socket (a SendFunc) and is fed every received STUN
// message by the caller's read loop (Prober.Handle), so the mapping it learns is the mapping of
// the socket the measurement uses. Discover runs the tests and returns a Result with the
// mapping, filtering and hairpin behaviour, the public address and a reason in words for each.
//
// The filtering tests run before the mapping tests: the mapping tests contact the alternate
// address, after which a port-restricted NAT lets the alternate address's answers in and would
// look endpoint-independent (the "filtering test bias" RFC 5780 §4.4 warns about).
package natprobe
