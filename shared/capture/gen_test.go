package capture

import (
	"encoding/binary"
	"time"
)

// testPkt is a packet the generators write and the tests expect back.
type testPkt struct {
	ns      int64 // capture time, ns since the epoch
	data    []byte
	origLen int
	iface   int
}

// frameOf builds an Ethernet/IPv4/UDP frame of n bytes (n ≥ 42) whose payload encodes i.
func frameOf(i, n int) []byte {
	f := make([]byte, n)
	copy(f[0:6], []byte{0x02, 0, 0, 0, 0, 1})
	copy(f[6:12], []byte{0x02, 0, 0, 0, 0, 2})
	binary.BigEndian.PutUint16(f[12:], EtherTypeIPv4)
	ip := f[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(n-14))
	ip[8], ip[9] = 64, 17
	copy(ip[12:16], []byte{10, 0, 0, 1})
	copy(ip[16:20], []byte{10, 0, 0, 2})
	binary.BigEndian.PutUint16(ip[20:], 40000)
	binary.BigEndian.PutUint16(ip[22:], 9)
	binary.BigEndian.PutUint16(ip[24:], uint16(n-34))
	if n >= 46 {
		binary.BigEndian.PutUint32(ip[28:], uint32(i))
	}
	return f
}

// buildPcap writes a pcap file by hand (independently of Writer) in either byte order.
func buildPcap(be, nanos bool, lt LinkType, snaplen int, pkts []testPkt) []byte {
	var o orderAppender = binary.LittleEndian
	if be {
		o = binary.BigEndian
	}
	b := make([]byte, 24)
	magic := uint32(0xa1b2c3d4)
	if nanos {
		magic = 0xa1b23c4d
	}
	o.PutUint32(b[0:], magic)
	o.PutUint16(b[4:], 2)
	o.PutUint16(b[6:], 4)
	o.PutUint32(b[16:], uint32(snaplen))
	o.PutUint32(b[20:], uint32(lt))
	for _, p := range pkts {
		frac := uint32(p.ns % 1e9)
		if !nanos {
			frac /= 1000
		}
		b = o.AppendUint32(b, uint32(p.ns/1e9))
		b = o.AppendUint32(b, frac)
		b = o.AppendUint32(b, uint32(len(p.data)))
		b = o.AppendUint32(b, uint32(p.origLen))
		b = append(b, p.data...)
	}
	return b
}

// ngIface describes an interface for buildNG.
type ngIface struct {
	lt       LinkType
	snaplen  uint32
	tsresol  int   // -1: option absent (µs)
	tsoffset int64 // 0: option absent
}

// ngBuilder writes pcapng blocks by hand in either byte order.
type ngBuilder struct {
	o   orderAppender
	buf []byte
}

func newNG(be bool) *ngBuilder {
	g := &ngBuilder{o: binary.LittleEndian}
	if be {
		g.o = binary.BigEndian
	}
	return g
}

func (g *ngBuilder) block(typ uint32, body []byte) *ngBuilder {
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	n := uint32(12 + len(body))
	g.buf = g.o.AppendUint32(g.buf, typ)
	g.buf = g.o.AppendUint32(g.buf, n)
	g.buf = append(g.buf, body...)
	g.buf = g.o.AppendUint32(g.buf, n)
	return g
}

func (g *ngBuilder) option(b []byte, code uint16, v []byte) []byte {
	b = g.o.AppendUint16(b, code)
	b = g.o.AppendUint16(b, uint16(len(v)))
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func (g *ngBuilder) shb() *ngBuilder {
	var b []byte
	b = g.o.AppendUint32(b, ngByteOrderMagic)
	b = g.o.AppendUint16(b, 1)
	b = g.o.AppendUint16(b, 0)
	b = g.o.AppendUint64(b, ^uint64(0))
	b = g.option(b, 4, []byte("probekit test")) // shb_userappl
	b = g.o.AppendUint32(b, 0)
	return g.block(blockSHB, b)
}

func (g *ngBuilder) idb(in ngIface) *ngBuilder {
	var b []byte
	b = g.o.AppendUint16(b, uint16(in.lt))
	b = g.o.AppendUint16(b, 0)
	b = g.o.AppendUint32(b, in.snaplen)
	b = g.option(b, 2, []byte("eth0")) // if_name
	if in.tsresol >= 0 {
		b = g.option(b, 9, []byte{byte(in.tsresol)})
	}
	if in.tsoffset != 0 {
		b = g.option(b, 14, g.o.AppendUint64(nil, uint64(in.tsoffset)))
	}
	b = g.o.AppendUint32(b, 0)
	return g.block(blockIDB, b)
}

// units converts ns to the interface's timestamp units (exact for the resolutions tested).
func (in ngIface) units(ns int64) uint64 {
	ns -= in.tsoffset * 1e9
	r := in.tsresol
	if r < 0 {
		r = 6
	}
	if r&0x80 != 0 {
		sh := uint(r & 0x7f)
		sec, frac := uint64(ns/1e9), uint64(ns%1e9)
		return sec<<sh | frac<<sh/1e9
	}
	u := uint64(ns)
	for e := 9; e > r; e-- {
		u /= 10
	}
	for e := 9; e < r; e++ {
		u *= 10
	}
	return u
}

func (g *ngBuilder) epb(in ngIface, p testPkt) *ngBuilder {
	var b []byte
	t := in.units(p.ns)
	b = g.o.AppendUint32(b, uint32(p.iface))
	b = g.o.AppendUint32(b, uint32(t>>32))
	b = g.o.AppendUint32(b, uint32(t))
	b = g.o.AppendUint32(b, uint32(len(p.data)))
	b = g.o.AppendUint32(b, uint32(p.origLen))
	b = append(b, p.data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	b = g.option(b, 1, []byte("comment")) // opt_comment
	b = g.o.AppendUint32(b, 0)
	return g.block(blockEPB, b)
}

func (g *ngBuilder) spb(p testPkt) *ngBuilder {
	var b []byte
	b = g.o.AppendUint32(b, uint32(p.origLen))
	b = append(b, p.data...)
	return g.block(blockSPB, b)
}

// nsTime is a fixed base time for generated packets: 2026-11-23 07:00:00 UTC.
var nsTime = time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC).UnixNano()

// orderAppender is a byte order that can also append.
type orderAppender interface {
	binary.ByteOrder
	binary.AppendByteOrder
}
