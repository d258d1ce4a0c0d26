package client

import (
	"net/netip"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/ptp"
	"github.com/probekit/probekit/shared/udpsock"
)

// FuzzHandle feeds arbitrary datagrams to the client's receive path, as if from the server and
// from a listed peer: nothing may panic, and the client keeps answering afterwards.
func FuzzHandle(f *testing.F) {
	vec := vectors(f)
	for _, b := range vec {
		f.Add(b, false)
		f.Add(b, true)
	}
	relayed := ptp.Message{Role: ptp.RoleServer, Version: 3, Has: ptp.FieldSequence | ptp.FieldUUID | ptp.FieldRelayFrom | ptp.FieldMyTS, UUID: vecUUID, RelayFrom: vecUUID}
	if b, err := relayed.AppendTo(nil); err == nil {
		f.Add(b, true)
	}
	paged := ptp.Message{Role: ptp.RoleServer, Version: 3, Has: ptp.FieldSequence | ptp.FieldUUID | ptp.FieldList | ptp.FieldListPage, Page: 1, Pages: 2,
		Entries: []ptp.Entry{{Ext: netip.MustParseAddrPort("[2001:db8::1]:5"), HasUUID: true, UUID: vecUUID}}}
	if b, err := paged.AppendTo(nil); err == nil {
		f.Add(b, true)
	}
	f.Fuzz(func(t *testing.T, b []byte, fromServer bool) {
		c, tr := newTestClient(t, false)
		feed(c, vec["s2c_beacon"], "192.0.2.1:23456")
		from := "203.0.113.9:50001"
		if fromServer {
			from = "192.0.2.1:23456"
		}
		var m ptp.Message
		d := udpsock.Message{Buf: b, N: len(b), Addr: netip.MustParseAddrPort(from), RxTime: time.Now()}
		c.handle(&m, &d)
		c.mu.Lock()
		c.flush()
		c.mu.Unlock()
		c.onTick(time.Now())
		_ = c.Summary()
		tr.take()
		feed(c, vec["c2c_beacon"], "203.0.113.9:50001")
		if len(tr.take()) == 0 && c.byAddr[netip.MustParseAddrPort("203.0.113.9:50001")] != nil {
			t.Fatal("client stopped answering a listed peer")
		}
	})
}
