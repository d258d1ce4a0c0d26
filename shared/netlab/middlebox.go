package netlab

import (
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// MiddleboxMode is what the middlebox router does to TCP (rules from lab.md §2; the verdicts
// tcpexpose should reach per mode are in tcpexpose.md §4).
type MiddleboxMode int

const (
	// ModeTransparent forwards unchanged (TTL − 1).
	ModeTransparent MiddleboxMode = iota
	// ModeStripOptions overwrites the TCP option kinds in MiddleboxConfig.StripKinds with NOPs
	// (iptables TCPOPTSTRIP, both directions).
	ModeStripOptions
	// ModeClampMSS lowers the MSS option of SYNs to MiddleboxConfig.MSS (iptables TCPMSS; never raises).
	ModeClampMSS
	// ModeNAT masquerades the client behind the router's server-side address with random source
	// ports (MASQUERADE --random-fully). Linux NAT never changes the ISN.
	ModeNAT
	// ModeSYNProxy answers the client's handshake itself (SYN cookies, window 0) and opens the
	// server connection after the client's ACK, translating sequence numbers (iptables SYNPROXY).
	ModeSYNProxy
	// ModeProxy redirects client connections to ProxyPort to a user-space relay (socat) on the
	// router, which opens its own connection to the server: a transparent TCP proxy.
	ModeProxy
)

var middleboxModeNames = []string{"transparent", "strip", "clamp", "nat", "synproxy", "proxy"}

func (m MiddleboxMode) String() string { return enumName(middleboxModeNames, "mode", m) }

// MiddleboxModeNames lists the mode names ParseMiddleboxMode accepts.
func MiddleboxModeNames() []string { return append([]string(nil), middleboxModeNames...) }

// ParseMiddleboxMode parses a mode name (as printed by String).
func ParseMiddleboxMode(s string) (MiddleboxMode, error) {
	return parseEnum[MiddleboxMode](middleboxModeNames, "middlebox mode", s)
}

// enumName names an enum value from its table (or "what(N)" outside it).
func enumName[T ~int](names []string, what string, v T) string {
	if v >= 0 && int(v) < len(names) {
		return names[v]
	}
	return what + "(" + strconv.Itoa(int(v)) + ")"
}

// parseEnum finds s in an enum's name table.
func parseEnum[T ~int](names []string, what, s string) (T, error) {
	if i := slices.Index(names, s); i >= 0 {
		return T(i), nil
	}
	return 0, fmt.Errorf("netlab: unknown %s %q (want one of %s)", what, s, strings.Join(names, ", "))
}

// MiddleboxConfig configures the middlebox topology.
type MiddleboxConfig struct {
	Mode MiddleboxMode
	// StripKinds are the option kinds ModeStripOptions removes (default 253).
	StripKinds []int
	// MSS is the ModeClampMSS value (default 536).
	MSS int
	// ProxyPort is the server port ModeProxy intercepts (default 80); the relay listens
	// on the router at RelayPort (default 3128).
	ProxyPort, RelayPort int
	Log                  logrus.FieldLogger
	Persistent           bool
}

// Middlebox addresses (lab.md §7).
var (
	MiddleboxClient  = netip.MustParseAddr("10.199.1.2")
	MiddleboxRouterC = netip.MustParseAddr("10.199.1.1")
	MiddleboxRouterS = netip.MustParseAddr("10.199.2.1")
	MiddleboxServer  = netip.MustParseAddr("10.199.2.2")
)

// MiddleboxLab is client 10.199.1.2 (c0) — router 10.199.1.1 (mc) / 10.199.2.1 (ms) — server
// 10.199.2.2 (s0), plus fd99:1::/64 and fd99:2::/64 (hosts ::2, router ::1). Offloads are off
// on every interface, so captures show wire segments. The strip, clamp and NAT modes apply to
// IPv6 too; the SYN proxy and the transparent proxy are IPv4 only.
type MiddleboxLab struct {
	*Lab
	Client, Router, Server *Host

	cfg   MiddleboxConfig
	mode  MiddleboxMode
	relay *Proc
}

// NewMiddlebox builds the middlebox topology in the configured mode.
func NewMiddlebox(cfg MiddleboxConfig) (*MiddleboxLab, error) {
	if len(cfg.StripKinds) == 0 {
		cfg.StripKinds = []int{253}
	}
	if cfg.MSS == 0 {
		cfg.MSS = 536
	}
	if cfg.ProxyPort == 0 {
		cfg.ProxyPort = 80
	}
	if cfg.RelayPort == 0 {
		cfg.RelayPort = 3128
	}
	l, err := newLab(cfg.Log, cfg.Persistent)
	if err != nil {
		return nil, err
	}
	m := &MiddleboxLab{Lab: l, cfg: cfg}
	m.Client, m.Router, m.Server, err = l.buildLine(lineSpec{
		left: "client", router: "mbox", right: "server",
		leftIf: "c0", rLeftIf: "mc", rightIf: "s0", rRightIf: "ms",
		leftNet: "10.199.1", rightNet: "10.199.2", left6: "fd99:1::", right6: "fd99:2::",
		leftHost: "2", rightHost: "2", routerOctet: "1",
	})
	if err == nil {
		err = m.SetMode(cfg.Mode)
	}
	if err != nil {
		_ = l.Close()
		return nil, err
	}
	return m, nil
}

// Mode returns the current mode.
func (m *MiddleboxLab) Mode() MiddleboxMode { return m.mode }

// SetMode reconfigures the router: it flushes every netfilter table and the conntrack table,
// stops the relay, and applies the new mode's rules.
func (m *MiddleboxLab) SetMode(mode MiddleboxMode) error {
	if m.relay != nil {
		m.relay.Stop()
		m.relay = nil
	}
	flush := "*filter\nCOMMIT\n*mangle\nCOMMIT\n*nat\nCOMMIT\n*raw\nCOMMIT\n"
	for _, tool := range []string{"iptables-restore", "ip6tables-restore"} {
		if _, err := m.Router.ExecInput([]byte(flush), tool); err != nil {
			return err
		}
	}
	_, _ = m.Router.Exec("conntrack", "-F")
	var rules []string
	var v6 bool
	switch mode {
	case ModeTransparent:
	case ModeStripOptions:
		kinds := make([]string, len(m.cfg.StripKinds))
		for i, k := range m.cfg.StripKinds {
			kinds[i] = strconv.Itoa(k)
		}
		rules = []string{"*mangle", "-A FORWARD -p tcp -j TCPOPTSTRIP --strip-options " + strings.Join(kinds, ","), "COMMIT"}
		v6 = true
	case ModeClampMSS:
		rules = []string{"*mangle", fmt.Sprintf("-A FORWARD -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss %d", m.cfg.MSS), "COMMIT"}
		v6 = true
	case ModeNAT:
		rules = []string{"*nat", "-A POSTROUTING -o ms -j MASQUERADE --random-fully", "COMMIT"}
		v6 = true
	case ModeSYNProxy:
		rules = []string{
			"*raw", "-A PREROUTING -i mc -p tcp --syn -j CT --notrack", "COMMIT",
			"*filter",
			"-A FORWARD -i mc -p tcp -m conntrack --ctstate INVALID,UNTRACKED -j SYNPROXY --sack-perm --timestamp --wscale 7 --mss 1460",
			"-A FORWARD -m conntrack --ctstate INVALID -j DROP",
			"COMMIT",
		}
	case ModeProxy:
		rules = []string{"*nat", fmt.Sprintf("-A PREROUTING -i mc -p tcp --dport %d -j REDIRECT --to-ports %d", m.cfg.ProxyPort, m.cfg.RelayPort), "COMMIT"}
	default:
		return fmt.Errorf("netlab: unknown middlebox mode %d", mode)
	}
	if len(rules) > 0 {
		text := []byte(strings.Join(rules, "\n") + "\n")
		if _, err := m.Router.ExecInput(text, "iptables-restore", "--noflush"); err != nil {
			return err
		}
		if v6 {
			if _, err := m.Router.ExecInput(text, "ip6tables-restore", "--noflush"); err != nil {
				return err
			}
		}
	}
	// SYNPROXY needs strict conntrack: a mid-stream ACK must not create a connection.
	loose := "1"
	if mode == ModeSYNProxy {
		loose = "0"
	}
	if err := m.Router.Sysctl("net.netfilter.nf_conntrack_tcp_loose", loose); err != nil && mode == ModeSYNProxy {
		return err
	}
	if mode == ModeProxy {
		if _, err := exec.LookPath("socat"); err != nil {
			return fmt.Errorf("%w: socat not installed (the proxy mode's relay)", ErrUnavailable)
		}
		p, err := m.Router.Start("socat", fmt.Sprintf("TCP-LISTEN:%d,fork,reuseaddr", m.cfg.RelayPort),
			fmt.Sprintf("TCP:%s:%d", MiddleboxServer, m.cfg.ProxyPort))
		if err != nil {
			return err
		}
		m.relay = p
		if err := waitListening(m.Router, m.cfg.RelayPort, 5*time.Second); err != nil {
			return fmt.Errorf("netlab: relay: %w (%s)", err, strings.TrimSpace(p.Output()))
		}
	}
	m.mode = mode
	return nil
}

// waitListening polls until a TCP listener on port exists in the host's namespace.
func waitListening(h *Host, port int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		out, err := h.Exec("ss", "-Htln", fmt.Sprintf("sport = :%d", port))
		if err == nil && strings.TrimSpace(out) != "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listening on port %d after %v", port, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
