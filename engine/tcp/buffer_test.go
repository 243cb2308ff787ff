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

// TestPoolTables: freed chunk tables come back for their own length only, at
// most max of them are kept, and no more than tableSizes lengths.
func TestPoolTables(t *testing.T) {
	p := NewPool(6)
	tables := map[int][]*chunk{}
	for _, n := range []int{3, 5, 3, 9, 11, 13} {
		tb := make([]*chunk, n)
		tables[n] = tb
		p.putTable(tb)
	}
	// Lengths 3, 5, 9 and 11 are kept (two of length 3); 13 is a fifth length.
	if p.ntab != 5 {
		t.Fatalf("%d tables held, want 5", p.ntab)
	}
	if got := p.getTable(13); len(got) != 13 || &got[0] == &tables[13][0] {
		t.Fatal("a table of a length the pool could not keep came back")
	}
	for _, n := range []int{3, 3, 5, 9, 11} {
		if got := p.getTable(n); len(got) != n {
			t.Fatalf("getTable(%d) returned %d slots", n, len(got))
		}
	}
	if p.ntab != 0 {
		t.Fatalf("%d tables held after taking them all, want 0", p.ntab)
	}
	// The emptied lists take new lengths; the bound holds.
	for i := range 10 {
		p.putTable(make([]*chunk, 20+i%2))
	}
	if p.ntab != 6 {
		t.Fatalf("%d tables held, want the bound 6", p.ntab)
	}
	if got := p.getTable(21); len(got) != 21 || p.ntab != 5 {
		t.Fatalf("getTable(21): %d slots, %d left", len(got), p.ntab)
	}
}
