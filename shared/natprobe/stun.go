package natprobe

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"

	"github.com/pion/stun/v3"
)

// MagicCookie is the fixed value at offset 4 of every RFC 5389/8489 STUN message.
const MagicCookie = 0x2112A442

// headerSize is the STUN message header length (type, length, cookie, transaction ID).
const headerSize = 20

// CHANGE-REQUEST flags (RFC 5780 §7.2).
const (
	ChangeIP   Change = 0x04
	ChangePort Change = 0x02
)

// Change is the value of a CHANGE-REQUEST attribute: which of the server's address and port
// the answer must come from instead of the ones the request was sent to.
type Change uint8

// Sentinel errors.
var (
	// ErrNotSTUN reports bytes that are not a STUN message.
	ErrNotSTUN = errors.New("natprobe: not a STUN message")
	// ErrNotBindingRequest reports a STUN message the responder does not answer (a response,
	// an indication or another method).
	ErrNotBindingRequest = errors.New("natprobe: not a Binding request")
	// ErrTimeout reports a request that got no answer in time.
	ErrTimeout = errors.New("natprobe: no STUN response")
	// ErrNoMappedAddress reports a response without XOR-MAPPED-ADDRESS or MAPPED-ADDRESS.
	ErrNoMappedAddress = errors.New("natprobe: response carries no mapped address")
)

// IsSTUN reports whether b looks like a STUN message: at least a header, the two leading bits
// zero, a length that is a multiple of 4 and fits b, and the magic cookie. It is the demux test
// between STUN and other protocols sharing the socket (RFC 8489 §5, RFC 7983).
func IsSTUN(b []byte) bool {
	if len(b) < headerSize || b[0]&0xC0 != 0 {
		return false
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	return n%4 == 0 && headerSize+n <= len(b) && binary.BigEndian.Uint32(b[4:8]) == MagicCookie
}

// addrPortFromIP converts a pion address to a netip.AddrPort (IPv4 unmapped).
func addrPortFromIP(ip net.IP, port int) (netip.AddrPort, bool) {
	a, ok := netip.AddrFromSlice(ip)
	if !ok || port < 0 || port > 65535 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), true
}

// ipOf returns the address in the 4- or 16-byte form pion encodes by family.
func ipOf(a netip.Addr) net.IP {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		return net.IP(b[:])
	}
	b := a.As16()
	return net.IP(b[:])
}

// changeAttr is a CHANGE-REQUEST attribute setter/getter.
type changeAttr struct{ v Change }

func (c changeAttr) AddTo(m *stun.Message) error {
	var b [4]byte
	b[3] = byte(c.v)
	m.Add(stun.AttrChangeRequest, b[:])
	return nil
}

func getChange(m *stun.Message) (Change, bool, error) {
	v, err := m.Get(stun.AttrChangeRequest)
	if err != nil {
		return 0, false, nil //nolint:nilerr // absent attribute
	}
	if len(v) != 4 {
		return 0, true, errors.New("natprobe: CHANGE-REQUEST length is not 4")
	}
	return Change(v[3]) & (ChangeIP | ChangePort), true, nil
}
