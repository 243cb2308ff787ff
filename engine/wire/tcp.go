package wire

import (
	"encoding/binary"
	"net/netip"
)

// TCP header sizes.
const (
	TCPMinHeaderLen = 20
	TCPMaxHeaderLen = 60
	TCPMaxOptionLen = TCPMaxHeaderLen - TCPMinHeaderLen
)

// Flags are the TCP control bits (RFC 9293 §3.1, RFC 3168 §6.1 for ECE and CWR).
type Flags uint8

// The control bits, in header order from the least significant.
const (
	FlagFIN Flags = 1 << iota
	FlagSYN
	FlagRST
	FlagPSH
	FlagACK
	FlagURG
	FlagECE
	FlagCWR
)

var flagNames = [8]string{"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"}

// flagOrder is the order in which String lists flags: the way people say them
// ("SYN,ACK", "FIN,ACK", "PSH,ACK").
var flagOrder = [8]Flags{FlagSYN, FlagFIN, FlagRST, FlagPSH, FlagACK, FlagURG, FlagECE, FlagCWR}

// Has reports whether every bit of g is set in f.
func (f Flags) Has(g Flags) bool { return f&g == g }

// String lists the set flags joined by commas ("SYN,ACK"), or "none".
func (f Flags) String() string {
	if f == 0 {
		return "none"
	}
	var b [40]byte
	n := 0
	for _, g := range flagOrder {
		if f&g == 0 {
			continue
		}
		if n > 0 {
			b[n] = ','
			n++
		}
		for i := range 8 {
			if g == 1<<i {
				n += copy(b[n:], flagNames[i])
			}
		}
	}
	return string(b[:n])
}

// TCP is a view of a TCP segment (RFC 9293 §3.1): header, options and payload.
type TCP []byte

// ParseTCP validates b as a TCP segment: at least 20 bytes, and a data offset of
// at least 5 words that does not run past b. The segment's length is the length
// of b (the IP layer trims it). The checksum is not verified; see ChecksumValid.
func ParseTCP(b []byte) (TCP, error) {
	if len(b) < TCPMinHeaderLen {
		return nil, ErrShort
	}
	hl := int(b[12]>>4) * 4
	if hl < TCPMinHeaderLen || hl > len(b) {
		return nil, ErrHeaderLength
	}
	return TCP(b), nil
}

// SrcPort returns the source port.
func (t TCP) SrcPort() uint16 { return binary.BigEndian.Uint16(t[0:]) }

// DstPort returns the destination port.
func (t TCP) DstPort() uint16 { return binary.BigEndian.Uint16(t[2:]) }

// Seq returns the sequence number.
func (t TCP) Seq() Seq { return Seq(binary.BigEndian.Uint32(t[4:])) }

// Ack returns the acknowledgment number.
func (t TCP) Ack() Seq { return Seq(binary.BigEndian.Uint32(t[8:])) }

// HeaderLen returns the data offset in bytes.
func (t TCP) HeaderLen() int { return int(t[12]>>4) * 4 }

// Flags returns the control bits.
func (t TCP) Flags() Flags { return Flags(t[13]) }

// Window returns the window field as sent (not scaled).
func (t TCP) Window() uint16 { return binary.BigEndian.Uint16(t[14:]) }

// Checksum returns the checksum field.
func (t TCP) Checksum() uint16 { return binary.BigEndian.Uint16(t[16:]) }

// Urgent returns the urgent pointer.
func (t TCP) Urgent() uint16 { return binary.BigEndian.Uint16(t[18:]) }

// Options returns the raw options.
func (t TCP) Options() []byte { return t[TCPMinHeaderLen:t.HeaderLen()] }

// Payload returns the data after the header.
func (t TCP) Payload() []byte { return t[t.HeaderLen():] }

// ChecksumValid reports whether the checksum verifies against the pseudo-header of
// src and dst (RFC 9293 §3.1).
func (t TCP) ChecksumValid(src, dst netip.Addr) bool {
	return Checksum(t, PseudoHeaderChecksum(ProtoTCP, src, dst, len(t))) == 0xffff
}

// Segment returns what the state machine needs of the segment: sequence and
// acknowledgment numbers, window, flags, payload length and the parsed options.
// A malformed option ends the option walk; what came before it is kept.
func (t TCP) Segment() Segment {
	o, _ := ParseOptions(t.Options())
	return Segment{
		Seq:    t.Seq(),
		Ack:    t.Ack(),
		Window: t.Window(),
		Flags:  t.Flags(),
		Len:    len(t) - t.HeaderLen(),
		Opts:   o,
	}
}

// TCPHeader holds the fields PutTCP writes.
type TCPHeader struct {
	SrcPort, DstPort uint16
	Seq, Ack         Seq
	Flags            Flags
	Window           uint16
	Urgent           uint16
}

// PutTCP writes h and the options o (nil for none) into b with a zero checksum and
// returns the header length. Call SetTCPChecksum once the payload is in place.
func PutTCP(b []byte, h TCPHeader, o *Options) int {
	hl := TCPMinHeaderLen
	if o != nil {
		hl += o.Len()
	}
	_ = b[hl-1]
	binary.BigEndian.PutUint16(b[0:], h.SrcPort)
	binary.BigEndian.PutUint16(b[2:], h.DstPort)
	binary.BigEndian.PutUint32(b[4:], uint32(h.Seq))
	binary.BigEndian.PutUint32(b[8:], uint32(h.Ack))
	b[12] = uint8(hl/4) << 4
	b[13] = uint8(h.Flags)
	binary.BigEndian.PutUint16(b[14:], h.Window)
	b[16], b[17] = 0, 0
	binary.BigEndian.PutUint16(b[18:], h.Urgent)
	if o != nil {
		o.Put(b[TCPMinHeaderLen:hl])
	}
	return hl
}

// SetTCPChecksum computes and stores the checksum of the segment seg (header and
// payload), pseudo-header included.
func SetTCPChecksum(seg []byte, src, dst netip.Addr) {
	seg[16], seg[17] = 0, 0
	binary.BigEndian.PutUint16(seg[16:], ^Checksum(seg, PseudoHeaderChecksum(ProtoTCP, src, dst, len(seg))))
}

// Segment is the small value the TCP state machine sees of an arriving segment
// (the SEG.* variables of RFC 9293 §3.3.1).
type Segment struct {
	Seq    Seq
	Ack    Seq
	Window uint16 // as sent; the receiver applies the window scale
	Flags  Flags
	Len    int // payload bytes
	Opts   Options
}

// SeqLen returns SEG.LEN of RFC 9293 §3.3.1: the payload length plus one for SYN
// and one for FIN, the sequence space the segment occupies.
func (s *Segment) SeqLen() uint32 {
	n := uint32(s.Len)
	if s.Flags&FlagSYN != 0 {
		n++
	}
	if s.Flags&FlagFIN != 0 {
		n++
	}
	return n
}

// End returns the sequence number after the segment's last: SEG.SEQ+SEG.LEN.
func (s *Segment) End() Seq { return s.Seq.Add(s.SeqLen()) }
