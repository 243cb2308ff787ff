package wire

import "encoding/binary"

// sum64Split adds b to acc like sum64, without a carry chain: each 64-bit word
// is split into its two 32-bit halves, added to 64-bit accumulators that cannot
// overflow for any buffer under 2^32 words. WebAssembly has no carry flag, so
// there bits.Add64 costs several instructions and this form is faster; both
// give the same folded sum (RFC 1071 §2(C): deferred carries).
func sum64Split(b []byte, acc uint64) uint64 {
	var s0, s1 uint64
	for len(b) >= 32 {
		_ = b[31]
		w0 := binary.LittleEndian.Uint64(b[0:8])
		w1 := binary.LittleEndian.Uint64(b[8:16])
		w2 := binary.LittleEndian.Uint64(b[16:24])
		w3 := binary.LittleEndian.Uint64(b[24:32])
		s0 += (w0 & 0xffffffff) + (w0 >> 32) + (w1 & 0xffffffff) + (w1 >> 32)
		s1 += (w2 & 0xffffffff) + (w2 >> 32) + (w3 & 0xffffffff) + (w3 >> 32)
		b = b[32:]
	}
	for len(b) >= 4 {
		s0 += uint64(binary.LittleEndian.Uint32(b[0:4]))
		b = b[4:]
	}
	if len(b) >= 2 {
		s1 += uint64(binary.LittleEndian.Uint16(b[0:2]))
		b = b[2:]
	}
	if len(b) == 1 {
		s1 += uint64(b[0])
	}
	// Fold each accumulator to 32 bits before adding, so acc cannot overflow.
	s0 = (s0 & 0xffffffff) + (s0 >> 32)
	s1 = (s1 & 0xffffffff) + (s1 >> 32)
	acc = (acc & 0xffffffff) + (acc >> 32)
	return acc + s0 + s1
}
