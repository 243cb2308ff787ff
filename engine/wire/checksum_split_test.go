package wire

import (
	"fmt"
	"testing"
)

// TestSum64Split checks the carry-free sum against the reference on every
// length and offset, and on all-ones buffers (the worst case for carries).
func TestSum64Split(t *testing.T) {
	r := newRand(11)
	for n := range 600 {
		for off := range 4 {
			b := randBytes(r, n+off)[off:]
			init := r.Uint64() >> uint(r.IntN(64))
			if got, want := fold(sum64Split(b, init)), fold(sum64Carry(b, init)); got != want {
				t.Fatalf("n=%d off=%d: %#x, want %#x", n, off, got, want)
			}
		}
	}
	ones := make([]byte, 1<<20+3)
	for i := range ones {
		ones[i] = 0xff
	}
	if got, want := fold(sum64Split(ones, ^uint64(0))), fold(sum64Carry(ones, ^uint64(0))); got != want {
		t.Fatalf("all ones: %#x, want %#x", got, want)
	}
}

func BenchmarkSum64(b *testing.B) {
	for _, n := range []int{1500, 64 << 10} {
		buf := make([]byte, n)
		b.Run(fmt.Sprint("carry-", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				sum64Carry(buf, 0)
			}
		})
		b.Run(fmt.Sprint("split-", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				sum64Split(buf, 0)
			}
		})
	}
}
