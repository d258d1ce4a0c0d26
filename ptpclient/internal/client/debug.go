package client

import (
	"fmt"
	"strings"

	"github.com/probekit/probekit/shared/ptp"
)

// describe renders a decoded message for --debug (the original logs repr() of each packet).
func describe(m *ptp.Message) string {
	var b strings.Builder
	switch m.Role {
	case ptp.RoleServer:
		fmt.Fprintf(&b, "SERVERVER=%d", m.Version)
	case ptp.RoleClient:
		fmt.Fprintf(&b, "CLIENTVER=%d", m.Version)
	}
	h := m.Has
	add := func(f ptp.Field, s string, v ...any) {
		if h&f != 0 {
			fmt.Fprintf(&b, " "+s, v...)
		}
	}
	add(ptp.FieldSequence, "SEQUENCE=%d", m.Sequence)
	add(ptp.FieldUUID, "UUID=%s", m.UUID)
	add(ptp.FieldRelayTo, "RELAYTO=%s", m.RelayTo)
	add(ptp.FieldRelayFrom, "RELAYFROM=%s", m.RelayFrom)
	add(ptp.FieldPTPAddr, "PTPADDR=%v", m.PTPAddr)
	add(ptp.FieldMyTS, "MYTS=%#x", uint64(m.MyTS))
	add(ptp.FieldYourTS, "YOURTS=%#x", uint64(m.YourTS))
	add(ptp.FieldEchoSeq, "ECHOSEQ=%d", m.EchoSeq)
	add(ptp.FieldYourAddr, "YOURADDR=%v", m.YourAddr)
	add(ptp.FieldShutdown, "SHUTDOWN")
	add(ptp.FieldMesh, "MESH=%q", m.Mesh)
	add(ptp.FieldNATInfo, "NATINFO=%v/%v/%d %v", m.NAT.Mapping, m.NAT.Filtering, m.NAT.Hairpin, m.NAT.Public)
	add(ptp.FieldListPage, "LISTPAGE=%d/%d", m.Page, m.Pages)
	if h&ptp.FieldList != 0 {
		for _, e := range m.Entries {
			fmt.Fprintf(&b, " EXT=%v", e.Ext)
			if e.HasUUID {
				fmt.Fprintf(&b, " PEERUUID=%s", e.UUID)
			}
			if e.Int.IsValid() {
				fmt.Fprintf(&b, " INT=%v", e.Int)
			}
		}
		fmt.Fprintf(&b, " CLIENTLEN=%d", m.ClientLen)
	}
	for _, p := range m.PortMaps {
		fmt.Fprintf(&b, " PORTMAP=%q", p.String())
	}
	for _, r := range m.Reach {
		fmt.Fprintf(&b, " REACH=%s/%v", r.Peer, r.Path)
	}
	for _, t := range m.Extra {
		fmt.Fprintf(&b, " %v(%d bytes)", t.Type, len(t.Value))
	}
	add(ptp.FieldMeta, "META=%s", m.Meta)
	return b.String()
}
