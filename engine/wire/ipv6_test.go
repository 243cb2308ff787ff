package wire

import (
	"bytes"
	"net/netip"
	"strconv"
	"testing"
)

// A TCP SYN over IPv6 with traffic class 0xb8, flow label 0xabcde and hop limit
// 64, from fd00::1 to fd00::2; the TCP header is 20 bytes of filler here.
const ipv6Hex = "6b8a bcde 0014 0640 fd000000000000000000000000000001 fd000000000000000000000000000002" +
	"3039 0050 00000001 00000000 5002 ffff 0000 0000"

func TestIPv6(t *testing.T) {
	b := hexBytes(t, ipv6Hex)
	withPad := append(bytes.Clone(b), 0, 0, 0, 0, 0, 0)
	ip, err := ParseIPv6(withPad)
	wantErr(t, "ParseIPv6", err, nil)
	if len(ip) != 60 {
		t.Errorf("view length %d, want 60 (padding dropped)", len(ip))
	}
	checks := []struct {
		field     string
		got, want any
	}{
		{"TrafficClass", ip.TrafficClass(), uint8(0xb8)},
		{"FlowLabel", ip.FlowLabel(), uint32(0xabcde)},
		{"PayloadLen", ip.PayloadLen(), 20},
		{"NextHeader", ip.NextHeader(), uint8(ProtoTCP)},
		{"HopLimit", ip.HopLimit(), uint8(64)},
		{"Src", ip.Src(), v6a},
		{"Dst", ip.Dst(), v6b},
		{"Payload", string(ip.Payload()), string(b[40:])},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.field, c.got, c.want)
		}
	}
	h, err := ip.Walk()
	wantErr(t, "Walk", err, nil)
	if h != (IPv6Headers{Proto: ProtoTCP, Offset: 40}) {
		t.Errorf("Walk = %+v", h)
	}
	// Zero payload length is taken literally (no jumbograms).
	z := bytes.Clone(b)
	z[4], z[5] = 0, 0
	ip, err = ParseIPv6(z)
	wantErr(t, "payload length 0", err, nil)
	if len(ip) != 40 || len(ip.Payload()) != 0 {
		t.Errorf("payload length 0: view %d bytes", len(ip))
	}
	// Every bit of the first word lands in the right field.
	for _, c := range []struct {
		word string
		tc   uint8
		fl   uint32
	}{
		{"60000000", 0, 0},
		{"6ff00000", 0xff, 0},
		{"600fffff", 0, 0xfffff},
		{"6fffffff", 0xff, 0xfffff},
		{"61234567", 0x12, 0x34567},
	} {
		p := bytes.Clone(b)
		copy(p, hexBytes(t, c.word))
		ip, err := ParseIPv6(p)
		wantErr(t, c.word, err, nil)
		if ip.TrafficClass() != c.tc || ip.FlowLabel() != c.fl {
			t.Errorf("%s: TrafficClass %#02x FlowLabel %#05x, want %#02x %#05x", c.word, ip.TrafficClass(), ip.FlowLabel(), c.tc, c.fl)
		}
	}
}

func TestIPv6Bad(t *testing.T) {
	b := hexBytes(t, ipv6Hex)
	for n := range IPv6HeaderLen {
		_, err := ParseIPv6(b[:n])
		wantErr(t, "cut to "+strconv.Itoa(n), err, ErrShort)
		_, err = ParseIPv6Quoted(b[:n])
		wantErr(t, "quoted, cut to "+strconv.Itoa(n), err, ErrShort)
	}
	for n := IPv6HeaderLen; n < len(b); n++ {
		_, err := ParseIPv6(b[:n])
		wantErr(t, "payload cut to "+strconv.Itoa(n), err, ErrTotalLength)
	}
	for _, v := range []byte{0x4b, 0x0b, 0x7b, 0xfb} {
		p := bytes.Clone(b)
		p[0] = v
		_, err := ParseIPv6(p)
		wantErr(t, "version "+strconv.Itoa(int(v>>4)), err, ErrVersion)
		_, err = ParseIPv6Quoted(p)
		wantErr(t, "quoted, version "+strconv.Itoa(int(v>>4)), err, ErrVersion)
	}
	p := bytes.Clone(b)
	p[4], p[5] = 0xff, 0xff
	_, err := ParseIPv6(p)
	wantErr(t, "payload length 65535", err, ErrTotalLength)
	p[4], p[5] = 0, 21
	_, err = ParseIPv6(p)
	wantErr(t, "payload length one past the buffer", err, ErrTotalLength)
}

func TestIPv6Quoted(t *testing.T) {
	b := hexBytes(t, ipv6Hex)
	// A quoted packet cut anywhere after the fixed header parses, trimmed to what
	// is there.
	for n := IPv6HeaderLen; n <= len(b); n++ {
		q, err := ParseIPv6Quoted(b[:n])
		wantErr(t, "quoted, cut to "+strconv.Itoa(n), err, nil)
		if len(q) != n || q.PayloadLen() != 20 || q.Src() != v6a || q.Dst() != v6b || q.NextHeader() != ProtoTCP {
			t.Errorf("quoted %d bytes: len %d plen %d %v>%v nh %d", n, len(q), q.PayloadLen(), q.Src(), q.Dst(), q.NextHeader())
		}
	}
	// Bytes past the payload length are dropped.
	q, err := ParseIPv6Quoted(append(bytes.Clone(b), 1, 2, 3))
	wantErr(t, "quoted with trailing bytes", err, nil)
	if len(q) != len(b) {
		t.Errorf("quoted view %d bytes, want %d", len(q), len(b))
	}
	// Walking a cut quoted packet whose extension header is missing fails with
	// ErrHeaderLength rather than reading past the view.
	p := ipv6Packet(ProtoFragment, fragHdr(ProtoUDP, 0, true, 1), make([]byte, 8))
	q, err = ParseIPv6Quoted(p[:44])
	wantErr(t, "quoted, fragment header cut", err, nil)
	_, err = q.Walk()
	wantErr(t, "Walk of a cut quoted packet", err, ErrHeaderLength)
}

// ext returns an extension header (hop-by-hop, routing or destination options)
// with next header nh and (hdrExtLen+1)*8 bytes, padded with PadN.
func ext(nh uint8, hdrExtLen uint8) []byte {
	b := make([]byte, (int(hdrExtLen)+1)*8)
	b[0], b[1] = nh, hdrExtLen
	b[2], b[3] = 1, byte(len(b)-4) // PadN option covering the rest
	return b
}

func fragHdr(nh uint8, offset int, more bool, id uint32) []byte {
	b := make([]byte, IPv6FragmentHeaderLen)
	PutIPv6Fragment(b, nh, offset, more, id)
	return b
}

// ipv6Packet joins a fixed header with next header nh and the given pieces.
func ipv6Packet(nh uint8, pieces ...[]byte) []byte {
	var payload []byte
	for _, p := range pieces {
		payload = append(payload, p...)
	}
	b := make([]byte, IPv6HeaderLen, IPv6HeaderLen+len(payload))
	PutIPv6(b, IPv6Header{PayloadLen: len(payload), NextHeader: nh, HopLimit: 64, Src: v6a, Dst: v6b})
	return append(b, payload...)
}

func TestIPv6Walk(t *testing.T) {
	udp := []byte{0x30, 0x39, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00}
	tests := []struct {
		name   string
		pkt    []byte
		want   IPv6Headers
		isFrag bool
	}{
		{
			name: "no extension headers",
			pkt:  ipv6Packet(ProtoUDP, udp),
			want: IPv6Headers{Proto: ProtoUDP, Offset: 40},
		},
		{
			name: "no next header",
			pkt:  ipv6Packet(ProtoNoNext),
			want: IPv6Headers{Proto: ProtoNoNext, Offset: 40},
		},
		{
			name: "hop-by-hop (MLD router alert), then ICMPv6",
			pkt:  ipv6Packet(ProtoHopByHop, ext(ProtoICMPv6, 0), make([]byte, 8)),
			want: IPv6Headers{Proto: ProtoICMPv6, Offset: 48, HopByHop: 40},
		},
		{
			name: "every kind, in RFC 8200 §4.1 order",
			pkt: ipv6Packet(ProtoHopByHop, ext(ProtoDstOpts, 1), ext(ProtoRouting, 0), ext(ProtoFragment, 2),
				fragHdr(ProtoDstOpts, 0, true, 0xdeadbeef), ext(ProtoTCP, 0), make([]byte, 20)),
			// 40 | HBH 16 -> 56 | DstOpts 8 -> 64 | Routing 24 -> 88 | Fragment 8 -> 96 | DstOpts 8 -> 104
			want: IPv6Headers{Proto: ProtoTCP, Offset: 104, HopByHop: 40, DstOpts: 96, Routing: 64, Fragment: 88,
				MoreFragments: true, FragmentID: 0xdeadbeef},
			isFrag: true,
		},
		{
			name: "atomic fragment (RFC 8021) is not a fragment",
			pkt:  ipv6Packet(ProtoFragment, fragHdr(ProtoUDP, 0, false, 7), udp),
			want: IPv6Headers{Proto: ProtoUDP, Offset: 48, Fragment: 40, FragmentID: 7},
		},
		{
			name:   "first fragment",
			pkt:    ipv6Packet(ProtoFragment, fragHdr(ProtoUDP, 0, true, 0x01020304), udp),
			want:   IPv6Headers{Proto: ProtoUDP, Offset: 48, Fragment: 40, MoreFragments: true, FragmentID: 0x01020304},
			isFrag: true,
		},
		{
			name:   "last fragment: the walk stops after the fragment header",
			pkt:    ipv6Packet(ProtoFragment, fragHdr(ProtoUDP, 1232, false, 9), []byte{1, 2, 3}),
			want:   IPv6Headers{Proto: ProtoUDP, Offset: 48, Fragment: 40, FragmentOffset: 1232, FragmentID: 9},
			isFrag: true,
		},
		{
			// The bytes after a non-first fragment header are data even when the
			// next header names an extension header; here they are too short to be
			// one and the walk must not look at them.
			name:   "non-first fragment, next header is destination options",
			pkt:    ipv6Packet(ProtoFragment, fragHdr(ProtoDstOpts, 8, true, 1), []byte{0xff}),
			want:   IPv6Headers{Proto: ProtoDstOpts, Offset: 48, Fragment: 40, FragmentOffset: 8, MoreFragments: true, FragmentID: 1},
			isFrag: true,
		},
		{
			name:   "largest fragment offset",
			pkt:    ipv6Packet(ProtoFragment, fragHdr(ProtoTCP, 0x1fff*8, true, 0xffffffff)),
			want:   IPv6Headers{Proto: ProtoTCP, Offset: 48, Fragment: 40, FragmentOffset: 0x1fff * 8, MoreFragments: true, FragmentID: 0xffffffff},
			isFrag: true,
		},
		{
			name: "two destination options headers: the last is reported",
			pkt:  ipv6Packet(ProtoDstOpts, ext(ProtoRouting, 0), ext(ProtoDstOpts, 0), ext(ProtoUDP, 0), udp),
			want: IPv6Headers{Proto: ProtoUDP, Offset: 64, Routing: 48, DstOpts: 56},
		},
		{
			name: "an unknown protocol ends the walk (AH, 51)",
			pkt:  ipv6Packet(ProtoDstOpts, ext(51, 0), make([]byte, 16)),
			want: IPv6Headers{Proto: 51, Offset: 48, DstOpts: 40},
		},
		{
			name: "extension header ending exactly at the end of the packet",
			pkt:  ipv6Packet(ProtoDstOpts, ext(ProtoNoNext, 3)),
			want: IPv6Headers{Proto: ProtoNoNext, Offset: 72, DstOpts: 40},
		},
		{
			name: "the largest extension header (2048 bytes)",
			pkt:  ipv6Packet(ProtoDstOpts, ext(ProtoTCP, 255)),
			want: IPv6Headers{Proto: ProtoTCP, Offset: 40 + 2048, DstOpts: 40},
		},
		{
			name: "eight extension headers are allowed",
			pkt:  ipv6Packet(ProtoDstOpts, chain(8, ProtoDstOpts, ProtoUDP), udp),
			want: IPv6Headers{Proto: ProtoUDP, Offset: 40 + 64, DstOpts: 40 + 56},
		},
	}
	for _, tt := range tests {
		ip, err := ParseIPv6(tt.pkt)
		wantErr(t, tt.name, err, nil)
		h, err := ip.Walk()
		wantErr(t, tt.name+": Walk", err, nil)
		if h != tt.want {
			t.Errorf("%s: Walk = %+v, want %+v", tt.name, h, tt.want)
		}
		if got := h.IsFragment(); got != tt.isFrag {
			t.Errorf("%s: IsFragment = %v, want %v", tt.name, got, tt.isFrag)
		}
		if h.Offset > len(ip) {
			t.Errorf("%s: Offset %d past the packet (%d)", tt.name, h.Offset, len(ip))
		}
	}
}

// chain returns n extension headers of kind k, the last pointing to last.
func chain(n int, k, last uint8) []byte {
	var b []byte
	for i := range n {
		nh := k
		if i == n-1 {
			nh = last
		}
		b = append(b, ext(nh, 0)...)
	}
	return b
}

func TestIPv6WalkBad(t *testing.T) {
	tests := []struct {
		name string
		pkt  []byte
		want error
	}{
		{"nine extension headers", ipv6Packet(ProtoDstOpts, chain(9, ProtoDstOpts, ProtoUDP), make([]byte, 8)), ErrTooManyHeaders},
		{"a loop of routing headers", ipv6Packet(ProtoRouting, chain(20, ProtoRouting, ProtoRouting)), ErrTooManyHeaders},
		{"nine fragment headers", ipv6Packet(ProtoFragment, bytes.Repeat(fragHdr(ProtoFragment, 0, true, 1), 9)), ErrTooManyHeaders},
		{"hop-by-hop second", ipv6Packet(ProtoDstOpts, ext(ProtoHopByHop, 0), ext(ProtoTCP, 0)), ErrExtHeaderOrder},
		{"hop-by-hop twice", ipv6Packet(ProtoHopByHop, ext(ProtoHopByHop, 0), ext(ProtoTCP, 0)), ErrExtHeaderOrder},
		{"hop-by-hop after a fragment header", ipv6Packet(ProtoFragment, fragHdr(ProtoHopByHop, 0, true, 1), ext(ProtoTCP, 0)), ErrExtHeaderOrder},
		{"no room for the first extension header", ipv6Packet(ProtoHopByHop), ErrHeaderLength},
		{"seven bytes of an extension header", ipv6Packet(ProtoRouting, make([]byte, 7)), ErrHeaderLength},
		{"length field past the packet", ipv6Packet(ProtoDstOpts, ext(ProtoTCP, 1)[:8]), ErrHeaderLength},
		{"length 255 in a 16-byte payload", ipv6Packet(ProtoHopByHop, []byte{ProtoTCP, 255, 0, 0, 0, 0, 0, 0}, make([]byte, 8)), ErrHeaderLength},
		{"second header cut", ipv6Packet(ProtoDstOpts, ext(ProtoRouting, 0), make([]byte, 4)), ErrHeaderLength},
		{"fragment header cut", ipv6Packet(ProtoFragment, fragHdr(ProtoUDP, 0, true, 1)[:7]), ErrHeaderLength},
		{"header after a first fragment cut", ipv6Packet(ProtoFragment, fragHdr(ProtoDstOpts, 0, true, 1), make([]byte, 3)), ErrHeaderLength},
	}
	for _, tt := range tests {
		ip, err := ParseIPv6(tt.pkt)
		wantErr(t, tt.name, err, nil)
		_, err = ip.Walk()
		wantErr(t, tt.name+": Walk", err, tt.want)
	}
}

func TestPutIPv6(t *testing.T) {
	want := hexBytes(t, ipv6Hex)[:40]
	b := make([]byte, 40)
	for i := range b {
		b[i] = 0xee
	}
	n := PutIPv6(b, IPv6Header{TrafficClass: 0xb8, FlowLabel: 0xabcde, PayloadLen: 20, NextHeader: ProtoTCP, HopLimit: 64, Src: v6a, Dst: v6b})
	if n != IPv6HeaderLen || !bytes.Equal(b, want) {
		t.Fatalf("PutIPv6 = %d, %x; want 40, %x", n, b, want)
	}
	// A flow label wider than 20 bits is masked, not spilled into the traffic class.
	PutIPv6(b, IPv6Header{FlowLabel: 0xfff00001, Src: v6a, Dst: v6b})
	if ip := IPv6(b); ip.TrafficClass() != 0 || ip.FlowLabel() != 1 || b[0]>>4 != 6 {
		t.Errorf("wide flow label: %x", b[:4])
	}
	r := newRand(20)
	buf := make([]byte, 40+64)
	for range 1000 {
		h := IPv6Header{
			TrafficClass: uint8(r.Uint32()),
			FlowLabel:    r.Uint32N(1 << 20),
			PayloadLen:   int(r.Uint32N(65)),
			NextHeader:   uint8(r.Uint32()),
			HopLimit:     uint8(r.Uint32()),
			Src:          netip.AddrFrom16([16]byte(randBytes(r, 16))),
			Dst:          netip.AddrFrom16([16]byte(randBytes(r, 16))),
		}
		PutIPv6(buf, h)
		ip, err := ParseIPv6(buf)
		wantErr(t, "round trip", err, nil)
		got := IPv6Header{ip.TrafficClass(), ip.FlowLabel(), ip.PayloadLen(), ip.NextHeader(), ip.HopLimit(), ip.Src(), ip.Dst()}
		if got != h || len(ip) != 40+h.PayloadLen {
			t.Fatalf("round trip: %+v, want %+v", got, h)
		}
	}
	// Fragment header.
	f := make([]byte, 8)
	if n := PutIPv6Fragment(f, ProtoTCP, 1480, true, 0x11223344); n != IPv6FragmentHeaderLen {
		t.Fatalf("PutIPv6Fragment = %d", n)
	}
	if want := hexBytes(t, "06 00 05c9 11223344"); !bytes.Equal(f, want) {
		t.Errorf("PutIPv6Fragment wrote %x, want %x", f, want)
	}
	PutIPv6Fragment(f, ProtoUDP, 0, false, 1)
	if want := hexBytes(t, "11 00 0000 00000001"); !bytes.Equal(f, want) {
		t.Errorf("PutIPv6Fragment wrote %x, want %x", f, want)
	}
	assertPanics(t, "PutIPv6 into 39 bytes", func() { PutIPv6(make([]byte, 39), IPv6Header{Src: v6a, Dst: v6b}) })
	assertPanics(t, "PutIPv6Fragment into 7 bytes", func() { PutIPv6Fragment(make([]byte, 7), 0, 0, false, 0) })
}
