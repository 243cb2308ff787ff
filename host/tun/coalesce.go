package tun

import (
	"bytes"
	"encoding/binary"
	"net/netip"

	"github.com/tcpeng/tcpeng/engine/wire"
)

// The write side of the offload path: consecutive in-order TCP segments of one
// flow in one WriteBatch become a GSO super-packet (virtio 1.x §5.1.6.2.1) that
// the kernel takes whole, so a 64 KiB burst costs one write instead of 45.
//
// A segment joins the open train of its flow (same addresses and ports) when
// the kernel's segmentation of the super-packet (tcp_gso_segment,
// inet_gso_segment, ipv6_gso_segment) gives it back exactly:
//
//   - same IP header apart from length, ID and checksum (IPv4: not a fragment;
//     if DF is clear, IDs must run on by one; with DF set the ID carries nothing,
//     RFC 6864 §4.1) or apart from payload length (IPv6: no extension headers);
//   - same TCP header apart from sequence number, flags and checksum: ports, ACK,
//     window, urgent pointer, header length and options byte for byte;
//   - its sequence number is where the previous segment ended (in order, no gap);
//   - every segment but the last carries exactly gso_size (the first segment's
//     payload length) bytes, the last at most that, none is empty;
//   - flags: the first segment's, with PSH or FIN allowed on the last one (which
//     closes the train); no SYN, RST, URG or CWR anywhere (CWR and URG segments,
//     and any segment that cannot join, go out alone);
//   - the super-packet is at most 65535 bytes (IPv4 total length, IPv6 payload
//     length) and has at most maxTrain segments.
//
// Trains of different flows may interleave in the batch; each flow's segments
// stay in order, and a train is written at the position of its first segment.

// maxSuper bounds a super-packet's IP total length (IPv4) or IPv6 payload length.
const maxSuper = 65535

// maxTrain bounds the segments of one super-packet (and so the slices of one
// write): 64 KiB of 536-byte segments (MTU 576) fit.
const maxTrain = 128

// flowKey identifies a TCP flow: IP version, addresses, ports.
type flowKey struct {
	v6       bool
	src, dst [16]byte
	sp, dp   uint16
}

// segInfo is what the coalescer needs of one frame.
type segInfo struct {
	tcp    bool // a TCP segment (key is set)
	ok     bool // a TCP segment that may take part in a train
	v6     bool
	ipHL   int
	tcpHL  int
	seq    uint32
	flags  wire.Flags
	plen   int // payload length
	key    flowKey
	df     bool
	id     uint16
	src    netip.Addr
	dstIP  netip.Addr
	closer bool // PSH or FIN: the train ends with it
}

const noFlags = wire.FlagSYN | wire.FlagRST | wire.FlagURG | wire.FlagCWR

// inspect parses frame as an IPv4 or IPv6 TCP segment that could be coalesced.
func inspect(f []byte) segInfo {
	var s segInfo
	if len(f) < 1 {
		return s
	}
	switch f[0] >> 4 {
	case 4:
		ip, err := wire.ParseIPv4(f)
		if err != nil || len(ip) != len(f) || ip.Protocol() != wire.ProtoTCP || ip.IsFragment() {
			return s
		}
		s.ipHL = ip.HeaderLen()
		s.df = ip.Flags()&wire.IPv4DontFragment != 0
		s.id = ip.ID()
		s.src, s.dstIP = ip.Src(), ip.Dst()
		copy(s.key.src[:], f[12:16])
		copy(s.key.dst[:], f[16:20])
	case 6:
		ip, err := wire.ParseIPv6(f)
		if err != nil || len(ip) != len(f) || ip.NextHeader() != wire.ProtoTCP {
			return s
		}
		s.v6 = true
		s.ipHL = wire.IPv6HeaderLen
		s.src, s.dstIP = ip.Src(), ip.Dst()
		copy(s.key.src[:], f[8:24])
		copy(s.key.dst[:], f[24:40])
	default:
		return s
	}
	t, err := wire.ParseTCP(f[s.ipHL:])
	if err != nil {
		return s
	}
	s.tcp = true
	s.key.v6 = s.v6
	s.key.sp, s.key.dp = t.SrcPort(), t.DstPort()
	s.tcpHL = t.HeaderLen()
	s.seq = uint32(t.Seq())
	s.flags = t.Flags()
	s.plen = len(f) - s.ipHL - s.tcpHL
	s.closer = s.flags&(wire.FlagPSH|wire.FlagFIN) != 0
	s.ok = s.plen > 0 && s.flags&noFlags == 0 && s.flags&wire.FlagACK != 0
	return s
}

// train is a run of frames that become one packet.
type train struct {
	head, tail int32 // frame indices; next[] links them
	count      int
	size       int    // gso_size: the first segment's payload length
	lastLen    int    // the last segment's payload length
	total      int    // IP total length (IPv4) or payload length + 40 (IPv6) so far
	nextSeq    uint32 // where the next segment must start
	closed     bool
	info       segInfo // the first segment's
}

// coalescer plans the packets of one batch. It keeps its memory between
// batches, so steady state allocates nothing.
type coalescer struct {
	trains []train
	next   []int32 // per frame: the next frame of its train, or -1
	flows  map[flowKey]int32
	frames [][]byte
	hdr    [vnetHdrLen + wire.IPv4MaxHeaderLen + wire.TCPMaxHeaderLen]byte
	zero   [vnetHdrLen]byte
	iov    [][]byte
}

func newCoalescer() *coalescer { return &coalescer{flows: make(map[flowKey]int32)} }

// plan groups frames into trains.
func (c *coalescer) plan(frames [][]byte) {
	c.frames = frames
	c.trains = c.trains[:0]
	clear(c.flows)
	if cap(c.next) < len(frames) {
		c.next = make([]int32, len(frames))
	}
	c.next = c.next[:len(frames)]
	for i, f := range frames {
		c.next[i] = -1
		if len(f) == 0 {
			continue // nothing to write
		}
		s := inspect(f)
		if s.ok {
			if ti, ok := c.flows[s.key]; ok && c.fits(&c.trains[ti], f, &s) {
				t := &c.trains[ti]
				c.next[t.tail] = int32(i)
				t.tail = int32(i)
				t.count++
				t.lastLen = s.plen
				t.total += s.plen
				t.nextSeq = s.seq + uint32(s.plen)
				t.closed = s.closer || s.plen < t.size
				continue
			}
		}
		t := train{head: int32(i), tail: int32(i), count: 1, closed: !s.ok || s.closer, info: s}
		if s.tcp && !s.ok {
			// A segment of the flow that goes out alone: later segments must not
			// join a train written before it.
			delete(c.flows, s.key)
		}
		if s.ok {
			t.size, t.lastLen = s.plen, s.plen
			t.total = len(f)
			t.nextSeq = s.seq + uint32(s.plen)
			c.flows[s.key] = int32(len(c.trains))
		}
		c.trains = append(c.trains, t)
	}
}

// fits reports whether frame f (inspected as s) may join train t.
func (c *coalescer) fits(t *train, f []byte, s *segInfo) bool {
	fi := &t.info
	if t.closed || t.count >= maxTrain || s.v6 != fi.v6 || s.ipHL != fi.ipHL || s.tcpHL != fi.tcpHL ||
		s.seq != t.nextSeq || s.plen > t.size || t.total+s.plen > maxSuper ||
		s.flags&^(wire.FlagPSH|wire.FlagFIN) != fi.flags {
		return false
	}
	first := c.frames[t.head]
	if s.v6 {
		// Version, traffic class, flow label; next header, hop limit, addresses.
		if !bytes.Equal(f[0:4], first[0:4]) || !bytes.Equal(f[6:40], first[6:40]) {
			return false
		}
	} else {
		// Version, IHL, TOS; flags and fragment offset, TTL, protocol; addresses
		// and options.
		if !bytes.Equal(f[0:2], first[0:2]) || !bytes.Equal(f[6:10], first[6:10]) ||
			!bytes.Equal(f[12:s.ipHL], first[12:s.ipHL]) {
			return false
		}
		if !fi.df && s.id != fi.id+uint16(t.count) {
			return false
		}
	}
	a, b := f[s.ipHL:s.ipHL+s.tcpHL], first[s.ipHL:s.ipHL+s.tcpHL]
	// Ports; ACK, data offset; window; urgent pointer and options.
	return bytes.Equal(a[0:4], b[0:4]) && bytes.Equal(a[8:13], b[8:13]) &&
		bytes.Equal(a[14:16], b[14:16]) && bytes.Equal(a[18:], b[18:])
}

// packet returns the byte slices of train i as one write to a vnet-header
// device: the virtio-net header, then the packet. Every TCP packet goes with a
// partial checksum (VIRTIO_NET_HDR_F_NEEDS_CSUM, the kernel's
// CHECKSUM_PARTIAL): a copy of its headers carries the pseudo-header sum in the
// TCP checksum field, whatever the frame had there (a full checksum, or the
// engine's partial one: engine.Config.PartialChecksums). The kernel then sums
// nothing for a local receiver, and completes the sum if it forwards the
// packet. For a train, the copy is the first frame's headers rewritten for the
// super-packet (lengths, the PSH/FIN of the last segment), followed by every
// segment's payload. A frame that is not TCP goes as it is, with a zero
// header. The slices are valid until the next call.
func (c *coalescer) packet(i int) [][]byte {
	t := &c.trains[i]
	c.iov = c.iov[:0]
	first := c.frames[t.head]
	s := &t.info
	if !s.tcp {
		return append(c.iov, c.zero[:], first)
	}
	hl := s.ipHL + s.tcpHL
	h := c.hdr[vnetHdrLen : vnetHdrLen+hl]
	copy(h, first[:hl])
	tcp := h[s.ipHL:]
	tcpLen := len(first) - s.ipHL
	vh := vnetHdr{flags: vnetFlagNeedsCsum, hdrLen: uint16(hl), csumStart: uint16(s.ipHL), csumOffset: 16}
	if t.count > 1 {
		vh.gsoType, vh.gsoSize = vnetGSOTCPv4, uint16(t.size)
		if s.v6 {
			vh.gsoType = vnetGSOTCPv6
			binary.BigEndian.PutUint16(h[4:], uint16(t.total-wire.IPv6HeaderLen))
		} else {
			binary.BigEndian.PutUint16(h[2:], uint16(t.total))
			wire.PutIPv4Checksum(h[:s.ipHL])
		}
		tcp[13] |= c.frames[t.tail][s.ipHL+13] & uint8(wire.FlagPSH|wire.FlagFIN)
		tcpLen = t.total - s.ipHL
	}
	binary.BigEndian.PutUint16(tcp[16:], wire.PseudoHeaderChecksum(wire.ProtoTCP, s.src, s.dstIP, tcpLen))
	vh.put(c.hdr[:vnetHdrLen])
	c.iov = append(c.iov, c.hdr[:vnetHdrLen+hl], first[hl:])
	for j := c.next[t.head]; j >= 0; j = c.next[j] {
		c.iov = append(c.iov, c.frames[j][hl:])
	}
	return c.iov
}

// coalesce is plan and packet for tests and fuzzing: it returns each packet as
// the bytes one write would carry (virtio-net header included).
func coalesce(frames [][]byte) [][]byte {
	c := newCoalescer()
	c.plan(frames)
	var out [][]byte
	for i := range c.trains {
		var b []byte
		for _, p := range c.packet(i) {
			b = append(b, p...)
		}
		out = append(out, b)
	}
	return out
}
