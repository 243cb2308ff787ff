// Package offload does in software what a NIC's TCP offloads do in hardware,
// for any link: cutting a TCP super-packet into segments (segmentation
// offload, TSO/GSO), and joining a flow's consecutive segments into one
// (receive offload, GRO). host/tun uses both halves against the kernel's
// virtio-net offloads; Engine wraps any engine (the native Stack or the
// WebAssembly one) so that it sends and receives super-packets while its link
// carries frames of the MTU.
//
// Everything here is pure (no I/O, no clock) and allocates nothing in steady
// state: buffers grow to the working size and are reused.
package offload

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/tcpeng/tcpeng/engine/wire"
)

// ErrSuper says a packet cannot be cut: not an IPv4 or IPv6 TCP packet that
// parses whole (IPv4: not a fragment; IPv6: no extension headers), or a SYN
// or RST, or the segment size is not positive.
var ErrSuper = errors.New("offload: not a TCP packet that can be cut into segments")

// Super is a TCP super-packet (TSO, virtio 1.x §5.1.6.2.1) being cut into
// segments of at most Size payload bytes each, the way the kernel's software
// segmentation (tcp_gso_segment) cuts it. The zero Super has no segments
// (Segs is 0).
type Super struct {
	pkt      []byte // IP header, TCP header, payload
	v6       bool
	ipHL     int // IP header length
	hdrLen   int // IP and TCP header lengths
	size     int // payload bytes per segment
	segs     int // segments in all
	src, dst netip.Addr
	// NoSum leaves the segments' TCP checksums out (host/tun's
	// Config.SkipChecksums): the field keeps what the super-packet had.
	NoSum bool
}

// NewSuper validates pkt as a TCP super-packet to be cut into segments of
// size payload bytes. Header lengths come from the packet. It keeps pkt,
// which must not change while the Super is used.
func NewSuper(pkt []byte, size int) (Super, error) {
	g, err := parseSuper(pkt)
	if err != nil {
		return Super{}, err
	}
	return g.sized(size)
}

// NewSuperMTU is NewSuper with the segment size that makes every segment but
// the last exactly mtu bytes long: what a stack with segmentation offload
// hands over (engine.Config.SegmentOffload).
func NewSuperMTU(pkt []byte, mtu int) (Super, error) {
	g, err := parseSuper(pkt)
	if err != nil {
		return Super{}, err
	}
	return g.sized(mtu - g.hdrLen)
}

// parseSuper validates pkt and fills in everything of a Super but the size.
func parseSuper(pkt []byte) (Super, error) {
	var g Super
	if len(pkt) == 0 {
		return g, ErrSuper
	}
	switch pkt[0] >> 4 {
	case 4:
		ip, err := wire.ParseIPv4(pkt)
		if err != nil || len(ip) != len(pkt) || ip.Protocol() != wire.ProtoTCP || ip.IsFragment() {
			return g, ErrSuper
		}
		g.ipHL = ip.HeaderLen()
		g.src, g.dst = ip.Src(), ip.Dst()
	case 6:
		ip, err := wire.ParseIPv6(pkt)
		if err != nil || len(ip) != len(pkt) || ip.NextHeader() != wire.ProtoTCP {
			return g, ErrSuper
		}
		g.v6 = true
		g.ipHL = wire.IPv6HeaderLen
		g.src, g.dst = ip.Src(), ip.Dst()
	default:
		return g, ErrSuper
	}
	t, err := wire.ParseTCP(pkt[g.ipHL:])
	if err != nil || t.Flags()&(wire.FlagSYN|wire.FlagRST) != 0 {
		return g, ErrSuper
	}
	g.hdrLen = g.ipHL + t.HeaderLen()
	g.pkt = pkt
	return g, nil
}

// sized returns g cut into segments of size payload bytes.
func (g Super) sized(size int) (Super, error) {
	if size <= 0 {
		return Super{}, ErrSuper
	}
	g.size = size
	g.segs = max(1, (len(g.pkt)-g.hdrLen+size-1)/size)
	return g, nil
}

// Segs returns how many segments g is cut into.
func (g *Super) Segs() int { return g.segs }

// IsIPv6 reports whether g is an IPv6 packet.
func (g *Super) IsIPv6() bool { return g.v6 }

// IPHeaderLen returns the length of g's IP header.
func (g *Super) IPHeaderLen() int { return g.ipHL }

// HeaderLen returns the length of g's IP and TCP headers.
func (g *Super) HeaderLen() int { return g.hdrLen }

// Size returns the payload bytes of every segment but the last.
func (g *Super) Size() int { return g.size }

// Addrs returns g's source and destination addresses.
func (g *Super) Addrs() (src, dst netip.Addr) { return g.src, g.dst }

// SegLen returns the length of segment i.
func (g *Super) SegLen(i int) int {
	payload := len(g.pkt) - g.hdrLen
	off := i * g.size
	return g.hdrLen + min(g.size, payload-off)
}

// Segment writes segment i into dst and returns its length, or 0 if dst is too
// short. Each segment gets the super-packet's headers with its own length,
// IPv4 ID (the first ID plus i), sequence number (plus i*size), flags (FIN
// and PSH on the last segment only, CWR on the first only, as tcp_gso_segment
// does) and full IP and TCP checksums (RFC 791, RFC 9293 §3.1; the TCP
// checksum is summed as the payload is copied, and left out with NoSum).
func (g *Super) Segment(i int, dst []byte) int {
	n := g.SegLen(i)
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
	if g.NoSum {
		copy(dst[g.hdrLen:n], payload)
		return n
	}
	tcp[16], tcp[17] = 0, 0
	hsum := wire.Checksum(tcp[:g.hdrLen-g.ipHL], wire.PseudoHeaderChecksum(wire.ProtoTCP, g.src, g.dst, len(tcp)))
	_, sum := wire.CopyChecksum(dst[g.hdrLen:n], payload, hsum)
	binary.BigEndian.PutUint16(tcp[16:], ^sum)
	return n
}
