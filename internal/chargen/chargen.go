// Package chargen holds the character generator pattern of RFC 864, which
// `tcpeng serve --chargen` and the TUN benchmark's gVisor server both send.
package chargen

// Period is the length of the pattern: line i is 72 characters of the 95
// printable ASCII characters starting at the i-th, then CR LF, and the
// pattern repeats every 95 lines.
const Period = 95 * 74

// Data holds whole periods of the pattern (18 of them, about 126 KB), so that
// writing it again and again continues the pattern. It must not be modified.
var Data = func() []byte {
	b := make([]byte, 0, 18*Period)
	for len(b) < 18*Period {
		i := len(b) / 74 % 95
		for j := range 72 {
			b = append(b, byte(' '+(i+j)%95))
		}
		b = append(b, '\r', '\n')
	}
	return b
}()
