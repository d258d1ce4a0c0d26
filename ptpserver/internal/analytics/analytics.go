// Package analytics plugs the mesh analytics into ptpserver: --store keeps membership events,
// reachability reports and client NAT information in the SQLite store (internal/store), and
// --web serves the page, JSON API and metrics (internal/web). Importing it registers the flags
// and the run hook with internal/cmd.
package analytics

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/probekit/probekit/ptpserver/internal/cmd"
	"github.com/probekit/probekit/ptpserver/internal/server"
	"github.com/probekit/probekit/ptpserver/internal/store"
	"github.com/probekit/probekit/ptpserver/internal/web"
	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/shared/httpside"
	"github.com/probekit/probekit/shared/portmap"
	"github.com/probekit/probekit/shared/ptp"
)

// Flag names.
const (
	FlagStore     = "store"
	FlagRetention = "retention"
	FlagWeb       = "web"
	FlagWebToken  = "web-token"
	FlagTokenFile = "web-token-file"
	FlagEvery     = "store-every"
)

func init() {
	cmd.Register(hook,
		&cli.StringFlag{Name: FlagStore, Usage: "keep reachability reports, per-pair RTT/loss summaries and membership events in the SQLite database at `PATH` (created if missing)"},
		&cli.DurationFlag{Name: FlagRetention, Value: store.DefaultRetention, Usage: "delete stored data older than `D`"},
		&cli.DurationFlag{Name: FlagEvery, Value: DefaultEvery, Usage: "store a pair's reachability report at most every `D` (clients report every 7 s), and at once when its path or reason changes; 0 stores every report"},
		&cli.StringFlag{Name: FlagWeb, Usage: "serve the mesh page, the JSON API (/api/) and Prometheus metrics (/metrics) on `ADDR` (IP:PORT, or :PORT for localhost); an address other than loopback needs --web-token or --web-token-file"},
		&cli.StringFlag{Name: FlagWebToken, Usage: "bearer `TOKEN` for --web (visible in the process list: prefer --web-token-file)"},
		&cli.StringFlag{Name: FlagTokenFile, Usage: "read the --web token from `FILE` (mode 0600)"},
	)
}

// webAddr makes ":PORT" loopback, and checks IP:PORT.
func webAddr(s string) (string, error) {
	if strings.HasPrefix(s, ":") {
		s = "127.0.0.1" + s
	}
	if _, err := netip.ParseAddrPort(s); err != nil {
		return "", fmt.Errorf("want IP:PORT or :PORT: %v", err)
	}
	return s, nil
}

func hook(c *cli.Context, srv *server.Server, log logrus.FieldLogger) (server.Observer, func(), error) {
	path, addr := c.String(FlagStore), c.String(FlagWeb)
	if path == "" && addr == "" {
		if c.IsSet(FlagRetention) || c.IsSet(FlagWebToken) || c.IsSet(FlagTokenFile) {
			return nil, nil, cliutil.Usagef("--%s and --%s/--%s need --%s or --%s", FlagRetention, FlagWebToken, FlagTokenFile, FlagStore, FlagWeb)
		}
		return nil, nil, nil
	}
	if c.Duration(FlagRetention) <= 0 || c.Duration(FlagEvery) < 0 {
		return nil, nil, cliutil.Usagef("--%s must be positive and --%s not negative", FlagRetention, FlagEvery)
	}
	token := c.String(FlagWebToken)
	if f := c.String(FlagTokenFile); f != "" {
		if token != "" {
			return nil, nil, cliutil.Usagef("--%s and --%s exclude each other", FlagWebToken, FlagTokenFile)
		}
		var err error
		if token, err = httpside.LoadToken(f); err != nil {
			return nil, nil, cliutil.Usagef("--%s: %v", FlagTokenFile, err)
		}
	}
	if addr != "" {
		var err error
		if addr, err = webAddr(addr); err != nil {
			return nil, nil, cliutil.Usagef("--%s: %v", FlagWeb, err)
		}
		if ap := netip.MustParseAddrPort(addr); !ap.Addr().IsLoopback() && token == "" {
			return nil, nil, cliutil.Usagef("--%s %s is not loopback: it needs --%s or --%s", FlagWeb, addr, FlagWebToken, FlagTokenFile)
		}
	}
	st, err := store.Open(context.Background(), path, store.Options{Retention: c.Duration(FlagRetention), Log: log})
	if err != nil {
		return nil, nil, err
	}
	if path != "" {
		log.WithFields(logrus.Fields{"path": path, "retention": c.Duration(FlagRetention)}).Info("mesh analytics store open")
	}
	ctx, cancel := context.WithCancel(context.Background())
	var side *httpside.Server
	if addr != "" {
		h := web.New(web.Config{Source: st, Token: token, Log: log,
			Relay: func() (uint64, uint64) { s := srv.Stats(); return s.Relayed, s.RelayedBytes }})
		side, err = web.Listen(ctx, addr, h, log)
		if err != nil {
			// An optional side port never stops the daemon.
			log.WithError(err).Error("web page not served")
		} else {
			log.WithField("url", "http://"+side.Addr().String()+"/").Info("mesh web page")
		}
	}
	obs := NewObserver(st, c.Duration(FlagEvery))
	finish := func() {
		cancel()
		if side != nil {
			<-side.Done()
		}
		if err := st.Close(); err != nil {
			log.WithError(err).Error("closing the store")
		}
	}
	return obs, finish, nil
}

// DefaultEvery is the --store-every default.
const DefaultEvery = time.Minute

// seenEvery bounds how stale a client's "last seen" may get in the store while nothing else
// about it changes.
const seenEvery = time.Minute

// Observer records the server's events in a store. Clients report every pair every 7 s; a
// pair's report is stored when its path or reason changed, and otherwise at most every
// `every` (the counters are cumulative, so loss over any stored interval stays exact). A
// client's row is written when something about it changed.
type Observer struct {
	st      *store.Store
	every   time.Duration
	mu      sync.Mutex
	clients map[[2]string]*known
	pairs   map[[3]string]stored
}

type known struct {
	c       store.Client
	written time.Time
}

type stored struct {
	at     time.Time
	path   ptp.Path
	reason string
}

// NewObserver returns an observer writing to st, thinning each pair's reports to one per
// every (0: all).
func NewObserver(st *store.Store, every time.Duration) *Observer {
	return &Observer{st: st, every: every, clients: map[[2]string]*known{}, pairs: map[[3]string]stored{}}
}

func hairpin(h uint8) string {
	switch h {
	case ptp.HairpinYes:
		return "yes"
	case ptp.HairpinNo:
		return "no"
	}
	return "unknown"
}

// candidates is what the server knows of a client's port mappings: the extra candidate
// addresses it announced (a granted mapping is announced as one).
func candidates(cs []netip.AddrPort) json.RawMessage {
	if len(cs) == 0 {
		return nil
	}
	type cand struct {
		Protocol string `json:"protocol"`
		Gateway  string `json:"gateway"`
		External string `json:"external"`
	}
	out := make([]cand, 0, len(cs))
	for _, a := range cs {
		out = append(out, cand{Protocol: "candidate", Gateway: "announced", External: a.String()})
	}
	b, _ := json.Marshal(out)
	return b
}

// portMaps is the port-mapping column from the client's PORTMAP TLVs, in shared/portmap's
// JSON shape (the one the client prints).
func portMaps(ps []ptp.PortMap) json.RawMessage {
	rs := portmap.FromTLV(ps)
	if rs == nil {
		return nil
	}
	b, _ := json.Marshal(rs)
	return b
}

// client updates what is known about a client and returns it with whether it must be written.
func (o *Observer) client(ci server.ClientInfo, online bool, nat *ptp.NATInfo) (store.Client, bool) {
	k := [2]string{ci.Mesh, ci.UUID.String()}
	o.mu.Lock()
	defer o.mu.Unlock()
	kn := o.clients[k]
	if kn == nil {
		kn = &known{c: store.Client{Mesh: ci.Mesh, UUID: ci.UUID.String(), Mapping: "unknown", Filtering: "unknown", Hairpin: "unknown"}}
	}
	old := kn.c
	c := &kn.c
	c.Seen, c.Addr, c.Version, c.Online = ci.Time, ci.Addr.String(), int(ci.Version), online
	if nat == nil {
		nat = ci.NAT
	}
	if nat != nil {
		c.Mapping, c.Filtering, c.Hairpin = nat.Mapping.String(), nat.Filtering.String(), hairpin(nat.Hairpin)
		if nat.Public.IsValid() {
			c.Public = nat.Public.String()
		}
	}
	if pm := portMaps(ci.PortMaps); pm != nil {
		c.PortMap = pm
	} else if pm := candidates(ci.Candidates); pm != nil {
		c.PortMap = pm
	}
	changed := old.Addr != c.Addr || old.Version != c.Version || old.Online != c.Online || old.Mapping != c.Mapping ||
		old.Filtering != c.Filtering || old.Hairpin != c.Hairpin || old.Public != c.Public ||
		string(old.PortMap) != string(c.PortMap) || ci.Time.Sub(kn.written) >= seenEvery
	if changed {
		kn.written = ci.Time
	}
	if online {
		o.clients[k] = kn
	} else {
		delete(o.clients, k)
	}
	return *c, changed
}

// Joined records a join event and the client.
func (o *Observer) Joined(ci server.ClientInfo) {
	c, _ := o.client(ci, true, nil)
	o.st.SetClient(c)
	o.st.AddEvent(store.Event{Time: ci.Time, Mesh: ci.Mesh, UUID: ci.UUID.String(), Kind: store.EventJoin, Addr: ci.Addr.String()})
}

// Left records a leave ("shutdown"), expiry or move.
func (o *Observer) Left(ci server.ClientInfo, reason string) {
	kind := reason
	switch reason {
	case "shutdown":
		kind = store.EventLeave
	case "expired":
		kind = store.EventExpire
	}
	c, _ := o.client(ci, false, nil)
	o.st.SetClient(c)
	o.mu.Lock()
	for k := range o.pairs {
		if k[0] == ci.Mesh && k[1] == c.UUID {
			delete(o.pairs, k)
		}
	}
	o.mu.Unlock()
	o.st.AddEvent(store.Event{Time: ci.Time, Mesh: ci.Mesh, UUID: ci.UUID.String(), Kind: kind, Addr: ci.Addr.String(), Detail: reason})
}

// Reported records the client's NAT information and its reports.
func (o *Observer) Reported(r server.Report) {
	ci := r.Client
	if c, changed := o.client(ci, true, r.NAT); changed {
		o.st.SetClient(c)
	}
	from := ci.UUID.String()
	for _, p := range r.Peers {
		k := [3]string{ci.Mesh, from, p.Peer.String()}
		o.mu.Lock()
		last, ok := o.pairs[k]
		keep := !ok || o.every == 0 || ci.Time.Sub(last.at) >= o.every || last.path != p.Path || last.reason != p.Reason
		if keep {
			o.pairs[k] = stored{ci.Time, p.Path, p.Reason}
		}
		o.mu.Unlock()
		if !keep {
			continue
		}
		o.st.AddReport(store.Report{Time: ci.Time, Mesh: ci.Mesh, From: from, To: p.Peer.String(), Path: store.Path(p.Path),
			Reason: p.Reason, Sent: p.Sent, Received: p.Received, Lost: p.Lost, RTTMin: p.RTTMin, RTTAvg: p.RTTAvg,
			RTTP50: p.RTTP50, RTTP99: p.RTTP99, RTTMax: p.RTTMax, Jitter: p.Jitter})
	}
}
