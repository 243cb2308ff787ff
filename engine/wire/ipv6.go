package wire

import (
	"encoding/binary"
	"net/netip"
)

// IPv6 header sizes and limits.
const (
	IPv6HeaderLen         = 40
	IPv6FragmentHeaderLen = 8
	// MaxIPv6ExtHeaders bounds the extension-header walk. RFC 8200 §4.1 recommends
	// at most one of each kind (destination options twice); 8 leaves room for that
	// and refuses chains built to make a receiver loop.
	MaxIPv6ExtHeaders = 8
)

// IPv6 is a view of an IPv6 packet (RFC 8200): the fixed header and the payload up
// to the payload length.
type IPv6 []byte

// ParseIPv6 validates b as an IPv6 packet and returns a view trimmed to the fixed
// header plus the payload length. A payload length of zero is taken literally
// (tcpeng does not accept RFC 2675 jumbograms).
func ParseIPv6(b []byte) (IPv6, error) {
	if len(b) < IPv6HeaderLen {
		return nil, ErrShort
	}
	if b[0]>>4 != 6 {
		return nil, ErrVersion
	}
	pl := int(binary.BigEndian.Uint16(b[4:]))
	if IPv6HeaderLen+pl > len(b) {
		return nil, ErrTotalLength
	}
	return IPv6(b[:IPv6HeaderLen+pl]), nil
}

// ParseIPv6Quoted validates the IPv6 packet quoted in an ICMPv6 error (RFC 4443
// §3): the fixed header must be present, the payload may be cut short.
func ParseIPv6Quoted(b []byte) (IPv6, error) {
	if len(b) < IPv6HeaderLen {
		return nil, ErrShort
	}
	if b[0]>>4 != 6 {
		return nil, ErrVersion
	}
	pl := int(binary.BigEndian.Uint16(b[4:]))
	return IPv6(b[:min(IPv6HeaderLen+pl, len(b))]), nil
}

// TrafficClass returns the traffic class (DSCP and ECN).
func (ip IPv6) TrafficClass() uint8 { return uint8(binary.BigEndian.Uint16(ip[0:]) >> 4) }

// FlowLabel returns the 20-bit flow label.
func (ip IPv6) FlowLabel() uint32 { return binary.BigEndian.Uint32(ip[0:]) & 0xfffff }

// PayloadLen returns the payload length field.
func (ip IPv6) PayloadLen() int { return int(binary.BigEndian.Uint16(ip[4:])) }

// NextHeader returns the type of the header after the fixed header.
func (ip IPv6) NextHeader() uint8 { return ip[6] }

// HopLimit returns the hop limit.
func (ip IPv6) HopLimit() uint8 { return ip[7] }

// Src returns the source address.
func (ip IPv6) Src() netip.Addr { return netip.AddrFrom16([16]byte(ip[8:24])) }

// Dst returns the destination address.
func (ip IPv6) Dst() netip.Addr { return netip.AddrFrom16([16]byte(ip[24:40])) }

// Payload returns the bytes after the fixed header (extension headers included).
func (ip IPv6) Payload() []byte { return ip[IPv6HeaderLen:] }

// IPv6Headers is the result of walking an IPv6 packet's extension headers.
// Offsets are from the start of the packet; 0 means the header is absent.
type IPv6Headers struct {
	Proto    uint8 // the upper-layer protocol (or ProtoNoNext)
	Offset   int   // where the upper-layer header starts
	HopByHop int   // offset of the hop-by-hop options header
	Routing  int   // offset of the routing header
	DstOpts  int   // offset of the last destination options header
	Fragment int   // offset of the fragment header
	// The fragment header's fields, meaningful when Fragment is not 0.
	FragmentOffset int // bytes
	MoreFragments  bool
	FragmentID     uint32
}

// IsFragment reports whether the packet carries a fragment header whose offset is
// not zero or that says more fragments follow. (An atomic fragment, RFC 8021, is
// not a fragment.)
func (h *IPv6Headers) IsFragment() bool {
	return h.Fragment != 0 && (h.FragmentOffset != 0 || h.MoreFragments)
}

// Walk follows the chain of extension headers (hop-by-hop, routing, fragment,
// destination options) to the upper-layer header, visiting at most
// MaxIPv6ExtHeaders of them. Every extension header must lie within the packet
// (ErrHeaderLength), hop-by-hop may only come first (ErrExtHeaderOrder), and a
// longer chain fails with ErrTooManyHeaders. After a fragment header with a
// non-zero offset the walk stops: what follows is not a header. Any protocol
// other than the four extension headers ends the walk as the upper layer.
func (ip IPv6) Walk() (IPv6Headers, error) {
	var h IPv6Headers
	next, off := ip.NextHeader(), IPv6HeaderLen
	for i := 0; ; i++ {
		switch next {
		case ProtoHopByHop, ProtoRouting, ProtoFragment, ProtoDstOpts:
		default:
			h.Proto, h.Offset = next, off
			return h, nil
		}
		if i == MaxIPv6ExtHeaders {
			return h, ErrTooManyHeaders
		}
		if len(ip) < off+8 {
			return h, ErrHeaderLength
		}
		n, cur := 8, next
		switch cur {
		case ProtoHopByHop:
			if off != IPv6HeaderLen {
				return h, ErrExtHeaderOrder
			}
			h.HopByHop = off
			n = (int(ip[off+1]) + 1) * 8
		case ProtoRouting:
			h.Routing = off
			n = (int(ip[off+1]) + 1) * 8
		case ProtoDstOpts:
			h.DstOpts = off
			n = (int(ip[off+1]) + 1) * 8
		case ProtoFragment:
			h.Fragment = off
			fo := binary.BigEndian.Uint16(ip[off+2:])
			h.FragmentOffset = int(fo>>3) * 8
			h.MoreFragments = fo&1 != 0
			h.FragmentID = binary.BigEndian.Uint32(ip[off+4:])
		}
		if len(ip) < off+n {
			return h, ErrHeaderLength
		}
		next, off = ip[off], off+n
		if cur == ProtoFragment && h.FragmentOffset != 0 {
			// RFC 8200 §4.5: a non-first fragment carries the rest of the
			// fragmentable part; its bytes are not headers to walk.
			h.Proto, h.Offset = next, off
			return h, nil
		}
	}
}

// IPv6Header holds the fields PutIPv6 writes.
type IPv6Header struct {
	TrafficClass uint8
	FlowLabel    uint32
	PayloadLen   int
	NextHeader   uint8
	HopLimit     uint8
	Src, Dst     netip.Addr
}

// PutIPv6 writes the fixed header h into b and returns IPv6HeaderLen.
func PutIPv6(b []byte, h IPv6Header) int {
	_ = b[IPv6HeaderLen-1]
	binary.BigEndian.PutUint32(b[0:], 6<<28|uint32(h.TrafficClass)<<20|h.FlowLabel&0xfffff)
	binary.BigEndian.PutUint16(b[4:], uint16(h.PayloadLen))
	b[6] = h.NextHeader
	b[7] = h.HopLimit
	s, d := h.Src.As16(), h.Dst.As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
	return IPv6HeaderLen
}

// PutIPv6Fragment writes a fragment header (RFC 8200 §4.5) into b and returns
// IPv6FragmentHeaderLen. offset is in bytes and must be a multiple of 8.
func PutIPv6Fragment(b []byte, next uint8, offset int, more bool, id uint32) int {
	_ = b[IPv6FragmentHeaderLen-1]
	b[0], b[1] = next, 0
	fo := uint16(offset/8) << 3
	if more {
		fo |= 1
	}
	binary.BigEndian.PutUint16(b[2:], fo)
	binary.BigEndian.PutUint32(b[4:], id)
	return IPv6FragmentHeaderLen
}
