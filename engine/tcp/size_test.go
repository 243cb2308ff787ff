package tcp

import (
	"testing"
	"unsafe"
)

// TestConnSize keeps an idle connection small (BENCH.md W3: at most 1.5 KB per
// idle connection pair, both ends and the host's share included). A Conn is
// allocated alone, so what counts is Go's size class: 352 bytes is one; at
// 360 (a field misplaced, leaving holes for alignment) it took 384, and
// host's TestIdleConnMemory measured 1540 bytes a pair instead of 1450.
func TestConnSize(t *testing.T) {
	if n := unsafe.Sizeof(Conn{}); n > 352 {
		t.Errorf("Conn is %d bytes; keep it at most 352 (a size class of Go's allocator)", n)
	} else {
		t.Logf("Conn is %d bytes", n)
	}
}
