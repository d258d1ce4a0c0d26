package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/sirupsen/logrus"

	"github.com/probekit/probekit/ptpclient/internal/client"
	"github.com/probekit/probekit/ptpclient/internal/extras"
	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/shared/ptp"
)

// newExtras prepares port mapping and bulk transfer when a flag asks for them (nil otherwise).
// Transfers print progress and their report to w; with the screen up they only log.
func newExtras(cfg Config, w io.Writer, format cliutil.Format, screen bool, log logrus.FieldLogger) *extras.Extras {
	if !cfg.Extras.Enabled() {
		return nil
	}
	pw := w
	if screen {
		pw = io.Discard
	}
	return extras.New(cfg.Extras, pw, !screen && isTerminal(w) && format != cliutil.FormatJSON, format == cliutil.FormatJSON, log)
}

// startExtras starts them once the client is open; with --send the client stops when the
// transfer ends, whose outcome the returned channel then holds.
func startExtras(ctx context.Context, ex *extras.Extras, cl *client.Client, stop context.CancelFunc) <-chan error {
	if ex == nil {
		return nil
	}
	ex.Start(ctx, extrasClient{cl})
	done := ex.SendDone()
	if done == nil {
		return nil
	}
	res := make(chan error, 1)
	go func() {
		err := <-done
		res <- err
		stop()
	}()
	return res
}

// sendResult is the --send outcome (nil when there was none or it did not finish).
func sendResult(res <-chan error) error {
	if res == nil {
		return nil
	}
	select {
	case err := <-res:
		if err != nil {
			return fmt.Errorf("--send: %w", err)
		}
		return nil
	default:
		return fmt.Errorf("--send: the client stopped before the transfer finished")
	}
}

// extrasClient adapts the client to what internal/extras needs.
type extrasClient struct{ *client.Client }

// SendExtra treats "no path yet" as a lost datagram: the transfer retries, and gives up only
// after its idle timeout.
func (e extrasClient) SendExtra(peer ptp.UUID, tlvs []ptp.TLV) error {
	if err := e.Client.SendExtra(peer, tlvs); err != nil && !errors.Is(err, client.ErrNoPath) {
		return err
	}
	return nil
}

func (e extrasClient) Peers() []extras.PeerInfo {
	ps := e.Client.Peers()
	out := make([]extras.PeerInfo, 0, len(ps))
	for _, p := range ps {
		if p.HasUUID {
			out = append(out, extras.PeerInfo{UUID: p.UUID, Address: p.Address.String(), Path: p.Path})
		}
	}
	return out
}

// summaryJSON is the final JSON summary with the port-mapping results and transfers.
type summaryJSON struct {
	client.Summary
	extras.Results
}

// summaryExtras writes the report with the port-mapping results (transfers printed their own
// line when they ended).
func (o *output) summaryExtras(s client.Summary, n client.Counters, x extras.Results) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.format == cliutil.FormatJSON {
		b, _ := json.Marshal(summaryJSON{s, x})
		fmt.Fprintf(o.w, "%s\n", b)
		return
	}
	WriteReport(o.w, s, n)
	for _, r := range x.PortMapping {
		switch {
		case r.External != "":
			state := "granted"
			if r.Deleted {
				state = "granted, deleted on exit"
			}
			fmt.Fprintf(o.w, "port mapping %s: %s from %s, lifetime %d s (%s)\n", r.Protocol, r.External, r.Gateway, r.Lifetime, state)
		case r.Gateway == "":
			fmt.Fprintf(o.w, "port mapping %s: no gateway (%s)\n", r.Protocol, r.Error)
		default:
			fmt.Fprintf(o.w, "port mapping %s: refused by %s: %s\n", r.Protocol, r.Gateway, r.Error)
		}
	}
}
