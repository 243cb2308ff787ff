package tun

import (
	"encoding/binary"
	"errors"

	"github.com/tcpeng/tcpeng/engine/wire"
	"github.com/tcpeng/tcpeng/host/offload"
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
// being cut into segments of at most gso_size payload bytes each
// (offload.Super), and the next segment to hand over.
type gsoPacket struct {
	offload.Super
	next int // the next segment to produce
}

// prepareGSO validates a GSO packet and readies it for segmenting. It trusts
// nothing of h but the GSO type and size: header lengths come from the packet
// (Linux puts the linear length in hdr_len, not the header length). verify
// checks a full checksum the packet carries (one that is neither partial nor
// marked valid).
func prepareGSO(pkt []byte, h *vnetHdr, verify bool) (gsoPacket, error) {
	var v6 bool
	switch h.gsoType &^ vnetGSOECN {
	case vnetGSOTCPv4:
	case vnetGSOTCPv6:
		v6 = true
	default:
		return gsoPacket{}, errGSOType
	}
	if h.gsoSize == 0 {
		return gsoPacket{}, errGSOSize
	}
	g, err := offload.NewSuper(pkt, int(h.gsoSize))
	if err != nil || g.IsIPv6() != v6 {
		return gsoPacket{}, errGSOPacket
	}
	if verify && h.flags&(vnetFlagNeedsCsum|vnetFlagDataValid) == 0 {
		// A full checksum is there: check it before it is replaced by
		// per-segment checksums that would hide the corruption.
		src, dst := g.Addrs()
		if !wire.TCP(pkt[g.IPHeaderLen():]).ChecksumValid(src, dst) {
			return gsoPacket{}, errBadChecksum
		}
	}
	return gsoPacket{Super: g}, nil
}

// splitGSO cuts a whole GSO packet into segments appended to out (for tests and
// fuzzing; ReadBatch segments lazily into the caller's buffers).
func splitGSO(pkt []byte, h *vnetHdr, out [][]byte) ([][]byte, error) {
	g, err := prepareGSO(pkt, h, true)
	if err != nil {
		return out, err
	}
	for i := range g.Segs() {
		b := make([]byte, g.SegLen(i))
		g.Segment(i, b)
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
