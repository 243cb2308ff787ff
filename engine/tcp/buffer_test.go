package tcp

import (
	"testing"

	"github.com/tcpeng/tcpeng/engine/wire"
)

// TestRingReadSum checks the fused copy and sum across chunk boundaries, at odd
// and even offsets, against a copy and a separate sum.
func TestRingReadSum(t *testing.T) {
	pool := NewPool(8)
	var r ring
	r.setCap(3 * ChunkSize)
	data := make([]byte, 3*ChunkSize)
	for i := range data {
		data[i] = byte(i*131 + i>>8)
	}
	r.write(pool, 0, data)
	r.consume(pool, 7) // the head is odd and inside a chunk
	for _, tc := range []struct{ off, n int }{
		{0, 1}, {0, 1460}, {1, 1460}, {ChunkSize - 8, 17}, {ChunkSize - 7, 2 * ChunkSize}, {3, ChunkSize}, {0, 3*ChunkSize - 7},
	} {
		got := make([]byte, tc.n)
		sum := r.readSum(tc.off, got)
		want := data[7+tc.off : 7+tc.off+tc.n]
		if string(got) != string(want) {
			t.Fatalf("off %d n %d: bytes differ", tc.off, tc.n)
		}
		if w := wire.Checksum(want, 0); sum != w {
			t.Fatalf("off %d n %d: sum %#x, want %#x", tc.off, tc.n, sum, w)
		}
	}
}
