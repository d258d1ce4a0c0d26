// Package extras adds ptpclient's port mapping (--port-mapping: UPnP IGD, NAT-PMP, PCP through
// shared/portmap, a granted mapping announced to peers as a candidate) and bulk transfer
// (--send FILE --to PEER, --accept-dir DIR, --rate: shared/ptpbulk over the path the mesh found,
// direct or relayed) to a running client.
package extras

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/shared/portmap"
	"github.com/probekit/probekit/shared/ptp"
	"github.com/probekit/probekit/shared/ptpbulk"
)

// Flag names.
const (
	FlagPortMapping = "port-mapping"
	FlagSend        = "send"
	FlagTo          = "to"
	FlagAcceptDir   = "accept-dir"
	FlagRate        = "rate"
)

// Flags are the command-line flags of this package.
var Flags = []cli.Flag{
	&cli.BoolFlag{Name: FlagPortMapping, Usage: "ask the gateway to forward our port (UPnP IGD, NAT-PMP, PCP), announce a granted mapping to peers, renew it and delete it on exit"},
	&cli.StringFlag{Name: FlagSend, Usage: "send `FILE` to the peer named by --to over the path the mesh found (direct or relayed), then exit"},
	&cli.StringFlag{Name: FlagTo, Usage: "the `PEER` for --send: its UUID or its address as the server lists it (IP:PORT)"},
	&cli.StringFlag{Name: FlagAcceptDir, Usage: "accept files peers send into `DIR` (written under a temporary name, verified with SHA-256, then renamed)"},
	&cli.StringFlag{Name: FlagRate, Usage: "cap what --send puts on the path at `RATE` bytes/s (suffixes k, M, G; bits with a trailing bit, e.g. 80Mbit)"},
}

// Config is what the flags ask for.
type Config struct {
	PortMapping bool
	Send        string
	To          string
	AcceptDir   string
	Rate        float64 // bytes/s
}

// Enabled reports whether anything was asked for.
func (c Config) Enabled() bool { return c.PortMapping || c.Send != "" || c.AcceptDir != "" }

// FromFlags reads and checks the flags (usage errors exit 2).
func FromFlags(c *cli.Context) (Config, error) {
	cfg := Config{PortMapping: c.Bool(FlagPortMapping), Send: c.String(FlagSend), To: c.String(FlagTo), AcceptDir: c.String(FlagAcceptDir)}
	if (cfg.Send == "") != (cfg.To == "") {
		return cfg, cliutil.Usagef("--%s and --%s go together", FlagSend, FlagTo)
	}
	if cfg.Send != "" {
		if st, err := os.Stat(cfg.Send); err != nil || !st.Mode().IsRegular() {
			return cfg, cliutil.Usagef("--%s %q: not a readable regular file", FlagSend, cfg.Send)
		}
	}
	if cfg.AcceptDir != "" {
		if st, err := os.Stat(cfg.AcceptDir); err != nil || !st.IsDir() {
			return cfg, cliutil.Usagef("--%s %q: not a directory", FlagAcceptDir, cfg.AcceptDir)
		}
	}
	if r := c.String(FlagRate); r != "" {
		v, err := ParseRate(r)
		if err != nil {
			return cfg, cliutil.Usagef("--%s: %v", FlagRate, err)
		}
		cfg.Rate = v
	}
	return cfg, nil
}

// ParseRate reads "500000", "12.5M" (bytes/s) or "80Mbit" (bits/s) into bytes per second.
func ParseRate(s string) (float64, error) {
	bits := false
	t := strings.TrimSpace(s)
	if u, ok := strings.CutSuffix(t, "bit"); ok {
		bits, t = true, u
	} else if u, ok := strings.CutSuffix(t, "B"); ok {
		t = u
	}
	mult := 1.0
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k', 'K':
			mult, t = 1e3, t[:n-1]
		case 'M':
			mult, t = 1e6, t[:n-1]
		case 'G':
			mult, t = 1e9, t[:n-1]
		}
	}
	var v float64
	if _, err := fmt.Sscanf(t, "%g", &v); err != nil || v <= 0 || strings.ContainsAny(t, " \t") {
		return 0, fmt.Errorf("%q is not a rate (e.g. 500k, 12.5M, 80Mbit)", s)
	}
	v *= mult
	if bits {
		v /= 8
	}
	return v, nil
}

// Client is what this package needs from the mesh client.
type Client interface {
	// SendExtra sends v3 TLVs to a peer over its current path (direct, else relayed).
	SendExtra(peer ptp.UUID, tlvs []ptp.TLV) error
	// AddCandidate announces an extra address of ours to the server and peers.
	AddCandidate(a netip.AddrPort)
	// SetPortMaps reports the port-mapping outcomes to the server (PORTMAP) and the status pane.
	SetPortMaps(ps []ptp.PortMap)
	// LocalAddr is the client's socket address.
	LocalAddr() netip.AddrPort
	// Peers lists the peers the server listed: UUID, listed address and current path.
	Peers() []PeerInfo
}

// PeerInfo names a peer.
type PeerInfo struct {
	UUID    ptp.UUID
	Address string
	Path    ptp.Path
}

// Extras runs the port mapping and the transfers of one client.
type Extras struct {
	cfg  Config
	cl   Client
	log  logrus.FieldLogger
	prog *ptpbulk.Printer
	out  io.Writer
	json bool

	mu        sync.Mutex
	sessions  map[ptp.UUID]*session
	transfers []TransferJSON
	mapper    *portmap.Mapper
	sendDone  chan error
	started   chan struct{} // closed when Start has finished the port mapping's first round
	startOnce sync.Once
}

// session is one transfer with one peer: the frames for it arrive on ch.
type session struct {
	ch     chan []byte
	free   chan []byte // buffers the transfer gave back, reused for the next frames
	cancel context.CancelFunc
	drops  atomic.Int64 // frames dropped because ch was full
}

// sessionQueue bounds the frames waiting for a transfer: at 100 Mbit/s (about 10,000 blocks a
// second) half a second of backlog.
const sessionQueue = 4096

func newSession(cancel context.CancelFunc) *session {
	return &session{ch: make(chan []byte, sessionQueue), free: make(chan []byte, sessionQueue+2), cancel: cancel}
}

// buf returns an empty buffer for a frame: one given back, else a new one (only until the
// transfer has given back as many as can be in flight).
func (s *session) buf() []byte {
	select {
	case b := <-s.free:
		return b[:0]
	default:
		return make([]byte, 0, ptp.MaxPacket)
	}
}

// New prepares the extras; out receives progress (bar on a terminal, JSON lines otherwise) and
// the transfer reports.
func New(cfg Config, out io.Writer, terminal, jsonOut bool, log logrus.FieldLogger) *Extras {
	return &Extras{cfg: cfg, log: log, out: out, json: jsonOut, prog: ptpbulk.NewPrinter(out, terminal && !jsonOut),
		sessions: map[ptp.UUID]*session{}, sendDone: make(chan error, 1), started: make(chan struct{})}
}

// OnExtra is the client's Config.Extra: it hands bulk TLVs to the peer's transfer, starting a
// receiver for an offer when --accept-dir is set. It runs under the client's lock on the
// socket reader's goroutine: it copies the TLVs into a buffer the transfer gave back (no
// allocation per datagram once the transfer runs) and queues it on the channel the transfer
// reads directly (ptpbulk.FramePath), never blocking.
func (e *Extras) OnExtra(peer ptp.UUID, _ ptp.Path, m *ptp.Message) {
	bulk, offer := false, false
	for _, t := range m.Extra {
		if t.Type >= ptp.TypeBulkFirst && t.Type <= ptp.TypeBulkLast {
			bulk = true
			offer = offer || t.Type == ptp.TypeBulkOffer
		}
	}
	if !bulk {
		return
	}
	e.mu.Lock()
	s := e.sessions[peer]
	if s == nil && offer && e.cfg.AcceptDir != "" && e.cl != nil {
		s = e.startReceive(peer)
	}
	e.mu.Unlock()
	if s == nil {
		return
	}
	frame := s.buf()
	for _, t := range m.Extra {
		if t.Type >= ptp.TypeBulkFirst && t.Type <= ptp.TypeBulkLast {
			frame = ptp.AppendTLV(frame, t.Type, t.Value)
		}
	}
	select {
	case s.ch <- frame:
	default: // the transfer is behind: a lost datagram, which it recovers from
		s.drops.Add(1)
		s.release(frame)
	}
}

func (s *session) release(b []byte) {
	select {
	case s.free <- b:
	default:
	}
}

// path is a ptpbulk.Path to one peer through the client.
type path struct {
	e    *Extras
	peer ptp.UUID
	s    *session
	tlvs []ptp.TLV
}

func (p *path) Send(frame []byte) error {
	p.tlvs = p.tlvs[:0]
	for b := frame; len(b) > 0; {
		t, rest, err := ptp.NextTLV(b)
		if err != nil {
			return err
		}
		p.tlvs = append(p.tlvs, t)
		b = rest
	}
	return p.e.cl.SendExtra(p.peer, p.tlvs)
}

// Frames and Release make path a ptpbulk.FramePath: the transfer reads the frames OnExtra
// queues and gives their buffers back.
func (p *path) Frames() <-chan []byte { return p.s.ch }
func (p *path) Release(b []byte)      { p.s.release(b) }

func (p *path) Recv(ctx context.Context) ([]byte, error) {
	select {
	case b := <-p.s.ch:
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// TransferJSON is a finished transfer in the client's JSON output (type "transfer").
type TransferJSON struct {
	ptpbulk.ReportJSON
	Peer string `json:"peer"`
	// HandoffDrops counts frames the client received for the transfer but dropped because
	// the transfer had not taken the earlier ones yet.
	HandoffDrops int64 `json:"handoff_drops"`
}

func (e *Extras) record(peer ptp.UUID, s *session, r ptpbulk.Report, err error) {
	j := TransferJSON{ReportJSON: ptpbulk.FinalJSON(r, err), Peer: peer.String(), HandoffDrops: s.drops.Load()}
	e.prog.Finish()
	e.mu.Lock()
	e.transfers = append(e.transfers, j)
	delete(e.sessions, peer)
	e.mu.Unlock()
	if e.json {
		b, _ := json.Marshal(j)
		fmt.Fprintf(e.out, "%s\n", b)
	} else {
		line := ptpbulk.Summary(r)
		if err != nil {
			line += ": " + err.Error()
		}
		fmt.Fprintln(e.out, line)
	}
}

// startReceive starts a receiver for peer's offer (e.mu held).
func (e *Extras) startReceive(peer ptp.UUID) *session {
	ctx, cancel := context.WithCancel(context.Background())
	s := newSession(cancel)
	e.sessions[peer] = s
	p := &path{e: e, peer: peer, s: s}
	e.log.WithField("peer", peer).Info("receiving a file")
	go func() {
		defer cancel()
		rep, err := ptpbulk.Receive(ctx, p, ptpbulk.RecvConfig{Dir: e.cfg.AcceptDir, Progress: e.prog.Update})
		e.record(peer, s, rep, err)
	}()
	return s
}

// Start begins the port mapping and the --send transfer once the client runs, each in its own
// goroutine (the mapping's first round takes a few seconds); ctx ends them.
func (e *Extras) Start(ctx context.Context, cl Client) {
	e.mu.Lock()
	e.cl = cl
	e.mu.Unlock()
	go func() {
		defer e.startOnce.Do(func() { close(e.started) })
		if e.cfg.PortMapping {
			e.mapPort(ctx, cl)
		}
	}()
	if e.cfg.Send != "" {
		go func() { e.sendDone <- e.send(ctx) }()
	}
}

func (e *Extras) mapPort(ctx context.Context, cl Client) {
	port := cl.LocalAddr().Port()
	m, err := portmap.Start(ctx, portmap.Config{Port: port, Log: e.log, OnChange: func(rs []portmap.Result) {
		for _, r := range rs {
			if a, err := netip.ParseAddrPort(r.External); err == nil && r.Granted() {
				cl.AddCandidate(a)
			}
		}
		cl.SetPortMaps(portmap.ToTLV(rs))
	}})
	if err != nil {
		e.log.WithError(err).Warn("port mapping")
		return
	}
	e.mu.Lock()
	e.mapper = m
	e.mu.Unlock()
	cl.SetPortMaps(portmap.ToTLV(m.Results()))
	for _, r := range m.Results() {
		f := e.log.WithFields(logrus.Fields{"protocol": r.Protocol, "gateway": r.Gateway})
		if r.Granted() {
			f.WithFields(logrus.Fields{"external": r.External, "lifetime_s": r.Lifetime}).Info("port mapping granted")
		} else {
			f.WithField("error", r.Error).Info("port mapping not granted")
		}
	}
}

// SendDone delivers the --send outcome once (nil channel without --send).
func (e *Extras) SendDone() <-chan error {
	if e.cfg.Send == "" {
		return nil
	}
	return e.sendDone
}

// ErrNoPeer: --to names no peer the server listed in time.
var ErrNoPeer = errors.New("peer not found")

func (e *Extras) send(ctx context.Context) error {
	// Wait for the peer to be listed and, for a few seconds, for a path to it.
	var peer ptp.UUID
	found := false
	deadline := time.Now().Add(30 * time.Second)
	pathWait := time.Time{}
	for {
		for _, p := range e.cl.Peers() {
			if p.UUID.String() == strings.ToLower(strings.ReplaceAll(e.cfg.To, "-", "")) || p.Address == e.cfg.To {
				peer, found = p.UUID, true
				if pathWait.IsZero() {
					pathWait = time.Now().Add(10 * time.Second)
				}
				if p.Path != ptp.PathNone || time.Now().After(pathWait) {
					goto ready
				}
			}
		}
		if !found && time.Now().After(deadline) {
			return fmt.Errorf("%w: %s is not in the server's list", ErrNoPeer, e.cfg.To)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
ready:
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := newSession(cancel)
	e.mu.Lock()
	e.sessions[peer] = s
	e.mu.Unlock()
	p := &path{e: e, peer: peer, s: s}
	rep, err := ptpbulk.Send(ctx, p, ptpbulk.SendConfig{File: e.cfg.Send, ID: rand.Uint32(), Rate: e.cfg.Rate, Progress: e.prog.Update})
	e.record(peer, s, rep, err)
	return err
}

// Results is what the client's final JSON summary adds: the port-mapping result per protocol
// and the transfers.
type Results struct {
	PortMapping []portmap.Result `json:"port_mapping,omitempty"`
	Transfers   []TransferJSON   `json:"transfers,omitempty"`
}

// Summary returns the figures so far.
func (e *Extras) Summary() Results {
	e.mu.Lock()
	defer e.mu.Unlock()
	var s Results
	if e.mapper != nil {
		s.PortMapping = e.mapper.Results()
	}
	s.Transfers = append(s.Transfers, e.transfers...)
	return s
}

// Close stops the transfers and deletes the port mappings (the exit path, SIGTERM included).
// It waits for a running Start, so a mapping granted while the client stops is deleted too.
func (e *Extras) Close() error {
	e.mu.Lock()
	started := e.cl != nil
	e.mu.Unlock()
	if started {
		<-e.started
	}
	e.mu.Lock()
	for _, s := range e.sessions {
		s.cancel()
	}
	m := e.mapper
	e.mu.Unlock()
	if m != nil {
		return m.Close()
	}
	return nil
}
