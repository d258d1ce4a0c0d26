// Package portmap asks the local gateway to forward a UDP port — UPnP IGD (v2, then v1) through
// huin/goupnp, NAT-PMP (RFC 6886) through jackpal/go-nat-pmp, and PCP (RFC 6887) with its own
// small codec — and reports per protocol whether a gateway answered and what it granted
// (external address and lifetime) or the error. Granted mappings are renewed at half their
// lifetime and deleted by Close.
package portmap

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// Protocol names in Result.
const (
	UPnP   = "upnp-igd"
	NATPMP = "nat-pmp"
	PCP    = "pcp"
)

// AllProtocols is the default order of attempts.
var AllProtocols = []string{UPnP, NATPMP, PCP}

// Result is one protocol's outcome.
type Result struct {
	Protocol string `json:"protocol"`
	// Gateway is the device that answered ("" when none was found).
	Gateway string `json:"gateway"`
	// Service names the UPnP service used (WANIPConnection:2 …).
	Service string `json:"service,omitempty"`
	// External is the granted public address ("" when nothing was granted).
	External string `json:"external,omitempty"`
	// Lifetime is the granted lifetime in seconds (0 with UPnP means until deleted).
	Lifetime int       `json:"lifetime_s,omitempty"`
	Expires  time.Time `json:"expires,omitzero"`
	Renewals int       `json:"renewals,omitempty"`
	Error    string    `json:"error,omitempty"`
	Deleted  bool      `json:"deleted,omitempty"`
}

// Granted reports whether the mapping is in place.
func (r Result) Granted() bool { return r.External != "" && !r.Deleted }

// Config describes the mapping to ask for.
type Config struct {
	// Port is the local UDP port to map; the same external port is suggested.
	Port uint16
	// LocalIP is the address the gateway forwards to; unset means the local address of the
	// route to the gateway.
	LocalIP netip.Addr
	// Gateway is where NAT-PMP and PCP requests go; unset means the default IPv4 route's
	// gateway (/proc/net/route).
	Gateway netip.Addr
	// Lifetime requested (default 2 h, the NAT-PMP recommendation).
	Lifetime time.Duration
	// Protocols to try (default AllProtocols).
	Protocols []string
	// Timeout bounds each protocol's discovery and each request (default 3 s).
	Timeout time.Duration
	// Description is the UPnP mapping description (default "probekit ptpclient").
	Description string
	// OnChange is called (from the mapper's goroutines, serialised) whenever a result changes.
	OnChange func([]Result)
	Log      logrus.FieldLogger
	// pcpPort overrides the PCP server port (tests).
	pcpPort uint16
}

// protocol is one mapping method.
type protocol interface {
	// discover finds the gateway (returns its description) or fails.
	discover(ctx context.Context) (string, error)
	// add asks for the mapping; it returns the external address and granted lifetime.
	add(ctx context.Context, life time.Duration) (netip.AddrPort, time.Duration, error)
	// del removes it.
	del(ctx context.Context) error
}

// Mapper holds the mappings it obtained.
type Mapper struct {
	cfg       Config
	mu        sync.Mutex
	results   []Result
	protos    []protocol
	cbMu      sync.Mutex
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Start tries every protocol at once, returns when each has succeeded or failed (about
// Timeout at most, plus UPnP's discovery), and keeps granted mappings renewed until Close or
// until ctx ends. It fails only for a configuration error; a protocol's failure is its Result.
func Start(ctx context.Context, cfg Config) (*Mapper, error) {
	if cfg.Port == 0 {
		return nil, errors.New("portmap: no port")
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = 2 * time.Hour
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * time.Second
	}
	if len(cfg.Protocols) == 0 {
		cfg.Protocols = AllProtocols
	}
	if cfg.Description == "" {
		cfg.Description = "probekit ptpclient"
	}
	if cfg.Log == nil {
		l := logrus.New()
		l.SetLevel(logrus.PanicLevel)
		cfg.Log = l
	}
	var gwErr error
	if !cfg.Gateway.IsValid() {
		cfg.Gateway, gwErr = DefaultGateway()
	}
	if !cfg.LocalIP.IsValid() && cfg.Gateway.IsValid() {
		cfg.LocalIP, _ = localIPTowards(cfg.Gateway)
	}
	m := &Mapper{cfg: cfg}
	for _, p := range cfg.Protocols {
		m.results = append(m.results, Result{Protocol: p})
		switch p {
		case UPnP:
			m.protos = append(m.protos, &upnpProto{cfg: &m.cfg})
		case NATPMP:
			m.protos = append(m.protos, &natpmpProto{cfg: &m.cfg, gwErr: gwErr})
		case PCP:
			var nonce [12]byte
			rand.Read(nonce[:])
			port := cfg.pcpPort
			if port == 0 {
				port = PCPServerPort
			}
			m.protos = append(m.protos, &pcpProto{cfg: &m.cfg, gwErr: gwErr, nonce: nonce, port: port})
		default:
			return nil, fmt.Errorf("portmap: unknown protocol %q (want %v)", p, AllProtocols)
		}
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel
	var first sync.WaitGroup
	for i := range m.protos {
		first.Add(1)
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.run(rctx, i, &first)
		}()
	}
	first.Wait()
	context.AfterFunc(ctx, func() { m.Close() })
	return m, nil
}

// run discovers, maps, and renews one protocol's mapping.
func (m *Mapper) run(ctx context.Context, i int, first *sync.WaitGroup) {
	p := m.protos[i]
	once := sync.OnceFunc(first.Done)
	defer once()
	dctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	gw, err := p.discover(dctx)
	cancel()
	if err != nil {
		m.update(i, func(r *Result) { r.Error = err.Error() })
		return
	}
	m.update(i, func(r *Result) {
		r.Gateway = gw
		if s, ok := p.(interface{ service() string }); ok {
			r.Service = s.service()
		}
	})
	renewals := -1
	for {
		actx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
		ext, life, err := p.add(actx, m.cfg.Lifetime)
		cancel()
		if ctx.Err() != nil {
			return
		}
		var wait time.Duration
		if err != nil {
			m.update(i, func(r *Result) {
				r.Error = err.Error()
				if r.Expires.IsZero() || time.Now().After(r.Expires) {
					r.External, r.Lifetime, r.Expires = "", 0, time.Time{}
				}
			})
			wait = 30 * time.Second // retry; a still valid older mapping stays in the result
		} else {
			renewals++
			now := time.Now()
			m.update(i, func(r *Result) {
				r.Error, r.External, r.Lifetime, r.Renewals = "", ext.String(), int(life/time.Second), renewals
				r.Expires = time.Time{}
				if life > 0 {
					r.Expires = now.Add(life)
				}
			})
			m.cfg.Log.WithFields(logrus.Fields{"protocol": m.results[i].Protocol, "external": ext, "lifetime": life}).Info("port mapping granted")
			// Renew at half the lifetime (RFC 6886 §3.3 suggests it); a permanent UPnP
			// mapping is refreshed hourly in case the gateway restarted.
			wait = life / 2
			if life <= 0 {
				wait = time.Hour
			}
		}
		once()
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (m *Mapper) update(i int, fn func(*Result)) {
	m.mu.Lock()
	fn(&m.results[i])
	rs := append([]Result(nil), m.results...)
	m.mu.Unlock()
	if m.cfg.OnChange != nil {
		m.cbMu.Lock()
		m.cfg.OnChange(rs)
		m.cbMu.Unlock()
	}
}

// Results returns each protocol's current outcome.
func (m *Mapper) Results() []Result {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Result(nil), m.results...)
}

// JSON is Results as a JSON array (what ptpclient reports and ptpserver shows).
func (m *Mapper) JSON() json.RawMessage {
	b, _ := json.Marshal(m.Results())
	return b
}

// External returns the distinct granted external addresses (candidates for peers).
func (m *Mapper) External() []netip.AddrPort {
	var out []netip.AddrPort
	seen := map[netip.AddrPort]bool{}
	for _, r := range m.Results() {
		if !r.Granted() {
			continue
		}
		if a, err := netip.ParseAddrPort(r.External); err == nil && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// Close stops renewing and deletes every granted mapping (each within Timeout). It is safe to
// call more than once and concurrently (the end of Start's ctx calls it too): every caller
// returns once the deletions are done.
func (m *Mapper) Close() error {
	m.closeOnce.Do(func() { m.closeErr = m.close() })
	return m.closeErr
}

func (m *Mapper) close() error {
	m.cancel()
	m.wg.Wait()
	var errs []error
	gone := map[string]bool{} // external addresses already deleted through another protocol
	for i, p := range m.protos {
		r := m.Results()[i]
		if !r.Granted() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), m.cfg.Timeout)
		err := p.del(ctx)
		cancel()
		if err != nil && gone[r.External] {
			// One gateway speaking several protocols keeps one mapping per port: deleting
			// it through the first protocol removed it for the others (miniupnpd then
			// answers PCP with NO_RESOURCES and UPnP with 714 NoSuchEntryInArray).
			m.cfg.Log.WithError(err).WithField("protocol", r.Protocol).Debug("port mapping already deleted")
			err = nil
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m.results[i].Protocol, err))
			m.update(i, func(r *Result) { r.Error = "delete: " + err.Error() })
			continue
		}
		gone[r.External] = true
		m.update(i, func(r *Result) { r.Deleted = true })
		m.cfg.Log.WithField("protocol", m.results[i].Protocol).Info("port mapping deleted")
	}
	return errors.Join(errs...)
}

// localIPTowards is the source address the kernel picks for gw.
func localIPTowards(gw netip.Addr) (netip.Addr, error) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(gw, PCPServerPort)))
	if err != nil {
		return netip.Addr{}, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}
