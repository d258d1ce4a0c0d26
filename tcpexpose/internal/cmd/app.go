// Package cmd builds tcpexpose's command line: the test (initiator), responder and send
// commands over the tcpexpose packages.
package cmd

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/tcpexpose/internal/responder"
	"github.com/probekit/probekit/tcpexpose/internal/wire"
)

// NewApp returns the tcpexpose application.
func NewApp(version string) *cli.App {
	app := cliutil.NewApp("tcpexpose", "test what middleboxes do to TCP extensions (TCPExposure), craft and send TCP segments", version)
	app.Description = "Needs CAP_NET_RAW (raw IP and AF_PACKET sockets; the package grants it with setcap) and, for " +
		"--manage-firewall and SO_MARK, CAP_NET_ADMIN. The local kernel resets crafted flows it has no socket for: " +
		"each command prints the nft and iptables rule that prevents it, or installs it for the run with --manage-firewall."
	for _, c := range []*cli.Command{responderCommand(), sendCommand(), testCommand()} {
		// The standard flags (--log-level, --json, ...) also after the command name.
		c.Flags = append(c.Flags, cliutil.StandardFlags()...)
		app.Commands = append(app.Commands, c)
	}
	return app
}

func responderCommand() *cli.Command {
	def := responder.DefaultParams()
	return &cli.Command{
		Name:      "responder",
		Usage:     "stateless TCP responder answering tcpexpose tests (fixed ISN, window, MSS, WS, TSval)",
		UsageText: "tcpexpose responder [--listen ADDR:PORT] [flags]",
		Description: "Answers SYNs with a SYN/ACK of fixed parameters (unknown options echoed kind-preserving, " +
			"timestamps echoed), ACKs data (payload starting 0xa1: the ACK carries the received IP+TCP header and " +
			"its own; 0xb2: duplicate ACK; MP_DATA: MP_ACK), answers FIN with FIN/ACK. Keeps no state.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Aliases: []string{"l"}, Value: ":" + strconv.Itoa(wire.DefaultPort), Usage: "`ADDR:PORT` to answer (empty address: every local address)"},
			&cli.StringFlag{Name: "interface", Aliases: []string{"i"}, Usage: "capture on interface `IF` only (default: all)"},
			&cli.BoolFlag{Name: "manage-firewall", Usage: "install an nft table dropping the kernel's RSTs for the port while running (removed on exit)"},
			&cli.StringFlag{Name: "user", Value: "nobody", Usage: "once the sockets and the firewall table are open, switch to `USER` when started as root " +
				"(no supplementary groups, no capabilities); a non-root process clears its capabilities instead. \"\" keeps the privileges"},
			cliutil.UintFlag("isn", "SYN/ACK initial sequence number", uint64(def.ISN), 0, 0xffffffff),
			cliutil.IntFlag("window", "advertised window", int64(def.Window), 0, 65535),
			cliutil.IntFlag("mss", "MSS option of the SYN/ACK", int64(def.MSS), 0, 65535),
			cliutil.IntFlag("wscale", "window scale shift of the SYN/ACK", int64(def.WScale), 0, 255),
			cliutil.UintFlag("tsval", "TSval of every reply", uint64(def.TSval), 0, 0xffffffff),
			cliutil.IntFlag("ttl", "TTL / hop limit of replies", int64(def.TTL), 1, 255),
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return cliutil.Usagef("responder takes no arguments")
			}
			listen, err := parseListen(c.String("listen"))
			if err != nil {
				return cliutil.Usagef("--listen: %v", err)
			}
			p := responder.Params{ISN: uint32(cliutil.Uint(c, "isn")), Window: uint16(cliutil.Int(c, "window")), MSS: uint16(cliutil.Int(c, "mss")),
				WScale: uint8(cliutil.Int(c, "wscale")), TSval: uint32(cliutil.Uint(c, "tsval")), TTL: uint8(cliutil.Int(c, "ttl"))}
			cliutil.MarkComplete(c.Context)
			return responder.Run(c.Context, responder.Config{Listen: listen, Params: p, Interface: c.String("interface"),
				ManageFirewall: c.Bool("manage-firewall"), User: c.String("user"), Log: cliutil.Logger(c)})
		},
	}
}

// parseListen parses ADDR:PORT, :PORT or ADDR (default port).
func parseListen(s string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host, port = s, strconv.Itoa(wire.DefaultPort)
	}
	p, err := cliutil.ParsePort(port, false)
	if err != nil {
		return netip.AddrPort{}, err
	}
	var a netip.Addr
	if host != "" {
		if a, err = netip.ParseAddr(host); err != nil {
			return netip.AddrPort{}, fmt.Errorf("address %q: %w", host, err)
		}
	}
	return netip.AddrPortFrom(a.Unmap(), p), nil
}
