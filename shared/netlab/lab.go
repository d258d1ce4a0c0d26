package netlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
)

// NamePrefix starts every namespace a lab creates; Clean only ever touches names with it.
const NamePrefix = "pk"

// StateDir holds one marker file per live lab (named after its prefix, holding the owner's PID),
// so that Clean can tell a leftover from a lab another process is still using.
const StateDir = "/run/probekit-netlab"

// ErrUnavailable reports that this machine cannot build labs (not root, no namespaces, a tool missing).
var ErrUnavailable = errors.New("netlab: unavailable")

// Lab is a set of network namespaces with everything started in them; Close removes all of it.
// The topology constructors (NewPath, NewNAT, NewMiddlebox) embed a Lab.
type Lab struct {
	// Prefix is unique per lab ("pk" + 6 hex digits); every namespace is named Prefix + "-" + role.
	Prefix string

	log        logrus.FieldLogger
	persistent bool
	mu         sync.Mutex
	hosts      []*Host
	cleanups   []func() error
	procs      []*Proc
	closed     bool
}

func newLab(log logrus.FieldLogger, persistent bool) (*Lab, error) {
	if log == nil {
		l := logrus.New()
		l.SetOutput(nopWriter{})
		log = l
	}
	if err := Available(); err != nil {
		return nil, err
	}
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("netlab: prefix: %w", err)
	}
	l := &Lab{Prefix: NamePrefix + hex.EncodeToString(b[:]), log: log, persistent: persistent}
	l.log = log.WithField("lab", l.Prefix)
	if err := os.MkdirAll(StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("netlab: state dir: %w", err)
	}
	reapOrphans(log)
	marker := filepath.Join(StateDir, l.Prefix)
	owner := strconv.Itoa(os.Getpid())
	if persistent {
		owner = persistentOwner
	}
	if err := os.WriteFile(marker, []byte(owner+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("netlab: state marker: %w", err)
	}
	return l, nil
}

// LabInfo describes a lab found on the machine.
type LabInfo struct {
	Prefix     string
	Namespaces []string
	// Owner is the PID of the process that built it, "persistent" (netlab up) or "" (no marker).
	Owner string
	// Orphan is true when the owner process is gone (or there is no marker): a leftover.
	Orphan bool
}

// List returns every lab (by namespace and marker) on the machine.
func List() ([]LabInfo, error) {
	labs := map[string]*LabInfo{}
	get := func(prefix string) *LabInfo {
		if labs[prefix] == nil {
			labs[prefix] = &LabInfo{Prefix: prefix}
		}
		return labs[prefix]
	}
	out, err := run("ip", "netns", "list")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], NamePrefix) {
			continue
		}
		prefix, _, ok := strings.Cut(f[0], "-")
		if !ok || len(prefix) != len(NamePrefix)+6 {
			continue
		}
		li := get(prefix)
		li.Namespaces = append(li.Namespaces, f[0])
	}
	ents, _ := os.ReadDir(StateDir)
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), NamePrefix) || strings.Contains(e.Name(), "-") || strings.Contains(e.Name(), ".") {
			continue
		}
		b, _ := os.ReadFile(filepath.Join(StateDir, e.Name()))
		get(e.Name()).Owner = strings.TrimSpace(string(b))
	}
	var res []LabInfo
	for _, li := range labs {
		switch li.Owner {
		case "":
			li.Orphan = true
		case persistentOwner:
		default:
			pid, err := strconv.Atoi(li.Owner)
			li.Orphan = err != nil || syscall.Kill(pid, 0) == syscall.ESRCH
		}
		slices.Sort(li.Namespaces)
		res = append(res, *li)
	}
	slices.SortFunc(res, func(a, b LabInfo) int { return strings.Compare(a.Prefix, b.Prefix) })
	return res, nil
}

// Destroy removes a lab by prefix: kills every process inside its namespaces, deletes them and
// its state files. It is how `netlab down` and `netlab clean` remove labs.
func Destroy(prefix string) error {
	if !strings.HasPrefix(prefix, NamePrefix) || strings.ContainsAny(prefix, "-/. ") {
		return fmt.Errorf("netlab: %q is not a lab prefix", prefix)
	}
	labs, err := List()
	if err != nil {
		return err
	}
	var errs []error
	for _, li := range labs {
		if li.Prefix != prefix {
			continue
		}
		for _, ns := range li.Namespaces {
			killNamespacePIDs(ns)
		}
		for _, ns := range li.Namespaces {
			if _, err := run("ip", "netns", "del", ns); err != nil {
				errs = append(errs, err)
			}
		}
	}
	files, _ := filepath.Glob(filepath.Join(StateDir, prefix+"*"))
	for _, f := range files {
		if err := os.Remove(f); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// persistentOwner marks a lab built by `netlab up`: it outlives its creator and is removed by
// `netlab down` (or `clean --all`).
const persistentOwner = "persistent"

// Detach leaves a persistent lab running: Close becomes a no-op and its processes stay up.
// Use Destroy(prefix) to remove it later.
func (l *Lab) Detach() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

var (
	availOnce sync.Once
	availErr  error
)

// Available reports (once per process, then cached) whether labs can be built here: root, the
// iproute2/iptables/tc/ethtool tools, and a probe namespace that can be created and deleted.
// The error wraps ErrUnavailable and says what is missing; tests skip with it.
func Available() error {
	availOnce.Do(func() {
		if os.Geteuid() != 0 {
			availErr = fmt.Errorf("%w: not root", ErrUnavailable)
			return
		}
		for _, tool := range []string{"ip", "iptables", "iptables-restore", "tc", "ethtool"} {
			if _, err := exec.LookPath(tool); err != nil {
				availErr = fmt.Errorf("%w: %s not installed (scripts/deps.sh installs it)", ErrUnavailable, tool)
				return
			}
		}
		var b [3]byte
		_, _ = rand.Read(b[:])
		probe := NamePrefix + "probe" + hex.EncodeToString(b[:])
		if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
			availErr = fmt.Errorf("%w: cannot create a network namespace: %s", ErrUnavailable, strings.TrimSpace(string(out)))
			return
		}
		_ = exec.Command("ip", "netns", "del", probe).Run()
	})
	return availErr
}

// run executes a command in the root namespace and returns its combined output.
func run(name string, args ...string) (string, error) {
	return runIn(nil, name, args...)
}

func runIn(stdin []byte, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// addHost creates the namespace Prefix-role with its loopback up.
func (l *Lab) addHost(role string) (*Host, error) {
	h := &Host{Name: role, NS: l.Prefix + "-" + role, lab: l}
	if _, err := run("ip", "netns", "add", h.NS); err != nil {
		return nil, fmt.Errorf("netlab: %w", err)
	}
	l.mu.Lock()
	l.hosts = append(l.hosts, h)
	l.mu.Unlock()
	if err := h.IP("link set lo up"); err != nil {
		return nil, err
	}
	// No duplicate address detection: addresses (link-local too) must work at once.
	for _, k := range []string{"net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad"} {
		if err := h.Sysctl(k, "0"); err != nil {
			return nil, err
		}
	}
	// Bridged frames would otherwise traverse the ip netfilter hooks twice (lab.md §1).
	_ = h.Sysctl("net.bridge.bridge-nf-call-iptables", "0")
	_ = h.Sysctl("net.bridge.bridge-nf-call-ip6tables", "0")
	return h, nil
}

// veth creates a veth pair with one end in each namespace (no name ever exists in the root
// namespace, so parallel labs cannot collide) and turns offloads off on both ends.
func (l *Lab) veth(a *Host, ifA string, b *Host, ifB string) error {
	if _, err := run("ip", "-n", a.NS, "link", "add", ifA, "type", "veth", "peer", "name", ifB, "netns", b.NS); err != nil {
		return fmt.Errorf("netlab: %w", err)
	}
	for _, e := range []struct {
		h   *Host
		if_ string
	}{{a, ifA}, {b, ifB}} {
		if err := e.h.IP("link set " + e.if_ + " up"); err != nil {
			return err
		}
		if err := e.h.offloadsOff(e.if_); err != nil {
			return err
		}
	}
	return nil
}

// Host returns the host with the given role (e.g. "a", "r", "b"), or nil.
func (l *Lab) Host(role string) *Host {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range l.hosts {
		if h.Name == role {
			return h
		}
	}
	return nil
}

// Hosts returns every host of the lab in creation order.
func (l *Lab) Hosts() []*Host {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Host(nil), l.hosts...)
}

// onClose registers fn to run (in reverse order of registration) when the lab closes.
func (l *Lab) onClose(fn func() error) {
	l.mu.Lock()
	l.cleanups = append(l.cleanups, fn)
	l.mu.Unlock()
}

// Close stops every process the lab started (tracked ones first, then anything else still
// running inside its namespaces), runs the registered cleanups and deletes the namespaces,
// which removes their interfaces, bridges, qdiscs and netfilter rules. It is idempotent.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	procs := l.procs
	cleanups := l.cleanups
	hosts := l.hosts
	l.mu.Unlock()

	var errs []error
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].Stop()
	}
	for i := len(cleanups) - 1; i >= 0; i-- {
		if err := cleanups[i](); err != nil {
			errs = append(errs, err)
		}
	}
	for _, h := range hosts {
		killNamespacePIDs(h.NS)
	}
	for _, h := range hosts {
		if _, err := run("ip", "netns", "del", h.NS); err != nil {
			errs = append(errs, err)
		}
	}
	// The marker goes last: a lab without one is always a leftover.
	files, _ := filepath.Glob(filepath.Join(StateDir, l.Prefix+"*"))
	for _, f := range files {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

var reapOnce sync.Once

// reapOrphans removes labs left behind by processes that died without cleaning up (a test
// binary killed by a timeout or SIGPIPE): their marker names a PID that no longer exists, or
// they have no marker. Labs of live processes and `netlab up` labs are left alone.
func reapOrphans(log logrus.FieldLogger) {
	reapOnce.Do(func() {
		labs, err := List()
		if err != nil {
			return
		}
		for _, li := range labs {
			if li.Orphan {
				log.WithField("orphan", li.Prefix).Info("removing a leftover lab")
				_ = Destroy(li.Prefix)
			}
		}
	})
}

// killNamespacePIDs SIGKILLs processes still inside namespace ns: deleting a namespace does not
// stop them (lab.md §1). They can only have been started by this lab, since the name is unique.
func killNamespacePIDs(ns string) {
	for range 20 {
		out, err := exec.Command("ip", "netns", "pids", ns).Output()
		if err != nil {
			return
		}
		pids := strings.Fields(string(out))
		if len(pids) == 0 {
			return
		}
		for _, p := range pids {
			if pid, err := strconv.Atoi(p); err == nil && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Host is one network namespace of a lab.
type Host struct {
	// Name is the host's role in its topology ("a", "r", "b", "stun", "nat0", "nat0c1", …).
	Name string
	// NS is the namespace name, usable with `ip netns exec`.
	NS string
	// Iface is the host's main interface and Addr/Addr6 its addresses on it (invalid when absent).
	Iface string
	Addr  netip.Addr
	Addr6 netip.Addr

	lab *Lab
}

// IP runs `ip -n NS ARGS` (args split on spaces).
func (h *Host) IP(args string) error {
	if _, err := run("ip", append([]string{"-n", h.NS}, strings.Fields(args)...)...); err != nil {
		return fmt.Errorf("netlab %s: %w", h.Name, err)
	}
	return nil
}

// mac returns the hardware address of an interface of the host.
func (h *Host) mac(iface string) (string, error) {
	out, err := run("ip", "-n", h.NS, "-br", "link", "show", "dev", iface)
	if err != nil {
		return "", fmt.Errorf("netlab %s: %w", h.Name, err)
	}
	f := strings.Fields(out)
	if len(f) < 3 {
		return "", fmt.Errorf("netlab %s: no hardware address for %s in %q", h.Name, iface, out)
	}
	return f[2], nil
}

// Command returns an exec.Cmd that runs name with args inside the host's namespace.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
}

// Exec runs a command inside the namespace to completion and returns its combined output;
// the error includes that output.
func (h *Host) Exec(name string, args ...string) (string, error) {
	out, err := run("ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
	if err != nil {
		return out, fmt.Errorf("netlab %s: %w", h.Name, err)
	}
	return out, nil
}

// ExecInput is Exec with stdin.
func (h *Host) ExecInput(stdin []byte, name string, args ...string) (string, error) {
	out, err := runIn(stdin, "ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
	if err != nil {
		return out, fmt.Errorf("netlab %s: %w", h.Name, err)
	}
	return out, nil
}

// Sysctl sets a sysctl inside the namespace (key in dotted form).
func (h *Host) Sysctl(key, value string) error {
	p := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	return h.Do(func() error {
		if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
			return fmt.Errorf("netlab %s: sysctl %s=%s: %w", h.Name, key, value, err)
		}
		return nil
	})
}

func (h *Host) offloadsOff(iface string) error {
	if _, err := h.Exec("ethtool", "-K", iface, "tso", "off", "gso", "off", "gro", "off", "tx", "off", "rx", "off"); err != nil {
		return err
	}
	return nil
}

// Proc is a background process started in a namespace; the lab stops it on Close.
type Proc struct {
	Cmd  *exec.Cmd
	host *Host
	out  lockedBuffer
	done chan struct{}
	err  error
	once sync.Once
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.b.Len() > 1<<20 {
		return len(p), nil // keep the first MiB; a chatty daemon must not fill memory
	}
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Start runs a command in the background inside the namespace, collecting its combined output
// (see Output). The lab stops it (SIGTERM, then SIGKILL after 2 s) when it closes.
func (h *Host) Start(name string, args ...string) (*Proc, error) {
	p := &Proc{host: h, done: make(chan struct{})}
	// `ip netns exec` execs the command, so the PID we record is the command's own.
	p.Cmd = exec.Command("ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
	if h.lab.persistent {
		// Outlives the command that built the lab: own session, output to a log file.
		f, err := os.OpenFile(filepath.Join(StateDir, h.lab.Prefix+"-"+filepath.Base(name)+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("netlab %s: log: %w", h.Name, err)
		}
		defer f.Close()
		p.Cmd.Stdout, p.Cmd.Stderr = f, f
		p.Cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		p.Cmd.Stdout = &p.out
		p.Cmd.Stderr = &p.out
		p.Cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	h.lab.mu.Lock()
	if h.lab.closed {
		h.lab.mu.Unlock()
		return nil, fmt.Errorf("netlab %s: start %s: lab closed", h.Name, name)
	}
	if err := p.Cmd.Start(); err != nil {
		h.lab.mu.Unlock()
		return nil, fmt.Errorf("netlab %s: start %s: %w", h.Name, name, err)
	}
	h.lab.procs = append(h.lab.procs, p)
	h.lab.mu.Unlock()
	go func() {
		p.err = p.Cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Output returns what the process has written to stdout and stderr so far (first MiB).
func (p *Proc) Output() string { return p.out.String() }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Wait waits for the process to exit and returns its exit error.
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// Stop sends SIGTERM, waits up to 2 s, then SIGKILLs; it returns once the process is gone.
func (p *Proc) Stop() {
	p.once.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = p.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(2 * time.Second):
			_ = p.Cmd.Process.Kill()
			<-p.done
		}
	})
}
