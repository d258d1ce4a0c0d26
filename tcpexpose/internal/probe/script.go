package probe

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/probekit/probekit/shared/tcpcraft"
)

// Step is one segment of a send script: flags, options, payload and header fields, where
// sequence and acknowledgement numbers may be relative to the flow (see ParseStep).
type Step struct {
	Flags   uint16
	Options []tcpcraft.Option
	Payload []byte
	Seq     NumExpr
	Ack     NumExpr
	Window  int // -1: the flow's
	TTL     int // -1: the flow's
	TOS     int // -1: the flow's
	Urgent  uint16
	Wait    time.Duration // replies are collected this long after the segment (0: the default)
}

// NumExpr is a sequence/ack number: absolute, or relative to a base.
type NumExpr struct {
	Base string // "" (absolute), "isn", "peer" (peer's ISN), "nxt" (next to send / next expected)
	Off  int64
	Set  bool
}

func (n NumExpr) eval(f *tcpcraft.Flow, def uint32, ack bool) uint32 {
	if !n.Set {
		return def
	}
	switch n.Base {
	case "isn":
		return f.ISN + uint32(n.Off)
	case "peer":
		return f.PeerISN + uint32(n.Off)
	case "nxt":
		if ack {
			return f.RcvNxt + uint32(n.Off)
		}
		return f.SndNxt + uint32(n.Off)
	}
	return uint32(n.Off)
}

// ErrStep reports a bad script step.
var ErrStep = errors.New("bad segment spec")

// ParseFlags parses tcpdump-style flag letters: S SYN, A or . ACK, F FIN, R RST, P PSH,
// U URG, E ECE, W CWR, e AE ("none" or "" for none).
func ParseFlags(s string) (uint16, error) {
	if s == "none" {
		return 0, nil
	}
	var f uint16
	for _, c := range s {
		switch c {
		case 'S':
			f |= tcpcraft.FlagSYN
		case 'A', '.':
			f |= tcpcraft.FlagACK
		case 'F':
			f |= tcpcraft.FlagFIN
		case 'R':
			f |= tcpcraft.FlagRST
		case 'P':
			f |= tcpcraft.FlagPSH
		case 'U':
			f |= tcpcraft.FlagURG
		case 'E':
			f |= tcpcraft.FlagECE
		case 'W':
			f |= tcpcraft.FlagCWR
		case 'e':
			f |= tcpcraft.FlagAE
		default:
			return 0, fmt.Errorf("%w: flag letter %q (S A . F R P U E W e)", ErrStep, c)
		}
	}
	return f, nil
}

func parseNumExpr(s string) (NumExpr, error) {
	n := NumExpr{Set: true}
	for _, b := range []string{"isn", "peer", "nxt"} {
		if rest, ok := strings.CutPrefix(s, b); ok {
			n.Base = b
			if rest == "" {
				return n, nil
			}
			v, err := strconv.ParseInt(rest, 0, 64)
			if err != nil {
				return n, fmt.Errorf("%w: %q: offset %v", ErrStep, s, err)
			}
			n.Off = v
			return n, nil
		}
	}
	v, err := strconv.ParseUint(s, 0, 32)
	if err != nil {
		return n, fmt.Errorf("%w: number %q (N, isn+N, peer+N or nxt+N)", ErrStep, s)
	}
	n.Off = int64(v)
	return n, nil
}

// ParseStep parses one segment spec: space-separated key=value items
//
//	flags=S  opts=mss:1460,sackok  seq=isn|isn+N|N|nxt  ack=peer+1|nxt|N  win=N  ttl=N  tos=N
//	payload=HEX  len=N (N zero bytes after payload)  urg=N  wait=200ms
//
// Defaults: seq = next to send, ack = next expected (only with the ACK flag).
func ParseStep(spec string) (Step, error) {
	st := Step{Window: -1, TTL: -1, TOS: -1}
	extra := 0
	for _, item := range strings.Fields(spec) {
		k, v, ok := strings.Cut(item, "=")
		if !ok {
			return st, fmt.Errorf("%w: %q is not key=value", ErrStep, item)
		}
		var err error
		switch k {
		case "flags":
			st.Flags, err = ParseFlags(v)
		case "opts":
			st.Options, err = tcpcraft.ParseOptionSpec(v)
		case "seq":
			st.Seq, err = parseNumExpr(v)
		case "ack":
			st.Ack, err = parseNumExpr(v)
		case "win", "ttl", "tos", "len", "urg":
			var n uint64
			lim := 65535
			if k == "ttl" || k == "tos" {
				lim = 255
			}
			n, err = strconv.ParseUint(v, 0, 32)
			if err == nil && n > uint64(lim) {
				err = fmt.Errorf("above %d", lim)
			}
			switch k {
			case "win":
				st.Window = int(n)
			case "ttl":
				st.TTL = int(n)
			case "tos":
				st.TOS = int(n)
			case "len":
				extra = int(n)
			case "urg":
				st.Urgent = uint16(n)
			}
		case "payload":
			st.Payload, err = hex.DecodeString(strings.TrimPrefix(v, "0x"))
		case "wait":
			st.Wait, err = time.ParseDuration(v)
		default:
			return st, fmt.Errorf("%w: unknown key %q", ErrStep, k)
		}
		if err != nil {
			return st, fmt.Errorf("%w: %s: %v", ErrStep, item, err)
		}
	}
	st.Payload = append(st.Payload, make([]byte, extra)...)
	return st, nil
}

// Build makes the step's segment for the flow.
func (st Step) Build(f *tcpcraft.Flow) *tcpcraft.Segment {
	s := f.Segment(st.Flags, st.Options, st.Payload)
	s.Seq = st.Seq.eval(f, s.Seq, false)
	if st.Flags&tcpcraft.FlagACK != 0 || st.Ack.Set {
		s.Ack = st.Ack.eval(f, f.RcvNxt, true)
	}
	if st.Window >= 0 {
		s.Window = uint16(st.Window)
	}
	if st.TTL >= 0 {
		s.TTL = uint8(st.TTL)
	}
	if st.TOS >= 0 {
		s.TOS = uint8(st.TOS)
	}
	s.Urgent = st.Urgent
	return s
}

// RunScript sends the steps on a new flow, collecting the peer's segments for each step's
// wait (default wait) after it, and returns the flow.
func (e *Engine) RunScript(ctx context.Context, steps []Step, isn uint32, wait time.Duration) (*Conn, error) {
	c := e.NewConn(isn, 65535, 1)
	for i, st := range steps {
		s := st.Build(c.Flow)
		if err := c.Send(s); err != nil {
			return c, fmt.Errorf("segment %d: %w", i+1, err)
		}
		w := st.Wait
		if w == 0 {
			w = wait
		}
		if _, err := c.Collect(ctx, w); err != nil {
			return c, err
		}
	}
	return c, nil
}
