package cmd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/shared/tcpcraft"
	"github.com/probekit/probekit/tcpexpose/internal/probe"
	"github.com/probekit/probekit/tcpexpose/internal/wire"
)

func testCommand() *cli.Command {
	return &cli.Command{
		Name:      "test",
		Usage:     "run the middlebox test catalogue (TCPExposure) against a tcpexpose responder at HOST[:PORT]",
		UsageText: "tcpexpose test [flags] HOST[:PORT]",
		Description: "Runs the original's 13 tests (" + strings.Join(probe.TestNames()[:18], ", ") + ") with its parameters, " +
			"result codes and pair/retry policy, then the extra tests (syn_reflect: ChangeMss, WsConsistent, TtlReset; " +
			"sack: SackTranslated; unseen_ack: UnseenAck; ecn: Ecn). The path is abandoned when Syn or Data fails. " +
			"Prints a verdict per test and the original's final line 'Result: Syn N SynOpt N ...' (−1: not run) " +
			"followed by the extra keys. Only HOST is probed.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "tests", Aliases: []string{"t"}, Usage: "comma-separated test `NAMES` to run (default: all): " + strings.Join(probe.TestNames(), ",")},
			&cli.DurationFlag{Name: "timeout", Value: 1e9, Usage: "wait this long for a reply before deciding 'no reply' (each try)"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "print every segment of each test as tcpdump -S -v -n does, and the header modifications old -> new"},
		}, engineFlags()...),
		Action: testAction,
	}
}

func testAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return cliutil.Usagef("want exactly one HOST[:PORT], got %d arguments", c.NArg())
	}
	cfg, err := engineConfig(c, c.Args().First(), wire.DefaultPort)
	if err != nil {
		return err
	}
	var tests []string
	if s := c.String("tests"); s != "" {
		for _, t := range strings.Split(s, ",") {
			t = strings.TrimSpace(t)
			if !slices.Contains(probe.TestNames(), t) {
				return cliutil.Usagef("--tests: unknown test %q (%s)", t, strings.Join(probe.TestNames(), ", "))
			}
			tests = append(tests, t)
		}
	}
	if c.Duration("timeout") <= 0 {
		return cliutil.Usagef("--timeout must be positive")
	}
	e, err := probe.NewEngine(cfg)
	if err != nil {
		return err
	}
	defer e.Close()
	w := c.App.Writer
	asJSON := cliutil.OutputFormat(c) == cliutil.FormatJSON
	verbose := c.Bool("verbose")
	var werr error
	sum, runErr := probe.Run(c.Context, e, probe.Config{
		Timeout: c.Duration("timeout"),
		Tests:   tests,
		Report: func(r *probe.Result) {
			cliutil.MarkComplete(c.Context)
			if werr == nil {
				werr = writeResult(w, e, r, asJSON, verbose)
			}
		},
	})
	if werr != nil {
		return werr
	}
	if err := writeSummary(w, sum, asJSON); err != nil {
		return err
	}
	if err := writePcap(c.String("pcap"), e.FinalRecords()); err != nil {
		return err
	}
	if runErr != nil {
		return runErr
	}
	if sum.Abandoned == "Syn" && sum.Codes["Syn"] == 1 {
		return fmt.Errorf("no reply from %v: path abandoned", cfg.Dst)
	}
	return nil
}

func segLines(e *probe.Engine, recs []tcpcraft.Record) (sent, received []string) {
	for _, r := range recs {
		var s tcpcraft.Segment
		if tcpcraft.Decode(r.Data, &s) != nil {
			continue
		}
		if s.Dst == e.Dst.Addr() && s.DstPort == e.Dst.Port() {
			sent = append(sent, s.Line())
		} else {
			received = append(received, s.Line())
		}
	}
	return sent, received
}

func codesLine(keys []string, codes map[string]int) string {
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s %d", k, codes[k])
	}
	return b.String()
}

func writeResult(w io.Writer, e *probe.Engine, r *probe.Result, asJSON, verbose bool) error {
	if asJSON {
		sent, received := segLines(e, r.Records)
		obj := map[string]any{"type": "test", "test": r.Test, "port": e.Dst.Port(), "key": r.Keys[0], "code": r.Codes[r.Keys[0]],
			"codes": orderedCodes(r.Keys, r.Codes), "verdict": r.Verdict, "conditions": nonNil(r.Conditions),
			"stable": r.Stable, "runs": r.Runs, "sent": nonNil(sent), "received": nonNil(received),
			"modifications": r.Modifications}
		if r.Modifications == nil {
			obj["modifications"] = []probe.Modification{}
		}
		if r.Reflection != nil {
			obj["reflected"] = map[string]any{"received": r.Reflection.Received.HeaderLine(r.Reflection.ReceivedLen), "received_len": r.Reflection.ReceivedLen,
				"sent": r.Reflection.Sent.HeaderLine(r.Reflection.SentLen), "received_ttl": r.Reflection.Received.TTL}
		}
		if len(r.Notes) > 0 {
			obj["notes"] = r.Notes
		}
		return writeJSON(w, obj)
	}
	var b strings.Builder
	if verbose {
		fmt.Fprintf(&b, "*** %s ***\n", r.Test)
		for _, rec := range r.Records {
			var s tcpcraft.Segment
			if tcpcraft.Decode(rec.Data, &s) == nil {
				fmt.Fprintf(&b, "%s %s\n", rec.Time().Format("15:04:05.000000"), s.Format())
			}
		}
		if r.Reflection != nil {
			fmt.Fprintf(&b, "  responder received: %s\n  responder sent:     %s\n", r.Reflection.Received.HeaderLine(r.Reflection.ReceivedLen), r.Reflection.Sent.HeaderLine(r.Reflection.SentLen))
		}
		for _, m := range r.Modifications {
			fmt.Fprintf(&b, "  %s: %s -> %s\n", m.Field, orDash(m.Old), orDash(m.New))
		}
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "  note: %s\n", n)
		}
	}
	stable := ""
	if !r.Stable {
		stable = " (results differed between runs; first of the last pair kept)"
	}
	fmt.Fprintf(&b, "%-26s %s: %s%s\n", r.Test, codesLine(r.Keys, r.Codes), r.Verdict, stable)
	_, err := io.WriteString(w, b.String())
	return err
}

func orDash(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// orderedCodes marshals codes as a JSON object in key order.
type orderedCodesT struct {
	keys  []string
	codes map[string]int
}

func orderedCodes(keys []string, codes map[string]int) orderedCodesT {
	return orderedCodesT{keys: keys, codes: codes}
}

func (o orderedCodesT) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		fmt.Fprintf(&b, "%s:%d", kb, o.codes[k])
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func writeJSON(w io.Writer, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := w.Write(b.Bytes())
	return err
}

func writeSummary(w io.Writer, sum *probe.Summary, asJSON bool) error {
	if asJSON {
		obj := map[string]any{"type": "result", "results": orderedCodes(probe.AllKeys(), sum.Codes)}
		if sum.Abandoned != "" {
			obj["abandoned"] = sum.Abandoned
		}
		return writeJSON(w, obj)
	}
	var b strings.Builder
	if sum.Abandoned != "" {
		fmt.Fprintf(&b, "path abandoned: %s failed\n", sum.Abandoned)
	}
	fmt.Fprintf(&b, "Result: %s\n", codesLine(probe.AllKeys(), sum.Codes))
	_, err := io.WriteString(w, b.String())
	return errors.Join(err)
}
