// Package server runs stampref: the STAMP Session-Reflector sockets, key reloads on SIGHUP and
// the localhost monitoring API.
package server

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/probekit/probekit/shared/httpside"
	"github.com/probekit/probekit/shared/reflector"
	"github.com/probekit/probekit/shared/testpkt"
	"github.com/probekit/probekit/shared/udpsock"
)

// Config is stampref's configuration.
type Config struct {
	// Listen are the UDP addresses to serve ("[::]:862" covers IPv4 and IPv6).
	Listen []string
	// KeyFile holds the default HMAC key and selects authenticated mode; reloaded on SIGHUP.
	KeyFile string
	// Authenticated selects the 112-octet authenticated layout.
	Authenticated bool
	// Reflector carries the data-path options (Stateless, MaxSessions, IdleTimeout,
	// ProvisionedOnly, RefuseDSCP, PTP, Synchronized, ClockError, Batch); Mode and Key are set
	// from Authenticated and KeyFile.
	Reflector reflector.Config
	// Monitor is the HTTP monitoring address (empty disables it); an address other than
	// loopback needs MonitorToken (shared/httpside rules).
	Monitor string
	// MonitorToken is the bearer token of the monitoring API: required for POST and DELETE
	// (without it the API is read-only) and, off loopback, for every request.
	MonitorToken string
	// ProvisionedIdle removes API-provisioned sessions after this long without a packet
	// (0 = never).
	ProvisionedIdle time.Duration
	// User, when set, is the account to switch to after binding (needs root to start).
	User string
	// Blocking reads wait inside recvmmsg instead of the Go netpoller (udpsock.Options.Blocking).
	Blocking bool
	// Workers, when above 1, opens that many SO_REUSEPORT sockets per listen address, each
	// served by its own worker: the kernel spreads sessions (by 4-tuple) over them.
	Workers int
	// Ready, when set, receives the bound UDP addresses and the monitor URL once serving.
	Ready func(udp []netip.AddrPort, monitor string)
}

// ErrMonitorAddress is returned for a monitoring address that is not IP:PORT, or not on
// loopback and without a token.
var ErrMonitorAddress = errors.New("monitoring address must be a loopback IP:PORT, or have a token")

// Run serves until ctx is cancelled (SIGTERM/SIGINT in stampref) and returns nil then.
func Run(ctx context.Context, cfg Config, log *logrus.Logger) error {
	rc := cfg.Reflector
	rc.Logger = log
	rc.Mode = testpkt.ModeUnauthenticated
	if cfg.Authenticated || cfg.KeyFile != "" { // a key file means authenticated mode
		rc.Mode = testpkt.ModeAuthenticated
	}
	if cfg.KeyFile != "" {
		k, err := testpkt.LoadKeyFile(cfg.KeyFile)
		if err != nil {
			return err
		}
		rc.Key = k
	}
	if cfg.Authenticated && len(rc.Key) == 0 && !rc.ProvisionedOnly {
		return fmt.Errorf("authenticated mode needs --key-file (or --provisioned-only with per-session keys)")
	}
	if cfg.Monitor != "" {
		ap, err := netip.ParseAddrPort(cfg.Monitor)
		if err != nil || (!ap.Addr().IsLoopback() && cfg.MonitorToken == "") {
			return fmt.Errorf("--monitor %q: %w", cfg.Monitor, ErrMonitorAddress)
		}
	}
	r, err := reflector.New(rc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	conns := make([]*udpsock.Conn, 0, len(cfg.Listen))
	addrs := make([]netip.AddrPort, 0, len(cfg.Listen))
	for _, l := range cfg.Listen {
		network := "udp"
		opts := reflector.ListenOptions(rc.Batch)
		if ap, err := netip.ParseAddrPort(l); err == nil {
			if ap.Addr().Is4() {
				network = "udp4"
			}
			// Only a wildcard listener needs each datagram's destination (reply source,
			// Location TLV); a bound one saves the control message.
			opts.RecvDst = ap.Addr().IsUnspecified()
		}
		opts.Blocking = cfg.Blocking
		group := []*udpsock.Conn{}
		if cfg.Workers > 1 {
			g, err := udpsock.ListenGroup(ctx, network, l, cfg.Workers, opts)
			if err != nil {
				return err
			}
			group = g
		} else {
			c, err := udpsock.Listen(ctx, network, l, opts)
			if err != nil {
				return err
			}
			group = append(group, c)
		}
		for _, c := range group {
			defer c.Close()
		}
		c := group[0]
		conns = append(conns, group...)
		addrs = append(addrs, c.LocalAddr())
		f := c.Features()
		log.WithFields(logrus.Fields{"listen": c.LocalAddr().String(), "rx_timestamps": f.RxTimestamp,
			"mode": rc.Mode.String(), "stateless": rc.Stateless, "sockets": len(group)}).Info("stampref: serving")
	}
	// The monitoring port is bound before privileges are dropped, and is optional: a second
	// stampref on the host (or any other owner of the port) costs the API, never the
	// reflector.
	monURL := ""
	var mon *Monitor
	var side *httpside.Server
	if cfg.Monitor != "" {
		mon = &Monitor{R: r, Listen: addrs, Started: time.Now(), ProvisionedIdle: cfg.ProvisionedIdle}
		side, err = httpside.Listen(ctx, httpside.Config{Addr: cfg.Monitor, Token: cfg.MonitorToken, Logger: log}, mon.Handler())
		if err != nil {
			log.WithError(err).WithField("addr", cfg.Monitor).
				Warn("stampref: monitoring API unavailable; reflecting without it (choose another --monitor address or --no-monitor)")
			mon = nil
		} else {
			mon.Side = side.Stats
			monURL = "http://" + side.Addr().String()
			log.WithFields(logrus.Fields{"url": monURL, "writable": cfg.MonitorToken != ""}).Info("stampref: monitoring")
		}
	}
	if cfg.User != "" {
		if err := dropPrivileges(cfg.User); err != nil {
			return err
		}
		log.WithField("user", cfg.User).Info("stampref: dropped privileges")
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if cfg.KeyFile == "" {
					log.Info("stampref: SIGHUP: no key file to reload")
					continue
				}
				k, err := testpkt.LoadKeyFile(cfg.KeyFile)
				if err != nil {
					log.WithError(err).Error("stampref: SIGHUP: key not reloaded")
					continue
				}
				r.SetKey(k)
				log.Info("stampref: SIGHUP: key reloaded")
			}
		}
	}()

	if mon != nil && cfg.ProvisionedIdle > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(min(max(cfg.ProvisionedIdle/4, time.Second), 30*time.Second))
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case now := <-t.C:
					if n := mon.ExpireProvisioned(now); n > 0 {
						log.WithField("expired", n).Info("stampref: API-provisioned sessions expired")
					}
				}
			}
		}()
	}
	if cfg.Ready != nil {
		cfg.Ready(addrs, monURL)
	}
	err = r.Run(ctx, conns...)
	cancel()
	if side != nil {
		<-side.Done()
	}
	wg.Wait()
	log.WithFields(logrus.Fields{"received": r.Stats.Received.Load(), "reflected": r.Stats.Reflected.Load()}).
		Info("stampref: stopped")
	return err
}
