package wire

import (
	"encoding/binary"
	"net/netip"
)

// ICMPHeaderLen is the length of the fixed part of ICMPv4 and ICMPv6 messages:
// type, code, checksum and four type-specific bytes.
const ICMPHeaderLen = 8

// ICMPv4 types (RFC 792, RFC 1191).
const (
	ICMPv4EchoReply      = 0
	ICMPv4DstUnreachable = 3
	ICMPv4Echo           = 8
	ICMPv4TimeExceeded   = 11
	ICMPv4ParamProblem   = 12
)

// ICMPv4 destination-unreachable codes used by tcpeng.
const (
	ICMPv4NetUnreachable   = 0
	ICMPv4HostUnreachable  = 1
	ICMPv4ProtoUnreachable = 2
	ICMPv4PortUnreachable  = 3
	ICMPv4FragNeeded       = 4 // RFC 1191: the next-hop MTU is in the header
)

// ICMPv6 types (RFC 4443).
const (
	ICMPv6DstUnreachable = 1
	ICMPv6PacketTooBig   = 2
	ICMPv6TimeExceeded   = 3
	ICMPv6ParamProblem   = 4
	ICMPv6EchoRequest    = 128
	ICMPv6EchoReply      = 129
)

// ICMPv4 is a view of an ICMPv4 message (RFC 792).
type ICMPv4 []byte

// ParseICMPv4 validates b as an ICMPv4 message of at least ICMPHeaderLen bytes.
// The checksum is not verified; see ChecksumValid.
func ParseICMPv4(b []byte) (ICMPv4, error) {
	if len(b) < ICMPHeaderLen {
		return nil, ErrShort
	}
	return ICMPv4(b), nil
}

// Type returns the message type.
func (m ICMPv4) Type() uint8 { return m[0] }

// Code returns the message code.
func (m ICMPv4) Code() uint8 { return m[1] }

// Checksum returns the checksum field.
func (m ICMPv4) Checksum() uint16 { return binary.BigEndian.Uint16(m[2:]) }

// ChecksumValid reports whether the checksum over the whole message verifies.
func (m ICMPv4) ChecksumValid() bool { return Checksum(m, 0) == 0xffff }

// EchoID returns the identifier of an echo or echo reply.
func (m ICMPv4) EchoID() uint16 { return binary.BigEndian.Uint16(m[4:]) }

// EchoSeq returns the sequence number of an echo or echo reply.
func (m ICMPv4) EchoSeq() uint16 { return binary.BigEndian.Uint16(m[6:]) }

// MTU returns the next-hop MTU of a fragmentation-needed message (RFC 1191 §4);
// 0 from a router that predates RFC 1191.
func (m ICMPv4) MTU() uint16 { return binary.BigEndian.Uint16(m[6:]) }

// Pointer returns the octet pointer of a parameter-problem message.
func (m ICMPv4) Pointer() uint8 { return m[4] }

// Body returns the bytes after the fixed header: echo data, or the quoted datagram
// of an error message.
func (m ICMPv4) Body() []byte { return m[ICMPHeaderLen:] }

// IsError reports whether the type is an error message that quotes a datagram
// and that tcpeng acts on. Redirect (5) and the deprecated Source Quench (4,
// RFC 6633) quote one too but are not reported.
func (m ICMPv4) IsError() bool {
	switch m.Type() {
	case ICMPv4DstUnreachable, ICMPv4TimeExceeded, ICMPv4ParamProblem:
		return true
	}
	return false
}

// Quoted returns the datagram quoted by an error message as a view (its payload
// may be cut short; RFC 792 quotes the header and 8 bytes).
func (m ICMPv4) Quoted() (IPv4, error) { return ParseIPv4Quoted(m.Body()) }

// PutICMPv4 writes an ICMPv4 header with the four type-specific bytes rest into b,
// followed by nothing: the caller copies the body after it and then calls
// SetICMPv4Checksum. It returns ICMPHeaderLen.
func PutICMPv4(b []byte, typ, code uint8, rest uint32) int {
	_ = b[ICMPHeaderLen-1]
	b[0], b[1], b[2], b[3] = typ, code, 0, 0
	binary.BigEndian.PutUint32(b[4:], rest)
	return ICMPHeaderLen
}

// SetICMPv4Checksum computes and stores the checksum of the whole message m.
func SetICMPv4Checksum(m []byte) {
	m[2], m[3] = 0, 0
	binary.BigEndian.PutUint16(m[2:], ^Checksum(m, 0))
}

// ICMPv6 is a view of an ICMPv6 message (RFC 4443).
type ICMPv6 []byte

// ParseICMPv6 validates b as an ICMPv6 message of at least ICMPHeaderLen bytes.
// The checksum is not verified; see ChecksumValid.
func ParseICMPv6(b []byte) (ICMPv6, error) {
	if len(b) < ICMPHeaderLen {
		return nil, ErrShort
	}
	return ICMPv6(b), nil
}

// Type returns the message type.
func (m ICMPv6) Type() uint8 { return m[0] }

// Code returns the message code.
func (m ICMPv6) Code() uint8 { return m[1] }

// Checksum returns the checksum field.
func (m ICMPv6) Checksum() uint16 { return binary.BigEndian.Uint16(m[2:]) }

// ChecksumValid reports whether the checksum, which covers the IPv6 pseudo-header
// (RFC 4443 §2.3), verifies for the given addresses.
func (m ICMPv6) ChecksumValid(src, dst netip.Addr) bool {
	return Checksum(m, PseudoHeaderChecksum(ProtoICMPv6, src, dst, len(m))) == 0xffff
}

// EchoID returns the identifier of an echo request or reply.
func (m ICMPv6) EchoID() uint16 { return binary.BigEndian.Uint16(m[4:]) }

// EchoSeq returns the sequence number of an echo request or reply.
func (m ICMPv6) EchoSeq() uint16 { return binary.BigEndian.Uint16(m[6:]) }

// MTU returns the MTU of a packet-too-big message (RFC 4443 §3.2).
func (m ICMPv6) MTU() uint32 { return binary.BigEndian.Uint32(m[4:]) }

// Pointer returns the pointer of a parameter-problem message (RFC 4443 §3.4).
func (m ICMPv6) Pointer() uint32 { return binary.BigEndian.Uint32(m[4:]) }

// Body returns the bytes after the fixed header.
func (m ICMPv6) Body() []byte { return m[ICMPHeaderLen:] }

// IsError reports whether the type is an error message (types below 128).
func (m ICMPv6) IsError() bool { return m.Type() < 128 }

// Quoted returns the packet quoted by an error message as a view (its payload may
// be cut short).
func (m ICMPv6) Quoted() (IPv6, error) { return ParseIPv6Quoted(m.Body()) }

// PutICMPv6 writes an ICMPv6 header like PutICMPv4; the checksum is set by
// SetICMPv6Checksum once the body is in place. It returns ICMPHeaderLen.
func PutICMPv6(b []byte, typ, code uint8, rest uint32) int { return PutICMPv4(b, typ, code, rest) }

// SetICMPv6Checksum computes and stores the checksum of the whole message m,
// pseudo-header included.
func SetICMPv6Checksum(m []byte, src, dst netip.Addr) {
	m[2], m[3] = 0, 0
	binary.BigEndian.PutUint16(m[2:], ^Checksum(m, PseudoHeaderChecksum(ProtoICMPv6, src, dst, len(m))))
}
