package wire

import (
	"bytes"
	"net/netip"
	"strconv"
	"testing"
)

func TestIPv4(t *testing.T) {
	tests := []struct {
		name      string
		pkt       string
		viewLen   int
		hdrLen    int
		tos       uint8
		totalLen  int
		id        uint16
		flags     uint8
		fragOff   int
		fragment  bool
		ttl       uint8
		proto     uint8
		checksum  uint16
		src, dst  string
		options   string
		payload   string
		checkedOK bool
	}{
		{
			name: "UDP with Ethernet padding after it",
			pkt: "4500 001c 1c46 4000 4011 0a7b 0a070001 0a070002 3039 0035 0008 0000" +
				"000000000000000000000000000000000000",
			viewLen: 28, hdrLen: 20, totalLen: 28, id: 0x1c46, flags: IPv4DontFragment, ttl: 64,
			proto: ProtoUDP, checksum: 0x0a7b, src: "10.7.0.1", dst: "10.7.0.2",
			payload: "3039 0035 0008 0000", checkedOK: true,
		},
		{
			name:    "options, a non-first fragment with more to come",
			pkt:     "4600 0020 abcd 20b9 0111 d735 0a070001 0a070002 01010000 0102030405060708",
			viewLen: 32, hdrLen: 24, totalLen: 32, id: 0xabcd, flags: IPv4MoreFragments, fragOff: 1480,
			fragment: true, ttl: 1, proto: ProtoUDP, checksum: 0xd735, src: "10.7.0.1", dst: "10.7.0.2",
			options: "01010000", payload: "0102030405060708", checkedOK: true,
		},
		{
			name:    "header only, extreme field values",
			pkt:     "45b8 0014 ffff 0000 ff06 bb2c ffffffff 00000000",
			viewLen: 20, hdrLen: 20, tos: 0xb8, totalLen: 20, id: 0xffff, ttl: 255,
			proto: ProtoTCP, checksum: 0xbb2c, src: "255.255.255.255", dst: "0.0.0.0", checkedOK: true,
		},
		{
			name:    "the last fragment, reserved flag set, bad checksum",
			pkt:     "4500 0018 0001 9fff 4011 0000 0a070001 0a070002 aabbccdd",
			viewLen: 24, hdrLen: 20, totalLen: 24, id: 1, flags: 0x4, fragOff: 0x1fff * 8,
			fragment: true, ttl: 64, proto: ProtoUDP, checksum: 0, src: "10.7.0.1", dst: "10.7.0.2",
			payload: "aabbccdd", checkedOK: false,
		},
		{
			name:    "maximal header: 40 bytes of options",
			pkt:     "4f00 003c 0000 0000 4006 4899 0a070001 0a070002" + "01010101010101010101010101010101010101010101010101010101010101010101010101010100",
			viewLen: 60, hdrLen: 60, totalLen: 60, ttl: 64, proto: ProtoTCP, checksum: 0x4899,
			src: "10.7.0.1", dst: "10.7.0.2", checkedOK: true,
			options: "01010101010101010101010101010101010101010101010101010101010101010101010101010100",
		},
	}
	for _, tt := range tests {
		b := hexBytes(t, tt.pkt)
		ip, err := ParseIPv4(b)
		wantErr(t, tt.name, err, nil)
		if len(ip) != tt.viewLen {
			t.Errorf("%s: view length %d, want %d", tt.name, len(ip), tt.viewLen)
		}
		checks := []struct {
			field     string
			got, want any
		}{
			{"HeaderLen", ip.HeaderLen(), tt.hdrLen},
			{"TOS", ip.TOS(), tt.tos},
			{"TotalLen", ip.TotalLen(), tt.totalLen},
			{"ID", ip.ID(), tt.id},
			{"Flags", ip.Flags(), tt.flags},
			{"FragmentOffset", ip.FragmentOffset(), tt.fragOff},
			{"IsFragment", ip.IsFragment(), tt.fragment},
			{"TTL", ip.TTL(), tt.ttl},
			{"Protocol", ip.Protocol(), tt.proto},
			{"Checksum", ip.Checksum(), tt.checksum},
			{"ChecksumValid", ip.ChecksumValid(), tt.checkedOK},
			{"Src", ip.Src(), netip.MustParseAddr(tt.src)},
			{"Dst", ip.Dst(), netip.MustParseAddr(tt.dst)},
			{"Options", string(ip.Options()), string(hexBytes(t, tt.options))},
			{"Payload", string(ip.Payload()), string(hexBytes(t, tt.payload))},
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("%s: %s = %v, want %v", tt.name, c.field, c.got, c.want)
			}
		}
		// The quoted parser accepts every complete datagram the same way.
		q, err := ParseIPv4Quoted(b)
		wantErr(t, tt.name+" (quoted)", err, nil)
		if !bytes.Equal(q, ip) {
			t.Errorf("%s: quoted view %x, want %x", tt.name, q, ip)
		}
	}
}

// TestIPv4Bad checks every rejected shape of header with its specific error.
func TestIPv4Bad(t *testing.T) {
	good := hexBytes(t, "4500 001c 1c46 4000 4011 0a7b 0a070001 0a070002 3039 0035 0008 0000")
	for n := range IPv4MinHeaderLen {
		_, err := ParseIPv4(good[:n])
		wantErr(t, "cut to "+strconv.Itoa(n), err, ErrShort)
		_, err = ParseIPv4Quoted(good[:n])
		wantErr(t, "quoted, cut to "+strconv.Itoa(n), err, ErrShort)
	}
	// Cutting the payload leaves a total length past the buffer.
	for n := IPv4MinHeaderLen; n < len(good); n++ {
		_, err := ParseIPv4(good[:n])
		wantErr(t, "payload cut to "+strconv.Itoa(n), err, ErrTotalLength)
	}
	mod := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return b
	}
	tests := []struct {
		name   string
		b      []byte
		want   error
		quoted error // ParseIPv4Quoted's verdict
	}{
		{"version 6", mod(func(b []byte) { b[0] = 0x65 }), ErrVersion, ErrVersion},
		{"version 0", mod(func(b []byte) { b[0] = 0x05 }), ErrVersion, ErrVersion},
		{"version 15", mod(func(b []byte) { b[0] = 0xf5 }), ErrVersion, ErrVersion},
		{"IHL 0", mod(func(b []byte) { b[0] = 0x40 }), ErrHeaderLength, ErrHeaderLength},
		{"IHL 1", mod(func(b []byte) { b[0] = 0x41 }), ErrHeaderLength, ErrHeaderLength},
		{"IHL 4", mod(func(b []byte) { b[0] = 0x44 }), ErrHeaderLength, ErrHeaderLength},
		{"IHL 8 past a 28-byte buffer", mod(func(b []byte) { b[0] = 0x48 }), ErrHeaderLength, ErrHeaderLength},
		{"IHL 15 past a 28-byte buffer", mod(func(b []byte) { b[0] = 0x4f }), ErrHeaderLength, ErrHeaderLength},
		{"total length 0", mod(func(b []byte) { b[2], b[3] = 0, 0 }), ErrTotalLength, ErrTotalLength},
		{"total length 19 < IHL", mod(func(b []byte) { b[3] = 19 }), ErrTotalLength, ErrTotalLength},
		{"total length 20 < IHL 24", mod(func(b []byte) { b[0], b[3] = 0x46, 20 }), ErrTotalLength, ErrTotalLength},
		{"total length 29 > buffer", mod(func(b []byte) { b[3] = 29 }), ErrTotalLength, nil},
		{"total length 65535 > buffer", mod(func(b []byte) { b[2], b[3] = 0xff, 0xff }), ErrTotalLength, nil},
	}
	for _, tt := range tests {
		_, err := ParseIPv4(tt.b)
		wantErr(t, tt.name, err, tt.want)
		_, err = ParseIPv4Quoted(tt.b)
		wantErr(t, tt.name+" (quoted)", err, tt.quoted)
	}
	// A version error wins over the length checks; a short buffer wins over all.
	b := mod(func(b []byte) { b[0] = 0x60; b[2], b[3] = 0, 0 })
	_, err := ParseIPv4(b)
	wantErr(t, "version and lengths wrong", err, ErrVersion)
	_, err = ParseIPv4(b[:19])
	wantErr(t, "short and wrong version", err, ErrShort)
}

// TestIPv4Quoted checks the datagram quoted by an ICMP error: the header must be
// whole but the payload may stop short of the total length.
func TestIPv4Quoted(t *testing.T) {
	// A TCP segment of total length 1500, quoted with its first 8 payload bytes
	// (RFC 792) and with the header only.
	hdr := make([]byte, 28)
	PutIPv4(hdr, IPv4Header{TotalLen: 1500, ID: 7, Flags: IPv4DontFragment, TTL: 64, Protocol: ProtoTCP, Src: v4a, Dst: v4b})
	copy(hdr[20:], "\x30\x39\x00\x50\x00\x00\x00\x01")
	for _, n := range []int{28, 20, 21, 27} {
		q, err := ParseIPv4Quoted(hdr[:n])
		wantErr(t, "quoted with "+strconv.Itoa(n)+" bytes", err, nil)
		if len(q) != n || q.TotalLen() != 1500 || q.Protocol() != ProtoTCP || q.Src() != v4a || q.Dst() != v4b {
			t.Errorf("quoted %d bytes: len %d total %d proto %d %v>%v", n, len(q), q.TotalLen(), q.Protocol(), q.Src(), q.Dst())
		}
		if got := len(q.Payload()); got != n-20 {
			t.Errorf("quoted %d bytes: payload %d, want %d", n, got, n-20)
		}
		if !q.ChecksumValid() {
			t.Errorf("quoted %d bytes: header checksum does not verify", n)
		}
		_, err = ParseIPv4(hdr[:n])
		wantErr(t, "ParseIPv4 of a cut datagram", err, ErrTotalLength)
	}
	// A quoted datagram longer than its total length is trimmed like ParseIPv4.
	long := make([]byte, 60)
	PutIPv4(long, IPv4Header{TotalLen: 24, TTL: 1, Protocol: ProtoUDP, Src: v4a, Dst: v4b})
	q, err := ParseIPv4Quoted(long)
	wantErr(t, "quoted with trailing bytes", err, nil)
	if len(q) != 24 {
		t.Errorf("quoted view length %d, want 24", len(q))
	}
	// A header with options cut inside the options is rejected.
	opt := make([]byte, 28)
	PutIPv4(opt, IPv4Header{TotalLen: 28, TTL: 1, Protocol: ProtoUDP, Src: v4a, Dst: v4b, Options: []byte{1, 1, 1, 0}})
	for n := 20; n < 24; n++ {
		_, err := ParseIPv4Quoted(opt[:n])
		wantErr(t, "quoted, options cut at "+strconv.Itoa(n), err, ErrHeaderLength)
	}
}

func TestPutIPv4(t *testing.T) {
	want := hexBytes(t, "4500 001c 1c46 4000 4011 0a7b 0a070001 0a070002")
	b := make([]byte, 20)
	for i := range b {
		b[i] = 0xee // PutIPv4 must overwrite the checksum field
	}
	n := PutIPv4(b, IPv4Header{TotalLen: 28, ID: 0x1c46, Flags: IPv4DontFragment, TTL: 64, Protocol: ProtoUDP, Src: v4a, Dst: v4b})
	if n != 20 || !bytes.Equal(b, want) {
		t.Fatalf("PutIPv4 = %d, %x; want 20, %x", n, b, want)
	}
	want = hexBytes(t, "4600 0020 abcd 20b9 0111 d735 0a070001 0a070002 01010000")
	b = make([]byte, 24)
	n = PutIPv4(b, IPv4Header{TotalLen: 32, ID: 0xabcd, Flags: IPv4MoreFragments, FragmentOffset: 1480, TTL: 1,
		Protocol: ProtoUDP, Src: v4a, Dst: v4b, Options: []byte{1, 1, 0, 0}})
	if n != 24 || !bytes.Equal(b, want) {
		t.Fatalf("PutIPv4 with options = %d, %x; want 24, %x", n, b, want)
	}
	// Random headers: build, parse, compare every field.
	r := newRand(10)
	buf := make([]byte, 60+100)
	for range 2000 {
		h := IPv4Header{
			TOS:            uint8(r.Uint32()),
			ID:             uint16(r.Uint32()),
			Flags:          uint8(r.Uint32N(8)),
			FragmentOffset: int(r.Uint32N(8192)) * 8,
			TTL:            uint8(r.Uint32()),
			Protocol:       uint8(r.Uint32()),
			Src:            netip.AddrFrom4([4]byte(randBytes(r, 4))),
			Dst:            netip.AddrFrom4([4]byte(randBytes(r, 4))),
			Options:        randBytes(r, 4*int(r.Uint32N(11))),
		}
		hl := 20 + len(h.Options)
		h.TotalLen = hl + int(r.Uint32N(100))
		if n := PutIPv4(buf, h); n != hl {
			t.Fatalf("PutIPv4 = %d, want %d", n, hl)
		}
		ip, err := ParseIPv4(buf)
		wantErr(t, "ParseIPv4 after PutIPv4", err, nil)
		if ip.HeaderLen() != hl || ip.TotalLen() != h.TotalLen || len(ip) != h.TotalLen || ip.TOS() != h.TOS ||
			ip.ID() != h.ID || ip.Flags() != h.Flags || ip.FragmentOffset() != h.FragmentOffset ||
			ip.TTL() != h.TTL || ip.Protocol() != h.Protocol || ip.Src() != h.Src || ip.Dst() != h.Dst ||
			!bytes.Equal(ip.Options(), h.Options) || !ip.ChecksumValid() {
			t.Fatalf("round trip of %+v gave %x", h, buf[:hl])
		}
		if got, want := ip.Checksum(), ^refSum(append(append([]byte{}, buf[:10]...), append([]byte{0, 0}, buf[12:hl]...)...), 0); got != want {
			t.Fatalf("checksum %#04x, reference %#04x", got, want)
		}
		// Any single flipped bit in the header breaks the checksum.
		i := int(r.Uint32N(uint32(hl)))
		buf[i] ^= 1 << r.Uint32N(8)
		if IPv4(buf[:hl]).ChecksumValid() {
			t.Fatalf("flipped a bit of byte %d and the header still verifies", i)
		}
	}
	assertPanics(t, "PutIPv4 into 19 bytes", func() { PutIPv4(make([]byte, 19), IPv4Header{Src: v4a, Dst: v4b}) })
	assertPanics(t, "PutIPv4 with options into 20 bytes", func() {
		PutIPv4(make([]byte, 20), IPv4Header{Src: v4a, Dst: v4b, Options: []byte{1, 1, 1, 1}})
	})
}
