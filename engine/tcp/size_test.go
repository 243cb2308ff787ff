package tcp

import (
	"testing"
	"unsafe"
)

// TestConnSize keeps an idle connection small (BENCH.md W3: at most 1.5 KB per
// idle connection pair, both ends and the host's share included).
func TestConnSize(t *testing.T) {
	if n := unsafe.Sizeof(Conn{}); n > 400 {
		t.Errorf("Conn is %d bytes; keep it at most 400", n)
	} else {
		t.Logf("Conn is %d bytes", n)
	}
}
