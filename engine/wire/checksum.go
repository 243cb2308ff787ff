package wire

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// Checksum returns the 16-bit one's-complement sum (RFC 1071) of b added to
// initial, folded but not complemented. A header's checksum field holds the
// complement of the sum over everything it covers, so a header verifies when
// Checksum over it (field included) is 0xffff.
//
// The sum is taken on 64-bit little-endian words with the carries kept
// (RFC 1071 §2(B): the sum is independent of byte order, so the result only
// needs one byte swap at the end) and eight words per loop iteration.
// It does not allocate.
func Checksum(b []byte, initial uint16) uint16 {
	return bits.ReverseBytes16(fold(sum64(b, uint64(bits.ReverseBytes16(initial)))))
}

// sum64 adds b, read as little-endian words, to acc with end-around carries kept in
// the 64-bit accumulator. A trailing odd byte is the high-order byte of a big-endian
// 16-bit word, which in little-endian lane order is the low byte.
func sum64(b []byte, acc uint64) uint64 {
	if wasmForm {
		return sum64Split(b, acc)
	}
	return sum64Carry(b, acc)
}

// sum64Carry is sum64 with the carries kept by bits.Add64.
func sum64Carry(b []byte, acc uint64) uint64 {
	var c uint64
	for len(b) >= 64 {
		_ = b[63]
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[0:8]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[8:16]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[16:24]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[24:32]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[32:40]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[40:48]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[48:56]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[56:64]), c)
		b = b[64:]
	}
	for len(b) >= 8 {
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[0:8]), c)
		b = b[8:]
	}
	if len(b) >= 4 {
		acc, c = bits.Add64(acc, uint64(binary.LittleEndian.Uint32(b[0:4])), c)
		b = b[4:]
	}
	if len(b) >= 2 {
		acc, c = bits.Add64(acc, uint64(binary.LittleEndian.Uint16(b[0:2])), c)
		b = b[2:]
	}
	if len(b) == 1 {
		acc, c = bits.Add64(acc, uint64(b[0]), c)
	}
	acc, c = bits.Add64(acc, 0, c)
	return acc + c // c is 1 only if acc wrapped to 0, so this cannot overflow
}

// fold reduces a 64-bit one's-complement accumulator to 16 bits.
func fold(s uint64) uint16 {
	s = (s & 0xffffffff) + (s >> 32)
	s = (s & 0xffffffff) + (s >> 32)
	s = (s & 0xffff) + (s >> 16)
	s = (s & 0xffff) + (s >> 16)
	s = (s & 0xffff) + (s >> 16)
	return uint16(s)
}

// ChecksumCombine returns the one's-complement sum of two partial sums. Both must
// cover pieces that start at an even offset of the checksummed data.
func ChecksumCombine(a, b uint16) uint16 {
	s := uint32(a) + uint32(b)
	return uint16(s + s>>16)
}

// ChecksumUpdate returns a header checksum field value after one 16-bit word it
// covers changes from old to new, without summing the header again:
// RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), which avoids the -0 result of eqn. 2.
func ChecksumUpdate(field, old, new uint16) uint16 {
	return ^ChecksumCombine(ChecksumCombine(^field, ^old), new)
}

// ChecksumUpdate32 is ChecksumUpdate for a 32-bit word (an IPv4 address, a sequence
// number), applied as two 16-bit updates.
func ChecksumUpdate32(field uint16, old, new uint32) uint16 {
	field = ChecksumUpdate(field, uint16(old>>16), uint16(new>>16))
	return ChecksumUpdate(field, uint16(old), uint16(new))
}

// PseudoHeaderChecksum returns the sum of the pseudo-header that TCP, UDP and
// ICMPv6 checksums cover: for IPv4 (RFC 9293 §3.1, RFC 768) source, destination,
// zero, protocol and the upper-layer length; for IPv6 (RFC 8200 §8.1) source,
// destination, the 32-bit upper-layer length and the next header. src and dst
// must be both IPv4 or both IPv6 (an IPv4-mapped IPv6 address counts as IPv6).
func PseudoHeaderChecksum(proto uint8, src, dst netip.Addr, length int) uint16 {
	var acc uint64
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		acc = uint64(binary.BigEndian.Uint16(s[0:])) + uint64(binary.BigEndian.Uint16(s[2:])) +
			uint64(binary.BigEndian.Uint16(d[0:])) + uint64(binary.BigEndian.Uint16(d[2:]))
	} else {
		s, d := src.As16(), dst.As16()
		for i := 0; i < 16; i += 2 {
			acc += uint64(binary.BigEndian.Uint16(s[i:])) + uint64(binary.BigEndian.Uint16(d[i:]))
		}
		acc += uint64(uint32(length) >> 16)
	}
	acc += uint64(proto) + uint64(uint16(length))
	return fold(acc)
}
