package wire

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

// TestChecksumVectors checks Checksum against sums worked out by hand.
func TestChecksumVectors(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		initial uint16
		want    uint16
	}{
		{"empty", "", 0, 0},
		{"empty keeps initial", "", 0x1234, 0x1234},
		{"empty keeps 0xffff", "", 0xffff, 0xffff},
		{"one byte is a high byte", "01", 0, 0x0100},
		{"one byte plus initial", "ff", 0x00ff, 0xffff},
		{"two bytes", "abcd", 0, 0xabcd},
		{"all zero", "0000000000000000000000", 0, 0},
		// RFC 1071 §3 numerical example: 0001 + f203 + f4f5 + f6f7 = 2ddf0 -> ddf2.
		{"RFC 1071 example", "0001f203f4f5f6f7", 0, 0xddf2},
		// The carry out of 0xffff + 0x0001 goes around: 0x0001.
		{"end-around carry", "ffff0001", 0, 0x0001},
		// A sum that is a multiple of 0xffff is 0xffff (one's-complement -0), never 0.
		{"negative zero", "ffff", 0, 0xffff},
		{"0x8000+0x7fff", "80007fff", 0, 0xffff},
		{"initial carries", "ffff", 0x0001, 0x0001},
		// A well-known IPv4 header, checksum field included: verifies as 0xffff.
		{"IPv4 header verifies", "4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7", 0, 0xffff},
		// The same header with the field zeroed sums to the complement of b861.
		{"IPv4 header sum", "4500 0073 0000 4000 4011 0000 c0a8 0001 c0a8 00c7", 0, 0x479e},
		// 64 bytes of 0xff: the 64-bit unrolled loop with every carry set.
		{"64 bytes 0xff", "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff" +
			"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", 0xffff, 0xffff},
		// 7 bytes: the 4-, 2- and 1-byte tails.
		{"seven bytes", "01020304050607", 0, 0x0102 + 0x0304 + 0x0506 + 0x0700},
	}
	for _, tt := range tests {
		b := hexBytes(t, tt.data)
		if got := Checksum(b, tt.initial); got != tt.want {
			t.Errorf("%s: Checksum(%x, %#04x) = %#04x, want %#04x", tt.name, b, tt.initial, got, tt.want)
		}
		if got := refSum(b, tt.initial); got != tt.want {
			t.Errorf("%s: reference sum = %#04x, want %#04x (the test's reference is wrong)", tt.name, got, tt.want)
		}
	}
}

// TestChecksumMatchesReference compares Checksum with the word-at-a-time reference
// on random buffers of every length from 0 to 300 at every start offset 0..7 (odd
// and even addresses), with random initial values, and on some large buffers.
func TestChecksumMatchesReference(t *testing.T) {
	r := newRand(1)
	backing := randBytes(r, 300+8)
	for n := 0; n <= 300; n++ {
		for off := 0; off < 8; off++ {
			b := backing[off : off+n]
			for _, initial := range []uint16{0, 0xffff, uint16(r.Uint32())} {
				if got, want := Checksum(b, initial), refSum(b, initial); got != want {
					t.Fatalf("len %d off %d initial %#04x: Checksum = %#04x, reference = %#04x", n, off, initial, got, want)
				}
			}
		}
	}
	// Buffers of all 0xff and all 0x00 stress the carries and the zero case.
	for n := 0; n <= 300; n++ {
		ff := make([]byte, n)
		for i := range ff {
			ff[i] = 0xff
		}
		zero := make([]byte, n)
		if got, want := Checksum(ff, 0), refSum(ff, 0); got != want {
			t.Fatalf("len %d of 0xff: Checksum = %#04x, reference = %#04x", n, got, want)
		}
		if got := Checksum(zero, 0); got != 0 {
			t.Fatalf("len %d of zeros: Checksum = %#04x, want 0", n, got)
		}
	}
	for _, n := range []int{1499, 1500, 9000, 9001, 65535, 65536, 1<<20 + 3} {
		b := randBytes(r, n+1)
		for off := range 2 {
			if got, want := Checksum(b[off:off+n], 0), refSum(b[off:off+n], 0); got != want {
				t.Fatalf("len %d off %d: Checksum = %#04x, reference = %#04x", n, off, got, want)
			}
		}
		for i := range b {
			b[i] = 0xff
		}
		if got, want := Checksum(b[:n], 0xffff), refSum(b[:n], 0xffff); got != want {
			t.Fatalf("len %d of 0xff: Checksum = %#04x, reference = %#04x", n, got, want)
		}
	}
}

// TestChecksumByteOrderIndependent checks the RFC 1071 §2(B) property the fast
// sum relies on: swapping the bytes of every word swaps the bytes of the sum.
func TestChecksumByteOrderIndependent(t *testing.T) {
	r := newRand(2)
	for n := 0; n <= 200; n += 2 {
		b := randBytes(r, n)
		s := make([]byte, n)
		for i := 0; i < n; i += 2 {
			s[i], s[i+1] = b[i+1], b[i]
		}
		got, want := Checksum(s, 0), Checksum(b, 0)
		if got != want<<8|want>>8 {
			t.Fatalf("len %d: swapped sum %#04x, want %#04x", n, got, want<<8|want>>8)
		}
	}
}

func TestPseudoHeaderChecksum(t *testing.T) {
	// 0a07+0001 + 0a07+0002 + 0006 + 0028 = 0x143f.
	if got := PseudoHeaderChecksum(ProtoTCP, v4a, v4b, 40); got != 0x143f {
		t.Errorf("IPv4 TCP pseudo-header sum = %#04x, want 0x143f", got)
	}
	// fd00+0001 + fd00+0002 + 0000+0028 + 0006 = 0x1fa31 -> 0xfa32.
	if got := PseudoHeaderChecksum(ProtoTCP, v6a, v6b, 40); got != 0xfa32 {
		t.Errorf("IPv6 TCP pseudo-header sum = %#04x, want 0xfa32", got)
	}
	// IPv6 carries a 32-bit upper-layer length: 0x00011170 adds 0x0001 + 0x1170.
	if got, want := PseudoHeaderChecksum(ProtoUDP, v6a, v6b, 70000), refPseudo(ProtoUDP, v6a, v6b, 70000); got != want {
		t.Errorf("IPv6 jumbo length: %#04x, want %#04x", got, want)
	}
	r := newRand(3)
	for i := range 2000 {
		var src, dst netip.Addr
		switch i % 3 {
		case 0:
			src, dst = netip.AddrFrom4([4]byte(randBytes(r, 4))), netip.AddrFrom4([4]byte(randBytes(r, 4)))
		case 1:
			src, dst = netip.AddrFrom16([16]byte(randBytes(r, 16))), netip.AddrFrom16([16]byte(randBytes(r, 16)))
		case 2: // IPv4-mapped IPv6 addresses use the IPv6 pseudo-header
			src = netip.AddrFrom16(netip.AddrFrom4([4]byte(randBytes(r, 4))).As16())
			dst = netip.AddrFrom16(netip.AddrFrom4([4]byte(randBytes(r, 4))).As16())
		}
		proto := []uint8{ProtoTCP, ProtoUDP, ProtoICMPv6, uint8(r.Uint32())}[i%4]
		length := int(r.Uint32N(65536))
		if src.Is6() && i%7 == 0 {
			length = int(r.Uint32())
		}
		if got, want := PseudoHeaderChecksum(proto, src, dst, length), refPseudo(proto, src, dst, length); got != want {
			t.Fatalf("PseudoHeaderChecksum(%d, %v, %v, %d) = %#04x, want %#04x", proto, src, dst, length, got, want)
		}
	}
	// The pseudo-header sum as Checksum's initial value equals summing the
	// pseudo-header bytes followed by the segment.
	seg := randBytes(r, 77)
	for _, p := range [][2]netip.Addr{{v4a, v4b}, {v6a, v6ll}} {
		ph := make([]byte, 0, 40)
		if p[0].Is4() {
			s, d := p[0].As4(), p[1].As4()
			ph = append(append(append(ph, s[:]...), d[:]...), 0, ProtoTCP, 0, byte(len(seg)))
		} else {
			s, d := p[0].As16(), p[1].As16()
			ph = append(append(append(ph, s[:]...), d[:]...), 0, 0, 0, byte(len(seg)), 0, 0, 0, ProtoTCP)
		}
		got := Checksum(seg, PseudoHeaderChecksum(ProtoTCP, p[0], p[1], len(seg)))
		if want := refSum(append(ph, seg...), 0); got != want {
			t.Errorf("%v: segment with pseudo-header = %#04x, want %#04x", p[0], got, want)
		}
	}
}

func TestChecksumCombine(t *testing.T) {
	tests := []struct{ a, b, want uint16 }{
		{0, 0, 0},
		{0, 0x1234, 0x1234},
		{0xffff, 0, 0xffff},
		{0xffff, 0xffff, 0xffff},
		{0x8000, 0x8000, 0x0001},
		{0xfffe, 0x0001, 0xffff},
		{0xfffe, 0x0002, 0x0001},
	}
	for _, tt := range tests {
		if got := ChecksumCombine(tt.a, tt.b); got != tt.want {
			t.Errorf("ChecksumCombine(%#04x, %#04x) = %#04x, want %#04x", tt.a, tt.b, got, tt.want)
		}
		if got := ChecksumCombine(tt.b, tt.a); got != tt.want {
			t.Errorf("ChecksumCombine(%#04x, %#04x) = %#04x, want %#04x", tt.b, tt.a, got, tt.want)
		}
	}
	// Splitting a buffer at any even offset and combining the two sums gives the
	// sum of the whole.
	r := newRand(4)
	for n := 0; n <= 200; n++ {
		b := randBytes(r, n)
		for cut := 0; cut <= n; cut += 2 {
			got := ChecksumCombine(Checksum(b[:cut], 0), Checksum(b[cut:], 0))
			if want := Checksum(b, 0); got != want {
				t.Fatalf("len %d cut %d: combined %#04x, want %#04x", n, cut, got, want)
			}
		}
	}
}

// TestChecksumUpdateRFC1624 is the example of RFC 1624 §4: the other header words
// sum to 0xcd7a and a word changes from 0x5555 to 0x3285. Eqn. 2 of RFC 1624 would
// give 0xffff (-0); the correct checksum, and what eqn. 3 gives, is 0x0000.
func TestChecksumUpdateRFC1624(t *testing.T) {
	if got := ChecksumUpdate(0xdd2f, 0x5555, 0x3285); got != 0x0000 {
		t.Fatalf("ChecksumUpdate(0xdd2f, 0x5555, 0x3285) = %#04x, want 0x0000", got)
	}
	// The same case on real bytes: word 0 changes, word 1 holds 0xcd7a, word 2 the checksum.
	h := []byte{0x55, 0x55, 0xcd, 0x7a, 0, 0}
	binary.BigEndian.PutUint16(h[4:], ^Checksum(h, 0))
	if got := binary.BigEndian.Uint16(h[4:]); got != 0xdd2f {
		t.Fatalf("initial checksum = %#04x, want 0xdd2f", got)
	}
	binary.BigEndian.PutUint16(h[0:], 0x3285)
	binary.BigEndian.PutUint16(h[4:], ChecksumUpdate(0xdd2f, 0x5555, 0x3285))
	if got := Checksum(h, 0); got != 0xffff {
		t.Fatalf("after the change and update the header must still verify; sum = %#04x", got)
	}
	h[4], h[5] = 0, 0
	if full := ^Checksum(h, 0); full != 0x0000 {
		t.Fatalf("full recomputation = %#04x, want 0x0000", full)
	}
	// No change keeps the field.
	for _, f := range []uint16{0, 1, 0x1234, 0xfffe, 0xffff} {
		if f == 0xffff {
			continue // 0xffff only arises for an all-zero header
		}
		if got := ChecksumUpdate(f, 0xabcd, 0xabcd); got != f {
			t.Errorf("ChecksumUpdate(%#04x, x, x) = %#04x, want unchanged", f, got)
		}
	}
}

// TestChecksumUpdateRandom compares the incremental updates with a full
// recomputation on random IPv4 headers and random TCP segments whose
// pseudo-header changes (the NAT rewrite case).
func TestChecksumUpdateRandom(t *testing.T) {
	r := newRand(5)
	full := func(h []byte) uint16 {
		h[10], h[11] = 0, 0
		c := ^Checksum(h, 0)
		binary.BigEndian.PutUint16(h[10:], c)
		return c
	}
	zeroCases := 0
	for i := range 20000 {
		h := randBytes(r, 20+4*int(r.Uint32N(11)))
		h[0] = 0x40 | byte(len(h)/4)
		field := full(h)
		w := 2 * int(r.Uint32N(uint32(len(h)/2)))
		if w == 10 {
			w = 8
		}
		old := binary.BigEndian.Uint16(h[w:])
		nw := uint16(r.Uint32())
		if i%5 == 0 {
			// Force the new word so that the header sums to 0xffff: the new
			// checksum is 0x0000, the case RFC 1624 eqn. 2 gets wrong.
			h[w], h[w+1] = 0, 0
			h[10], h[11] = 0, 0
			nw = ^Checksum(h, 0)
			binary.BigEndian.PutUint16(h[w:], old)
			binary.BigEndian.PutUint16(h[10:], field)
		}
		inc := ChecksumUpdate(field, old, nw)
		binary.BigEndian.PutUint16(h[w:], nw)
		want := full(h)
		if want == 0 {
			zeroCases++
		}
		if inc != want {
			t.Fatalf("header %x word %d %#04x->%#04x: ChecksumUpdate = %#04x, full = %#04x", h, w, old, nw, inc, want)
		}
		// 32-bit update of an address.
		a := 12 + 4*int(r.Uint32N(2))
		old32 := binary.BigEndian.Uint32(h[a:])
		new32 := r.Uint32()
		inc = ChecksumUpdate32(want, old32, new32)
		binary.BigEndian.PutUint32(h[a:], new32)
		if want = full(h); inc != want {
			t.Fatalf("header %x addr at %d %#08x->%#08x: ChecksumUpdate32 = %#04x, full = %#04x", h, a, old32, new32, inc, want)
		}
	}
	if zeroCases == 0 {
		t.Fatal("no update produced a 0x0000 checksum; the -0 corner was not exercised")
	}
	// TCP: rewrite the source address (pseudo-header) and the sequence number.
	for range 2000 {
		seg := randBytes(r, 20+int(r.Uint32N(100)))
		seg[12] = 5 << 4
		src := netip.AddrFrom4([4]byte(randBytes(r, 4)))
		dst := netip.AddrFrom4([4]byte(randBytes(r, 4)))
		SetTCPChecksum(seg, src, dst)
		field := binary.BigEndian.Uint16(seg[16:])
		nsrc := netip.AddrFrom4([4]byte(randBytes(r, 4)))
		o, n := src.As4(), nsrc.As4()
		field = ChecksumUpdate32(field, binary.BigEndian.Uint32(o[:]), binary.BigEndian.Uint32(n[:]))
		oldSeq, newSeq := binary.BigEndian.Uint32(seg[4:]), r.Uint32()
		field = ChecksumUpdate32(field, oldSeq, newSeq)
		binary.BigEndian.PutUint32(seg[4:], newSeq)
		SetTCPChecksum(seg, nsrc, dst)
		if want := binary.BigEndian.Uint16(seg[16:]); field != want {
			t.Fatalf("TCP rewrite: incremental %#04x, full %#04x", field, want)
		}
		if !TCP(seg).ChecksumValid(nsrc, dst) {
			t.Fatal("rewritten segment does not verify")
		}
	}
}
