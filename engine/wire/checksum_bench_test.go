package wire

import (
	"fmt"
	"testing"
)

// BenchmarkChecksum reports the one's-complement sum's throughput (GB/s in the
// B/s column) for a full Ethernet-MTU packet and a 64 KiB super-packet.
func BenchmarkChecksum(b *testing.B) {
	for _, n := range []int{1500, 64 << 10} {
		buf := make([]byte, n)
		for i := range buf {
			buf[i] = byte(i * 7)
		}
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			var s uint16
			for b.Loop() {
				s = Checksum(buf, s)
			}
		})
	}
}
