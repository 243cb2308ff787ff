package wire

import (
	"encoding/binary"
	"net/netip"
)

// UDPHeaderLen is the length of a UDP header.
const UDPHeaderLen = 8

// UDP is a view of a UDP datagram (RFC 768), trimmed to its length field.
type UDP []byte

// ParseUDP validates b as a UDP datagram: at least 8 bytes, and a length field of
// at least 8 that does not run past b. The view is trimmed to the length field.
func ParseUDP(b []byte) (UDP, error) {
	if len(b) < UDPHeaderLen {
		return nil, ErrShort
	}
	n := int(binary.BigEndian.Uint16(b[4:]))
	if n < UDPHeaderLen || n > len(b) {
		return nil, ErrTotalLength
	}
	return UDP(b[:n]), nil
}

// SrcPort returns the source port.
func (u UDP) SrcPort() uint16 { return binary.BigEndian.Uint16(u[0:]) }

// DstPort returns the destination port.
func (u UDP) DstPort() uint16 { return binary.BigEndian.Uint16(u[2:]) }

// Length returns the length field.
func (u UDP) Length() int { return int(binary.BigEndian.Uint16(u[4:])) }

// Checksum returns the checksum field; 0 over IPv4 means none was computed.
func (u UDP) Checksum() uint16 { return binary.BigEndian.Uint16(u[6:]) }

// ChecksumValid reports whether the checksum verifies against the pseudo-header of
// src and dst. Over IPv4 a zero field means no checksum and is valid (RFC 768);
// over IPv6 it is invalid (RFC 8200 §8.1).
func (u UDP) ChecksumValid(src, dst netip.Addr) bool {
	if u.Checksum() == 0 {
		return src.Is4()
	}
	return Checksum(u, PseudoHeaderChecksum(ProtoUDP, src, dst, len(u))) == 0xffff
}

// Payload returns the data after the header.
func (u UDP) Payload() []byte { return u[UDPHeaderLen:] }

// PutUDP writes a UDP header for a datagram of length bytes (header included) into
// b with a zero checksum and returns UDPHeaderLen. Call SetUDPChecksum once the
// payload is in place.
func PutUDP(b []byte, src, dst uint16, length int) int {
	_ = b[UDPHeaderLen-1]
	binary.BigEndian.PutUint16(b[0:], src)
	binary.BigEndian.PutUint16(b[2:], dst)
	binary.BigEndian.PutUint16(b[4:], uint16(length))
	b[6], b[7] = 0, 0
	return UDPHeaderLen
}

// SetUDPChecksum computes and stores the checksum of the datagram u. A computed
// value of 0 is sent as 0xffff (RFC 768).
func SetUDPChecksum(u []byte, src, dst netip.Addr) {
	u[6], u[7] = 0, 0
	c := ^Checksum(u, PseudoHeaderChecksum(ProtoUDP, src, dst, len(u)))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], c)
}
