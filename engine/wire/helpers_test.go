package wire

import (
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

// refSum is the reference RFC 1071 sum the optimized Checksum is checked against:
// the data read as 16-bit big-endian words, one at a time, with the end-around
// carry folded in after every addition; a trailing odd byte is the high byte of
// a last word padded with zero. It returns the folded sum, not its complement.
func refSum(b []byte, initial uint16) uint16 {
	s := uint32(initial)
	for i := 0; i < len(b); i += 2 {
		w := uint32(b[i]) << 8
		if i+1 < len(b) {
			w |= uint32(b[i+1])
		}
		s += w
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// refPseudo builds the pseudo-header as bytes (RFC 9293 §3.1 for IPv4, RFC 8200
// §8.1 for IPv6) and sums it with refSum.
func refPseudo(proto uint8, src, dst netip.Addr, length int) uint16 {
	var b []byte
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		b = append(b, s[:]...)
		b = append(b, d[:]...)
		b = append(b, 0, proto, byte(length>>8), byte(length))
	} else {
		s, d := src.As16(), dst.As16()
		b = append(b, s[:]...)
		b = append(b, d[:]...)
		b = append(b, byte(length>>24), byte(length>>16), byte(length>>8), byte(length), 0, 0, 0, proto)
	}
	return refSum(b, 0)
}

// hexBytes decodes hex digits, ignoring white space; it fails the test on
// anything else.
func hexBytes(t testing.TB, s string) []byte {
	t.Helper()
	s = strings.Join(strings.Fields(s), "")
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// newRand returns a deterministic generator so that failures reproduce.
func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)) }

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

var (
	v4a = netip.MustParseAddr("10.7.0.1")
	v4b = netip.MustParseAddr("10.7.0.2")
	v6a = netip.MustParseAddr("fd00::1")
	v6b = netip.MustParseAddr("fd00::2")
	// v6ll has every byte different, to catch swapped or misplaced words.
	v6ll = netip.MustParseAddr("fe80::1122:33ff:fe44:5566")
)

var (
	macA = MAC{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}
	macB = MAC{0x02, 0x00, 0x00, 0x00, 0x00, 0x02}
)

// wantErr fails unless err is want (errors.Is); want nil means no error.
func wantErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("%s: unexpected error %v", what, err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("%s: error = %v, want %v", what, err, want)
	}
}

// buildIPv4TCP returns an IPv4 datagram carrying a TCP segment with the given
// options and payload, both checksums set.
func buildIPv4TCP(h TCPHeader, o *Options, payload []byte) []byte {
	b := make([]byte, 20+60+len(payload))
	tl := 20 + TCPMinHeaderLen
	if o != nil {
		tl += o.Len()
	}
	tl += len(payload)
	b = b[:tl]
	n := PutTCP(b[20:], h, o)
	copy(b[20+n:], payload)
	SetTCPChecksum(b[20:], v4a, v4b)
	PutIPv4(b, IPv4Header{TotalLen: tl, ID: 0x1c46, Flags: IPv4DontFragment, TTL: 64, Protocol: ProtoTCP, Src: v4a, Dst: v4b})
	return b
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
