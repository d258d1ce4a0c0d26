package probe

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/probekit/probekit/shared/tcpcraft"
)

func itoa(v int) string { return strconv.Itoa(v) }

// Modification is one header field that differs between what we sent and what the responder
// received (tracebox's Modifications/Additions/Deletions: Old "" = added, New "" = removed).
type Modification struct {
	Field string `json:"field"`
	Old   string `json:"old"`
	New   string `json:"new"`
}

// diffHeader compares a sent segment with the header the responder reflected (TTL excluded:
// it changes on every hop). payloadLen is the payload length the responder received.
func diffHeader(sent, got *tcpcraft.Segment, payloadLen int) []Modification {
	var m []Modification
	add := func(f string, a, b any) {
		sa, sb := fmt.Sprint(a), fmt.Sprint(b)
		if sa != sb {
			m = append(m, Modification{Field: f, Old: sa, New: sb})
		}
	}
	add("ip.src", sent.Src, got.Src)
	add("ip.dst", sent.Dst, got.Dst)
	add("ip.tos", fmt.Sprintf("0x%02x", sent.TOS), fmt.Sprintf("0x%02x", got.TOS))
	add("tcp.sport", sent.SrcPort, got.SrcPort)
	add("tcp.dport", sent.DstPort, got.DstPort)
	add("tcp.seq", sent.Seq, got.Seq)
	if sent.Flags&tcpcraft.FlagACK != 0 {
		add("tcp.ack", sent.Ack, got.Ack)
	}
	add("tcp.flags", tcpcraft.FlagString(sent.Flags), tcpcraft.FlagString(got.Flags))
	add("tcp.win", sent.Window, got.Window)
	add("tcp.len", len(sent.Payload), payloadLen)
	m = append(m, diffOptions("tcp.opt", sent.Options, got.Options, false)...)
	if kindsEqual(sent.Options, got.Options) && tcpcraft.OptionsLen(sent.Options) == len(got.OptionBytes) && nopCount(got.Options) > nopCount(sent.Options) {
		m = append(m, Modification{Field: "tcp.opt.nop", Old: itoa(nopCount(sent.Options)), New: itoa(nopCount(got.Options))})
	}
	return m
}

func nopCount(o []tcpcraft.Option) int {
	n := 0
	for _, x := range o {
		if x.Kind == tcpcraft.OptNOP {
			n++
		}
	}
	return n
}

func kindsEqual(a, b []tcpcraft.Option) bool {
	return fmt.Sprint(tcpcraft.OptionKinds(a)) == fmt.Sprint(tcpcraft.OptionKinds(b))
}

// diffOptions compares options by kind (not by header length: Linux strips options by
// overwriting them with NOPs). With echoOnly only kinds the peer echoes (unknown ones) are
// compared, as in a SYN/ACK.
func diffOptions(prefix string, sent, got []tcpcraft.Option, echoOnly bool) []Modification {
	var m []Modification
	val := func(o tcpcraft.Option) string {
		if o.Kind == tcpcraft.OptTimestamps || o.Kind == tcpcraft.OptMSS || o.Kind == tcpcraft.OptWindowScale || o.Kind == tcpcraft.OptSACK {
			return o.String()
		}
		if len(o.Data) == 0 {
			return "present"
		}
		return hex.EncodeToString(o.Data)
	}
	seen := map[uint8]bool{}
	for _, s := range sent {
		if s.Kind == tcpcraft.OptNOP || s.Kind == tcpcraft.OptEOL || seen[s.Kind] {
			continue
		}
		seen[s.Kind] = true
		if echoOnly && isStandard(s.Kind) {
			continue
		}
		g, ok := tcpcraft.FindOption(got, s.Kind)
		switch {
		case !ok:
			m = append(m, Modification{Field: prefix + "." + itoa(int(s.Kind)), Old: val(s), New: ""})
		case !g.Equal(s) && !(echoOnly && s.Kind == tcpcraft.OptTimestamps):
			m = append(m, Modification{Field: prefix + "." + itoa(int(s.Kind)), Old: val(s), New: val(g)})
		}
	}
	if !echoOnly {
		for _, g := range got {
			if g.Kind == tcpcraft.OptNOP || g.Kind == tcpcraft.OptEOL || seen[g.Kind] {
				continue
			}
			seen[g.Kind] = true
			m = append(m, Modification{Field: prefix + "." + itoa(int(g.Kind)), Old: "", New: val(g)})
		}
	}
	return m
}

func isStandard(k uint8) bool {
	switch k {
	case tcpcraft.OptMSS, tcpcraft.OptWindowScale, tcpcraft.OptSACKPermitted, tcpcraft.OptSACK, tcpcraft.OptTimestamps:
		return true
	}
	return false
}

// codeWords are the verdicts of each key's codes in words (the original's log messages,
// condensed).
var codeWords = map[string]map[int]string{
	"Syn":               {0: "SYN/ACK received", 1: "no reply to the SYN", 2: "SYN answered with RST"},
	"SynOpt":            {0: "unknown SYN option (MP_CAPABLE) echoed intact", 1: "no reply to the SYN with an unknown option", 2: "SYN with an unknown option answered with RST", 3: "unknown option removed from SYN or SYN/ACK", 4: "unknown option zeroed", 5: "unknown option modified"},
	"UnexpAwnd":         {0: "SYN/ACK window as the responder sent it", 1: "unexpected SYN/ACK window: answered by a SYN proxy"},
	"Data":              {0: "full-sized segment ACKed with the header reflection", 1: "full-sized segment not ACKed"},
	"DataKnownOpt":      {0: "timestamps pass both ways", 1: "segment with timestamps not ACKed", 2: "outgoing timestamp option removed", 3: "outgoing TSval changed", 4: "outgoing TSval zeroed", 5: "incoming timestamp option removed", 6: "incoming TSecr changed", 7: "incoming TSecr zeroed", 8: "timestamps changed but re-synced (translated both ways)", 9: "timestamps changed otherwise"},
	"DataOpt":           {0: "MP_DATA and MP_ACK pass", 1: "segment with an unknown option not ACKed", 2: "unknown data option (MP_DATA) removed", 3: "MP_DATA modified", 4: "MP_DATA zeroed", 5: "MP_ACK removed", 6: "MP_ACK modified", 7: "MP_ACK zeroed", 8: "options changed otherwise"},
	"Split":             {0: "not split", 1: "segment split (resegmented)"},
	"SplitOpt":          {0: "not split", 1: "segment split, option copied to every piece", 2: "segment split, option on some pieces", 3: "segment split, option on no piece"},
	"Coalesce":          {0: "segments not coalesced", 1: "segments coalesced"},
	"CoalesceOpt":       {0: "segments not coalesced", 1: "segments coalesced, every option kept", 2: "segments coalesced, some options kept", 3: "segments coalesced, options dropped", 4: "segments coalesced, more options than sent"},
	"PseudoRtx":         {0: "retransmission with different payload delivered", 1: "retransmission not ACKed", 2: "ACK advanced but the retransmission not delivered (cached original)", 3: "retransmission ACK did not advance", 4: "retransmission delivered resized", 5: "retransmission answered with RST", 6: "other"},
	"SeqHole":           {0: "data after a sequence hole ACKed beyond it", 1: "data after a sequence hole dropped", 2: "ACK stuck at the hole", 3: "other"},
	"AckHole":           {0: "ACK of unsent data answered normally", 1: "ACK of unsent data got no answer (dropped, or left un-NATed and the answer dropped)", 2: "ACK of unsent data corrected", 3: "other"},
	"ChangeIncomingSeq": {0: "incoming sequence numbers unchanged", 1: "incoming sequence numbers rewritten"},
	"ChangeAwnd":        {0: "window unchanged", 1: "outgoing window rewritten"},
	"ChangeSeq":         {0: "outgoing sequence numbers unchanged", 1: "outgoing sequence numbers rewritten"},
	"IndAck":            {0: "ACKed by the responder only", 1: "data ACKed by a middlebox before reaching the responder (proactive ACK)"},
	"ChangeMss":         {0: "MSS unchanged both ways", 1: "no reply to the SYN", 2: "SYN answered with RST", 3: "outgoing MSS lowered (clamped)", 4: "outgoing MSS option removed", 5: "outgoing MSS changed", 6: "incoming MSS changed", 7: "SYN not reflected: re-originated by a SYN proxy or proxy"},
	"WsConsistent":      {0: "window scale passes both ways", 1: "no reply to the SYN", 2: "SYN answered with RST", 3: "outgoing window scale changed", 4: "incoming window scale changed", 5: "SYN not reflected (re-originated)", 6: "SYN not reflected and the SYN/ACK's window scale is not the responder's: negotiated by a middlebox"},
	"TtlReset":          {0: "TTL decreases consistently both ways", 1: "no reflection of the SYN to compare TTLs", 3: "outgoing TTL reset: SYN re-originated on the path", 4: "incoming TTL reset: replies re-originated on the path"},
	"SackTranslated":    {0: "D-SACK block passes unchanged", 1: "segment with a D-SACK block not ACKed (dropped)", 2: "segment with a D-SACK block answered with RST", 3: "SACK option removed", 4: "SACK blocks translated with the ACK (sequence translation)", 5: "SACK blocks changed inconsistently"},
	"UnseenAck":         {0: "ACK of unseen data reached the responder from the flow's address", 1: "ACK of unseen data got no answer (dropped, or left un-NATed as conntrack-INVALID and the answer dropped)", 2: "ACK of unseen data answered with RST", 3: "ACK of unseen data leaked with another source (un-NATed)", 4: "ACK of unseen data answered by a middlebox"},
	"Ecn":               {0: "ECN negotiated, ECT(0) passes", 1: "ECN-setup SYN got no reply: ECN breaks the connection", 2: "ECN-setup SYN answered with RST", 3: "ECN negotiation stripped", 4: "ECT codepoint bleached", 5: "data marked CE", 6: "ECN negotiated but ECT data not answered"},
}

// keyAlias maps keys that share another key's codes.
var keyAlias = map[string]string{
	"SynOpt2": "SynOpt", "UnexpAwnd4Opt": "UnexpAwnd", "ChangeIncomingSeq4Opt": "ChangeIncomingSeq",
	"ChangeAwnd4KnownOpt": "ChangeAwnd", "ChangeAwnd4Opt": "ChangeAwnd", "ChangeSeq4KnownOpt": "ChangeSeq",
	"ChangeSeq4Opt": "ChangeSeq", "IndAck4KnownOpt": "IndAck", "IndAck4Opt": "IndAck", "SplitKnownOpt": "SplitOpt",
	"CoalesceKnownOpt": "CoalesceOpt", "CoalesceFq": "Coalesce", "CoalesceFqKnownOpt": "CoalesceOpt",
	"CoalesceFqOpt": "CoalesceOpt", "PseudoRtxL": "PseudoRtx", "PseudoRtxS": "PseudoRtx",
}

// words returns the verdict of one key's code.
func words(key string, code int) string {
	if code == -1 {
		return "not run"
	}
	base := key
	if a, ok := keyAlias[key]; ok {
		base = a
	}
	if w, ok := codeWords[base][code]; ok {
		if key == "SplitKnownOpt" || key == "CoalesceKnownOpt" || key == "CoalesceFqKnownOpt" {
			w = strings.Replace(w, "option", "timestamp", 1)
		}
		return w
	}
	return "code " + itoa(code)
}

// verdict describes an outcome in words: the main key's verdict, then any other key that
// reports a change, then what the reflection showed (NOP-fill, re-origination).
func verdict(t Test, o *outcome) string {
	var parts []string
	for i, k := range t.Keys {
		v := o.keys[k]
		if i > 0 && v <= 0 {
			continue
		}
		parts = append(parts, words(k, v))
	}
	for _, m := range o.mods {
		if m.Field == "tcp.opt.nop" {
			parts = append(parts, "option overwritten with NOPs (header length unchanged: Linux option stripping)")
			break
		}
	}
	return strings.Join(parts, "; ")
}
