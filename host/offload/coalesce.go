package offload

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"net/netip"

	"github.com/tcpeng/tcpeng/engine/wire"
)

// Joining: consecutive in-order TCP segments of one flow in one batch become
// one super-packet (a train). host/tun writes a train to the kernel as a GSO
// super-packet (virtio 1.x §5.1.6.2.1), so a 64 KiB burst costs one write
// instead of 45; Engine hands it to its engine as one frame (Join), so the
// burst costs the engine one segment's work.
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
//     length) and has at most MaxTrain segments.
//
// Trains of different flows may interleave in the batch; each flow's segments
// stay in order, and a train goes at the position of its first segment.

// maxSuper bounds a super-packet's IP total length (IPv4) or IPv6 payload length.
const maxSuper = 65535

// MaxTrain bounds the segments of one super-packet (and so the slices of one
// write): 64 KiB of 536-byte segments (MTU 576) fit.
const MaxTrain = 128

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

// Train is a run of frames of one batch that become one packet.
type Train struct {
	head, tail int32 // frame indices; next[] links them
	count      int
	size       int    // gso_size: the first segment's payload length
	lastLen    int    // the last segment's payload length
	total      int    // IP total length (IPv4) or payload length + 40 (IPv6) so far
	nextSeq    uint32 // where the next segment must start
	closed     bool
	info       segInfo // the first segment's
}

// Planner groups the frames of a batch into trains. It keeps its memory
// between batches, so steady state allocates nothing. The zero Planner is
// ready to use.
type Planner struct {
	trains []Train
	next   []int32 // per frame: the next frame of its train, or -1
	flows  map[flowKey]int32
	frames [][]byte
}

// Plan groups frames into trains, which Trains, Train, AppendFrames, Header
// and Join then describe. It keeps frames until the next Plan.
func (c *Planner) Plan(frames [][]byte) {
	if c.flows == nil {
		c.flows = make(map[flowKey]int32)
	}
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
		t := Train{head: int32(i), tail: int32(i), count: 1, total: len(f), closed: !s.ok || s.closer, info: s}
		if s.tcp && !s.ok {
			// A segment of the flow that goes out alone: later segments must not
			// join a train written before it.
			delete(c.flows, s.key)
		}
		if s.ok {
			t.size, t.lastLen = s.plen, s.plen
			t.nextSeq = s.seq + uint32(s.plen)
			c.flows[s.key] = int32(len(c.trains))
		}
		c.trains = append(c.trains, t)
	}
}

// fits reports whether frame f (inspected as s) may join train t.
func (c *Planner) fits(t *Train, f []byte, s *segInfo) bool {
	fi := &t.info
	if t.closed || t.count >= MaxTrain || s.v6 != fi.v6 || s.ipHL != fi.ipHL || s.tcpHL != fi.tcpHL ||
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

// Forget drops the references to the frames of the last Plan (and the
// trains), so that the Planner does not keep a caller's buffers alive.
func (c *Planner) Forget() {
	c.frames = nil
	c.trains = c.trains[:0]
}

// Trains returns how many trains the last Plan made.
func (c *Planner) Trains() int { return len(c.trains) }

// Train returns train i of the last Plan, valid until the next Plan.
func (c *Planner) Train(i int) *Train { return &c.trains[i] }

// AppendFrames appends the frames of train i, in order, to dst.
func (c *Planner) AppendFrames(dst [][]byte, i int) [][]byte {
	t := &c.trains[i]
	for j := t.head; j >= 0; j = c.next[j] {
		dst = append(dst, c.frames[j])
	}
	return dst
}

// Count returns how many frames t joins.
func (t *Train) Count() int { return t.count }

// IsTCP reports whether t is of TCP segments; a frame that is not TCP, or
// does not parse, makes a train of its own.
func (t *Train) IsTCP() bool { return t.info.tcp }

// IsIPv6 reports whether t is of IPv6 packets.
func (t *Train) IsIPv6() bool { return t.info.v6 }

// HeaderLens returns the IP and TCP header lengths of t's frames.
func (t *Train) HeaderLens() (ip, tcp int) { return t.info.ipHL, t.info.tcpHL }

// SegmentSize returns the payload length of every frame of t but the last
// (the GSO size of the super-packet).
func (t *Train) SegmentSize() int { return t.size }

// Len returns the length of the joined packet: the first frame's headers and
// every frame's payload (for a train of one frame, the frame's length).
func (t *Train) Len() int { return t.total }

// Addrs returns the source and destination addresses of t's frames.
func (t *Train) Addrs() (src, dst netip.Addr) { return t.info.src, t.info.dstIP }

// Header writes the headers of train i's packet into dst, which must hold
// IPv4MaxHeaderLen+TCPMaxHeaderLen bytes, and returns them: the first
// frame's, rewritten for a train of more than one frame to carry the whole
// (the IPv4 total length and header checksum, or the IPv6 payload length; the
// PSH and FIN of the last frame). The TCP checksum field is copied as it is.
func (c *Planner) Header(i int, dst []byte) []byte {
	t := &c.trains[i]
	s := &t.info
	hl := s.ipHL + s.tcpHL
	h := dst[:hl]
	copy(h, c.frames[t.head][:hl])
	if t.count > 1 {
		if s.v6 {
			binary.BigEndian.PutUint16(h[4:], uint16(t.total-wire.IPv6HeaderLen))
		} else {
			binary.BigEndian.PutUint16(h[2:], uint16(t.total))
			wire.PutIPv4Checksum(h[:s.ipHL])
		}
		h[s.ipHL+13] |= c.frames[t.tail][s.ipHL+13] & uint8(wire.FlagPSH|wire.FlagFIN)
	}
	return h
}

// Join writes train i as one frame into dst and returns its length, or 0 if
// dst is shorter than Train.Len: the headers of Header, then every frame's
// payload. A train of one frame is copied as it is. The TCP checksum of a
// joined frame is computed from the frames' own checksums, not from their
// bytes (RFC 1624's arithmetic): each frame's payload sum is what its
// checksum says it is, so the joined frame's checksum is right if and only if
// every frame's was (barring the checksum's own blind spots), and a receiver
// that verifies it rejects the whole when one frame was corrupt.
//
// valid reports whether every frame's checksums verify (the IPv4 header's and
// the TCP checksum, RFC 791 §3.1 and RFC 9293 §3.1): the payloads are summed
// as they are copied, in one pass, so that a caller that must check them (as
// Engine.Verify does) need not read the bytes again.
func (c *Planner) Join(i int, dst []byte) (n int, valid bool) {
	t := &c.trains[i]
	if len(dst) < t.total {
		return 0, false
	}
	first := c.frames[t.head]
	s := &t.info
	if t.count == 1 {
		return copy(dst, first), checksumsOK(first)
	}
	hl := s.ipHL + s.tcpHL
	h := c.Header(i, dst)
	tcp := h[s.ipHL:]
	tcp[16], tcp[17] = 0, 0
	sum := wire.Checksum(tcp, wire.PseudoHeaderChecksum(wire.ProtoTCP, s.src, s.dstIP, t.total-s.ipHL))
	off := hl
	valid = true
	for j := t.head; j >= 0; j = c.next[j] {
		f := c.frames[j]
		if !s.v6 && !wire.IPv4(f).ChecksumValid() {
			valid = false
		}
		// The sum of the frame's header and pseudo-header; with its payload's,
		// 0xffff when the frame verifies (RFC 9293 §3.1). So the payload's sum,
		// as the frame's checksum has it, is the complement of the header's.
		hs := wire.Checksum(f[s.ipHL:hl], wire.PseudoHeaderChecksum(wire.ProtoTCP, s.src, s.dstIP, len(f)-s.ipHL))
		_, actual := wire.CopyChecksum(dst[off:], f[hl:], 0)
		if wire.ChecksumCombine(hs, actual) != 0xffff {
			valid = false
		}
		ps := ^hs
		if (off-hl)%2 == 1 {
			ps = bits.ReverseBytes16(ps) // the payload starts at an odd offset
		}
		sum = wire.ChecksumCombine(sum, ps)
		off += len(f) - hl
	}
	binary.BigEndian.PutUint16(tcp[16:], ^sum)
	return t.total, valid
}

// checksumsOK reports whether frame f's checksums verify, as the engine checks
// them without Config.TrustLink: an IPv4 header's, and the TCP checksum of a
// TCP segment in an IPv4 packet that is not a fragment. Anything else is OK
// here (the engine drops what does not parse).
func checksumsOK(f []byte) bool {
	ip, err := wire.ParseIPv4(f)
	if err != nil {
		return true
	}
	if !ip.ChecksumValid() {
		return false
	}
	if ip.Protocol() != wire.ProtoTCP || ip.IsFragment() {
		return true
	}
	t, err := wire.ParseTCP(ip.Payload())
	return err != nil || t.ChecksumValid(ip.Src(), ip.Dst())
}
