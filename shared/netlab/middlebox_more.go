package netlab

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/florianl/go-nfqueue/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/probekit/probekit/shared/checksum"
)

// More middlebox behaviours for tcpexpose's lab tests, applied on top of the current mode
// (use them after SetMode(ModeTransparent); the next SetMode removes their rules).

// StripOptionKinds overwrites the TCP option kinds with NOPs in both directions (iptables
// TCPOPTSTRIP), e.g. the unknown kinds tcpexpose's tests use, or 4,8,3 (sackOK, timestamp,
// wscale).
func (m *MiddleboxLab) StripOptionKinds(kinds ...int) error {
	if len(kinds) == 0 {
		return errors.New("netlab: no option kinds to strip")
	}
	ks := make([]string, len(kinds))
	for i, k := range kinds {
		ks[i] = strconv.Itoa(k)
	}
	return m.addRules("*mangle", "-A FORWARD -p tcp -j TCPOPTSTRIP --strip-options "+strings.Join(ks, ","), "COMMIT")
}

// DropSYNsWithOptions drops forwarded SYNs (either direction) that carry any of the option
// kinds, as firewalls that reject unknown options do.
func (m *MiddleboxLab) DropSYNsWithOptions(kinds ...int) error {
	rules := []string{"*filter"}
	for _, k := range kinds {
		rules = append(rules, fmt.Sprintf("-A FORWARD -p tcp --tcp-flags SYN SYN -m tcp --tcp-option %d -j DROP", k))
	}
	return m.addRules(append(rules, "COMMIT")...)
}

func (m *MiddleboxLab) addRules(lines ...string) error {
	_, err := m.Router.ExecInput([]byte(strings.Join(lines, "\n")+"\n"), "iptables-restore", "--noflush")
	return err
}

// SeqShifter is a user-space middlebox on the router that adds Delta to the sequence number
// of every IPv4 TCP segment from the client side to the server side and subtracts it from the
// acknowledgement number in the other direction (fixing the checksum), like a sequence-number
// randomising firewall. The server sees shifted sequence numbers; the client never does.
type SeqShifter struct {
	Delta   uint32
	nf      *nfqueue.Nfqueue
	cancel  context.CancelFunc
	m       *MiddleboxLab
	queue   uint16
	Shifted atomic.Uint64
}

// StartSeqShifter queues forwarded TCP to NFQUEUE queue in the router's mangle FORWARD chain
// and rewrites it in this process. Stop removes the rule and closes the queue.
func (m *MiddleboxLab) StartSeqShifter(queue uint16, delta uint32) (*SeqShifter, error) {
	ns, err := os.Open("/run/netns/" + m.Router.NS)
	if err != nil {
		return nil, fmt.Errorf("netlab: seq shifter: %w", err)
	}
	defer ns.Close()
	nf, err := nfqueue.Open(&nfqueue.Config{
		NfQueue: queue, MaxPacketLen: 0xffff, MaxQueueLen: 4096, Copymode: nfqueue.NfQnlCopyPacket,
		AfFamily: unix.AF_INET, WriteTimeout: time.Second, NetNS: int(ns.Fd()),
	})
	if err != nil {
		return nil, fmt.Errorf("netlab: seq shifter: open queue %d: %w", queue, err)
	}
	_ = nf.Con.SetOption(netlink.NoENOBUFS, true)
	s := &SeqShifter{Delta: delta, nf: nf, m: m, queue: queue}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	err = nf.RegisterWithErrorFunc(ctx, s.hook, func(err error) int {
		if ctx.Err() != nil {
			return 1
		}
		time.Sleep(time.Millisecond)
		return 0
	})
	if err != nil {
		cancel()
		nf.Close()
		return nil, fmt.Errorf("netlab: seq shifter: bind queue %d: %w", queue, err)
	}
	if err := m.addRules("*mangle", fmt.Sprintf("-A FORWARD -p tcp -j NFQUEUE --queue-num %d", queue), "COMMIT"); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *SeqShifter) hook(a nfqueue.Attribute) int {
	if a.PacketID == nil {
		return 0
	}
	id := *a.PacketID
	if a.Payload == nil {
		_ = s.nf.SetVerdict(id, nfqueue.NfAccept)
		return 0
	}
	pkt := append([]byte(nil), (*a.Payload)...)
	if ShiftSeq(pkt, MiddleboxClient, s.Delta) {
		s.Shifted.Add(1)
		_ = s.nf.SetVerdictModPacket(id, nfqueue.NfAccept, pkt)
		return 0
	}
	_ = s.nf.SetVerdict(id, nfqueue.NfAccept)
	return 0
}

// ShiftSeq rewrites an IPv4 TCP packet in place: from client, seq += delta; to client, ack
// −= delta (when ACK is set). It fixes the TCP checksum and reports whether it changed pkt.
func ShiftSeq(pkt []byte, client netip.Addr, delta uint32) bool {
	if len(pkt) < 20 || pkt[0]>>4 != 4 || pkt[9] != 6 {
		return false
	}
	ihl := int(pkt[0]&0xf) * 4
	tot := int(binary.BigEndian.Uint16(pkt[2:]))
	if ihl < 20 || tot > len(pkt) || tot < ihl+20 || binary.BigEndian.Uint16(pkt[6:])&0x1fff != 0 {
		return false
	}
	src := netip.AddrFrom4([4]byte(pkt[12:16]))
	dst := netip.AddrFrom4([4]byte(pkt[16:20]))
	tcp := pkt[ihl:tot]
	switch {
	case src == client:
		binary.BigEndian.PutUint32(tcp[4:], binary.BigEndian.Uint32(tcp[4:])+delta)
	case dst == client && tcp[13]&0x10 != 0:
		binary.BigEndian.PutUint32(tcp[8:], binary.BigEndian.Uint32(tcp[8:])-delta)
	default:
		return false
	}
	binary.BigEndian.PutUint16(tcp[16:], 0)
	binary.BigEndian.PutUint16(tcp[16:], checksum.Transport(src, dst, 6, tcp))
	return true
}

// Stop removes the queue rule and closes the queue.
func (s *SeqShifter) Stop() {
	_ = s.m.addRules("*mangle", fmt.Sprintf("-D FORWARD -p tcp -j NFQUEUE --queue-num %d", s.queue), "COMMIT")
	s.cancel()
	s.nf.Close()
}
