package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"time"

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
	Sessions           []SessionStatus         `json:"sessions"`
	LightSessions      []reflector.SessionInfo `json:"light_sessions,omitempty"`
	Counters           map[string]uint64       `json:"counters"`
	Drops              map[string]uint64       `json:"drops"`
}

// Status returns a snapshot of the server.
func (s *Server) Status() Status {
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
	st := Status{Modes: (s.cfg.Modes | SupportedExtensions).String(), Light: s.cfg.Light, LightSessions: light,
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
	return st
}

func (s *Server) counters() map[string]uint64 {
	return map[string]uint64{
		"control_connections_total":    s.m.connsTotal.Load(),
		"control_connections_rejected": s.m.connsRejected.Load(),
		"auth_failures_total":          s.m.authFailures.Load(),
		"protocol_errors_total":        s.m.protocolErrors.Load(),
		"sessions_total":               s.m.sessionsTotal.Load(),
		"sessions_rejected_total":      s.m.sessionsRejected.Load(),
		"refwait_expired_total":        s.m.refwaitExpired.Load(),
		"servwait_expired_total":       s.m.servwaitExpired.Load(),
		"stop_sessions_mismatch_total": s.m.stopMismatch.Load(),
		"packets_received_total":       s.refl.Stats.Received.Load(),
		"packets_reflected_total":      s.refl.Stats.Reflected.Load(),
		"packets_kernel_rx_timestamp":  s.refl.Stats.RxKernel.Load(),
	}
}

// WriteMetrics writes the Prometheus text exposition format.
func (s *Server) WriteMetrics(w *strings.Builder) {
	c := s.counters()
	names := make([]string, 0, len(c))
	for n := range c {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "# TYPE twampd_%s counter\ntwampd_%s %d\n", n, n, c[n])
	}
	s.mu.Lock()
	conns, sess := len(s.conns), len(s.sessions)
	s.mu.Unlock()
	fmt.Fprintf(w, "# TYPE twampd_control_connections gauge\ntwampd_control_connections %d\n", conns)
	fmt.Fprintf(w, "# TYPE twampd_sessions gauge\ntwampd_sessions %d\n", sess)
	fmt.Fprintf(w, "# TYPE twampd_packets_dropped_total counter\n")
	for i := range reflector.NumDrops {
		fmt.Fprintf(w, "twampd_packets_dropped_total{reason=%q} %d\n", reflector.DropName(i), s.refl.Stats.Drops[i].Load())
	}
	fmt.Fprintf(w, "# TYPE twampd_residence_seconds histogram\n")
	var cum uint64
	bounds := reflector.ResidenceBounds()
	for i := range s.refl.Stats.Residence {
		cum += s.refl.Stats.Residence[i].Load()
		le := "+Inf"
		if i < len(bounds) {
			le = fmt.Sprintf("%g", bounds[i].Seconds())
		}
		fmt.Fprintf(w, "twampd_residence_seconds_bucket{le=%q} %d\n", le, cum)
	}
	fmt.Fprintf(w, "twampd_residence_seconds_sum %g\ntwampd_residence_seconds_count %d\n",
		time.Duration(s.refl.Stats.ResidenceSum.Load()).Seconds(), cum)
}

func (s *Server) startMetrics(ctx context.Context, addr string) (net.Addr, error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("twampd: metrics listen %s: %w", addr, err)
	}
	if ta, ok := ln.Addr().(*net.TCPAddr); ok && !ta.IP.IsLoopback() {
		s.log.WithField("addr", addr).Warn("metrics/status endpoint is not on a loopback address")
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		var b strings.Builder
		s.WriteMetrics(&b)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write([]byte(b.String()))
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(s.Status())
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = hs.Serve(ln)
	}()
	context.AfterFunc(ctx, func() { _ = hs.Close() })
	return ln.Addr(), nil
}

func parseAP(s string) (netip.AddrPort, error) { return netip.ParseAddrPort(s) }
