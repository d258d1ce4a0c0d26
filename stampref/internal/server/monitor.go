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
	"sync"
	"sync/atomic"
	"time"

	"github.com/probekit/probekit/shared/httpside"
	"github.com/probekit/probekit/shared/metrics"
	"github.com/probekit/probekit/shared/metrics/reflectormetrics"
	"github.com/probekit/probekit/shared/reflector"
	"github.com/probekit/probekit/shared/testpkt"
)

// Monitor is stampref's HTTP API (served behind shared/httpside's rules by Run):
//
//	GET    /sessions        sessions as JSON (provisioned and learned), ?offset=N&limit=N
//	                        (limit ≤ 1000, default 1000; X-Total-Count has the total)
//	POST   /sessions        provision {"peer": "ip:port", "local": "ip:port", "ssid": n, "key": "…"}
//	DELETE /sessions/{id}   remove a session; id is "SSID@PEER@LOCAL" as listed by GET
//	GET    /stats           counters as JSON
//	GET    /metrics         Prometheus text exposition format
//
// "local" may be omitted when stampref has one listener; "key" (raw or "hex:…", as in key
// files) gives the session its own HMAC key. Provisioned sessions count against the
// reflector's MaxSessions with the learned ones and are removed after ProvisionedIdle
// without a packet.
type Monitor struct {
	R       *reflector.Reflector
	Listen  []netip.AddrPort
	Started time.Time
	// ProvisionedIdle removes API-provisioned sessions this long after creation or their
	// last packet (0 = never; ExpireProvisioned does the work).
	ProvisionedIdle time.Duration
	// Side counts requests refused by the side port's rules (nil when not served by Run).
	Side *httpside.Stats

	once sync.Once
	reg  *metrics.Registry
	mu   sync.Mutex
	prov map[reflector.SessionKey]struct{} // sessions provisioned through the API
	// expired counts API-provisioned sessions removed by ExpireProvisioned.
	expired atomic.Uint64
	// refusedFull counts POSTs refused because the table was full.
	refusedFull atomic.Uint64
}

// ListLimit caps one page of GET /sessions.
const ListLimit = 1000

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
	mux.Handle("GET /metrics", m.Metrics().Handler())
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

func (m *Monitor) getSessions(w http.ResponseWriter, req *http.Request) {
	offset, limit, err := httpside.Page(req, ListLimit, ListLimit)
	if err != nil {
		httpError(w, http.StatusBadRequest, err)
		return
	}
	snap := m.R.Table().Snapshot()
	start, end := httpside.Slice(len(snap), offset, limit)
	out := make([]SessionJSON, 0, end-start)
	for _, s := range snap[start:end] {
		out = append(out, SessionJSON{ID: SessionID(infoKey(s)), SessionInfo: s})
	}
	w.Header().Set("X-Total-Count", strconv.Itoa(len(snap)))
	writeJSON(w, http.StatusOK, out)
}

// infoKey is the table key of a listed session.
func infoKey(s reflector.SessionInfo) reflector.SessionKey {
	peer, _ := netip.ParseAddrPort(s.Peer)
	loc, _ := netip.ParseAddrPort(s.Local)
	return reflector.SessionKey{Peer: peer, Local: loc, SSID: s.SSID}
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
	m.mu.Lock()
	defer m.mu.Unlock()
	// The table bounds learned and provisioned sessions together (--max-sessions); a full
	// table refuses the POST rather than evict a sender that is measuring.
	if err := m.R.Table().Provision(s, false); errors.Is(err, reflector.ErrTableFull) {
		m.refusedFull.Add(1)
		httpError(w, http.StatusInsufficientStorage, fmt.Errorf("%w: --max-sessions %d reached (learned and provisioned)", err, m.R.Table().Max()))
		return
	} else if err != nil {
		httpError(w, http.StatusConflict, err)
		return
	}
	if m.prov == nil {
		m.prov = map[reflector.SessionKey]struct{}{}
	}
	m.prov[s.Key] = struct{}{}
	writeJSON(w, http.StatusCreated, map[string]any{"id": SessionID(s.Key), "peer": s.Key.Peer.String(),
		"local": s.Key.Local.String(), "ssid": s.Key.SSID, "keyed": s.Auth != nil})
}

func (m *Monitor) deleteSession(w http.ResponseWriter, req *http.Request) {
	k, err := ParseSessionID(req.PathValue("id"))
	if err != nil {
		httpError(w, http.StatusBadRequest, err)
		return
	}
	m.mu.Lock()
	delete(m.prov, k)
	m.mu.Unlock()
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

// Provisioned returns how many sessions the API provisioned that still exist.
func (m *Monitor) Provisioned() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.prov)
}

// ExpireProvisioned removes API-provisioned sessions that saw no packet for
// ProvisionedIdle (counting from creation) and returns how many it removed. Run calls it
// periodically.
func (m *Monitor) ExpireProvisioned(now time.Time) int {
	if m.ProvisionedIdle <= 0 {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.prov) == 0 {
		return 0
	}
	cutoff := now.Add(-m.ProvisionedIdle)
	n := 0
	present := make(map[reflector.SessionKey]bool, len(m.prov))
	for _, si := range m.R.Table().Snapshot() {
		k := infoKey(si)
		if _, ok := m.prov[k]; !ok || !si.Provisioned {
			continue
		}
		present[k] = true
		last := si.Created
		if si.LastSeen.After(last) {
			last = si.LastSeen
		}
		if last.Before(cutoff) {
			m.R.Table().Remove(k)
			delete(m.prov, k)
			n++
		}
	}
	for k := range m.prov { // removed by other means (replaced by a learned one, table reset)
		if !present[k] {
			delete(m.prov, k)
		}
	}
	m.expired.Add(uint64(n))
	return n
}

// Metrics returns stampref's metrics registry (built on first use): the reflector's counters
// (shared/metrics/reflectormetrics), the table, the API's provisioned sessions and refusals.
func (m *Monitor) Metrics() *metrics.Registry {
	m.once.Do(func() {
		reg := metrics.New("stampref")
		reflectormetrics.Register(reg, m.R)
		reg.Gauge("sessions", "Sessions in the table.", func() float64 { return float64(m.R.Table().Len()) })
		reg.Gauge("provisioned_sessions", "Sessions provisioned through the monitoring API.", func() float64 { return float64(m.Provisioned()) })
		reg.Counter("provisioned_expired_total", "API-provisioned sessions removed after the provisioned idle timeout.", m.expired.Load)
		reg.Counter("provision_refused_full_total", "POST /sessions refused because the table was full.", m.refusedFull.Load)
		reg.CounterVec("api_refused_requests_total", "Monitoring API requests refused by the side-port rules, by rule.", "rule",
			func(emit func(string, uint64)) {
				if m.Side == nil {
					return
				}
				for k, v := range m.Side.Refused() {
					emit(k, v)
				}
			})
		reg.Gauge("uptime_seconds", "Seconds since start.", func() float64 { return time.Since(m.Started).Seconds() })
		m.reg = reg
	})
	return m.reg
}
