package tun

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/tcpeng/tcpeng/engine/wire"
)

// The virtio-net header (virtio 1.x spec §5.1.6, "struct virtio_net_hdr", the
// 10-byte legacy layout without num_buffers) that a TUN device opened with
// IFF_VNET_HDR puts before every packet, in both directions. The device is set
// to little-endian headers (TUNSETVNETLE), so the layout does not depend on the
// host's byte order.
const vnetHdrLen = 10

// Header flags and GSO types (virtio 1.x §5.1.6; linux/virtio_net.h).
const (
	vnetFlagNeedsCsum = 0x1 // VIRTIO_NET_HDR_F_NEEDS_CSUM: checksum is partial
	vnetFlagDataValid = 0x2 // VIRTIO_NET_HDR_F_DATA_VALID: checksum already verified

	vnetGSONone  = 0x0
	vnetGSOTCPv4 = 0x1
	vnetGSOUDP   = 0x3
	vnetGSOTCPv6 = 0x4
	vnetGSOUDPL4 = 0x5
	vnetGSOECN   = 0x80 // the super-packet carries CWR
)

// vnetHdr is a decoded virtio-net header.
type vnetHdr struct {
	flags      uint8
	gsoType    uint8
	hdrLen     uint16 // a hint only: Linux fills in the linear length, not the header length
	gsoSize    uint16
	csumStart  uint16
	csumOffset uint16
}

// parseVnetHdr decodes the first vnetHdrLen bytes of b.
func parseVnetHdr(b []byte) (vnetHdr, error) {
	if len(b) < vnetHdrLen {
		return vnetHdr{}, errVnetShort
	}
	return vnetHdr{
		flags:      b[0],
		gsoType:    b[1],
		hdrLen:     binary.LittleEndian.Uint16(b[2:]),
		gsoSize:    binary.LittleEndian.Uint16(b[4:]),
		csumStart:  binary.LittleEndian.Uint16(b[6:]),
		csumOffset: binary.LittleEndian.Uint16(b[8:]),
	}, nil
}

// put encodes h into b[:vnetHdrLen].
func (h *vnetHdr) put(b []byte) {
	_ = b[vnetHdrLen-1]
	b[0] = h.flags
	b[1] = h.gsoType
	binary.LittleEndian.PutUint16(b[2:], h.hdrLen)
	binary.LittleEndian.PutUint16(b[4:], h.gsoSize)
	binary.LittleEndian.PutUint16(b[6:], h.csumStart)
	binary.LittleEndian.PutUint16(b[8:], h.csumOffset)
}

// Reasons a packet from the device is dropped. They never leave the package:
// ReadBatch counts them and goes on.
var (
	errVnetShort   = errors.New("tun: packet shorter than the virtio-net header")
	errGSOType     = errors.New("tun: unsupported GSO type")
	errGSOSize     = errors.New("tun: GSO packet with gso_size 0")
	errGSOPacket   = errors.New("tun: GSO packet is not a well-formed TCP packet")
	errCsumRange   = errors.New("tun: partial checksum offsets outside the packet")
	errBadChecksum = errors.New("tun: GSO packet with a bad TCP checksum")
)

// completeChecksum finishes a partial checksum (VIRTIO_NET_HDR_F_NEEDS_CSUM on a
// non-GSO packet): the field at csum_start+csum_offset holds the pseudo-header
// sum, and the one's-complement sum from csum_start to the end, complemented,
// goes there (RFC 1071; the CHECKSUM_PARTIAL contract of virtio 1.x §5.1.6.2).
// A UDP checksum that comes out 0 is sent as 0xffff (RFC 768).
func completeChecksum(pkt []byte, h *vnetHdr) error {
	start := int(h.csumStart)
	field := start + int(h.csumOffset)
	if start >= len(pkt) || field+2 > len(pkt) {
		return errCsumRange
	}
	c := ^wire.Checksum(pkt[start:], 0)
	if c == 0 && l4Proto(pkt) == wire.ProtoUDP {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(pkt[field:], c)
	return nil
}

// l4Proto returns the protocol after the fixed IP header (0 if unknown).
func l4Proto(pkt []byte) uint8 {
	switch {
	case len(pkt) >= wire.IPv4MinHeaderLen && pkt[0]>>4 == 4:
		return pkt[9]
	case len(pkt) >= wire.IPv6HeaderLen && pkt[0]>>4 == 6:
		return pkt[6]
	}
	return 0
}

// gsoPacket is a TCP super-packet from the kernel (TSO, virtio 1.x §5.1.6.2.1)
// being cut into segments of at most gsoSize payload bytes each, the way the
// kernel's own software segmentation (tcp_gso_segment) would cut it.
type gsoPacket struct {
	pkt      []byte // IP header, TCP header, payload
	v6       bool
	ipHL     int // IP header length
	hdrLen   int // IP and TCP header lengths
	size     int // gso_size: payload bytes per segment
	segs     int // segments in all
	next     int // the next segment to produce
	src, dst netip.Addr
	nosum    bool // leave the segments' TCP checksums out (Config.SkipChecksums)
}

// prepareGSO validates a GSO packet and readies it for segmenting. It trusts
// nothing of h but the GSO type and size: header lengths come from the packet
// (Linux puts the linear length in hdr_len, not the header length). verify
// checks a full checksum the packet carries (one that is neither partial nor
// marked valid).
func prepareGSO(pkt []byte, h *vnetHdr, verify bool) (gsoPacket, error) {
	g := gsoPacket{size: int(h.gsoSize)}
	switch h.gsoType &^ vnetGSOECN {
	case vnetGSOTCPv4:
		ip, err := wire.ParseIPv4(pkt)
		if err != nil || len(ip) != len(pkt) || ip.Protocol() != wire.ProtoTCP || ip.IsFragment() {
			return g, errGSOPacket
		}
		g.ipHL = ip.HeaderLen()
		g.src, g.dst = ip.Src(), ip.Dst()
	case vnetGSOTCPv6:
		ip, err := wire.ParseIPv6(pkt)
		if err != nil || len(ip) != len(pkt) || ip.NextHeader() != wire.ProtoTCP {
			return g, errGSOPacket
		}
		g.v6 = true
		g.ipHL = wire.IPv6HeaderLen
		g.src, g.dst = ip.Src(), ip.Dst()
	default:
		return g, errGSOType
	}
	if g.size == 0 {
		return g, errGSOSize
	}
	t, err := wire.ParseTCP(pkt[g.ipHL:])
	if err != nil {
		return g, errGSOPacket
	}
	if t.Flags()&(wire.FlagSYN|wire.FlagRST) != 0 {
		return g, errGSOPacket
	}
	g.hdrLen = g.ipHL + t.HeaderLen()
	if verify && h.flags&(vnetFlagNeedsCsum|vnetFlagDataValid) == 0 && !t.ChecksumValid(g.src, g.dst) {
		// A full checksum is there: check it before it is replaced by
		// per-segment checksums that would hide the corruption.
		return g, errBadChecksum
	}
	payload := len(pkt) - g.hdrLen
	g.segs = max(1, (payload+g.size-1)/g.size)
	g.pkt = pkt
	return g, nil
}

// segLen returns the length of segment i.
func (g *gsoPacket) segLen(i int) int {
	payload := len(g.pkt) - g.hdrLen
	off := i * g.size
	return g.hdrLen + min(g.size, payload-off)
}

// segment writes segment i into dst and returns its length, or 0 if dst is too
// short. Each segment gets the super-packet's headers with its own length,
// IPv4 ID (the first ID plus i), sequence number (plus i*gso_size), flags (FIN
// and PSH on the last segment only, CWR on the first only, as tcp_gso_segment
// does) and full IP and TCP checksums (RFC 791, RFC 9293 §3.1; the TCP
// checksum is summed as the payload is copied, and left out with nosum).
func (g *gsoPacket) segment(i int, dst []byte) int {
	n := g.segLen(i)
	if len(dst) < n {
		return 0
	}
	off := i * g.size
	copy(dst, g.pkt[:g.hdrLen])
	if g.v6 {
		binary.BigEndian.PutUint16(dst[4:], uint16(n-wire.IPv6HeaderLen))
	} else {
		binary.BigEndian.PutUint16(dst[2:], uint16(n))
		binary.BigEndian.PutUint16(dst[4:], binary.BigEndian.Uint16(g.pkt[4:])+uint16(i))
		wire.PutIPv4Checksum(dst[:g.ipHL])
	}
	tcp := dst[g.ipHL:n]
	binary.BigEndian.PutUint32(tcp[4:], binary.BigEndian.Uint32(g.pkt[g.ipHL+4:])+uint32(off))
	if i < g.segs-1 {
		tcp[13] &^= uint8(wire.FlagFIN | wire.FlagPSH)
	}
	if i > 0 {
		tcp[13] &^= uint8(wire.FlagCWR)
	}
	payload := g.pkt[g.hdrLen+off : g.hdrLen+off+n-g.hdrLen]
	if g.nosum {
		copy(dst[g.hdrLen:n], payload)
		return n
	}
	tcp[16], tcp[17] = 0, 0
	hsum := wire.Checksum(tcp[:g.hdrLen-g.ipHL], wire.PseudoHeaderChecksum(wire.ProtoTCP, g.src, g.dst, len(tcp)))
	_, sum := wire.CopyChecksum(dst[g.hdrLen:n], payload, hsum)
	binary.BigEndian.PutUint16(tcp[16:], ^sum)
	return n
}

// splitGSO cuts a whole GSO packet into segments appended to out (for tests and
// fuzzing; ReadBatch segments lazily into the caller's buffers).
func splitGSO(pkt []byte, h *vnetHdr, out [][]byte) ([][]byte, error) {
	g, err := prepareGSO(pkt, h, true)
	if err != nil {
		return out, err
	}
	for i := range g.segs {
		b := make([]byte, g.segLen(i))
		g.segment(i, b)
		out = append(out, b)
	}
	return out, nil
}

// decodeFromDevice turns one read from a vnet-header device (header and
// packet) into the frames it carries, for tests and fuzzing: completes a
// partial checksum or splits a GSO packet.
func decodeFromDevice(b []byte, out [][]byte) ([][]byte, error) {
	h, err := parseVnetHdr(b)
	if err != nil {
		return out, err
	}
	pkt := b[vnetHdrLen:]
	if h.gsoType != vnetGSONone {
		return splitGSO(pkt, &h, out)
	}
	p := append([]byte(nil), pkt...)
	if h.flags&vnetFlagNeedsCsum != 0 {
		if err := completeChecksum(p, &h); err != nil {
			return out, err
		}
	}
	return append(out, p), nil
}
