package netlab

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// SelftestConfig configures Selftest.
type SelftestConfig struct {
	Out io.Writer
	Log logrus.FieldLogger
	// Only runs the checks whose name contains this string (all when empty).
	Only string
	// Dir receives the captures (a temporary directory, removed afterwards, when empty).
	Dir string
}

// Check is one self-test check: it builds what it needs, proves one property with independent
// tools (tcpdump captures on one clock, coturn's turnutils) and removes everything.
type Check struct {
	Name string
	Run  func(env *CheckEnv) (detail string, err error)
	// Multi, instead of Run, proves several properties on one lab: one result (and line) each.
	Multi func(env *CheckEnv) []Result
}

// Result is the outcome of one property proved by a Multi check.
type Result struct {
	Name   string // full check name, e.g. "nat/natdiscovery/symmetric"
	Detail string
	Err    error
	// Elapsed is how long proving it took (zero: the whole check's time is printed).
	Elapsed time.Duration
	// Skip, when set, says why the property was not tested (an optional tool is missing); the
	// line is printed but counted neither as passed nor as failed.
	Skip string
}

// CheckEnv is what a check gets.
type CheckEnv struct {
	Dir string
	Log logrus.FieldLogger
}

// File returns a path for a capture in the check's directory.
func (e *CheckEnv) File(name string) string { return filepath.Join(e.Dir, name) }

// Checks lists every self-test check in the order Selftest runs them.
func Checks() []Check {
	var c []Check
	c = append(c, pathChecks()...)
	c = append(c, natChecks()...)
	c = append(c, middleboxChecks()...)
	c = append(c, Check{Name: "cleanup/nothing-left", Run: checkNothingLeft})
	return c
}

// Selftest runs the checks, printing one line per check and a final "N passed, N failed" line.
func Selftest(cfg SelftestConfig) (passed, failed int) {
	if cfg.Log == nil {
		l := logrus.New()
		l.SetOutput(nopWriter{})
		cfg.Log = l
	}
	if err := Available(); err != nil {
		fmt.Fprintf(cfg.Out, "FAIL lab/available: %v\n0 passed, 1 failed\n", err)
		return 0, 1
	}
	dir := cfg.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "netlab-selftest-")
		if err != nil {
			fmt.Fprintf(cfg.Out, "FAIL lab/tempdir: %v\n0 passed, 1 failed\n", err)
			return 0, 1
		}
		defer os.RemoveAll(d)
		dir = d
	}
	baseline = snapshotRoot()
	createdPrefixes = map[string]bool{}
	for _, c := range Checks() {
		if cfg.Only != "" && !strings.Contains(c.Name, cfg.Only) && c.Name != "cleanup/nothing-left" {
			continue
		}
		sub := filepath.Join(dir, strings.ReplaceAll(c.Name, "/", "_"))
		_ = os.MkdirAll(sub, 0o755)
		start := time.Now()
		env := &CheckEnv{Dir: sub, Log: cfg.Log.WithField("check", c.Name)}
		var results []Result
		if c.Multi != nil {
			results = c.Multi(env)
		} else {
			detail, err := c.Run(env)
			results = []Result{{Name: c.Name, Detail: detail, Err: err}}
		}
		total := time.Since(start)
		for _, r := range results {
			el := total
			if r.Elapsed > 0 {
				el = r.Elapsed
			}
			el = el.Round(10 * time.Millisecond)
			if r.Skip != "" {
				fmt.Fprintf(cfg.Out, "skip %s: %s\n", r.Name, r.Skip)
				continue
			}
			if r.Err != nil {
				failed++
				fmt.Fprintf(cfg.Out, "FAIL %s: %v (%v)\n", r.Name, r.Err, el)
			} else {
				passed++
				fmt.Fprintf(cfg.Out, "ok   %s: %s (%v)\n", r.Name, r.Detail, el)
			}
		}
	}
	fmt.Fprintf(cfg.Out, "%d passed, %d failed\n", passed, failed)
	return passed, failed
}

// rootSnapshot is the part of the root namespace a lab could leak into: links named like lab
// interfaces and netfilter rules mentioning lab addresses or NFQUEUE. (Labs never create either
// there; anything else in the root namespace belongs to other people and is not compared.)
type rootSnapshot struct {
	iptables, ip6tables, links string
}

var baseline rootSnapshot

var labIfaceName = regexp.MustCompile(`^(a0|b0|ra|rb|c0|s0|mc|ms|w0|e0|lan|br0|p[0-9]+|c[0-9]+)(@|$)`)

func labRules(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, "-A ") && (strings.Contains(line, "NFQUEUE") || strings.Contains(line, "10.71.") ||
			strings.Contains(line, "10.199.") || strings.Contains(line, "45.71.") || strings.Contains(line, "fd71:") || strings.Contains(line, "fd99:")) {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

func snapshotRoot() rootSnapshot {
	v4, _ := run("iptables-save")
	v6, _ := run("ip6tables-save")
	links, _ := run("ip", "-o", "link", "show")
	var names []string
	for _, l := range strings.Split(links, "\n") {
		if f := strings.Fields(l); len(f) > 1 && labIfaceName.MatchString(strings.TrimSuffix(f[1], ":")) {
			names = append(names, strings.TrimSuffix(f[1], ":"))
		}
	}
	return rootSnapshot{labRules(v4), labRules(v6), strings.Join(names, " ")}
}

// leftovers lists namespaces, state markers and processes of labs this process created.
func leftovers() []string {
	var left []string
	out, _ := run("ip", "netns", "list")
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && strings.HasPrefix(f[0], NamePrefix) && ownedByUs(f[0]) {
			left = append(left, "netns "+f[0])
		}
	}
	ents, _ := os.ReadDir(StateDir)
	for _, e := range ents {
		if ownedByUs(e.Name()) {
			left = append(left, "marker "+e.Name())
		}
	}
	// Children of this process (delayers, tcpdump, coturn, socat) must all be gone.
	procs, _ := os.ReadDir("/proc")
	me := os.Getpid()
	for _, p := range procs {
		b, err := os.ReadFile("/proc/" + p.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		var state string
		var ppid int
		if _, err := fmt.Sscan(s[i+1:], &state, &ppid); err == nil && ppid == me && state != "Z" {
			left = append(left, "process "+p.Name()+" "+s[strings.IndexByte(s, '(')+1:i])
		}
	}
	return left
}

var createdPrefixes = map[string]bool{}

func ownedByUs(name string) bool {
	for p := range createdPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func checkNothingLeft(env *CheckEnv) (string, error) {
	var problems []string
	problems = append(problems, leftovers()...)
	now := snapshotRoot()
	if now.iptables != baseline.iptables {
		problems = append(problems, "lab rules in the root iptables: "+now.iptables)
	}
	if now.ip6tables != baseline.ip6tables {
		problems = append(problems, "lab rules in the root ip6tables: "+now.ip6tables)
	}
	if now.links != baseline.links {
		problems = append(problems, fmt.Sprintf("lab-like links in the root namespace: %q → %q", baseline.links, now.links))
	}
	if len(problems) > 0 {
		return "", fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return fmt.Sprintf("%d labs removed: no namespace, veth, rule, marker or process left; no lab rule or link in the root namespace", len(createdPrefixes)), nil
}

// trackLab records a lab built by a check, so the final check can look for its leftovers.
func trackLab(l *Lab) { createdPrefixes[l.Prefix] = true }

// ---- helpers shared by the checks ----

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(p * float64(len(s)-1))
	return s[i]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

// probeSeq extracts the sequence number of a udpPing probe from a captured payload.
func probeSeq(p CapturedPacket) (int, bool) {
	if p.UDP == nil || len(p.Payload) < 12 {
		return 0, false
	}
	return int(binary.BigEndian.Uint32(p.Payload)), true
}

// firstSeen maps probe sequence numbers to their first capture time, for packets matching keep.
func firstSeen(pkts []CapturedPacket, keep func(CapturedPacket) bool) map[int]time.Time {
	m := map[int]time.Time{}
	for _, p := range pkts {
		if !keep(p) {
			continue
		}
		if s, ok := probeSeq(p); ok {
			if _, dup := m[s]; !dup {
				m[s] = p.Time
			}
		}
	}
	return m
}

func toDst(port uint16) func(CapturedPacket) bool {
	return func(p CapturedPacket) bool { return p.UDP != nil && p.Dst.Port() == port }
}

func fromSrc(port uint16) func(CapturedPacket) bool {
	return func(p CapturedPacket) bool { return p.UDP != nil && p.Src.Port() == port }
}

// owd returns per-sequence delays between two capture points (only sequences seen at both).
func owd(a, b map[int]time.Time) map[int]time.Duration {
	m := map[int]time.Duration{}
	for s, ta := range a {
		if tb, ok := b[s]; ok {
			m[s] = tb.Sub(ta)
		}
	}
	return m
}

func values(m map[int]time.Duration) []time.Duration {
	v := make([]time.Duration, 0, len(m))
	for _, d := range m {
		v = append(v, d)
	}
	return v
}

// tap is one capture point of a check: the capture is written to NAME.pcap in the check's
// directory.
type tap struct {
	name  string
	h     *Host
	iface string
}

// captured runs tcpdump on every tap (with one filter), calls during, stops the captures and
// returns the decoded packets by tap name.
func captured(env *CheckEnv, taps []tap, filter string, during func() error) (map[string][]CapturedPacket, error) {
	var caps []*Capture
	stopAll := func() error {
		var first error
		for _, c := range caps {
			if err := c.Stop(); err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	for _, t := range taps {
		c, err := t.h.StartCapture(t.iface, env.File(t.name+".pcap"), filter)
		if err != nil {
			_ = stopAll()
			return nil, err
		}
		caps = append(caps, c)
	}
	err := during()
	if serr := stopAll(); err == nil {
		err = serr
	}
	if err != nil {
		return nil, err
	}
	out := map[string][]CapturedPacket{}
	for _, t := range taps {
		pkts, err := ReadCapture(env.File(t.name + ".pcap"))
		if err != nil {
			return nil, err
		}
		out[t.name] = pkts
	}
	return out, nil
}

// udpSender opens a UDP socket in h connected to dst.
func udpSender(h *Host, dst netip.AddrPort) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := h.Do(func() error {
		var err error
		c, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
		return err
	})
	return c, err
}
