package wire

import (
	"encoding/binary"
	"net/netip"
)

// IP protocol numbers (IANA "Assigned Internet Protocol Numbers").
const (
	ProtoHopByHop = 0
	ProtoICMPv4   = 1
	ProtoTCP      = 6
	ProtoUDP      = 17
	ProtoRouting  = 43
	ProtoFragment = 44
	ProtoICMPv6   = 58
	ProtoNoNext   = 59
	ProtoDstOpts  = 60
)

// IPv4 sizes.
const (
	IPv4MinHeaderLen = 20
	IPv4MaxHeaderLen = 60
	IPv4MaxTotalLen  = 65535 // the 16-bit total length (RFC 791 §3.1)
)

// IPv4 flags (RFC 791 §3.1), as returned by IPv4.Flags.
const (
	IPv4DontFragment  = 0x2
	IPv4MoreFragments = 0x1
)

// IPv4 is a view of an IPv4 datagram (RFC 791): the header, its options, and the
// payload up to the total length.
type IPv4 []byte

// ParseIPv4 validates b as an IPv4 datagram and returns a view trimmed to its total
// length (bytes past it, such as Ethernet padding, are dropped from the view).
// It checks the version, that the header length is at least 20 bytes and within b,
// and that the total length is at least the header length and within b. It does
// not verify the header checksum; see ChecksumValid.
func ParseIPv4(b []byte) (IPv4, error) {
	tl, err := parseIPv4Header(b)
	if err != nil {
		return nil, err
	}
	if tl > len(b) {
		return nil, ErrTotalLength
	}
	return IPv4(b[:tl]), nil
}

// parseIPv4Header checks what both gates require: version, a header length of
// at least 20 bytes within b, a total length of at least the header. It returns
// the total length.
func parseIPv4Header(b []byte) (int, error) {
	if len(b) < IPv4MinHeaderLen {
		return 0, ErrShort
	}
	if b[0]>>4 != 4 {
		return 0, ErrVersion
	}
	hl := int(b[0]&0xf) * 4
	if hl < IPv4MinHeaderLen || hl > len(b) {
		return 0, ErrHeaderLength
	}
	tl := int(binary.BigEndian.Uint16(b[2:]))
	if tl < hl {
		return 0, ErrTotalLength
	}
	return tl, nil
}

// ParseIPv4Quoted validates the IPv4 datagram quoted in an ICMP error (RFC 792,
// RFC 1812 §4.3.2.3): the whole header must be present, but the payload may be
// cut short of the total length. The view ends where b ends or at the total
// length, whichever comes first.
func ParseIPv4Quoted(b []byte) (IPv4, error) {
	tl, err := parseIPv4Header(b)
	if err != nil {
		return nil, err
	}
	return IPv4(b[:min(tl, len(b))]), nil
}

// HeaderLen returns the header length in bytes, options included.
func (ip IPv4) HeaderLen() int { return int(ip[0]&0xf) * 4 }

// TOS returns the type-of-service byte (DSCP and ECN).
func (ip IPv4) TOS() uint8 { return ip[1] }

// TotalLen returns the total length field.
func (ip IPv4) TotalLen() int { return int(binary.BigEndian.Uint16(ip[2:])) }

// ID returns the identification field.
func (ip IPv4) ID() uint16 { return binary.BigEndian.Uint16(ip[4:]) }

// Flags returns the three flag bits (IPv4DontFragment, IPv4MoreFragments).
func (ip IPv4) Flags() uint8 { return ip[6] >> 5 }

// FragmentOffset returns the fragment offset in bytes.
func (ip IPv4) FragmentOffset() int { return int(binary.BigEndian.Uint16(ip[6:])&0x1fff) * 8 }

// IsFragment reports whether the datagram is a fragment: more fragments follow, or
// the offset is not zero.
func (ip IPv4) IsFragment() bool {
	return ip.Flags()&IPv4MoreFragments != 0 || ip.FragmentOffset() != 0
}

// TTL returns the time to live.
func (ip IPv4) TTL() uint8 { return ip[8] }

// Protocol returns the protocol of the payload.
func (ip IPv4) Protocol() uint8 { return ip[9] }

// Checksum returns the header checksum field.
func (ip IPv4) Checksum() uint16 { return binary.BigEndian.Uint16(ip[10:]) }

// ChecksumValid reports whether the header checksum verifies (RFC 791, RFC 1071).
func (ip IPv4) ChecksumValid() bool { return Checksum(ip[:ip.HeaderLen()], 0) == 0xffff }

// Src returns the source address.
func (ip IPv4) Src() netip.Addr { return netip.AddrFrom4([4]byte(ip[12:16])) }

// Dst returns the destination address.
func (ip IPv4) Dst() netip.Addr { return netip.AddrFrom4([4]byte(ip[16:20])) }

// Options returns the raw options (carried, not interpreted), possibly empty.
func (ip IPv4) Options() []byte { return ip[IPv4MinHeaderLen:ip.HeaderLen()] }

// Payload returns the bytes after the header, up to the total length (or the end
// of a quoted datagram).
func (ip IPv4) Payload() []byte { return ip[ip.HeaderLen():] }

// IPv4Header holds the fields PutIPv4 writes.
type IPv4Header struct {
	TOS            uint8
	TotalLen       int // header, options and payload
	ID             uint16
	Flags          uint8 // IPv4DontFragment, IPv4MoreFragments
	FragmentOffset int   // bytes, a multiple of 8
	TTL            uint8
	Protocol       uint8
	Src, Dst       netip.Addr // IPv4 addresses
	Options        []byte     // a multiple of 4 bytes, at most 40
}

// PutIPv4 writes h, its options and the header checksum into b and returns the
// header length.
func PutIPv4(b []byte, h IPv4Header) int {
	hl := IPv4MinHeaderLen + len(h.Options)
	_ = b[hl-1]
	b[0] = 4<<4 | uint8(hl/4)
	b[1] = h.TOS
	binary.BigEndian.PutUint16(b[2:], uint16(h.TotalLen))
	binary.BigEndian.PutUint16(b[4:], h.ID)
	binary.BigEndian.PutUint16(b[6:], uint16(h.Flags)<<13|uint16(h.FragmentOffset/8)&0x1fff)
	b[8] = h.TTL
	b[9] = h.Protocol
	b[10], b[11] = 0, 0
	s, d := h.Src.As4(), h.Dst.As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	copy(b[20:hl], h.Options)
	PutIPv4Checksum(b[:hl])
	return hl
}

// PutIPv4Checksum computes the header checksum of the IPv4 header b (exactly
// the header, options included) and writes it into the header's checksum
// field (RFC 791 §3.1), whatever the field held: after a field of the header
// changed. It does not allocate.
func PutIPv4Checksum(b []byte) {
	b[10], b[11] = 0, 0
	binary.BigEndian.PutUint16(b[10:], ^Checksum(b, 0))
}
