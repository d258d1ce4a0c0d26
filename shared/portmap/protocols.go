package portmap

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/huin/goupnp/dcps/internetgateway2"
	natpmp "github.com/jackpal/go-nat-pmp"
)

// ErrNoGateway: no default IPv4 route.
var ErrNoGateway = errors.New("no default gateway")

// DefaultGateway reads the default IPv4 route's gateway from /proc/net/route.
func DefaultGateway() (netip.Addr, error) {
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: %v", ErrNoGateway, err)
	}
	defer f.Close()
	return parseRoutes(f)
}

func parseRoutes(f interface{ Read([]byte) (int, error) }) (netip.Addr, error) {
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		// Iface Destination Gateway Flags ...; hex in host (little-endian) order.
		if len(fs) < 4 || fs[1] != "00000000" {
			continue
		}
		g, err := hex.DecodeString(fs[2])
		if err != nil || len(g) != 4 {
			continue
		}
		a := netip.AddrFrom4([4]byte{g[3], g[2], g[1], g[0]})
		if !a.IsUnspecified() {
			return a, nil
		}
	}
	return netip.Addr{}, ErrNoGateway
}

// upnpProto maps through a UPnP Internet Gateway Device: WANIPConnection:2 (AddAnyPortMapping
// lets the gateway pick a port when ours is taken), else WANIPConnection:1 or
// WANPPPConnection:1.
type upnpProto struct {
	cfg     *Config
	client  upnpClient
	svc     string
	extPort uint16
}

func (u *upnpProto) service() string { return u.svc }

type upnpClient interface {
	AddPortMappingCtx(ctx context.Context, remote string, ext uint16, proto string, in uint16, client string, enabled bool, desc string, lease uint32) error
	DeletePortMappingCtx(ctx context.Context, remote string, ext uint16, proto string) error
	GetExternalIPAddressCtx(ctx context.Context) (string, error)
}

type upnp2 struct {
	*internetgateway2.WANIPConnection2
}

func (u *upnpProto) discover(ctx context.Context) (string, error) {
	// Each search waits for SSDP answers; run the three at once.
	type found struct {
		c       upnpClient
		host    string
		service string
		err     error
	}
	ch := make(chan found, 3)
	go func() {
		cs, _, err := internetgateway2.NewWANIPConnection2ClientsCtx(ctx)
		if len(cs) > 0 {
			ch <- found{upnp2{cs[0]}, cs[0].Location.Host, "WANIPConnection:2", nil}
			return
		}
		ch <- found{err: err}
	}()
	go func() {
		cs, _, err := internetgateway2.NewWANIPConnection1ClientsCtx(ctx)
		if len(cs) > 0 {
			ch <- found{cs[0], cs[0].Location.Host, "WANIPConnection:1", nil}
			return
		}
		ch <- found{err: err}
	}()
	go func() {
		cs, _, err := internetgateway2.NewWANPPPConnection1ClientsCtx(ctx)
		if len(cs) > 0 {
			ch <- found{cs[0], cs[0].Location.Host, "WANPPPConnection:1", nil}
			return
		}
		ch <- found{err: err}
	}()
	var best found
	var errs []error
	for range 3 {
		f := <-ch
		if f.err != nil {
			errs = append(errs, f.err)
		}
		if f.c != nil && (best.c == nil || f.service == "WANIPConnection:2") {
			best = f
		}
	}
	if best.c == nil {
		if err := errors.Join(errs...); err != nil {
			return "", fmt.Errorf("no UPnP IGD found: %w", err)
		}
		return "", errors.New("no UPnP IGD found")
	}
	u.client, u.svc = best.c, best.service
	return best.host, nil
}

func (u *upnpProto) add(ctx context.Context, life time.Duration) (netip.AddrPort, time.Duration, error) {
	if !u.cfg.LocalIP.IsValid() {
		return netip.AddrPort{}, 0, errors.New("no local address towards the gateway")
	}
	ipText, err := u.client.GetExternalIPAddressCtx(ctx)
	if err != nil {
		return netip.AddrPort{}, 0, fmt.Errorf("GetExternalIPAddress: %w", err)
	}
	ip, err := netip.ParseAddr(ipText)
	if err != nil {
		return netip.AddrPort{}, 0, fmt.Errorf("GetExternalIPAddress: %q", ipText)
	}
	lease := uint32(life / time.Second)
	ext := u.extPort
	if ext == 0 {
		ext = u.cfg.Port
	}
	if c2, ok := u.client.(upnp2); ok && u.extPort == 0 {
		got, err := c2.AddAnyPortMappingCtx(ctx, "", ext, "UDP", u.cfg.Port, u.cfg.LocalIP.String(), true, u.cfg.Description, lease)
		if err == nil {
			u.extPort = got
			return netip.AddrPortFrom(ip, got), life, nil
		}
		// Fall through to AddPortMapping (some IGDv2 gateways lack AddAnyPortMapping).
	}
	err = u.client.AddPortMappingCtx(ctx, "", ext, "UDP", u.cfg.Port, u.cfg.LocalIP.String(), true, u.cfg.Description, lease)
	if err != nil && lease != 0 && strings.Contains(err.Error(), "725") {
		// 725 OnlyPermanentLeasesSupported (IGDv1 gateways).
		lease, life = 0, 0
		err = u.client.AddPortMappingCtx(ctx, "", ext, "UDP", u.cfg.Port, u.cfg.LocalIP.String(), true, u.cfg.Description, 0)
	}
	if err != nil {
		return netip.AddrPort{}, 0, fmt.Errorf("AddPortMapping: %w", err)
	}
	u.extPort = ext
	return netip.AddrPortFrom(ip, ext), life, nil
}

func (u *upnpProto) del(ctx context.Context) error {
	if err := u.client.DeletePortMappingCtx(ctx, "", u.extPort, "UDP"); err != nil {
		return fmt.Errorf("DeletePortMapping: %w", err)
	}
	return nil
}

// natpmpProto maps with NAT-PMP (RFC 6886) through jackpal/go-nat-pmp.
type natpmpProto struct {
	cfg     *Config
	gwErr   error
	client  *natpmp.Client
	extIP   netip.Addr
	extPort uint16
}

func (n *natpmpProto) discover(ctx context.Context) (string, error) {
	if !n.cfg.Gateway.IsValid() {
		return "", n.gwErr
	}
	timeout := n.cfg.Timeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	n.client = natpmp.NewClientWithTimeout(n.cfg.Gateway.AsSlice(), timeout)
	r, err := n.client.GetExternalAddress()
	if err != nil {
		return "", fmt.Errorf("no NAT-PMP answer from %s: %w", n.cfg.Gateway, err)
	}
	n.extIP = netip.AddrFrom4(r.ExternalIPAddress)
	return n.cfg.Gateway.String(), nil
}

func (n *natpmpProto) add(ctx context.Context, life time.Duration) (netip.AddrPort, time.Duration, error) {
	want := n.extPort
	if want == 0 {
		want = n.cfg.Port
	}
	r, err := n.client.AddPortMapping("udp", int(n.cfg.Port), int(want), int(life/time.Second))
	if err != nil {
		return netip.AddrPort{}, 0, err
	}
	n.extPort = r.MappedExternalPort
	return netip.AddrPortFrom(n.extIP, r.MappedExternalPort), time.Duration(r.PortMappingLifetimeInSeconds) * time.Second, nil
}

func (n *natpmpProto) del(ctx context.Context) error {
	// RFC 6886 §3.4: lifetime 0 and suggested external port 0 delete the mapping.
	_, err := n.client.AddPortMapping("udp", int(n.cfg.Port), 0, 0)
	return err
}

// pcpProto maps with a PCP MAP request (RFC 6887 §11).
type pcpProto struct {
	cfg   *Config
	gwErr error
	nonce [12]byte
	port  uint16
	last  PCPMap // the last granted mapping
}

func (p *pcpProto) discover(ctx context.Context) (string, error) {
	if !p.cfg.Gateway.IsValid() {
		return "", p.gwErr
	}
	// The first MAP request is the discovery: a PCP server answers it.
	return netip.AddrPortFrom(p.cfg.Gateway, p.port).String(), nil
}

// exchange sends req and waits for the response with its nonce, retransmitting with
// doubling intervals (RFC 6887 §8.1.1, shortened to fit the timeout).
func (p *pcpProto) exchange(ctx context.Context, req *PCPMap) (PCPMap, error) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.cfg.Gateway, p.port)))
	if err != nil {
		return PCPMap{}, err
	}
	defer c.Close()
	if req.ClientIP = p.cfg.LocalIP; !req.ClientIP.IsValid() {
		req.ClientIP = c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
	}
	out := req.AppendTo(nil)
	buf := make([]byte, 1100)
	rto := 250 * time.Millisecond
	for {
		if _, err := c.Write(out); err != nil {
			return PCPMap{}, err
		}
		deadline := time.Now().Add(rto)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		c.SetReadDeadline(deadline)
		for {
			n, err := c.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				return PCPMap{}, err // e.g. ICMP port unreachable: no PCP server
			}
			var resp PCPMap
			if err := resp.UnmarshalBinary(buf[:n]); err != nil {
				if errors.Is(err, ErrNATPMPAnswer) {
					return PCPMap{}, err
				}
				continue // not for us: keep waiting
			}
			if !resp.Response || resp.Nonce != req.Nonce {
				continue
			}
			return resp, nil
		}
		if ctx.Err() != nil {
			return PCPMap{}, fmt.Errorf("no PCP answer from %s", p.cfg.Gateway)
		}
		rto *= 2
	}
}

func (p *pcpProto) add(ctx context.Context, life time.Duration) (netip.AddrPort, time.Duration, error) {
	req := PCPMap{Lifetime: uint32(life / time.Second), Nonce: p.nonce, Protocol: ProtoUDP, InternalPort: p.cfg.Port,
		ExternalPort: p.cfg.Port}
	if p.last.ExternalPort != 0 { // renewal: ask for what we hold (RFC 6887 §11.2.1)
		req.ExternalPort, req.ExternalIP = p.last.ExternalPort, p.last.ExternalIP
	}
	resp, err := p.exchange(ctx, &req)
	if err != nil {
		return netip.AddrPort{}, 0, err
	}
	if resp.ResultCode != ResultSuccess {
		return netip.AddrPort{}, 0, fmt.Errorf("%s", ResultName(resp.ResultCode))
	}
	if resp.Protocol != ProtoUDP || resp.InternalPort != p.cfg.Port || !resp.ExternalIP.IsValid() || resp.ExternalPort == 0 {
		return netip.AddrPort{}, 0, fmt.Errorf("PCP response for another mapping (protocol %d, internal port %d)", resp.Protocol, resp.InternalPort)
	}
	p.last = resp
	return netip.AddrPortFrom(resp.ExternalIP, resp.ExternalPort), time.Duration(resp.Lifetime) * time.Second, nil
}

func (p *pcpProto) del(ctx context.Context) error {
	req := PCPMap{Lifetime: 0, Nonce: p.nonce, Protocol: ProtoUDP, InternalPort: p.cfg.Port}
	resp, err := p.exchange(ctx, &req)
	if err != nil {
		return err
	}
	if resp.ResultCode != ResultSuccess {
		return fmt.Errorf("%s", ResultName(resp.ResultCode))
	}
	return nil
}
