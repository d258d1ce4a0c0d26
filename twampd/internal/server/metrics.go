package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"sync/atomic"
	"time"

	"github.com/probekit/probekit/shared/httpside"
	"github.com/probekit/probekit/shared/metrics"
	"github.com/probekit/probekit/shared/metrics/reflectormetrics"
	"github.com/probekit/probekit/shared/reflector"
)

// SessionStatus is one test session in the JSON status.
type SessionStatus struct {
	SID       string    `json:"sid"`
	Identity  string    `json:"identity,omitempty"`
	Mode      string    `json:"mode"`
	Sender    string    `json:"sender"`
	Reflector string    `json:"reflector"`
	DSCP      uint8     `json:"dscp"`
	Padding   uint32    `json:"padding"`
	State     string    `json:"state"`
	Created   time.Time `json:"created"`
	Received  uint32    `json:"received"`
	Reflected uint32    `json:"reflected"`
	// RFC6038 is set when the session negotiated Reflect Octets.
	RFC6038 *Reflect6038Status `json:"rfc6038,omitempty"`
}

// Reflect6038Status is a session's RFC 6038 accounting.
type Reflect6038Status struct {
	ServerOctets     string `json:"server_octets"`
	PaddingReflected int    `json:"padding_reflected"`
	RepliesReflected uint64 `json:"replies_reflected"`
	// ServerOctetsMismatches counts sender packets whose Server Octets differ from those
	// returned in Accept-Session (they are reflected all the same).
	ServerOctetsMismatches uint64 `json:"server_octets_mismatches"`
}

// Status is the JSON status document (/status).
type Status struct {
	Modes              string                  `json:"modes"`
	Light              bool                    `json:"light"`
	ControlConnections int                     `json:"control_connections"`
	SessionsTotal      int                     `json:"sessions_total"`
	Sessions           []SessionStatus         `json:"sessions"`
	LightSessionsTotal int                     `json:"light_sessions_total,omitempty"`
	LightSessions      []reflector.SessionInfo `json:"light_sessions,omitempty"`
	Counters           map[string]uint64       `json:"counters"`
	Drops              map[string]uint64       `json:"drops"`
}

// StatusLimit caps each listing of /status (sessions, light_sessions) per request; ?offset=N
// and ?limit=N page through them.
const StatusLimit = 1000

// Status returns a snapshot of the server with every session.
func (s *Server) Status() Status { return s.StatusPage(0, math.MaxInt) }

// StatusPage returns a snapshot of the server listing the sessions [offset, offset+limit)
// of each list; SessionsTotal and LightSessionsTotal count them all.
func (s *Server) StatusPage(offset, limit int) Status {
	snap := map[reflector.SessionKey]reflector.SessionInfo{}
	var light []reflector.SessionInfo
	for _, si := range s.refl.Table().Snapshot() {
		if s.cfg.Light {
			light = append(light, si)
			continue
		}
		peer, _ := parseAP(si.Peer)
		local, _ := parseAP(si.Local)
		snap[reflector.SessionKey{Peer: peer, Local: local}] = si
	}
	a, b := httpside.Slice(len(light), offset, limit)
	st := Status{Modes: (s.cfg.Modes | SupportedExtensions).String(), Light: s.cfg.Light,
		LightSessionsTotal: len(light), LightSessions: light[a:b],
		Counters: s.counters(), Drops: map[string]uint64{}, Sessions: []SessionStatus{}}
	for i := range reflector.NumDrops {
		st.Drops[reflector.DropName(i)] = s.refl.Stats.Drops[i].Load()
	}
	s.mu.Lock()
	st.ControlConnections = len(s.conns)
	for _, ss := range s.sessions {
		state := "requested"
		switch {
		case ss.stopped.Load():
			state = "stopped"
		case ss.started.Load():
			state = "running"
		}
		si := snap[ss.rs.Key]
		var r6 *Reflect6038Status
		if ss.refl.enabled {
			r6 = &Reflect6038Status{ServerOctets: fmt.Sprintf("%04x", ss.refl.serverOctets), PaddingReflected: ss.refl.layout.Length,
				RepliesReflected: ss.refl.copied.Load(), ServerOctetsMismatches: ss.refl.mismatches.Load()}
		}
		st.Sessions = append(st.Sessions, SessionStatus{
			SID: fmt.Sprintf("%x", ss.sid), Identity: ss.identity, Mode: ss.mode.Security().String(),
			Sender: ss.peer.String(), Reflector: ss.local.String(), DSCP: ss.dscp, Padding: ss.padding,
			State: state, Created: ss.created, Received: si.Received, Reflected: si.Reflected, RFC6038: r6,
		})
	}
	s.mu.Unlock()
	sort.Slice(st.Sessions, func(i, j int) bool { return st.Sessions[i].SID < st.Sessions[j].SID })
	st.SessionsTotal = len(st.Sessions)
	a, b = httpside.Slice(len(st.Sessions), offset, limit)
	st.Sessions = st.Sessions[a:b]
	return st
}

func (s *Server) counters() map[string]uint64 {
	return map[string]uint64{
		"control_connections_total":            s.m.connsTotal.Load(),
		"control_connections_rejected":         s.m.connsRejected.Load(),
		"auth_failures_total":                  s.m.authFailures.Load(),
		"protocol_errors_total":                s.m.protocolErrors.Load(),
		"sessions_total":                       s.m.sessionsTotal.Load(),
		"sessions_rejected_total":              s.m.sessionsRejected.Load(),
		"refwait_expired_total":                s.m.refwaitExpired.Load(),
		"servwait_expired_total":               s.m.servwaitExpired.Load(),
		"stop_sessions_mismatch_total":         s.m.stopMismatch.Load(),
		"handshake_timeouts_total":             s.m.handshakeTimeouts.Load(),
		"control_connections_refused_per_host": s.m.connsRefusedHost.Load(),
		"control_connections_evicted":          s.m.connsEvicted.Load(),
		"packets_received_total":               s.refl.Stats.Received.Load(),
		"packets_reflected_total":              s.refl.Stats.Reflected.Load(),
		"packets_kernel_rx_timestamp":          s.refl.Stats.RxKernel.Load(),
	}
}

// counterMetrics are twampd's own counters in /metrics: name, HELP, value.
func (s *Server) counterMetrics() []struct {
	name, help string
	v          *atomic.Uint64
} {
	return []struct {
		name, help string
		v          *atomic.Uint64
	}{
		{"control_connections_total", "TWAMP-Control connections accepted by the kernel.", &s.m.connsTotal},
		{"control_connections_rejected_total", "Control connections refused (Modes 0 greeting) because --max-connections was reached.", &s.m.connsRejected},
		{"control_connections_evicted_total", "Control connections without test traffic closed to make room for a newcomer at --max-connections.", &s.m.connsEvicted},
		{"control_connections_refused_per_host_total", "Control connections refused because their address had --max-connections-per-host open.", &s.m.connsRefusedHost},
		{"handshake_timeouts_total", "Control connections closed because the greeting exchange outlasted --handshake-timeout.", &s.m.handshakeTimeouts},
		{"auth_failures_total", "Control connections whose identity or token failed authentication.", &s.m.authFailures},
		{"protocol_errors_total", "Control connections closed for a malformed or unsupported message.", &s.m.protocolErrors},
		{"sessions_total", "Test sessions accepted.", &s.m.sessionsTotal},
		{"sessions_rejected_total", "Request-TW-Session messages rejected (limits, unsupported fields).", &s.m.sessionsRejected},
		{"refwait_expired_total", "Test sessions ended by REFWAIT without packets.", &s.m.refwaitExpired},
		{"servwait_expired_total", "Control connections closed by SERVWAIT while idle.", &s.m.servwaitExpired},
		{"stop_sessions_mismatch_total", "Stop-Sessions messages whose session count differed from the running sessions.", &s.m.stopMismatch},
	}
}

// Metrics returns twampd's metrics registry (built on first use): its control counters and
// gauges, and the shared reflector's (shared/metrics/reflectormetrics).
func (s *Server) Metrics() *metrics.Registry {
	s.regOnce.Do(func() {
		reg := metrics.New("twampd")
		for _, c := range s.counterMetrics() {
			reg.Counter(c.name, c.help, c.v.Load)
		}
		reflectormetrics.Register(reg, s.refl)
		reg.Gauge("control_connections", "Open TWAMP-Control connections.", func() float64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			return float64(len(s.conns))
		})
		reg.Gauge("sessions", "Test sessions: negotiated ones (requested, running or stopping), or with --light the learned ones.", func() float64 {
			if s.cfg.Light {
				return float64(s.refl.Table().Len())
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			return float64(len(s.sessions))
		})
		reg.CounterVec("metrics_refused_requests_total", "Requests to the metrics port refused by the side-port rules, by rule.", "rule",
			func(emit func(string, uint64)) {
				if st := s.side.Load(); st != nil {
					for k, v := range st.Refused() {
						emit(k, v)
					}
				}
			})
		s.reg = reg
	})
	return s.reg
}

// WriteMetrics writes the Prometheus text exposition format.
func (s *Server) WriteMetrics(w io.Writer) error { return s.Metrics().WriteText(w) }

// startMetrics serves /metrics and /status behind shared/httpside's rules: loopback unless a
// token is configured, read-only, Host checked, timeouts, /status paginated.
func (s *Server) startMetrics(ctx context.Context, addr string) (net.Addr, error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.Metrics().Handler())
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		offset, limit, err := httpside.Page(r, StatusLimit, StatusLimit)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(s.StatusPage(offset, limit))
	})
	srv, err := httpside.Listen(ctx, httpside.Config{Addr: addr, Token: s.cfg.MetricsToken, Logger: s.log}, mux)
	if err != nil {
		return nil, fmt.Errorf("twampd: metrics: %w", err)
	}
	s.side.Store(srv.Stats)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		<-srv.Done()
	}()
	return srv.Addr(), nil
}

func parseAP(s string) (netip.AddrPort, error) { return netip.ParseAddrPort(s) }
