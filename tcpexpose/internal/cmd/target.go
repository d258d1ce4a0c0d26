package cmd

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("address %q: %w", s, err)
	}
	return a.Unmap(), nil
}

// parseTarget parses HOST[:PORT] (HOST a name or address, IPv6 in brackets with a port) and
// resolves a name to its first address. Only this destination is ever probed.
func parseTarget(s string, defPort uint16) (netip.AddrPort, error) {
	host, port := s, ""
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
	} else if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		host = s[1 : len(s)-1]
	}
	p := defPort
	if port != "" {
		v, err := strconv.ParseUint(port, 10, 16)
		if err != nil || v == 0 {
			return netip.AddrPort{}, fmt.Errorf("port %q: want 1-65535", port)
		}
		p = uint16(v)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(a.Unmap(), p), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("cannot resolve %q: %v", host, err)
	}
	return netip.AddrPortFrom(addrs[0].Unmap(), p), nil
}
