// Package probe is tcpexpose's initiator: an engine that sends crafted segments to one
// destination and records everything to and from it, and the middlebox test catalogue run on it.
package probe

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/shared/tcpcraft"
)

// Send paths.
const (
	SendRaw    = "raw"    // raw IP socket (IPPROTO_RAW, SO_MARK): traverses the local OUTPUT chain
	SendPacket = "packet" // AF_PACKET to the next hop's MAC: bypasses the local OUTPUT chain
)

// EngineConfig configures an Engine.
type EngineConfig struct {
	Dst    netip.AddrPort
	Source netip.Addr // local address (default: the route's preferred source)
	// SendPath is SendRaw (default) or SendPacket.
	SendPath string
	// Interface to record on (default: all).
	Interface string
	// ManageFirewall installs the RST-drop rule as an nft table until Close.
	ManageFirewall bool
	// Mark is the SO_MARK of crafted packets and the rule's exemption (default tcpcraft.DefaultMark).
	Mark uint32
	Log  logrus.FieldLogger
}

// Engine sends crafted segments to one destination and records every segment to and from it
// with kernel timestamps. Only Dst is ever sent to.
type Engine struct {
	Dst     netip.AddrPort
	Src     netip.Addr
	Rule    tcpcraft.RSTRule
	rec     *tcpcraft.Recorder
	sender  tcpcraft.Sender
	fw      *tcpcraft.Firewall
	unforce func() // unregisters the firewall cleanup of a forced exit
	log     logrus.FieldLogger
	// RSTSuppressed is the result of the pre-flight check (true with ManageFirewall).
	RSTSuppressed bool
	usedPorts     map[uint16]bool
}

// ErrLocalReset reports that the local kernel reset a crafted flow (no RST-drop rule).
var ErrLocalReset = errors.New("the local kernel reset the crafted flow (no RST-drop rule)")

// NewEngine opens the recorder and the sender, and installs (ManageFirewall) or checks the
// RST-drop rule.
func NewEngine(cfg EngineConfig) (*Engine, error) {
	if cfg.Log == nil {
		l := logrus.New()
		l.SetOutput(os.Stderr)
		cfg.Log = l
	}
	if cfg.Mark == 0 {
		cfg.Mark = tcpcraft.DefaultMark
	}
	dst := netip.AddrPortFrom(cfg.Dst.Addr().Unmap(), cfg.Dst.Port())
	e := &Engine{Dst: dst, log: cfg.Log, usedPorts: map[uint16]bool{}}
	e.Src = cfg.Source
	if !e.Src.IsValid() {
		rt, err := tcpcraft.LookupRoute(dst.Addr())
		if err != nil {
			return nil, err
		}
		e.Src = rt.Src
		if !e.Src.IsValid() {
			return nil, fmt.Errorf("probe: no source address for %v (use --source)", dst.Addr())
		}
	}
	e.Rule = tcpcraft.RSTRule{Peer: dst.Addr(), Port: dst.Port(), Mark: cfg.Mark}
	ok := false
	defer func() {
		if !ok {
			e.Close()
		}
	}()
	if cfg.ManageFirewall {
		// Owned by the process: even a killed run leaves no table behind.
		table := fmt.Sprintf("tcpexpose_%d", os.Getpid())
		fw, err := tcpcraft.InstallOwnedFirewall(table, e.Rule)
		if errors.Is(err, tcpcraft.ErrNoTableOwner) {
			fw, err = tcpcraft.InstallFirewall(table, e.Rule)
		}
		if err != nil {
			return nil, err
		}
		e.fw = fw
		// A second Ctrl-C exits without the normal Close: drop the table then too.
		e.unforce = cliutil.OnForcedExit(func() { _ = fw.Remove() })
		e.RSTSuppressed = true
	} else {
		sup, err := tcpcraft.RSTSuppressed(netip.AddrPortFrom(e.Src, e.freePort()), dst)
		if err != nil {
			return nil, err
		}
		e.RSTSuppressed = sup
		if !sup {
			e.log.Warnf("the local kernel will reset the crafted flows (it has no socket for them), which spoils the tests; install the rule: %s  or  %s  (or use --manage-firewall)",
				e.Rule.NFT("tcpexpose"), e.Rule.IPTables())
		}
	}
	iface := cfg.Interface
	if iface == "" {
		iface = "any"
	}
	rec, err := tcpcraft.NewRecorder(iface, dst.Addr(), dst.Port())
	if err != nil {
		return nil, err
	}
	e.rec = rec
	switch cfg.SendPath {
	case "", SendRaw:
		e.sender, err = tcpcraft.OpenRaw(cfg.Mark)
	case SendPacket:
		e.sender, err = tcpcraft.OpenPacket(dst.Addr())
	default:
		err = fmt.Errorf("probe: unknown send path %q (raw or packet)", cfg.SendPath)
	}
	if err != nil {
		return nil, err
	}
	ok = true
	return e, nil
}

// Close stops recording and removes the firewall table.
func (e *Engine) Close() error {
	var errs []error
	if e.sender != nil {
		errs = append(errs, e.sender.Close())
	}
	if e.rec != nil {
		errs = append(errs, e.rec.Close())
	}
	if e.fw != nil {
		errs = append(errs, e.fw.Remove())
		e.unforce()
	}
	return errors.Join(errs...)
}

// Records returns everything recorded so far.
func (e *Engine) Records() []tcpcraft.Record { return e.rec.Records() }

// FinalRecords stops recording once the kernel has handed over what it captured (the last
// segments of a run included) and returns every record; for --pcap at the end of a run.
func (e *Engine) FinalRecords() []tcpcraft.Record {
	_ = e.rec.Close() // Close (again) later is harmless
	return e.rec.Records()
}

// freePort picks a random local port in 20000–59999 not used by an earlier flow.
func (e *Engine) freePort() uint16 {
	for {
		var b [2]byte
		_, _ = rand.Read(b[:])
		p := 20000 + binary.BigEndian.Uint16(b[:])%40000
		if !e.usedPorts[p] {
			e.usedPorts[p] = true
			return p
		}
	}
}

// Conn is one crafted flow with its state and the recorder position where it started.
type Conn struct {
	*tcpcraft.Flow
	e      *Engine
	cursor int
	// Sent and Received hold the flow's segments in order (sent as built, received decoded).
	Sent []*tcpcraft.Segment
}

// NewConn starts a flow from a fresh local port with the given ISN, window and TSval base.
func (e *Engine) NewConn(isn uint32, window uint16, tsval uint32) *Conn {
	f := tcpcraft.NewFlow(netip.AddrPortFrom(e.Src, e.freePort()), e.Dst, isn, window, tsval)
	return &Conn{Flow: f, e: e, cursor: e.rec.Len()}
}

// Send transmits s (built for this flow) and advances the flow's state.
func (c *Conn) Send(s *tcpcraft.Segment) error {
	if err := c.e.sender.Send(s.Bytes()); err != nil {
		return err
	}
	c.Flow.Sent(s)
	c.Sent = append(c.Sent, s)
	return nil
}

// Expect waits up to timeout for the next segment from the peer on this flow satisfying match
// (nil: any); it updates the flow's peer state from what it returns.
func (c *Conn) Expect(ctx context.Context, timeout time.Duration, match func(*tcpcraft.Segment) bool) (tcpcraft.Received, bool, error) {
	r, ok, err := c.e.rec.Next(ctx, &c.cursor, time.Now().Add(timeout), func(s *tcpcraft.Segment) bool {
		return c.Flow.FromPeer(s) && (match == nil || match(s))
	})
	if ok {
		c.Flow.Received(r.Seg)
	}
	return r, ok, err
}

// Collect gathers the peer's segments of this flow arriving within d (after the cursor).
func (c *Conn) Collect(ctx context.Context, d time.Duration) ([]tcpcraft.Received, error) {
	deadline := time.Now().Add(d)
	var out []tcpcraft.Received
	for {
		r, ok, err := c.e.rec.Next(ctx, &c.cursor, deadline, c.Flow.FromPeer)
		if err != nil {
			return out, err
		}
		if !ok {
			return out, nil
		}
		c.Flow.Received(r.Seg)
		out = append(out, r)
	}
}

// LocalReset reports whether the local kernel sent an RST on this flow that we did not craft.
func (c *Conn) LocalReset() bool {
	_, ok := c.e.rec.Find(0, func(s *tcpcraft.Segment) bool {
		if !c.Flow.ToPeer(s) || s.Flags&tcpcraft.FlagRST == 0 {
			return false
		}
		for _, x := range c.Sent {
			if x.Flags&tcpcraft.FlagRST != 0 && x.Seq == s.Seq {
				return false
			}
		}
		return true
	})
	return ok
}

// Reset sends a crafted RST to end the flow in middleboxes (marked, so it passes the rule).
func (c *Conn) Reset() {
	s := c.Segment(tcpcraft.FlagRST, nil, nil)
	s.Window = 0
	_ = c.Send(s)
}
