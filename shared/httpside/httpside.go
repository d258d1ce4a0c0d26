// Package httpside serves a daemon's optional HTTP side port — stampref's monitoring API,
// twampd's metrics and status, ptpserver's web page — with one set of hardening rules, so
// that no side port can be used to exhaust, reconfigure or spy on the daemon.
//
// The rules (issue 11, H9 and H10):
//
//   - Loopback by default. A listen address that is not loopback (0.0.0.0, [::], a LAN
//     address) needs a token: Listen fails with ErrTokenRequired without one, and every
//     request on such a port must carry it.
//   - State-changing requests (POST, PUT, PATCH, DELETE) need the token on every address and
//     "Content-Type: application/json" (a browser cannot send that cross-site without a CORS
//     preflight, which is never answered). Without a token configured they are refused:
//     a loopback port with no token is read-only.
//   - The token travels as "Authorization: Bearer TOKEN" and is compared in constant time.
//     LoadToken reads it from a file through shared/keyfile (mode 0600 or refused).
//   - The Host header must name the listen address (its IP literal, "localhost" for a
//     loopback address, a local interface address for a wildcard one, or one of
//     Config.Hosts): DNS-rebinding pages get 421 Misdirected Request.
//   - Timeouts for headers, the whole request, the response and idle keep-alives; header
//     and body size limits (413 beyond MaxBody); at most MaxConns connections at once and
//     MaxConnsPerHost from one address (more are closed at once, so slow clients from one
//     address cannot hold the port).
//   - Listings are paginated with ?offset=N&limit=N (Page), limit capped.
//
// Use:
//
//	tok, err := httpside.LoadToken(path)          // "" path: no token
//	srv, err := httpside.Listen(ctx, httpside.Config{Addr: addr, Token: tok, Logger: log}, mux)
//	// srv.Addr() is the bound address; the server stops when ctx is cancelled.
//
// Wrap applies the request rules to a handler without a listener (for httptest).
package httpside

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/probekit/probekit/shared/keyfile"
)

// Defaults of Config's limits.
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 10 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultMaxHeaderBytes    = 16 << 10
	DefaultMaxBody           = 64 << 10
	DefaultMaxConns          = 256
	DefaultMaxConnsPerHost   = 16
	// MinTokenLen is the shortest token LoadToken accepts.
	MinTokenLen = 16
)

// ErrTokenRequired is returned by Listen for a non-loopback address without a token.
var ErrTokenRequired = errors.New("a listen address other than loopback needs a token file")

// Config configures a side port.
type Config struct {
	// Addr is the TCP listen address ("127.0.0.1:9862", "[::1]:0", "0.0.0.0:8080").
	Addr string
	// Token, when set, is required on every state-changing request and, on a non-loopback
	// address, on every request.
	Token string
	// Hosts are extra host names accepted in the Host header (a DNS name of this host).
	Hosts []string
	// Timeouts and limits; zero means the Default… value.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	MaxHeaderBytes                                            int
	MaxBody                                                   int64
	// MaxConns bounds open connections, MaxConnsPerHost those from one client address (an
	// IPv6 client's /64); a
	// connection beyond either is closed at once (counted as refused "conns"), so slow
	// clients cannot queue legitimate ones behind them.
	MaxConns, MaxConnsPerHost int
	// Logger receives refusals (at debug level; counted in Stats) and serve errors.
	Logger logrus.FieldLogger
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&c.ReadTimeout, DefaultReadTimeout)
	def(&c.WriteTimeout, DefaultWriteTimeout)
	def(&c.IdleTimeout, DefaultIdleTimeout)
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.MaxBody <= 0 {
		c.MaxBody = DefaultMaxBody
	}
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.MaxConnsPerHost <= 0 {
		c.MaxConnsPerHost = DefaultMaxConnsPerHost
	}
	if c.Logger == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		c.Logger = l
	}
}

// LoadToken reads a token file (keyfile.Read: refused when group or others can read it),
// trims surrounding white space and checks its length. An empty path returns "".
func LoadToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := keyfile.Read(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < MinTokenLen || strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("token file %s: want one word of at least %d characters", path, MinTokenLen)
	}
	return tok, nil
}

// Stats count refused requests by rule.
type Stats struct {
	mu      sync.Mutex
	refused map[string]uint64
}

func (s *Stats) add(reason string) {
	s.mu.Lock()
	if s.refused == nil {
		s.refused = map[string]uint64{}
	}
	s.refused[reason]++
	s.mu.Unlock()
}

// Refused returns the refusals so far by reason (host, token, content_type, method, body).
func (s *Stats) Refused() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]uint64, len(s.refused))
	for k, v := range s.refused {
		out[k] = v
	}
	return out
}

// Server is a running side port.
type Server struct {
	hs    *http.Server
	ln    net.Listener
	Stats *Stats
	done  chan struct{}
}

// Addr returns the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the server at once.
func (s *Server) Close() error { return s.hs.Close() }

// Done is closed once the server stopped serving.
func (s *Server) Done() <-chan struct{} { return s.done }

// Listen binds cfg.Addr and serves h behind the rules until ctx is cancelled. It fails when
// the address cannot be bound or is not loopback and has no token.
func Listen(ctx context.Context, cfg Config, h http.Handler) (*Server, error) {
	cfg.setDefaults()
	ap, err := netip.ParseAddrPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("side port %q: want IP:PORT: %w", cfg.Addr, err)
	}
	if !ap.Addr().IsLoopback() && cfg.Token == "" {
		return nil, fmt.Errorf("side port %s: %w", cfg.Addr, ErrTokenRequired)
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("side port: %w", err)
	}
	st := &Stats{}
	s := &Server{ln: &limitListener{Listener: ln, max: cfg.MaxConns, perHost: cfg.MaxConnsPerHost, st: st, hosts: map[netip.Addr]int{}},
		Stats: st, done: make(chan struct{})}
	s.hs = &http.Server{
		Handler:           wrap(cfg, ln.Addr(), st, h),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
	}
	go func() {
		defer close(s.done)
		if err := s.hs.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Logger.WithError(err).Warn("side port stopped")
		}
	}()
	context.AfterFunc(ctx, func() { _ = s.hs.Close() })
	return s, nil
}

// Wrap applies the request rules of a side port listening on addr to h (Host, token,
// content type, body limit). Listen does this itself; Wrap is for tests and for servers
// that manage their own listener.
func Wrap(cfg Config, addr net.Addr, h http.Handler) (http.Handler, *Stats) {
	cfg.setDefaults()
	st := &Stats{}
	return wrap(cfg, addr, st, h), st
}

// StateChanging reports whether a method changes state (and so needs the token and JSON).
func StateChanging(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead:
		return false
	}
	return true
}

func wrap(cfg Config, addr net.Addr, st *Stats, h http.Handler) http.Handler {
	var listen netip.Addr
	if ta, ok := addr.(*net.TCPAddr); ok {
		listen = ta.AddrPort().Addr().Unmap()
	}
	loopback := listen.IsLoopback()
	hosts := map[string]bool{}
	for _, h := range cfg.Hosts {
		hosts[strings.ToLower(h)] = true
	}
	if listen.IsValid() && !listen.IsUnspecified() {
		hosts[listen.String()] = true
	}
	if loopback {
		hosts["localhost"] = true
		hosts["127.0.0.1"] = true
		hosts["::1"] = true
	}
	hostOK := func(host string) bool {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
		if hosts[host] {
			return true
		}
		if listen.IsUnspecified() {
			// A wildcard listener answers for this host's own addresses.
			if a, err := netip.ParseAddr(host); err == nil {
				return isLocal(a.Unmap())
			}
		}
		return false
	}
	token := []byte(cfg.Token)
	tokenOK := func(r *http.Request) bool {
		if len(token) == 0 {
			return false
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		return ok && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), token) == 1
	}
	refuse := func(w http.ResponseWriter, r *http.Request, code int, reason, msg string) {
		st.add(reason)
		cfg.Logger.WithField("peer", r.RemoteAddr).WithField("method", r.Method).WithField("path", r.URL.Path).
			WithField("reason", reason).Debug("side port: request refused")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-store")
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="probekit"`)
		}
		w.WriteHeader(code)
		_, _ = fmt.Fprintf(w, "{\"error\": %q}\n", msg)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hostOK(r.Host) {
			refuse(w, r, http.StatusMisdirectedRequest, "host", "Host header does not name this server")
			return
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		default: // OPTIONS included: no CORS preflight is ever answered
			refuse(w, r, http.StatusMethodNotAllowed, "method", "method not allowed")
			return
		}
		changing := StateChanging(r.Method)
		if changing && len(token) == 0 {
			refuse(w, r, http.StatusForbidden, "token", "read-only: state-changing requests need a token file")
			return
		}
		if (changing || !loopback) && !tokenOK(r) {
			refuse(w, r, http.StatusUnauthorized, "token", "missing or wrong bearer token")
			return
		}
		if changing {
			mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if err != nil || mt != "application/json" {
				refuse(w, r, http.StatusUnsupportedMediaType, "content_type", "state-changing requests need Content-Type: application/json")
				return
			}
		}
		if r.ContentLength > cfg.MaxBody {
			refuse(w, r, http.StatusRequestEntityTooLarge, "body", fmt.Sprintf("body larger than %d octets", cfg.MaxBody))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, cfg.MaxBody)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

func isLocal(a netip.Addr) bool {
	if a.IsLoopback() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, ia := range addrs {
		if n, ok := ia.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == a {
				return true
			}
		}
	}
	return false
}

// Page reads ?offset=N&limit=N of a listing: offset defaults to 0, limit to def and is
// capped at max. A malformed value is an error (answer 400).
func Page(r *http.Request, def, max int) (offset, limit int, err error) {
	q := r.URL.Query()
	offset, limit = 0, def
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, 0, fmt.Errorf("offset %q: want a number ≥ 0", v)
		}
		offset = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return 0, 0, fmt.Errorf("limit %q: want a number ≥ 1", v)
		}
		limit = n
	}
	return offset, min(limit, max), nil
}

// Slice returns the page [offset, offset+limit) of n items as start and end indexes.
func Slice(n, offset, limit int) (start, end int) {
	start = min(offset, n)
	return start, min(start+limit, n)
}

// limitListener closes connections beyond its bounds as soon as they are accepted.
type limitListener struct {
	net.Listener
	max, perHost int
	st           *Stats

	mu    sync.Mutex
	n     int
	hosts map[netip.Addr]int
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		var host netip.Addr
		if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			host = ta.AddrPort().Addr().Unmap()
			if host.Is6() { // one subscriber's /64 is one client
				host = netip.PrefixFrom(host, 64).Masked().Addr()
			}
		}
		l.mu.Lock()
		if l.n >= l.max || l.hosts[host] >= l.perHost {
			l.mu.Unlock()
			l.st.add("conns")
			c.Close()
			continue
		}
		l.n++
		l.hosts[host]++
		l.mu.Unlock()
		return &limitConn{Conn: c, l: l, host: host}, nil
	}
}

type limitConn struct {
	net.Conn
	l    *limitListener
	host netip.Addr
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.n--
		if c.l.hosts[c.host]--; c.l.hosts[c.host] <= 0 {
			delete(c.l.hosts, c.host)
		}
		c.l.mu.Unlock()
	})
	return err
}
