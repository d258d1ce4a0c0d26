package tcpcraft

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// nftTableOwner is NFT_TABLE_F_OWNER (Linux 5.12): the table belongs to the netlink socket
// that created it and the kernel destroys it when that socket closes.
const nftTableOwner = 0x2

// Netfilter verdicts (linux/netfilter.h).
const (
	nfDrop   = 0
	nfAccept = 1
)

// ErrNoTableOwner reports a kernel without nft table ownership (Linux < 5.12).
var ErrNoTableOwner = errors.New("tcpcraft: the kernel does not support nft table ownership (Linux 5.12+)")

// InstallOwnedFirewall creates nft table inet NAME holding the rules (the same table
// InstallFirewall builds with the nft tool) over netlink, owned by this process: the kernel
// removes it when the process ends, however it ends (SIGKILL, os.Exit), and Remove removes
// it by closing the socket, which needs no privilege. Creating it needs CAP_NET_ADMIN, so a
// process can install it, drop every privilege and still clean up.
func InstallOwnedFirewall(table string, rules ...RSTRule) (*Firewall, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, fmt.Errorf("tcpcraft: netfilter netlink: %w", err)
	}
	msgs := []netlink.Message{
		nftMsg(unix.NFT_MSG_NEWTABLE, func(ae *netlink.AttributeEncoder) {
			ae.String(unix.NFTA_TABLE_NAME, table)
			ae.Uint32(unix.NFTA_TABLE_FLAGS, nftTableOwner)
		}),
		nftMsg(unix.NFT_MSG_NEWCHAIN, func(ae *netlink.AttributeEncoder) {
			ae.String(unix.NFTA_CHAIN_TABLE, table)
			ae.String(unix.NFTA_CHAIN_NAME, "output")
			ae.Nested(unix.NFTA_CHAIN_HOOK, func(nae *netlink.AttributeEncoder) error {
				nae.Uint32(unix.NFTA_HOOK_HOOKNUM, unix.NF_INET_LOCAL_OUT)
				nae.Uint32(unix.NFTA_HOOK_PRIORITY, 0)
				return nil
			})
			ae.Uint32(unix.NFTA_CHAIN_POLICY, nfAccept)
			ae.String(unix.NFTA_CHAIN_TYPE, "filter")
		}),
	}
	for _, r := range rules {
		msgs = append(msgs, nftMsg(unix.NFT_MSG_NEWRULE, func(ae *netlink.AttributeEncoder) {
			ae.String(unix.NFTA_RULE_TABLE, table)
			ae.String(unix.NFTA_RULE_CHAIN, "output")
			ae.Nested(unix.NFTA_RULE_EXPRESSIONS, func(nae *netlink.AttributeEncoder) error {
				r.nftExprs(nae)
				return nil
			})
		}))
	}
	if err := nftBatch(c, msgs); err != nil {
		c.Close()
		if errors.Is(err, unix.EOPNOTSUPP) {
			return nil, ErrNoTableOwner
		}
		return nil, fmt.Errorf("tcpcraft: nft table inet %s: %w", table, err)
	}
	return &Firewall{Table: table, owner: c}, nil
}

// Owned reports whether the table belongs to this process (InstallOwnedFirewall).
func (f *Firewall) Owned() bool { return f.owner != nil }

func nftMsg(typ uint16, attrs func(*netlink.AttributeEncoder)) netlink.Message {
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian // nf_tables attributes are big-endian
	attrs(ae)
	b, err := ae.Encode()
	if err != nil {
		panic(err) // only fixed-size attributes and names: cannot fail
	}
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | typ),
			Flags: netlink.Request | netlink.Acknowledge | netlink.Create},
		// struct nfgenmsg: family inet, version 0, resource id 0
		Data: append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, b...),
	}
}

// nftBatch sends msgs in one nfnetlink batch (applied atomically) and waits for every ack.
func nftBatch(c *netlink.Conn, msgs []netlink.Message) error {
	mark := func(t uint16) netlink.Message {
		return netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(t), Flags: netlink.Request},
			Data: []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES}}
	}
	batch := append([]netlink.Message{mark(unix.NFNL_MSG_BATCH_BEGIN)}, msgs...)
	batch = append(batch, mark(unix.NFNL_MSG_BATCH_END))
	sent, err := c.SendMessages(batch)
	if err != nil {
		return err
	}
	acks := 0
	for acks < len(msgs) {
		got, err := c.Receive()
		if err != nil {
			return err
		}
		for _, m := range got {
			for i := range sent {
				if sent[i].Header.Sequence == m.Header.Sequence && m.Header.Type == netlink.Error {
					acks++
				}
			}
		}
	}
	return nil
}

// nftExprs encodes the rule (NFTMatch) as nf_tables expressions: every match loads a field
// into register 1 and compares it; the last expression is the drop verdict.
func (r RSTRule) nftExprs(ae *netlink.AttributeEncoder) {
	expr := func(name string, data func(*netlink.AttributeEncoder)) {
		ae.Nested(unix.NFTA_LIST_ELEM, func(e *netlink.AttributeEncoder) error {
			e.String(unix.NFTA_EXPR_NAME, name)
			e.Nested(unix.NFTA_EXPR_DATA, func(d *netlink.AttributeEncoder) error { data(d); return nil })
			return nil
		})
	}
	meta := func(key uint32) {
		expr("meta", func(d *netlink.AttributeEncoder) {
			d.Uint32(unix.NFTA_META_DREG, unix.NFT_REG_1)
			d.Uint32(unix.NFTA_META_KEY, key)
		})
	}
	payload := func(base, off, n uint32) {
		expr("payload", func(d *netlink.AttributeEncoder) {
			d.Uint32(unix.NFTA_PAYLOAD_DREG, unix.NFT_REG_1)
			d.Uint32(unix.NFTA_PAYLOAD_BASE, base)
			d.Uint32(unix.NFTA_PAYLOAD_OFFSET, off)
			d.Uint32(unix.NFTA_PAYLOAD_LEN, n)
		})
	}
	value := func(d *netlink.AttributeEncoder, typ uint16, v []byte) {
		d.Nested(typ, func(x *netlink.AttributeEncoder) error { x.Bytes(unix.NFTA_DATA_VALUE, v); return nil })
	}
	cmp := func(op uint32, v []byte) {
		expr("cmp", func(d *netlink.AttributeEncoder) {
			d.Uint32(unix.NFTA_CMP_SREG, unix.NFT_REG_1)
			d.Uint32(unix.NFTA_CMP_OP, op)
			value(d, unix.NFTA_CMP_DATA, v)
		})
	}
	if a := r.Peer.Unmap(); r.Peer.IsValid() && !(r.Responder && a.IsUnspecified()) {
		// ip/ip6 saddr (responder) or daddr: the family first, as nft does in an inet table.
		off := map[[2]bool]uint32{{false, false}: 16, {false, true}: 24, {true, false}: 12, {true, true}: 8}[[2]bool{r.Responder, a.Is6()}]
		fam := byte(unix.NFPROTO_IPV4)
		if a.Is6() {
			fam = unix.NFPROTO_IPV6
		}
		meta(unix.NFT_META_NFPROTO)
		cmp(unix.NFT_CMP_EQ, []byte{fam})
		payload(unix.NFT_PAYLOAD_NETWORK_HEADER, off, uint32(a.BitLen()/8))
		cmp(unix.NFT_CMP_EQ, a.AsSlice())
	}
	meta(unix.NFT_META_L4PROTO)
	cmp(unix.NFT_CMP_EQ, []byte{unix.IPPROTO_TCP})
	portOff := uint32(2) // dport
	if r.Responder {
		portOff = 0 // sport
	}
	payload(unix.NFT_PAYLOAD_TRANSPORT_HEADER, portOff, 2)
	cmp(unix.NFT_CMP_EQ, binary.BigEndian.AppendUint16(nil, r.Port))
	// tcp flags & rst == rst
	payload(unix.NFT_PAYLOAD_TRANSPORT_HEADER, 13, 1)
	expr("bitwise", func(d *netlink.AttributeEncoder) {
		d.Uint32(unix.NFTA_BITWISE_SREG, unix.NFT_REG_1)
		d.Uint32(unix.NFTA_BITWISE_DREG, unix.NFT_REG_1)
		d.Uint32(unix.NFTA_BITWISE_LEN, 1)
		value(d, unix.NFTA_BITWISE_MASK, []byte{0x04})
		value(d, unix.NFTA_BITWISE_XOR, []byte{0})
	})
	cmp(unix.NFT_CMP_EQ, []byte{0x04})
	if r.Mark != 0 {
		meta(unix.NFT_META_MARK)
		cmp(unix.NFT_CMP_NEQ, binary.NativeEndian.AppendUint32(nil, r.Mark)) // registers hold the mark in host order
	}
	expr("immediate", func(d *netlink.AttributeEncoder) {
		d.Uint32(unix.NFTA_IMMEDIATE_DREG, unix.NFT_REG_VERDICT)
		d.Nested(unix.NFTA_IMMEDIATE_DATA, func(x *netlink.AttributeEncoder) error {
			x.Nested(unix.NFTA_DATA_VERDICT, func(v *netlink.AttributeEncoder) error {
				v.Uint32(unix.NFTA_VERDICT_CODE, nfDrop)
				return nil
			})
			return nil
		})
	})
}
