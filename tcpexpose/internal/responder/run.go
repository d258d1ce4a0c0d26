package responder

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/probekit/probekit/shared/capture"
	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/shared/tcpcraft"
)

// Config configures Run.
type Config struct {
	Listen netip.AddrPort // address (unspecified: all) and port answered
	Params Params
	// Interface to capture on ("" or "any": all).
	Interface string
	// ManageFirewall installs the RST-drop rule as an nft table for the run (owned by the
	// process: the kernel removes it when the process ends).
	ManageFirewall bool
	// User is the account Run switches to after opening its sockets and table when started
	// as root (a non-root process clears its capabilities instead); "" keeps the privileges.
	User string
	Log  logrus.FieldLogger
	// Ready, when set, is called once the capture and the sender are open.
	Ready func()
}

// Stats counts what the responder did.
type Stats struct {
	Received, Replied, SendErrors atomic.Uint64
}

// Server is a running responder.
type Server struct {
	cfg     Config
	live    *capture.Live
	send    *tcpcraft.RawConn
	fw      *tcpcraft.Firewall
	unforce func() // unregisters the firewall cleanup of a forced exit
	Stats   Stats
}

// RSTRule is the rule that keeps the kernel from resetting the flows the responder answers.
func (c Config) RSTRule() tcpcraft.RSTRule {
	return tcpcraft.RSTRule{Peer: c.Listen.Addr(), Port: c.Listen.Port(), Responder: true}
}

// Open prepares the responder: the firewall table (with ManageFirewall), the capture with a
// destination-port filter and the raw sender. Close releases them (and removes the table).
func Open(cfg Config) (*Server, error) {
	if cfg.Log == nil {
		l := logrus.New()
		l.SetOutput(os.Stderr)
		cfg.Log = l
	}
	s := &Server{cfg: cfg}
	rule := cfg.RSTRule()
	if cfg.ManageFirewall {
		table := fmt.Sprintf("tcpexpose_responder_%d", os.Getpid())
		fw, err := tcpcraft.InstallOwnedFirewall(table, rule)
		if errors.Is(err, tcpcraft.ErrNoTableOwner) && cfg.User == "" {
			// Old kernel: a table from the nft tool, removed by Close with the privileges kept.
			fw, err = tcpcraft.InstallFirewall(table, rule)
		}
		if err != nil {
			return nil, err
		}
		s.fw = fw
		// A second Ctrl-C exits without the normal Close: drop the table then too.
		s.unforce = cliutil.OnForcedExit(func() { _ = fw.Remove() })
	} else {
		probeDst := cfg.Listen.Addr()
		if !probeDst.IsValid() || probeDst.IsUnspecified() {
			probeDst = netip.MustParseAddr("127.0.0.1")
		}
		// Our own listen address as the probe's destination: nothing leaves the host.
		if ok, err := tcpcraft.RSTSuppressed(netip.AddrPortFrom(probeDst, cfg.Listen.Port()), netip.AddrPortFrom(probeDst, 9)); err == nil && !ok {
			cfg.Log.Warnf("the kernel will reset every connection the responder answers (no listening socket); install the rule: %s  or  %s  (or run with --manage-firewall)",
				rule.NFT("tcpexpose"), rule.IPTables())
		}
	}
	iface := cfg.Interface
	if iface == "" {
		iface = "any"
	}
	live, err := capture.OpenLive(iface, capture.LiveOptions{
		Cooked: true,
		Filter: tcpcraft.DstPortFilter(cfg.Listen.Addr(), cfg.Listen.Port(), 1<<16),
		// Any IP packet fits 64 KiB: 128 KiB ring blocks. The kernel retires a block every
		// millisecond even when it is nearly empty, so the ring's 256 blocks ride out a
		// reader stalled for about 256 ms (the default snaplen's 512 KiB blocks: 32 ms).
		Snaplen:      1 << 16,
		Timeout:      100 * time.Millisecond,
		BlockTimeout: time.Millisecond,
		BufferSize:   32 << 20,
	})
	if err != nil {
		s.Close()
		return nil, err
	}
	s.live = live
	send, err := tcpcraft.OpenRaw(0)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.send = send
	// The IPv6 socket too, while the process may still open it (Run drops the privilege).
	if a := cfg.Listen.Addr(); !a.IsValid() || a.IsUnspecified() || a.Is6() {
		if err := send.OpenIPv6(); err != nil && a.Is6() && !a.IsUnspecified() {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// Serve answers segments until ctx ends. After each blocking read it drains what the ring
// already holds (up to tcpcraft.MaxBatch segments) and sends the replies with one sendmmsg.
func (s *Server) Serve(ctx context.Context) error {
	if s.cfg.Ready != nil {
		s.cfg.Ready()
	}
	r := New(s.cfg.Params, s.cfg.Listen.Addr(), s.cfg.Listen.Port())
	var bufs [tcpcraft.MaxBatch][2048]byte
	var batch [tcpcraft.MaxBatch][]byte
	lastErr := time.Time{}
	for ctx.Err() == nil {
		p, err := s.live.Next()
		if errors.Is(err, capture.ErrTimeout) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return fmt.Errorf("responder: capture: %w", err)
		}
		n := 0
		for {
			if ip, _, err := capture.NetworkLayer(p.LinkType, p.Data); err == nil {
				s.Stats.Received.Add(1)
				if reply, _ := r.Reply(ip, bufs[n][:0]); reply != nil {
					batch[n] = reply
					n++
				}
			}
			if n == len(batch) {
				break
			}
			var ok bool
			if p, ok = s.live.TryNext(); !ok {
				break
			}
		}
		if n == 0 {
			continue
		}
		sent, err := s.send.SendBatch(batch[:n])
		s.Stats.Replied.Add(uint64(sent))
		if err != nil {
			s.Stats.SendErrors.Add(uint64(n - sent))
			if now := time.Now(); now.Sub(lastErr) > time.Second {
				lastErr = now
				s.cfg.Log.WithError(err).Warn("responder: reply not sent")
			}
		}
	}
	return nil
}

// Close releases the capture and the sender and removes the firewall table.
func (s *Server) Close() error {
	var errs []error
	if s.live != nil {
		errs = append(errs, s.live.Close())
	}
	if s.send != nil {
		errs = append(errs, s.send.Close())
	}
	if s.fw != nil {
		errs = append(errs, s.fw.Remove())
		s.unforce()
	}
	return errors.Join(errs...)
}

// Run opens the responder, drops its privileges (cfg.User), serves until ctx ends and cleans
// up (the firewall table too, also when ctx ends by SIGINT/SIGTERM: closing the socket that
// owns it needs no privilege).
func Run(ctx context.Context, cfg Config) error {
	s, err := Open(cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	if cfg.User != "" {
		switch did, err := dropPrivileges(cfg.User); {
		case errors.Is(err, errCgoCaps):
			s.cfg.Log.Warn(err.Error())
		case err != nil:
			return err
		default:
			s.cfg.Log.Info("responder: " + did)
		}
	}
	// Unblock Next when ctx ends.
	stop := context.AfterFunc(ctx, func() { s.live.Close() })
	defer stop()
	s.cfg.Log.WithField("listen", cfg.Listen.String()).Info("responder: answering")
	err = s.Serve(ctx)
	s.cfg.Log.WithFields(logrus.Fields{"received": s.Stats.Received.Load(), "replied": s.Stats.Replied.Load()}).Info("responder: stopped")
	return err
}
