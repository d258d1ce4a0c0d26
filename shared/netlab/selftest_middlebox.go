package netlab

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

func middleboxChecks() []Check {
	return []Check{{Name: "middlebox/", Multi: checkMiddleboxModes}}
}

// checkMiddleboxModes proves every mode on one lab, switching with SetMode (which the check
// exercises too) and a server on port 80.
func checkMiddleboxModes(env *CheckEnv) []Result {
	m, err := NewMiddlebox(MiddleboxConfig{Log: env.Log})
	if err != nil {
		return []Result{{Name: "middlebox/build", Err: err}}
	}
	trackLab(m.Lab)
	defer m.Close()
	sink, err := startTCPSink(m.Server, 80)
	if err != nil {
		return []Result{{Name: "middlebox/server", Err: err}}
	}
	defer sink.Close()
	var res []Result
	for i, mode := range []MiddleboxMode{ModeTransparent, ModeStripOptions, ModeClampMSS, ModeNAT, ModeSYNProxy, ModeProxy} {
		sub := &CheckEnv{Dir: filepath.Join(env.Dir, mode.String()), Log: env.Log.WithField("mode", mode)}
		err := os.MkdirAll(sub.Dir, 0o755)
		start, detail := time.Now(), ""
		if err == nil {
			detail, err = checkMiddlebox(sub, m, sink, mode, i)
		}
		res = append(res, Result{Name: "middlebox/" + mode.String(), Detail: detail, Err: err, Elapsed: time.Since(start)})
	}
	return res
}

// tcpSink accepts connections on a port in a namespace and records who connected and what
// they sent.
type tcpSink struct {
	ln   net.Listener
	mu   sync.Mutex
	from []netip.AddrPort
	data map[netip.AddrPort][]byte
	wg   sync.WaitGroup
}

func startTCPSink(h *Host, port int) (*tcpSink, error) {
	s := &tcpSink{data: map[netip.AddrPort][]byte{}}
	err := h.Do(func() error {
		var err error
		s.ln, err = net.Listen("tcp", fmt.Sprintf(":%d", port))
		return err
	})
	if err != nil {
		return nil, err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			from := c.RemoteAddr().(*net.TCPAddr).AddrPort()
			s.mu.Lock()
			s.from = append(s.from, netip.AddrPortFrom(from.Addr().Unmap(), from.Port()))
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				b, _ := io.ReadAll(io.LimitReader(c, 1<<16))
				s.mu.Lock()
				s.data[netip.AddrPortFrom(from.Addr().Unmap(), from.Port())] = b
				s.mu.Unlock()
			}()
		}
	}()
	return s, nil
}

func (s *tcpSink) Close() {
	s.ln.Close()
	s.wg.Wait()
}

// connectAndSend opens a kernel TCP connection from h, sends msg and closes.
func connectAndSend(h *Host, dst netip.AddrPort, msg string) (netip.AddrPort, error) {
	var c net.Conn
	err := h.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp", dst.String(), 3*time.Second)
		return err
	})
	if err != nil {
		return netip.AddrPort{}, err
	}
	defer c.Close()
	local := c.LocalAddr().(*net.TCPAddr).AddrPort()
	if _, err := c.Write([]byte(msg)); err != nil {
		return local, err
	}
	time.Sleep(50 * time.Millisecond)
	return local, nil
}

// syns returns the SYN (no ACK) and SYN/ACK segments of a capture.
func syns(pkts []CapturedPacket) (syn, synack []CapturedPacket) {
	for _, p := range pkts {
		if p.TCP == nil || !p.TCP.SYN {
			continue
		}
		if p.TCP.ACK {
			synack = append(synack, p)
		} else {
			syn = append(syn, p)
		}
	}
	return
}

func findSeq(pkts []CapturedPacket, seq uint32) (CapturedPacket, bool) {
	for _, p := range pkts {
		if p.TCP.Seq == seq {
			return p, true
		}
	}
	return CapturedPacket{}, false
}

const probeSeq0 = 252001

// checkMiddlebox sends a probe through the middlebox in one mode and compares captures on the
// client (c0) and server (s0) interfaces: a crafted SYN with option kind 253 for the modes
// that rewrite in place, a kernel connection for the ones that re-originate it.
func checkMiddlebox(env *CheckEnv, m *MiddleboxLab, sink *tcpSink, mode MiddleboxMode, i int) (string, error) {
	server := netip.AddrPortFrom(MiddleboxServer, 80)
	{
		if err := m.SetMode(mode); err != nil {
			return "", fmt.Errorf("%v: %w", mode, err)
		}
		var local netip.AddrPort
		crafted := mode != ModeSYNProxy && mode != ModeProxy
		caps, err := captured(env, []tap{{"c0", m.Client, "c0"}, {"s0", m.Server, "s0"}}, "tcp port 80", func() error {
			if !crafted {
				var err error
				local, err = connectAndSend(m.Client, server, "hello "+mode.String())
				return err
			}
			local = netip.AddrPortFrom(MiddleboxClient, uint16(41000+i))
			err := m.Client.SendSYN(local, server, probeSeq0, 8064, ProbeSYNOptions())
			time.Sleep(50 * time.Millisecond)
			return err
		})
		if err != nil {
			return "", err
		}
		cp, sp := caps["c0"], caps["s0"]
		csyn, csynack := syns(cp)
		ssyn, ssynack := syns(sp)
		var d string
		if crafted {
			sent, ok1 := findSeq(csyn, probeSeq0)
			got, ok2 := findSeq(ssyn, probeSeq0)
			if !ok1 || !ok2 {
				return "", fmt.Errorf("%v: probe SYN not captured on both sides (client %v, server %v)", mode, ok1, ok2)
			}
			d, err = checkCraftedMode(mode, sent, got)
		} else {
			d, err = checkReoriginated(mode, local, csyn, csynack, ssyn, ssynack, sink)
		}
		if err != nil {
			return "", err
		}
		return d, nil
	}
}

func checkCraftedMode(mode MiddleboxMode, sent, got CapturedPacket) (string, error) {
	sk, gk := optionKinds(sent.TCP), optionKinds(got.TCP)
	if !slices.Contains(sk, 253) {
		return "", fmt.Errorf("client-side SYN lacks kind 253: %v", sk)
	}
	if sent.IPv4.TTL-got.IPv4.TTL != 1 {
		return "", fmt.Errorf("TTL %d → %d, want −1 (forwarded, not re-originated)", sent.IPv4.TTL, got.IPv4.TTL)
	}
	mss := func(p CapturedPacket) int {
		for _, o := range p.TCP.Options {
			if o.OptionType == 2 && len(o.OptionData) == 2 {
				return int(o.OptionData[0])<<8 | int(o.OptionData[1])
			}
		}
		return -1
	}
	switch mode {
	case ModeTransparent:
		if !slices.Equal(sk, gk) || got.Src != sent.Src {
			return "", fmt.Errorf("changed: %v %v → %v %v", sent.Src, sk, got.Src, gk)
		}
		return fmt.Sprintf("SYN %v options %v arrives unchanged but TTL %d → %d", sent.Src, sk, sent.IPv4.TTL, got.IPv4.TTL), nil
	case ModeStripOptions:
		if slices.Contains(gk, 253) || got.TCP.DataOffset != sent.TCP.DataOffset {
			return "", fmt.Errorf("kind 253 not NOP-filled: %v → %v (data offset %d → %d)", sk, gk, sent.TCP.DataOffset, got.TCP.DataOffset)
		}
		i := slices.Index(sk, 253)
		if n := len(gk); n < i+6 || !slices.Equal(gk[i:i+6], []int{1, 1, 1, 1, 1, 1}) {
			return "", fmt.Errorf("kind 253 (6 bytes) not replaced by 6 NOPs: %v", gk)
		}
		return fmt.Sprintf("kind 253 NOP-filled, header length kept: options %v → %v", sk, gk), nil
	case ModeClampMSS:
		if mss(sent) != 1460 || mss(got) != 536 {
			return "", fmt.Errorf("MSS %d → %d, want 1460 → 536", mss(sent), mss(got))
		}
		return "SYN MSS 1460 → 536", nil
	case ModeNAT:
		if got.Src.Addr() != MiddleboxRouterS || got.Src.Port() == sent.Src.Port() {
			return "", fmt.Errorf("source %v → %v, want the router's address and another port", sent.Src, got.Src)
		}
		if got.TCP.Seq != sent.TCP.Seq || !slices.Equal(sk, gk) {
			return "", fmt.Errorf("ModeNAT changed ISN or options")
		}
		return fmt.Sprintf("source %v → %v, ISN and options unchanged", sent.Src, got.Src), nil
	}
	return "", errors.New("not a crafted-SYN mode")
}

func checkReoriginated(mode MiddleboxMode, local netip.AddrPort, csyn, csynack, ssyn, ssynack []CapturedPacket, sink *tcpSink) (string, error) {
	if len(csyn) == 0 || len(csynack) == 0 || len(ssyn) == 0 || len(ssynack) == 0 {
		return "", fmt.Errorf("handshake not captured on both sides (client SYN %d SYN/ACK %d, server SYN %d SYN/ACK %d)",
			len(csyn), len(csynack), len(ssyn), len(ssynack))
	}
	cSA, sSA, cS, sS := csynack[0], ssynack[0], csyn[0], ssyn[0]
	sink.mu.Lock()
	defer sink.mu.Unlock()
	switch mode {
	case ModeSYNProxy:
		if cSA.TCP.Seq == sSA.TCP.Seq {
			return "", fmt.Errorf("client and server SYN/ACK share ISN %d", cSA.TCP.Seq)
		}
		if !sS.Time.After(cSA.Time) {
			return "", fmt.Errorf("server saw the SYN before the proxy answered the client")
		}
		if sS.Src != cS.Src {
			return "", fmt.Errorf("SYN proxy changed the source %v → %v", cS.Src, sS.Src)
		}
		return fmt.Sprintf("client SYN/ACK ISN %d win %d, server SYN/ACK ISN %d win %d, server SYN %.1f ms after the proxy's SYN/ACK",
			cSA.TCP.Seq, cSA.TCP.Window, sSA.TCP.Seq, sSA.TCP.Window, float64(sS.Time.Sub(cSA.Time))/1e6), nil
	case ModeProxy:
		if sS.Src.Addr() != MiddleboxRouterS || sS.Src.Port() == local.Port() || sS.TCP.Seq == cS.TCP.Seq {
			return "", fmt.Errorf("server-side SYN %v ISN %d vs client %v ISN %d: not a separate connection", sS.Src, sS.TCP.Seq, cS.Src, cS.TCP.Seq)
		}
		want := "hello proxy"
		if string(sink.data[sS.Src]) != want {
			return "", fmt.Errorf("server got %q from %v, want %q", sink.data[sS.Src], sS.Src, want)
		}
		return fmt.Sprintf("client connection %v ISN %d; server-side connection from %v ISN %d; data relayed", cS.Src, cS.TCP.Seq, sS.Src, sS.TCP.Seq), nil
	}
	return "", errors.New("not a re-originating mode")
}
