package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/probekit/probekit/shared/reflector"
	"github.com/probekit/probekit/shared/testpkt"
)

// Monitor is stampref's HTTP API on loopback:
//
//	GET    /sessions        sessions as JSON (provisioned and learned)
//	POST   /sessions        provision {"peer": "ip:port", "local": "ip:port", "ssid": n, "key": "…"}
//	DELETE /sessions/{id}   remove a session; id is "SSID@PEER@LOCAL" as listed by GET
//	GET    /stats           counters as JSON
//	GET    /metrics         Prometheus text exposition format
//
// "local" may be omitted when stampref has one listener; "key" (raw or "hex:…", as in key
// files) gives the session its own HMAC key.
type Monitor struct {
	R       *reflector.Reflector
	Listen  []netip.AddrPort
	Started time.Time
}

// SessionJSON is one session in GET /sessions.
type SessionJSON struct {
	ID string `json:"id"`
	reflector.SessionInfo
}

// ProvisionRequest is the body of POST /sessions.
type ProvisionRequest struct {
	Peer  string `json:"peer"`
	Local string `json:"local,omitempty"`
	SSID  uint16 `json:"ssid"`
	Key   string `json:"key,omitempty"`
}

// SessionID formats the identifier DELETE /sessions/{id} takes.
func SessionID(k reflector.SessionKey) string {
	return fmt.Sprintf("%d@%s@%s", k.SSID, k.Peer, k.Local)
}

// ParseSessionID parses SessionID's format.
func ParseSessionID(s string) (reflector.SessionKey, error) {
	parts := strings.SplitN(s, "@", 3)
	if len(parts) != 3 {
		return reflector.SessionKey{}, errors.New("session id must be SSID@PEER@LOCAL")
	}
	ssid, err := strconv.ParseUint(parts[0], 10, 16)
	if err != nil {
		return reflector.SessionKey{}, fmt.Errorf("session id: ssid: %w", err)
	}
	peer, err := netip.ParseAddrPort(parts[1])
	if err != nil {
		return reflector.SessionKey{}, fmt.Errorf("session id: peer: %w", err)
	}
	local, err := netip.ParseAddrPort(parts[2])
	if err != nil {
		return reflector.SessionKey{}, fmt.Errorf("session id: local: %w", err)
	}
	return reflector.SessionKey{Peer: normalize(peer), Local: local, SSID: uint16(ssid)}, nil
}

func normalize(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// Handler returns the HTTP handler.
func (m *Monitor) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /sessions", m.getSessions)
	mux.HandleFunc("POST /sessions", m.postSession)
	mux.HandleFunc("DELETE /sessions/{id}", m.deleteSession)
	mux.HandleFunc("GET /stats", m.getStats)
	mux.HandleFunc("GET /metrics", m.getMetrics)
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func httpError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

func (m *Monitor) getSessions(w http.ResponseWriter, _ *http.Request) {
	snap := m.R.Table().Snapshot()
	out := make([]SessionJSON, 0, len(snap))
	for _, s := range snap {
		peer, _ := netip.ParseAddrPort(s.Peer)
		loc, _ := netip.ParseAddrPort(s.Local)
		out = append(out, SessionJSON{ID: SessionID(reflector.SessionKey{Peer: peer, Local: loc, SSID: s.SSID}), SessionInfo: s})
	}
	writeJSON(w, http.StatusOK, out)
}

func (m *Monitor) postSession(w http.ResponseWriter, req *http.Request) {
	var pr ProvisionRequest
	dec := json.NewDecoder(io.LimitReader(req.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&pr); err != nil {
		httpError(w, http.StatusBadRequest, fmt.Errorf("body: %w", err))
		return
	}
	peer, err := netip.ParseAddrPort(pr.Peer)
	if err != nil {
		httpError(w, http.StatusBadRequest, fmt.Errorf("peer: %w", err))
		return
	}
	var local netip.AddrPort
	switch {
	case pr.Local != "":
		local, err = netip.ParseAddrPort(pr.Local)
		if err != nil {
			httpError(w, http.StatusBadRequest, fmt.Errorf("local: %w", err))
			return
		}
		found := false
		for _, l := range m.Listen {
			found = found || l == local
		}
		if !found {
			httpError(w, http.StatusBadRequest, fmt.Errorf("local %v is not a listener (%v)", local, m.Listen))
			return
		}
	case len(m.Listen) == 1:
		local = m.Listen[0]
	default:
		httpError(w, http.StatusBadRequest, errors.New("local is required with several listeners"))
		return
	}
	cfg := m.R.Config()
	s := &reflector.Session{Key: reflector.SessionKey{Peer: normalize(peer), Local: local, SSID: pr.SSID},
		Format: cfg.Format, Mode: cfg.Mode}
	// An IPv6 zone may contain '@', the id separator: such a session could never be deleted.
	if k, err := ParseSessionID(SessionID(s.Key)); err != nil || k != s.Key {
		httpError(w, http.StatusBadRequest, fmt.Errorf("peer %v: zone cannot be named in a session id", peer))
		return
	}
	if pr.Key != "" {
		k, err := testpkt.ParseKey([]byte(pr.Key))
		if err != nil {
			httpError(w, http.StatusBadRequest, err)
			return
		}
		s.Auth = reflector.NewSTAMPAuth(k)
	}
	if err := m.R.Table().Provision(s, false); err != nil {
		httpError(w, http.StatusConflict, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"id": SessionID(s.Key), "peer": s.Key.Peer.String(),
		"local": s.Key.Local.String(), "ssid": s.Key.SSID, "keyed": s.Auth != nil})
}

func (m *Monitor) deleteSession(w http.ResponseWriter, req *http.Request) {
	k, err := ParseSessionID(req.PathValue("id"))
	if err != nil {
		httpError(w, http.StatusBadRequest, err)
		return
	}
	if !m.R.Table().Remove(k) {
		httpError(w, http.StatusNotFound, errors.New("no such session"))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// StatsJSON is the body of GET /stats.
type StatsJSON struct {
	Uptime        float64           `json:"uptime_seconds"`
	Listen        []string          `json:"listen"`
	Mode          string            `json:"mode"`
	Stateless     bool              `json:"stateless"`
	Sessions      int               `json:"sessions"`
	Received      uint64            `json:"received"`
	Reflected     uint64            `json:"reflected"`
	RxKernel      uint64            `json:"rx_kernel_timestamps"`
	Drops         map[string]uint64 `json:"drops"`
	ResidenceMean float64           `json:"residence_mean_us"`
	Residence     map[string]uint64 `json:"residence_le_us"`
}

func (m *Monitor) stats() StatsJSON {
	st := &m.R.Stats
	cfg := m.R.Config()
	out := StatsJSON{Uptime: time.Since(m.Started).Seconds(), Mode: cfg.Mode.String(), Stateless: cfg.Stateless,
		Sessions: m.R.Table().Len(), Received: st.Received.Load(), Reflected: st.Reflected.Load(),
		RxKernel: st.RxKernel.Load(), Drops: map[string]uint64{}, Residence: map[string]uint64{}}
	for _, l := range m.Listen {
		out.Listen = append(out.Listen, l.String())
	}
	for i := 0; i < reflector.NumDrops; i++ {
		out.Drops[reflector.DropName(i)] = st.Drops[i].Load()
	}
	bounds := reflector.ResidenceBounds()
	var n uint64
	for i := range st.Residence {
		c := st.Residence[i].Load()
		n += c
		label := "+Inf"
		if i < len(bounds) {
			label = strconv.FormatFloat(float64(bounds[i])/1e3, 'g', -1, 64)
		}
		out.Residence[label] = c
	}
	if n > 0 {
		out.ResidenceMean = float64(st.ResidenceSum.Load()) / float64(n) / 1e3
	}
	return out
}

func (m *Monitor) getStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, m.stats())
}

// getMetrics writes the Prometheus text exposition format (version 0.0.4) by hand.
func (m *Monitor) getMetrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	st := &m.R.Stats
	var b strings.Builder
	counter := func(name, help string, v uint64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	counter("stampref_received_packets_total", "Test packets received.", st.Received.Load())
	counter("stampref_reflected_packets_total", "Test packets reflected.", st.Reflected.Load())
	counter("stampref_kernel_rx_timestamps_total", "Reflected packets whose T2 is a kernel timestamp.", st.RxKernel.Load())
	b.WriteString("# HELP stampref_dropped_packets_total Test packets dropped, by reason.\n# TYPE stampref_dropped_packets_total counter\n")
	for i := 0; i < reflector.NumDrops; i++ {
		fmt.Fprintf(&b, "stampref_dropped_packets_total{reason=%q} %d\n", reflector.DropName(i), st.Drops[i].Load())
	}
	fmt.Fprintf(&b, "# HELP stampref_sessions Sessions in the table.\n# TYPE stampref_sessions gauge\nstampref_sessions %d\n", m.R.Table().Len())
	b.WriteString("# HELP stampref_residence_seconds Reflector residence time T3-T2.\n# TYPE stampref_residence_seconds histogram\n")
	bounds := reflector.ResidenceBounds()
	var cum uint64
	for i := range st.Residence {
		cum += st.Residence[i].Load()
		le := "+Inf"
		if i < len(bounds) {
			le = strconv.FormatFloat(bounds[i].Seconds(), 'g', -1, 64)
		}
		fmt.Fprintf(&b, "stampref_residence_seconds_bucket{le=%q} %d\n", le, cum)
	}
	fmt.Fprintf(&b, "stampref_residence_seconds_sum %s\nstampref_residence_seconds_count %d\n",
		strconv.FormatFloat(time.Duration(st.ResidenceSum.Load()).Seconds(), 'g', -1, 64), cum)
	fmt.Fprintf(&b, "# HELP stampref_uptime_seconds Seconds since start.\n# TYPE stampref_uptime_seconds gauge\nstampref_uptime_seconds %s\n",
		strconv.FormatFloat(time.Since(m.Started).Seconds(), 'f', 3, 64))
	_, _ = io.WriteString(w, b.String())
}
