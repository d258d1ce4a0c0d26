package tcpcraft

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
)

// RSTRule describes the local firewall rule that stops the kernel from resetting a crafted
// flow (it has no socket for it): drop outgoing RSTs of the flow unless they carry Mark
// (crafted RSTs sent over a RawConn with that SO_MARK still leave).
type RSTRule struct {
	// Initiator side: RSTs to Peer (any address when invalid) port Port.
	// Responder side (Responder true): RSTs from local port Port (and from Peer, our listen
	// address, when valid).
	Peer      netip.Addr
	Port      uint16
	Responder bool
	Mark      uint32
}

func (r RSTRule) family() (nftFam, ipt string) {
	if r.Peer.IsValid() && r.Peer.Unmap().Is6() {
		return "ip6", "ip6tables"
	}
	return "ip", "iptables"
}

// NFTMatch is the rule's nft expression (for a chain hooked on output).
func (r RSTRule) NFTMatch() string {
	fam, _ := r.family()
	var b strings.Builder
	if r.Responder {
		if r.Peer.IsValid() && !r.Peer.IsUnspecified() {
			fmt.Fprintf(&b, "%s saddr %s ", fam, r.Peer.Unmap())
		}
		fmt.Fprintf(&b, "tcp sport %d ", r.Port)
	} else {
		if r.Peer.IsValid() {
			fmt.Fprintf(&b, "%s daddr %s ", fam, r.Peer.Unmap())
		}
		fmt.Fprintf(&b, "tcp dport %d ", r.Port)
	}
	b.WriteString("tcp flags & rst == rst ")
	if r.Mark != 0 {
		fmt.Fprintf(&b, "meta mark != 0x%x ", r.Mark)
	}
	b.WriteString("drop")
	return b.String()
}

// NFT is the nft command line that installs the rule in table inet NAME (created first).
func (r RSTRule) NFT(table string) string {
	return fmt.Sprintf("nft add table inet %s; nft add chain inet %s output '{ type filter hook output priority 0; }'; nft add rule inet %s output %s",
		table, table, table, r.NFTMatch())
}

// IPTables is the equivalent iptables (ip6tables) command line.
func (r RSTRule) IPTables() string {
	_, ipt := r.family()
	var b strings.Builder
	fmt.Fprintf(&b, "%s -A OUTPUT -p tcp --tcp-flags RST RST ", ipt)
	if r.Responder {
		if r.Peer.IsValid() && !r.Peer.IsUnspecified() {
			fmt.Fprintf(&b, "-s %s ", r.Peer.Unmap())
		}
		fmt.Fprintf(&b, "--sport %d ", r.Port)
	} else {
		if r.Peer.IsValid() {
			fmt.Fprintf(&b, "-d %s ", r.Peer.Unmap())
		}
		fmt.Fprintf(&b, "--dport %d ", r.Port)
	}
	if r.Mark != 0 {
		fmt.Fprintf(&b, "-m mark ! --mark 0x%x ", r.Mark)
	}
	b.WriteString("-j DROP")
	return b.String()
}

// Firewall is an nft table installed for one run; Remove deletes it.
type Firewall struct {
	Table string
	once  sync.Once
	err   error
	owner io.Closer // the netlink socket owning the table (InstallOwnedFirewall)
}

// ErrNoNft reports that the nft binary is missing.
var ErrNoNft = errors.New("tcpcraft: nft not installed")

// InstallFirewall creates nft table inet NAME holding the rules in an output-hook chain.
// Needs CAP_NET_ADMIN. Call Remove on every exit path (it is idempotent).
func InstallFirewall(table string, rules ...RSTRule) (*Firewall, error) {
	if _, err := exec.LookPath("nft"); err != nil {
		return nil, ErrNoNft
	}
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n\tchain output {\n\t\ttype filter hook output priority 0; policy accept;\n", table)
	for _, r := range rules {
		fmt.Fprintf(&b, "\t\t%s\n", r.NFTMatch())
	}
	b.WriteString("\t}\n}\n")
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("tcpcraft: nft: %w: %s", err, bytes.TrimSpace(out))
	}
	return &Firewall{Table: table}, nil
}

// Remove deletes the table (once; later calls return the first result).
func (f *Firewall) Remove() error {
	f.once.Do(func() {
		if f.owner != nil {
			// The kernel destroys an owned table when its socket closes.
			f.err = f.owner.Close()
			return
		}
		out, err := exec.Command("nft", "delete", "table", "inet", f.Table).CombinedOutput()
		if err != nil {
			f.err = fmt.Errorf("tcpcraft: nft delete table inet %s: %w: %s", f.Table, err, bytes.TrimSpace(out))
		}
	})
	return f.err
}

// TableExists reports whether nft table inet NAME exists.
func TableExists(table string) bool {
	return exec.Command("nft", "list", "table", "inet", table).Run() == nil
}

// RSTSuppressed checks whether the local kernel's RSTs for the flow local → remote would be
// dropped: it sends one unmarked crafted RST of that flow over a raw IP socket. EPERM means
// the OUTPUT chain drops it (suppressed; nothing left the host); a successful send means the
// kernel would reset the flow (the lone RST reaches only remote, which has no such connection).
func RSTSuppressed(local, remote netip.AddrPort) (bool, error) {
	c, err := OpenRaw(0)
	if err != nil {
		return false, err
	}
	defer c.Close()
	s := Segment{Src: local.Addr(), Dst: remote.Addr(), TTL: 64, SrcPort: local.Port(), DstPort: remote.Port(),
		Seq: 0x7e570000, Flags: FlagRST}
	err = c.Send(s.Bytes())
	if errors.Is(err, ErrLocalFirewall) {
		return true, nil
	}
	return false, err
}
