package wire

import (
	"encoding/binary"
	"math/bits"
)

// CopyChecksum copies src into dst (as copy does) and returns the one's-complement
// sum of the bytes copied added to initial, as Checksum(src[:n], initial) would,
// in one pass over the data. It returns the number of bytes copied.
func CopyChecksum(dst, src []byte, initial uint16) (int, uint16) {
	n := min(len(dst), len(src))
	dst, src = dst[:n], src[:n]
	if wasmForm {
		copy(dst, src)
		return n, Checksum(dst, initial)
	}
	acc := uint64(bits.ReverseBytes16(initial))
	var c uint64
	for len(src) >= 32 && len(dst) >= 32 {
		a0 := binary.LittleEndian.Uint64(src[0:8])
		a1 := binary.LittleEndian.Uint64(src[8:16])
		a2 := binary.LittleEndian.Uint64(src[16:24])
		a3 := binary.LittleEndian.Uint64(src[24:32])
		binary.LittleEndian.PutUint64(dst[0:8], a0)
		binary.LittleEndian.PutUint64(dst[8:16], a1)
		binary.LittleEndian.PutUint64(dst[16:24], a2)
		binary.LittleEndian.PutUint64(dst[24:32], a3)
		acc, c = bits.Add64(acc, a0, c)
		acc, c = bits.Add64(acc, a1, c)
		acc, c = bits.Add64(acc, a2, c)
		acc, c = bits.Add64(acc, a3, c)
		src, dst = src[32:], dst[32:]
	}
	acc, c = bits.Add64(acc, 0, c)
	acc += c
	copy(dst, src)
	return n, bits.ReverseBytes16(fold(sum64(src, acc)))
}
