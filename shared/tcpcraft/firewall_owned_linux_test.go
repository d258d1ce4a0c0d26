package tcpcraft

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/testsupport/labtest"
)

// ruleLines are the rule lines of `nft list table inet NAME` (nft's own rendering).
func ruleLines(t *testing.T, table string) []string {
	t.Helper()
	out, err := exec.Command("nft", "list", "table", "inet", table).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list table %s: %v: %s", table, err, out)
	}
	var rules []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); strings.HasSuffix(l, " drop") || strings.HasPrefix(l, "type ") {
			rules = append(rules, l)
		}
	}
	return rules
}

// TestOwnedFirewall: the table InstallOwnedFirewall builds over netlink reads back from nft
// exactly like the one the nft tool builds from the printed rule text (NFTMatch), for every
// rule shape; Remove (closing the socket) makes it disappear.
func TestOwnedFirewall(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatal("nft not installed (the test compares with its rendering)")
	}
	labtest.InNetns(t, func() error {
		for i, r := range []RSTRule{
			{Peer: lo, Port: 34343, Mark: DefaultMark},
			{Peer: netip.MustParseAddr("fd00::1"), Port: 80, Mark: 0x1234},
			{Peer: netip.MustParseAddr("10.1.2.3"), Port: 34343, Responder: true},
			{Peer: netip.MustParseAddr("::"), Port: 34343, Responder: true},
			{Peer: netip.MustParseAddr("fd00::2"), Port: 443, Responder: true},
			{Port: 9, Responder: true},
		} {
			ref, err := InstallFirewall(fmt.Sprintf("ref_%d", i), r)
			if err != nil {
				return err
			}
			want := ruleLines(t, ref.Table)
			if err := ref.Remove(); err != nil {
				return err
			}
			fw, err := InstallOwnedFirewall(fmt.Sprintf("owned_%d", i), r)
			if err != nil {
				return err
			}
			if !fw.Owned() {
				t.Error("Owned() false")
			}
			got := ruleLines(t, fw.Table)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("rule %+v:\nowned table %q\nnft tool    %q", r, got, want)
			}
			if err := fw.Remove(); err != nil {
				return err
			}
			// Destruction on socket close may trail the close: poll (hang guard 5 s).
			for range 100 {
				if !TableExists(fw.Table) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if TableExists(fw.Table) {
				t.Errorf("%s left behind after Remove", fw.Table)
			}
		}
		return nil
	})
}

// TestOwnedFirewallKilled: a process holding an owned table that is killed with SIGKILL (no
// cleanup code runs) leaves nothing behind.
func TestOwnedFirewallKilled(t *testing.T) {
	if os.Getenv("TCPCRAFT_OWNED_CHILD") != "" {
		if _, err := InstallOwnedFirewall(os.Getenv("TCPCRAFT_OWNED_CHILD"), RSTRule{Port: 34343}); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("installed")
		time.Sleep(time.Minute) // killed long before
		os.Exit(0)
	}
	labtest.InNetns(t, func() error {
		table := fmt.Sprintf("owned_kill_%d", os.Getpid())
		cmd := exec.Command(os.Args[0], "-test.run", "^TestOwnedFirewallKilled$")
		cmd.Env = append(os.Environ(), "TCPCRAFT_OWNED_CHILD="+table)
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		buf := make([]byte, 64)
		n, _ := out.Read(buf)
		if !strings.Contains(string(buf[:n]), "installed") || !TableExists(table) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return fmt.Errorf("child did not install %s: %q", table, buf[:n])
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		for range 100 { // hang guard 5 s
			if !TableExists(table) {
				return nil
			}
			time.Sleep(50 * time.Millisecond)
		}
		return fmt.Errorf("%s left behind by the killed process", table)
	})
}
