package siphash

import "testing"

// TestVectors checks the reference test vectors of the SipHash paper (Appendix A):
// key 00 01 .. 0f, messages 00 01 .. (n-1).
func TestVectors(t *testing.T) {
	var kb [16]byte
	for i := range kb {
		kb[i] = byte(i)
	}
	k := KeyFrom(kb)
	want := map[int]uint64{
		0:  0x726fdb47dd0e0e31,
		1:  0x74f839c593dc67fd,
		7:  0xab0200f58b01d137,
		8:  0x93f5f5799a932462,
		15: 0xa129ca6149be45e5,
		63: 0x958a324ceb064572,
	}
	msg := make([]byte, 64)
	for i := range msg {
		msg[i] = byte(i)
	}
	for n, w := range want {
		if got := Sum64(k, msg[:n]); got != w {
			t.Errorf("Sum64(len %d) = %#x, want %#x", n, got, w)
		}
	}
	if a := testing.AllocsPerRun(100, func() { Sum64(k, msg) }); a != 0 {
		t.Errorf("Sum64 allocates %v times", a)
	}
}
