// Package server runs stampref: the STAMP Session-Reflector sockets, key reloads on SIGHUP and
// the localhost monitoring API.
package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

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
	// Monitor is the HTTP monitoring address (loopback only; empty disables it).
	Monitor string
	// User, when set, is the account to switch to after binding (needs root to start).
	User string
	// Blocking reads wait inside recvmmsg instead of the Go netpoller (udpsock.Options.Blocking).
	Blocking bool
	// Ready, when set, receives the bound UDP addresses and the monitor URL once serving.
	Ready func(udp []netip.AddrPort, monitor string)
}

// ErrMonitorAddress is returned for a monitoring address that is not on loopback.
var ErrMonitorAddress = errors.New("monitoring address must be on loopback")

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
	var mon net.Listener
	if cfg.Monitor != "" {
		ap, err := netip.ParseAddrPort(cfg.Monitor)
		if err != nil || !ap.Addr().IsLoopback() {
			return fmt.Errorf("--monitor %q: %w", cfg.Monitor, ErrMonitorAddress)
		}
		mon, err = net.Listen("tcp", cfg.Monitor)
		if err != nil {
			// An optional side port: a second stampref on the host (or any other owner of
			// the port) costs the monitoring API, never the reflector.
			log.WithError(err).WithField("addr", cfg.Monitor).
				Warn("stampref: monitoring API unavailable; reflecting without it (choose another --monitor address or --no-monitor)")
			mon = nil
		} else {
			defer mon.Close()
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
		c, err := udpsock.Listen(ctx, network, l, opts)
		if err != nil {
			return err
		}
		defer c.Close()
		conns = append(conns, c)
		addrs = append(addrs, c.LocalAddr())
		f := c.Features()
		log.WithFields(logrus.Fields{"listen": c.LocalAddr().String(), "rx_timestamps": f.RxTimestamp,
			"mode": rc.Mode.String(), "stateless": rc.Stateless}).Info("stampref: serving")
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

	monURL := ""
	var srv *http.Server
	if mon != nil {
		m := &Monitor{R: r, Listen: addrs, Started: time.Now()}
		srv = &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 5 * time.Second}
		monURL = "http://" + mon.Addr().String()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(mon); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.WithError(err).Error("stampref: monitor stopped")
			}
		}()
		log.WithField("url", monURL).Info("stampref: monitoring")
	}
	if cfg.Ready != nil {
		cfg.Ready(addrs, monURL)
	}
	err = r.Run(ctx, conns...)
	cancel()
	if srv != nil {
		sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = srv.Shutdown(sctx)
		scancel()
	}
	wg.Wait()
	log.WithFields(logrus.Fields{"received": r.Stats.Received.Load(), "reflected": r.Stats.Reflected.Load()}).
		Info("stampref: stopped")
	return err
}
