package cmd

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/shared/tcpcraft"
	"github.com/probekit/probekit/tcpexpose/internal/probe"
)

// engineFlags are the flags of every command that sends crafted segments.
func engineFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "send", Value: probe.SendRaw, Usage: "send path: raw (raw IP socket with SO_MARK; traverses the local firewall) or packet (AF_PACKET to the next hop's MAC)"},
		&cli.StringFlag{Name: "source", Aliases: []string{"S"}, Usage: "local source `ADDRESS` (default: the route's)"},
		&cli.StringFlag{Name: "interface", Aliases: []string{"i"}, Usage: "record on interface `IF` only (default: all)"},
		&cli.BoolFlag{Name: "manage-firewall", Usage: "install an nft table dropping the local kernel's RSTs for the crafted flows (SO_MARK-exempt) and remove it on exit"},
		&cli.StringFlag{Name: "pcap", Aliases: []string{"w"}, Usage: "write every sent and received segment to pcap `FILE`"},
	}
}

func engineConfig(c *cli.Context, dst string, defPort uint16) (probe.EngineConfig, error) {
	ap, err := parseTarget(dst, defPort)
	if err != nil {
		return probe.EngineConfig{}, cliutil.Usagef("%v", err)
	}
	cfg := probe.EngineConfig{Dst: ap, SendPath: c.String("send"), Interface: c.String("interface"),
		ManageFirewall: c.Bool("manage-firewall"), Log: cliutil.Logger(c)}
	switch cfg.SendPath {
	case probe.SendRaw, probe.SendPacket:
	default:
		return cfg, cliutil.Usagef("--send: %q is not raw or packet", cfg.SendPath)
	}
	if s := c.String("source"); s != "" {
		a, err := parseAddr(s)
		if err != nil {
			return cfg, cliutil.Usagef("--source: %v", err)
		}
		cfg.Source = a
	}
	return cfg, nil
}

func writePcap(file string, recs []tcpcraft.Record) error {
	if file == "" {
		return nil
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := tcpcraft.WritePcap(f, recs); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// printRecords prints records as tcpdump -S -v -n does (time of day, then the packet), or
// as JSON lines {"type":"segment","time","dir","text","hex"}.
func printRecords(w io.Writer, recs []tcpcraft.Record, json_ bool, local func(*tcpcraft.Segment) bool) error {
	enc := json.NewEncoder(w)
	for _, r := range recs {
		var s tcpcraft.Segment
		if err := tcpcraft.Decode(r.Data, &s); err != nil {
			continue
		}
		dir := "received"
		if local(&s) {
			dir = "sent"
		}
		if json_ {
			if err := enc.Encode(map[string]any{"type": "segment", "time": r.Time().UTC().Format(time.RFC3339Nano), "dir": dir,
				"text": s.Format(), "hex": hex.EncodeToString(r.Data)}); err != nil {
				return err
			}
			continue
		}
		if _, err := fmt.Fprintf(w, "%s %s\n", r.Time().Format("15:04:05.000000"), s.Format()); err != nil {
			return err
		}
	}
	return nil
}

func sendCommand() *cli.Command {
	return &cli.Command{
		Name:      "send",
		Usage:     "craft and send one segment (from flags) or a short script of segments, and print what comes back",
		UsageText: "tcpexpose send [--flags S] [--opts SPEC] [flags] HOST:PORT\n   tcpexpose send --script 'flags=S opts=mss:1460; flags=A seq=isn+1 ack=peer+1' HOST:PORT",
		Description: "Options (--opts): comma-separated mss:N, ws:N, sackok, ts:VAL:ECR, sack:L-R[:L-R], nop, eol, " +
			"KIND[:0xHEX] for any kind (e.g. 253:0x1234cafe), KIND:len=N[:0xHEX] for a deliberately wrong length, " +
			"or hex:BYTES for the raw options area; they are padded with zeros to 32 bits. " +
			"A script step (--script, ';' or newline separated, @FILE to read a file) is space-separated key=value: " +
			"flags= opts= seq=N|isn+N|nxt ack=N|peer+N|nxt win= ttl= tos= payload=HEX len=N urg= wait=DURATION. " +
			"Sent and received segments are printed as tcpdump -S -v -n prints them.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "flags", Value: "S", Usage: "TCP flag `LETTERS`: S A(or .) F R P U E W e"},
			&cli.StringFlag{Name: "opts", Aliases: []string{"o"}, Usage: "TCP options `SPEC`, e.g. mss:1460,sackok,ts:1:0,ws:7,253:0x1234cafe"},
			cliutil.UintFlag("seq", "sequence number of the first segment (the flow's ISN)", 252001, 0, 0xffffffff),
			&cli.StringFlag{Name: "ack", Usage: "acknowledgement `NUMBER` (default: next expected when the A flag is set)"},
			cliutil.IntFlag("win", "window", 65535, 0, 65535),
			cliutil.IntFlag("ttl", "TTL / hop limit", 64, 1, 255),
			cliutil.IntFlag("tos", "IPv4 TOS / IPv6 traffic class", 0, 0, 255),
			&cli.StringFlag{Name: "payload", Usage: "payload `HEX`"},
			cliutil.IntFlag("len", "zero bytes appended to the payload", 0, 0, 65000),
			&cli.StringFlag{Name: "script", Usage: "segment `STEPS` separated by ';' or newlines (or @FILE), sent on one flow"},
			&cli.DurationFlag{Name: "wait", Value: 500 * time.Millisecond, Usage: "collect replies this long after each segment"},
		}, engineFlags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cliutil.Usagef("want exactly one HOST:PORT, got %d arguments", c.NArg())
			}
			cfg, err := engineConfig(c, c.Args().First(), 0)
			if err != nil {
				return err
			}
			if cfg.Dst.Port() == 0 {
				return cliutil.Usagef("HOST:PORT needs a port")
			}
			var steps []probe.Step
			if sc := c.String("script"); sc != "" {
				if f, ok := strings.CutPrefix(sc, "@"); ok {
					b, err := os.ReadFile(f)
					if err != nil {
						return cliutil.Usagef("--script: %v", err)
					}
					sc = string(b)
				}
				for _, part := range strings.FieldsFunc(sc, func(r rune) bool { return r == ';' || r == '\n' }) {
					if strings.TrimSpace(part) == "" || strings.HasPrefix(strings.TrimSpace(part), "#") {
						continue
					}
					st, err := probe.ParseStep(part)
					if err != nil {
						return cliutil.Usagef("--script: %v", err)
					}
					steps = append(steps, st)
				}
			} else {
				spec := fmt.Sprintf("flags=%s win=%d ttl=%d tos=%d len=%d", orNone(c.String("flags")), cliutil.Int(c, "win"),
					cliutil.Int(c, "ttl"), cliutil.Int(c, "tos"), cliutil.Int(c, "len"))
				st, err := probe.ParseStep(spec)
				if err != nil {
					return cliutil.Usagef("%v", err)
				}
				if st.Options, err = tcpcraft.ParseOptionSpec(c.String("opts")); err != nil {
					return cliutil.Usagef("--opts: %v", err)
				}
				if p := c.String("payload"); p != "" {
					b, err := hex.DecodeString(strings.TrimPrefix(p, "0x"))
					if err != nil {
						return cliutil.Usagef("--payload: %v", err)
					}
					st.Payload = append(b, st.Payload...)
				}
				if a := c.String("ack"); a != "" {
					st2, err := probe.ParseStep("ack=" + a)
					if err != nil {
						return cliutil.Usagef("--ack: %v", err)
					}
					st.Ack = st2.Ack
				}
				steps = []probe.Step{st}
			}
			if len(steps) == 0 {
				return cliutil.Usagef("--script has no segments")
			}
			e, err := probe.NewEngine(cfg)
			if err != nil {
				return err
			}
			defer e.Close()
			conn, runErr := e.RunScript(c.Context, steps, uint32(cliutil.Uint(c, "seq")), c.Duration("wait"))
			recs := e.FinalRecords()
			if err := printRecords(c.App.Writer, recs, cliutil.OutputFormat(c) == cliutil.FormatJSON, conn.ToPeer); err != nil {
				return err
			}
			if err := writePcap(c.String("pcap"), recs); err != nil {
				return err
			}
			return runErr
		},
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
