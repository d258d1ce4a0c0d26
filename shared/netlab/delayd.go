package netlab

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The delayer runs in its own process at real-time priority (SCHED_FIFO), so that a machine
// busy compiling (or a race-instrumented test binary) cannot make it late: in-process it
// measured +1.7 ms median / +60 ms worst extra delay under load 13 on 2 cores. The process is
// the caller's own executable: importing netlab adds this init hook, which takes over only
// when DelayerEnv is set.

// DelayerEnv, when set in the environment, makes any binary importing netlab run as a delayer
// process (its value is the JSON delayerSpec) instead of its main.
const DelayerEnv = "PROBEKIT_NETLAB_DELAYER"

// delayerPriority is the SCHED_FIFO priority of the delayer (1..99; kernel threads use 50).
const delayerPriority = 20

func init() {
	if spec := os.Getenv(DelayerEnv); spec != "" {
		os.Exit(delayerMain(spec, os.Stdin, os.Stdout))
	}
}

type delayerSpec struct {
	NetNS  string       // namespace path (/run/netns/NAME)
	Queues []uint16     // one queue per direction
	Imps   []Impairment // impairment per queue
	Detach bool         // keep running when stdin closes (netlab up); stop on SIGTERM
	// Echo, when set, makes the process a UDP echo server on this port instead (for the self
	// test: a real-time process of its own, so the echo turnaround is not the test's GC or
	// scheduler noise).
	Echo int
}

type delayerRequest struct {
	Op  string // "set", "stats", "epoch"
	Dir int
	Imp Impairment
}

type delayerReply struct {
	Error  string        `json:",omitempty"`
	Epochs []int64       `json:",omitempty"` // unix ns per direction
	Stats  *DelayerStats `json:",omitempty"`
	// Realtime reports whether the delayer runs at SCHED_FIFO priority.
	Realtime bool
}

// setRealtime moves every thread of this process to SCHED_FIFO; threads the runtime creates
// later inherit the policy from the thread that clones them.
func setRealtime(prio int) error {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetAttr(tid, &unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: uint32(prio)}, 0); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func delayerMain(specJSON string, in io.Reader, out io.Writer) int {
	var spec delayerSpec
	enc := json.NewEncoder(out)
	fail := func(err error) int {
		_ = enc.Encode(delayerReply{Error: err.Error()})
		return 1
	}
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		return fail(fmt.Errorf("delayer spec: %w", err))
	}
	if len(spec.Queues) != len(spec.Imps) {
		return fail(errors.New("delayer spec: queues and impairments differ in number"))
	}
	if spec.Echo > 0 {
		return echoMain(spec.Echo, in, enc)
	}
	rtErr := setRealtime(delayerPriority)
	ns, err := os.Open(spec.NetNS)
	if err != nil {
		return fail(err)
	}
	// Kernel receive timestamps on every packet (a global switch) let the delayer measure
	// each delay from the packet's arrival rather than from when it reached user space.
	if fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0); err == nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
		defer unix.Close(fd)
	}
	var ds []*Delayer
	defer func() {
		for _, d := range ds {
			_ = d.Close()
		}
	}()
	for i, q := range spec.Queues {
		d, err := StartDelayer(DelayerConfig{NetNS: ns, Queue: q, Impairment: spec.Imps[i]})
		if err != nil {
			return fail(err)
		}
		ds = append(ds, d)
	}
	ns.Close()
	epochs := func() []int64 {
		e := make([]int64, len(ds))
		for i, d := range ds {
			e[i] = d.Epoch().UnixNano()
		}
		return e
	}
	// Real-time priority is best effort: without it the delay still works, less precisely.
	ready := delayerReply{Epochs: epochs(), Realtime: rtErr == nil}
	var mu sync.Mutex
	reply := func(r delayerReply) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(r)
	}
	reply(ready)
	if spec.Detach {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		return 0
	}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		var req delayerRequest
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			reply(delayerReply{Error: err.Error()})
			continue
		}
		if req.Dir < 0 || req.Dir >= len(ds) {
			reply(delayerReply{Error: fmt.Sprintf("no direction %d", req.Dir)})
			continue
		}
		switch req.Op {
		case "set":
			if err := ds[req.Dir].Set(req.Imp); err != nil {
				reply(delayerReply{Error: err.Error()})
				continue
			}
			reply(delayerReply{Epochs: epochs()})
		case "stats":
			st := ds[req.Dir].Stats()
			reply(delayerReply{Stats: &st, Epochs: epochs()})
		default:
			reply(delayerReply{Error: "unknown op " + req.Op})
		}
	}
	return 0
}

// echoMain serves UDP echo (IPv4 and IPv6) until stdin closes, at a real-time priority above
// the delayer's (see realtimeThread).
func echoMain(port int, in io.Reader, enc *json.Encoder) int {
	_ = setRealtime(delayerPriority + 10)
	e, err := listenEcho(port)
	if err != nil {
		_ = enc.Encode(delayerReply{Error: err.Error()})
		return 1
	}
	_ = enc.Encode(delayerReply{})
	_, _ = io.Copy(io.Discard, in)
	e.Close()
	return 0
}

// delayerProc is the parent's handle on a delayer process.
type delayerProc struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	dec  *json.Decoder
	mu   sync.Mutex
	done chan struct{}
}

// startDelayerProc starts the delayer process for the router and waits until its queues are
// bound (so no packet bypasses them once this returns). A persistent lab's delayer runs inside
// the router namespace (so Destroy finds and kills it) in its own session, and keeps running
// after the caller exits.
func startDelayerProc(router *Host, queues []uint16, imps []Impairment) (*delayerProc, []time.Time, error) {
	detach := router.lab.persistent
	return startHelper(router, delayerSpec{NetNS: "/run/netns/" + router.NS, Queues: queues, Imps: imps, Detach: detach}, detach)
}

// startHelper re-executes the running binary as a helper (delayer or echo server) inside the
// host's namespace and waits for its ready line.
func startHelper(h *Host, spec delayerSpec, detach bool) (*delayerProc, []time.Time, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, fmt.Errorf("netlab helper: %w", err)
	}
	js, err := json.Marshal(spec)
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command("ip", "netns", "exec", h.NS, exe)
	cmd.Env = append(os.Environ(), DelayerEnv+"="+string(js))
	if detach {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		cmd.Stderr = os.Stderr
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	outR, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("netlab delayer: start: %w", err)
	}
	p := &delayerProc{cmd: cmd, in: in, dec: json.NewDecoder(outR), done: make(chan struct{})}
	var r delayerReply
	if err := p.dec.Decode(&r); err != nil || r.Error != "" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if err == nil {
			err = errors.New(r.Error)
		}
		return nil, nil, fmt.Errorf("netlab delayer: %w", err)
	}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, unixTimes(r.Epochs), nil
}

func unixTimes(ns []int64) []time.Time {
	t := make([]time.Time, len(ns))
	for i, n := range ns {
		t[i] = time.Unix(0, n)
	}
	return t
}

func (p *delayerProc) call(req delayerRequest) (delayerReply, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, _ := json.Marshal(req)
	if _, err := p.in.Write(append(b, '\n')); err != nil {
		return delayerReply{}, fmt.Errorf("netlab delayer: %w", err)
	}
	var r delayerReply
	if err := p.dec.Decode(&r); err != nil {
		return r, fmt.Errorf("netlab delayer: %w", err)
	}
	if r.Error != "" {
		return r, fmt.Errorf("netlab delayer: %s", r.Error)
	}
	return r, nil
}

// Close ends the delayer (closing stdin makes it release held packets and exit).
func (p *delayerProc) Close() error {
	_ = p.in.Close()
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return nil
}
