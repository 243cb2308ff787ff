package tun

import (
	"encoding/binary"

	"github.com/tcpeng/tcpeng/engine/wire"
	"github.com/tcpeng/tcpeng/host/offload"
)

// The write side of the offload path: consecutive in-order TCP segments of one
// flow in one WriteBatch become a GSO super-packet (virtio 1.x §5.1.6.2.1) that
// the kernel takes whole, so a 64 KiB burst costs one write instead of 45.
// offload.Planner decides which segments join (its doc gives the rules); the
// coalescer writes each train with its virtio-net header.

// coalescer plans the packets of one batch and builds them. It keeps its
// memory between batches, so steady state allocates nothing.
type coalescer struct {
	offload.Planner
	hdr    [vnetHdrLen + wire.IPv4MaxHeaderLen + wire.TCPMaxHeaderLen]byte
	zero   [vnetHdrLen]byte
	iov    [][]byte
	frames [][]byte // the frames of the train being built
}

func newCoalescer() *coalescer { return &coalescer{} }

// packet returns the byte slices of train i as one write to a vnet-header
// device: the virtio-net header, then the packet. Every TCP packet goes with a
// partial checksum (VIRTIO_NET_HDR_F_NEEDS_CSUM, the kernel's
// CHECKSUM_PARTIAL): a copy of its headers carries the pseudo-header sum in the
// TCP checksum field, whatever the frame had there (a full checksum, or the
// engine's partial one: engine.Config.PartialChecksums). The kernel then sums
// nothing for a local receiver, and completes the sum if it forwards the
// packet. For a train, the copy is the first frame's headers rewritten for the
// super-packet (offload.Planner.Header), followed by every segment's payload.
// A frame that is not TCP goes as it is, with a zero header. The slices are
// valid until the next call.
func (c *coalescer) packet(i int) [][]byte {
	t := c.Train(i)
	c.frames = c.AppendFrames(c.frames[:0], i)
	c.iov = c.iov[:0]
	first := c.frames[0]
	if !t.IsTCP() {
		return append(c.iov, c.zero[:], first)
	}
	ipHL, tcpHL := t.HeaderLens()
	hl := ipHL + tcpHL
	h := c.Header(i, c.hdr[vnetHdrLen:])
	vh := vnetHdr{flags: vnetFlagNeedsCsum, hdrLen: uint16(hl), csumStart: uint16(ipHL), csumOffset: 16}
	if t.Count() > 1 {
		vh.gsoType, vh.gsoSize = vnetGSOTCPv4, uint16(t.SegmentSize())
		if t.IsIPv6() {
			vh.gsoType = vnetGSOTCPv6
		}
	}
	src, dst := t.Addrs()
	binary.BigEndian.PutUint16(h[ipHL+16:], wire.PseudoHeaderChecksum(wire.ProtoTCP, src, dst, t.Len()-ipHL))
	vh.put(c.hdr[:vnetHdrLen])
	c.iov = append(c.iov, c.hdr[:vnetHdrLen+hl], first[hl:])
	for _, f := range c.frames[1:] {
		c.iov = append(c.iov, f[hl:])
	}
	return c.iov
}

// coalesce is plan and packet for tests and fuzzing: it returns each packet as
// the bytes one write would carry (virtio-net header included).
func coalesce(frames [][]byte) [][]byte {
	c := newCoalescer()
	c.Plan(frames)
	var out [][]byte
	for i := range c.Trains() {
		var b []byte
		for _, p := range c.packet(i) {
			b = append(b, p...)
		}
		out = append(out, b)
	}
	return out
}
