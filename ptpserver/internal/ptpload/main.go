// Command ptpload drives a running ptpserver for scripts/bench ptp: "mesh" mode simulates many
// protocol-v3 clients in meshes on the original timers (beacon every 7 s with NATINFO and a
// REACH per peer, answering every list's MYTS) with a steady join/leave churn, and measures the
// server's CPU and memory from /proc; "relay" mode pushes RELAYTO packets through the server
// between pairs of clients and counts what arrives.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/probekit/probekit/shared/ptp"
	"github.com/probekit/probekit/shared/timestamp"
	"github.com/probekit/probekit/shared/udpsock"
)

func main() {
	mode := flag.String("mode", "mesh", "mesh or relay")
	server := flag.String("server", "127.0.0.1:23456", "ptpserver address")
	pid := flag.Int("pid", 0, "ptpserver's pid (CPU and memory from /proc)")
	clients := flag.Int("clients", 10000, "simulated clients (mesh mode)")
	meshSize := flag.Int("mesh-size", 10, "clients per mesh")
	churn := flag.Int("churn", 100, "join or leave events per minute (mesh mode; 1 % of 10,000)")
	warmup := flag.Duration("warmup", 15*time.Second, "time before the measurement window")
	window := flag.Duration("window", 60*time.Second, "measurement window")
	pairs := flag.Int("pairs", 4, "client pairs (relay mode)")
	rate := flag.Int("rate", 60000, "relay packets per second offered, all pairs together (relay mode)")
	flag.Parse()
	srv, err := netip.ParseAddrPort(*server)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ptpload:", err)
		os.Exit(2)
	}
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil {
		rl.Cur = rl.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
	switch *mode {
	case "mesh":
		err = meshLoad(srv, *pid, *clients, *meshSize, *churn, *warmup, *window)
	case "relay":
		err = relayLoad(srv, *pid, *pairs, *rate, *warmup, *window)
	default:
		err = fmt.Errorf("unknown mode %q", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ptpload:", err)
		os.Exit(1)
	}
}

// proc reads CPU ticks (user+system) and memory (VmRSS, VmHWM in KiB) of a process.
func proc(pid int) (ticks int64, rss, hwm int64) {
	if pid == 0 {
		return 0, 0, 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err == nil {
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks = u + st
	}
	b, err = os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) >= 2 && f[0] == "VmRSS:" {
				rss, _ = strconv.ParseInt(f[1], 10, 64)
			}
			if len(f) >= 2 && f[0] == "VmHWM:" {
				hwm, _ = strconv.ParseInt(f[1], 10, 64)
			}
		}
	}
	return ticks, rss, hwm
}

const clkTck = 100 // USER_HZ on Linux

type simClient struct {
	conn   *net.UDPConn
	addr   netip.AddrPort
	uuid   ptp.UUID
	mesh   int
	seq    uint32
	active atomic.Bool
	phase  time.Duration
	mu     sync.Mutex
	// lists received (page 0) and the shortest gap between two list rounds
	lists    atomic.Int64
	lastList time.Time
	minGap   time.Duration
}

func uuidOf(i int) ptp.UUID {
	var u ptp.UUID
	binary.BigEndian.PutUint64(u[:], uint64(i)+1)
	binary.BigEndian.PutUint64(u[8:], 0x5054505445535431) // "PTPTEST1"
	return u
}

func meshLoad(srv netip.AddrPort, pid, n, size, churn int, warmup, window time.Duration) error {
	cs := make([]*simClient, n)
	for i := range cs {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return fmt.Errorf("socket %d: %w (raise ulimit -n)", i, err)
		}
		defer c.Close()
		cs[i] = &simClient{conn: c, addr: c.LocalAddr().(*net.UDPAddr).AddrPort(), uuid: uuidOf(i), mesh: i / size,
			phase: time.Duration(rand.Int64N(int64(7 * time.Second)))}
		cs[i].active.Store(true)
	}
	var replies atomic.Int64
	for _, c := range cs {
		go c.read(srv, &replies)
	}
	start := time.Now()
	var churnEvents atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Churn: every 60/churn s one random client leaves (SHUTDOWN) or an absent one rejoins.
	go func() {
		if churn <= 0 {
			return
		}
		t := time.NewTicker(time.Minute / time.Duration(churn))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				c := cs[rand.IntN(len(cs))]
				if c.active.Load() {
					c.active.Store(false)
					c.send(srv, c.beacon(true, cs))
				} else {
					c.active.Store(true)
					c.send(srv, c.beacon(false, cs))
				}
				churnEvents.Add(1)
			}
		}
	}()
	// Beacons: every client every 7 s at its own phase (PTP-C1).
	go func() {
		next := make([]time.Time, len(cs))
		for i, c := range cs {
			next[i] = start.Add(c.phase)
		}
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				for i, c := range cs {
					if now.Before(next[i]) {
						continue
					}
					next[i] = next[i].Add(7 * time.Second)
					if c.active.Load() {
						c.send(srv, c.beacon(false, cs))
					}
				}
			}
		}
	}()
	time.Sleep(warmup)
	t0, _, _ := proc(pid)
	w0 := time.Now()
	l0 := int64(0)
	for _, c := range cs {
		l0 += c.lists.Load()
		c.mu.Lock()
		c.minGap = 0
		c.mu.Unlock()
	}
	e0 := churnEvents.Load()
	r0 := replies.Load()
	time.Sleep(window)
	t1, rss, hwm := proc(pid)
	el := time.Since(w0)
	cancel()
	lists := int64(0)
	minGap := time.Duration(1 << 62)
	for _, c := range cs {
		lists += c.lists.Load()
		c.mu.Lock()
		if c.minGap > 0 && c.minGap < minGap {
			minGap = c.minGap
		}
		c.mu.Unlock()
	}
	lists -= l0
	cpu := float64(t1-t0) / clkTck / el.Seconds() * 100
	fmt.Printf("mesh load: %d v3 clients in %d meshes of %d, beacon every 7 s, %d join/leave events in the %.0f s window\n",
		n, (n+size-1)/size, size, churnEvents.Load()-e0, el.Seconds())
	fmt.Printf("  server CPU: %.2f %% of one core (target < 10 %%)\n", cpu)
	fmt.Printf("  server memory: RSS %.1f MB, peak RSS %.1f MB (target < 200 MB)\n", float64(rss)/1024, float64(hwm)/1024)
	fmt.Printf("  lists received (first pages): %d in the window (%.0f/s), replies to beacons: %d (%.0f/s)\n", lists, float64(lists)/el.Seconds(),
		replies.Load()-r0, float64(replies.Load()-r0)/el.Seconds())
	if minGap == time.Duration(1<<62) {
		minGap = 0
	}
	fmt.Printf("  shortest gap between two list rounds to one client (their MYTS): %v (coalescing: at most one round per mesh per second)\n", minGap.Round(time.Millisecond))
	return nil
}

func (c *simClient) send(srv netip.AddrPort, b []byte) {
	c.conn.WriteToUDPAddrPort(b, srv)
}

// beacon is a v3 client→server beacon with NATINFO and a REACH per mesh peer (or SHUTDOWN).
func (c *simClient) beacon(shutdown bool, cs []*simClient) []byte {
	c.mu.Lock()
	c.seq++
	seq := c.seq
	c.mu.Unlock()
	m := &ptp.Message{Role: ptp.RoleClient, Version: ptp.ProtoV3, Has: ptp.FieldSequence | ptp.FieldUUID | ptp.FieldPTPAddr | ptp.FieldMesh,
		Sequence: seq, UUID: c.uuid, PTPAddr: c.addr, Mesh: []byte("mesh-" + strconv.Itoa(c.mesh))}
	if shutdown {
		m.Has |= ptp.FieldShutdown
	} else {
		m.Has |= ptp.FieldMyTS | ptp.FieldNATInfo
		m.MyTS = timestamp.Fixed32FromTime(time.Now())
		m.NAT = ptp.NATInfo{Mapping: ptp.BehaviorEndpointIndependent, Filtering: ptp.BehaviorAddressAndPortDependent, Hairpin: ptp.HairpinYes, Public: c.addr}
		for _, p := range cs {
			if p.mesh == c.mesh && p != c {
				m.Reach = append(m.Reach, ptp.Reach{Peer: p.uuid, Path: ptp.PathDirect, Sent: 100, Received: 99, Lost: 1, RTTMin: 50, RTTAvg: 80, RTTP50: 75, RTTP99: 200, RTTMax: 300, Jitter: 5})
			}
		}
	}
	b, err := m.AppendTo(nil)
	if err != nil {
		panic(err)
	}
	return b
}

func (c *simClient) read(srv netip.AddrPort, replies *atomic.Int64) {
	buf := make([]byte, 2048)
	var m ptp.Message
	var out []byte
	for {
		n, _, err := c.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if m.UnmarshalBinary(buf[:n]) != nil {
			continue
		}
		if m.Has&ptp.FieldList != 0 && m.Has&ptp.FieldMyTS != 0 {
			// The gap between rounds by the server's own stamps (MYTS), not by arrival: a
			// loaded generator reads late and would see queued lists back to back.
			sentAt := m.MyTS.Time()
			c.lists.Add(1)
			c.mu.Lock()
			if !c.lastList.IsZero() {
				if g := sentAt.Sub(c.lastList); c.minGap == 0 || g < c.minGap {
					c.minGap = g
				}
			}
			c.lastList = sentAt
			c.seq++
			r := ptp.Message{Role: ptp.RoleClient, Version: ptp.ProtoV3, Has: ptp.FieldSequence | ptp.FieldUUID | ptp.FieldYourTS | ptp.FieldEchoSeq,
				Sequence: c.seq, UUID: c.uuid, YourTS: m.MyTS, EchoSeq: m.Sequence}
			c.mu.Unlock()
			out, _ = r.AppendTo(out[:0])
			if c.active.Load() {
				c.conn.WriteToUDPAddrPort(out, srv)
			}
		} else if m.Has&ptp.FieldYourTS != 0 {
			replies.Add(1)
		}
	}
}

// relayLoad: pairs of v3 clients; the first of each pair sends RELAYTO(second) as fast as it
// can in sendmmsg batches, the second counts the RELAYFROM packets that arrive.
func relayLoad(srv netip.AddrPort, pid, pairs, rate int, warmup, window time.Duration) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got atomic.Int64
	var sent atomic.Int64
	type pair struct{ p, q *udpsock.Conn }
	var ps []pair
	for i := 0; i < pairs; i++ {
		p, err := udpsock.Listen(ctx, "udp4", "127.0.0.1:0", udpsock.Options{WriteBuffer: 4 << 20})
		if err != nil {
			return err
		}
		q, err := udpsock.Listen(ctx, "udp4", "127.0.0.1:0", udpsock.Options{ReadBuffer: 8 << 20})
		if err != nil {
			return err
		}
		defer p.Close()
		defer q.Close()
		ps = append(ps, pair{p, q})
		for j, c := range []*udpsock.Conn{p, q} {
			m := &ptp.Message{Role: ptp.RoleClient, Version: ptp.ProtoV3, Has: ptp.FieldSequence | ptp.FieldUUID | ptp.FieldPTPAddr | ptp.FieldMyTS | ptp.FieldMesh,
				UUID: uuidOf(2*i + j), PTPAddr: c.LocalAddr(), MyTS: 1, Mesh: []byte("relay-" + strconv.Itoa(i))}
			b, _ := m.AppendTo(nil)
			c.WriteTo(&udpsock.Message{Buf: b, N: len(b), Addr: srv})
		}
	}
	time.Sleep(500 * time.Millisecond)
	for i, pr := range ps {
		go func(q *udpsock.Conn) {
			msgs := make([]udpsock.Message, 64)
			for k := range msgs {
				msgs[k].Buf = make([]byte, 2048)
			}
			var m ptp.Message
			for {
				n, err := q.ReadBatch(msgs)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					continue
				}
				for k := 0; k < n; k++ {
					if m.UnmarshalBinary(msgs[k].Buf[:msgs[k].N]) == nil && m.Has&ptp.FieldRelayFrom != 0 {
						got.Add(1)
					}
				}
			}
		}(pr.q)
		go func(i int, p *udpsock.Conn) {
			m := &ptp.Message{Role: ptp.RoleClient, Version: ptp.ProtoV3, Has: ptp.FieldSequence | ptp.FieldUUID | ptp.FieldRelayTo | ptp.FieldMyTS | ptp.FieldEchoSeq,
				UUID: uuidOf(2 * i), RelayTo: uuidOf(2*i + 1), MyTS: 7}
			msgs := make([]udpsock.Message, 32)
			for k := range msgs {
				m.Sequence++
				b, _ := m.AppendTo(nil)
				msgs[k] = udpsock.Message{Buf: b, N: len(b), Addr: srv}
			}
			// Paced: a batch of 32 every 32/(rate/pairs) seconds.
			every := time.Duration(float64(time.Second) * float64(len(msgs)) * float64(pairs) / float64(max(rate, 1)))
			next := time.Now()
			for ctx.Err() == nil {
				n, _ := p.WriteBatch(msgs)
				sent.Add(int64(n))
				next = next.Add(every)
				if d := time.Until(next); d > 0 {
					time.Sleep(d)
				}
			}
		}(i, pr.p)
	}
	time.Sleep(warmup)
	g0, s0 := got.Load(), sent.Load()
	t0, _, _ := proc(pid)
	w0 := time.Now()
	time.Sleep(window)
	t1, rss, hwm := proc(pid)
	el := time.Since(w0)
	g, s := got.Load()-g0, sent.Load()-s0
	cancel()
	fmt.Printf("relay: %d pairs, %.0f RELAYTO packets/s offered, %.0f relayed packets/s delivered (target >= 50,000), %.2f %% delivered\n",
		pairs, float64(s)/el.Seconds(), float64(g)/el.Seconds(), float64(g)/float64(max(s, 1))*100)
	fmt.Printf("  server CPU: %.1f %% of one core; RSS %.1f MB, peak %.1f MB\n", float64(t1-t0)/clkTck/el.Seconds()*100, float64(rss)/1024, float64(hwm)/1024)
	return nil
}
