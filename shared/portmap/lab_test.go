package portmap

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/netlab"
	"github.com/probekit/probekit/shared/testsupport/labtest"
)

const labChildEnv = "PORTMAP_LAB_CHILD_PORT"

// TestLabChild runs inside a NAT lab client namespace for TestMiniupnpd: it binds the port,
// maps it with every protocol, prints the results and every datagram it receives, and on
// SIGTERM deletes the mappings and prints the results again.
func TestLabChild(t *testing.T) {
	ps := os.Getenv(labChildEnv)
	if ps == "" {
		t.Skip("helper process of TestMiniupnpd")
	}
	port, _ := strconv.Atoi(ps)
	c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: port})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(3)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	m, err := Start(context.Background(), Config{Port: uint16(port), Timeout: 5 * time.Second, Lifetime: 600 * time.Second})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(3)
	}
	b, _ := json.Marshal(m.Results())
	fmt.Printf("results %s\n", b)
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			fmt.Printf("got %s from %s\n", buf[:n], from)
		}
	}()
	<-term
	err = m.Close()
	b, _ = json.Marshal(m.Results())
	fmt.Printf("closed %s %v\n", b, err)
	os.Exit(0)
}

// TestMiniupnpd maps a port through miniupnpd (UPnP IGD and NAT-PMP/PCP) on a port-restricted
// NAT router of the lab: every protocol must find the gateway and get the port, a datagram
// from the public side must then reach the client (which the NAT drops otherwise), and after
// SIGTERM the mapping must be gone from the router's rules and the datagram dropped again.
func TestMiniupnpd(t *testing.T) {
	n := labtest.NAT(t, netlab.NATConfig{NATs: []netlab.NATSpec{{Kind: netlab.PortRestricted, UPnP: true}}})
	router, client := n.NATs[0], n.NATs[0].Clients[0]
	port := int(client.Ports[0]) + 1567
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := client.Command(ctx, os.Args[0], "-test.run=^TestLabChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), labChildEnv+"="+strconv.Itoa(port))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func(prefix string) string {
		t.Helper()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("child exited before %q", prefix)
				}
				if strings.HasPrefix(l, "error") {
					t.Fatal(l)
				}
				if rest, ok := strings.CutPrefix(l, prefix); ok {
					return rest
				}
			case <-ctx.Done():
				t.Fatalf("no %q from the child", prefix)
			}
		}
	}
	var rs []Result
	if err := json.Unmarshal([]byte(next("results ")), &rs); err != nil {
		t.Fatal(err)
	}
	wantExt := netip.AddrPortFrom(router.WAN, uint16(port)).String()
	for _, r := range rs {
		t.Logf("%s: gateway %q service %q external %q lifetime %d s error %q", r.Protocol, r.Gateway, r.Service, r.External, r.Lifetime, r.Error)
		if r.Gateway == "" || r.External != wantExt || r.Error != "" {
			t.Errorf("%s: %+v, want %s granted", r.Protocol, r, wantExt)
		}
	}
	// The rules miniupnpd manages: its chains of the router's ruleset (the router's own sets
	// may name the port too while the client talks).
	rules := func() string {
		all, err := router.Router.Exec("nft", "list", "ruleset")
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		in := false
		for _, l := range strings.Split(all, "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "chain" {
				in = strings.Contains(f[1], "miniupnpd")
				continue
			}
			if in {
				b.WriteString(l + "\n")
			}
		}
		return b.String()
	}
	if !strings.Contains(rules(), strconv.Itoa(port)) {
		t.Fatalf("no rule for port %d in the router:\n%s", port, rules())
	}
	send := func(msg string) {
		err := n.Rendezvous.Do(func() error {
			c, err := net.Dial("udp4", wantExt)
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte(msg))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Unsolicited datagrams from the public side now arrive.
	got := make(chan string, 10)
	go func() {
		for l := range lines {
			if strings.HasPrefix(l, "got ") || strings.HasPrefix(l, "closed ") {
				got <- l
			}
		}
	}()
	arrived := false
	for i := 0; i < 20 && !arrived; i++ {
		send("hello")
		select {
		case l := <-got:
			if !strings.HasPrefix(l, "got hello from "+n.Rendezvous.Addr.String()) {
				t.Fatalf("child: %s", l)
			}
			arrived = true
		case <-time.After(500 * time.Millisecond):
		}
	}
	if !arrived {
		t.Fatal("datagram to the mapped port never arrived")
	}
	// SIGTERM: the child deletes the mappings before it exits.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var closed string
	select {
	case closed = <-got:
	case <-ctx.Done():
		t.Fatal("child did not report closing")
	}
	rest := strings.TrimPrefix(closed, "closed ")
	js := rest[:strings.LastIndex(rest, "]")+1]
	if err := json.Unmarshal([]byte(js), &rs); err != nil || !strings.HasSuffix(rest, "<nil>") {
		t.Fatalf("closing: %s (%v)", closed, err)
	}
	for _, r := range rs {
		if !r.Deleted {
			t.Errorf("%s not deleted: %+v", r.Protocol, r)
		}
	}
	cmd.Wait()
	if s := rules(); strings.Contains(s, strconv.Itoa(port)) {
		t.Fatalf("rule for port %d still in the router after exit:\n%s", port, s)
	}
}
