package server

import (
	"net/netip"
	"sync"
	"time"

	"github.com/probekit/probekit/shared/ptp"
)

// Observer receives the server's events. The server calls it without holding its state lock
// (an Observer may call Snapshot), one call at a time and in the order the events happened,
// from its own goroutines; an implementation must not block for long (queue slow work such as
// database writes). Relayed packets are not events: read
// Stats for their counters.
type Observer interface {
	// Joined: a client sent its first packet (or moved to another mesh).
	Joined(ClientInfo)
	// Left: a client sent SHUTDOWN, expired after Config.Expiry of silence, or moved to
	// another mesh (Reason "shutdown", "expired", "moved").
	Left(ClientInfo, string)
	// Reported: a v3 client sent REACH, NATINFO and/or PORTMAP TLVs.
	Reported(Report)
}

// ClientInfo identifies a client at the time of an event.
type ClientInfo struct {
	Time       time.Time
	UUID       ptp.UUID
	Addr       netip.AddrPort // observed source address (the client's key)
	Mesh       string         // "" is the default mesh
	Version    uint8          // CLIENTVER it announced
	PTPAddr    netip.AddrPort // its local address (PTPADDR), invalid when not sent
	Candidates []netip.AddrPort
	NAT        *ptp.NATInfo  // nil until it sent NATINFO
	PortMaps   []ptp.PortMap // its last PORTMAP outcomes (one per protocol), nil until sent
}

// PeerReport is one REACH entry with the server's explanation of the path.
type PeerReport struct {
	ptp.Reach
	PeerAddr netip.AddrPort // the peer's observed address, invalid if the peer is unknown
	Reason   string         // why the path is not direct ("" when direct)
}

// Report is what one packet of a v3 client reported.
type Report struct {
	Client ClientInfo
	NAT    *ptp.NATInfo // set when the packet carried NATINFO
	Peers  []PeerReport
}

// Observers fans events out to several observers in order.
type Observers []Observer

// Joined calls every observer.
func (o Observers) Joined(c ClientInfo) {
	for _, x := range o {
		x.Joined(c)
	}
}

// Left calls every observer.
func (o Observers) Left(c ClientInfo, reason string) {
	for _, x := range o {
		x.Left(c, reason)
	}
}

// Reported calls every observer.
func (o Observers) Reported(r Report) {
	for _, x := range o {
		x.Reported(r)
	}
}

// ObserverFuncs adapts functions to an Observer; nil functions are skipped.
type ObserverFuncs struct {
	OnJoined   func(ClientInfo)
	OnLeft     func(ClientInfo, string)
	OnReported func(Report)
}

// Joined calls OnJoined.
func (f ObserverFuncs) Joined(c ClientInfo) {
	if f.OnJoined != nil {
		f.OnJoined(c)
	}
}

// Left calls OnLeft.
func (f ObserverFuncs) Left(c ClientInfo, r string) {
	if f.OnLeft != nil {
		f.OnLeft(c, r)
	}
}

// Reported calls OnReported.
func (f ObserverFuncs) Reported(r Report) {
	if f.OnReported != nil {
		f.OnReported(r)
	}
}

// event is a queued observer call.
type event struct {
	kind   uint8 // evJoined, evLeft, evReported
	info   ClientInfo
	reason string
	report Report
}

const (
	evJoined uint8 = iota
	evLeft
	evReported
)

// dispatcher delivers queued events in order, one call at a time.
type dispatcher struct {
	mu    sync.Mutex // held while delivering; taken before Server.mu
	obs   Observer
	spare []event // the queue's other buffer (under mu)
}

// deliver calls the observer for evs in order; the caller holds d.mu.
func (d *dispatcher) deliver(evs []event) {
	if d.obs == nil {
		return
	}
	for i := range evs {
		e := &evs[i]
		switch e.kind {
		case evJoined:
			d.obs.Joined(e.info)
		case evLeft:
			d.obs.Left(e.info, e.reason)
		case evReported:
			d.obs.Reported(e.report)
		}
	}
}
