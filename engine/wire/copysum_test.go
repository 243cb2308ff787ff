package wire

import (
	"fmt"
	"testing"
)

func TestCopyChecksum(t *testing.T) {
	r := newRand(5)
	for n := range 300 {
		for off := range 3 {
			src := randBytes(r, n+off)[off:]
			dst := make([]byte, n+1)
			init := uint16(r.Uint32())
			m, sum := CopyChecksum(dst, src, init)
			if m != n || string(dst[:n]) != string(src) {
				t.Fatalf("n=%d: copied %d, bytes differ", n, m)
			}
			if want := Checksum(src, init); sum != want {
				t.Fatalf("n=%d off=%d: sum %#x, want %#x", n, off, sum, want)
			}
		}
	}
}

func BenchmarkCopyChecksum(b *testing.B) {
	for _, n := range []int{1460, 64 << 10} {
		src, dst := make([]byte, n), make([]byte, n)
		b.Run(fmt.Sprint("fused-", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				CopyChecksum(dst, src, 0)
			}
		})
		b.Run(fmt.Sprint("copy+sum-", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				copy(dst, src)
				Checksum(dst, 0)
			}
		})
	}
}
