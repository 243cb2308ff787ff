package tun

import (
	"encoding/binary"
	"encoding/hex"
	"testing"

	"github.com/tcpeng/tcpeng/engine/wire"
)

func TestVnetHdrGolden(t *testing.T) {
	// flags NEEDS_CSUM, TCPv4, hdr_len 54, gso_size 1460, csum_start 20,
	// csum_offset 16, little-endian.
	b := []byte{0x01, 0x01, 0x36, 0x00, 0xb4, 0x05, 0x14, 0x00, 0x10, 0x00}
	h, err := parseVnetHdr(b)
	if err != nil {
		t.Fatal(err)
	}
	want := vnetHdr{flags: 1, gsoType: 1, hdrLen: 54, gsoSize: 1460, csumStart: 20, csumOffset: 16}
	if h != want {
		t.Fatalf("parsed %+v, want %+v", h, want)
	}
	var out [vnetHdrLen]byte
	h.put(out[:])
	if string(out[:]) != string(b) {
		t.Fatalf("put % x, want % x", out, b)
	}
	if _, err := parseVnetHdr(b[:9]); err != errVnetShort {
		t.Fatalf("short header: %v", err)
	}
}

// Golden split: 3000 bytes at gso_size 1400 from a CWR|PSH|FIN|ACK burst make
// three segments with IDs, sequence numbers, lengths and flags as the kernel's
// own segmentation would give them, each with full checksums.
func TestSplitGoldenIPv4(t *testing.T) {
	payload := pattern(3000, 1)
	burst := seg{src: a4, dst: b4, seq: 1000, ack: 5000, window: 501, id: 0x1234,
		flags: wire.FlagCWR | wire.FlagACK | wire.FlagPSH | wire.FlagFIN, payload: payload}
	in := burst.super(1400)
	// The header is as the kernel writes it: hdr_len is the linear length, not
	// the header length, and must not matter.
	if got := hex.EncodeToString(in[:vnetHdrLen]); got != "0101e00b780514001000" {
		t.Fatalf("vnet header %s", got)
	}
	got, err := decodeFromDevice(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]byte{
		seg{src: a4, dst: b4, seq: 1000, ack: 5000, window: 501, id: 0x1234, flags: wire.FlagCWR | wire.FlagACK, payload: payload[:1400]}.frame(),
		seg{src: a4, dst: b4, seq: 2400, ack: 5000, window: 501, id: 0x1235, flags: wire.FlagACK, payload: payload[1400:2800]}.frame(),
		seg{src: a4, dst: b4, seq: 3800, ack: 5000, window: 501, id: 0x1236, flags: wire.FlagACK | wire.FlagPSH | wire.FlagFIN, payload: payload[2800:]}.frame(),
	}
	equalFrames(t, got, want)
	for _, f := range got {
		checkValid(t, f)
	}
	// One frame's header bytes, spelled out: IPv4 total length 1440 (0x05a0),
	// ID 0x1235, DF, TTL 64; TCP seq 2400 (0x960), ack 5000, ACK only.
	const hdr1 = "450005a0123540004006" + "" // version..protocol
	if h := hex.EncodeToString(got[1][:10]); h != hdr1 {
		t.Errorf("segment 1 IPv4 header starts %s, want %s", h, hdr1)
	}
	if h := hex.EncodeToString(got[1][20:34]); h != "9c400007"+"00000960"+"00001388"+"50"+"10" {
		t.Errorf("segment 1 TCP header starts %s", h)
	}
}

func TestSplitGoldenIPv6WithOptions(t *testing.T) {
	payload := pattern(2500, 9)
	opts := &wire.Options{Present: wire.HasTimestamps, TSVal: 77, TSEcr: 66}
	burst := seg{src: a6, dst: b6, seq: 0xfffffff0, ack: 1, window: 100, flowLbl: 0x12345, tos: 0x10,
		flags: wire.FlagACK | wire.FlagPSH, opts: opts, payload: payload}
	got, err := decodeFromDevice(burst.super(1000), nil)
	if err != nil {
		t.Fatal(err)
	}
	base := seg{src: a6, dst: b6, ack: 1, window: 100, flowLbl: 0x12345, tos: 0x10, opts: opts}
	s0, s1, s2 := base, base, base
	s0.seq, s0.flags, s0.payload = 0xfffffff0, wire.FlagACK, payload[:1000]
	s1.seq, s1.flags, s1.payload = 1000-16, wire.FlagACK, payload[1000:2000] // wraps
	s2.seq, s2.flags, s2.payload = 2000-16, wire.FlagACK|wire.FlagPSH, payload[2000:]
	equalFrames(t, got, [][]byte{s0.frame(), s1.frame(), s2.frame()})
	for _, f := range got {
		checkValid(t, f)
	}
}

// A super-packet that splits into exactly one segment, and one with no payload.
func TestSplitEdges(t *testing.T) {
	s := seg{src: a4, dst: b4, seq: 1, ack: 2, window: 3, id: 9, flags: wire.FlagACK | wire.FlagPSH, payload: pattern(1400, 0)}
	got, err := decodeFromDevice(s.super(1400), nil)
	if err != nil {
		t.Fatal(err)
	}
	equalFrames(t, got, [][]byte{s.frame()})
	s.payload = nil
	got, err = decodeFromDevice(s.super(1400), nil)
	if err != nil {
		t.Fatal(err)
	}
	equalFrames(t, got, [][]byte{s.frame()})
}

func TestSplitRejects(t *testing.T) {
	good := seg{src: a4, dst: b4, seq: 1, ack: 2, window: 3, id: 9, flags: wire.FlagACK, payload: pattern(3000, 0)}
	mod := func(f func(b []byte)) []byte {
		b := good.super(1400)
		f(b)
		return b
	}
	v6 := seg{src: a6, dst: b6, flags: wire.FlagACK, payload: pattern(100, 0)}.super(50)
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"short", []byte{1, 1, 0}, errVnetShort},
		{"gso size 0", mod(func(b []byte) { b[4], b[5] = 0, 0 }), errGSOSize},
		{"UDP (UFO)", mod(func(b []byte) { b[1] = vnetGSOUDP }), errGSOType},
		{"UDP L4", mod(func(b []byte) { b[1] = vnetGSOUDPL4 }), errGSOType},
		{"unknown type", mod(func(b []byte) { b[1] = 0x7f }), errGSOType},
		{"TCPv4 type on IPv6", func() []byte { b := append([]byte(nil), v6...); b[1] = vnetGSOTCPv4; return b }(), errGSOPacket},
		{"TCPv6 type on IPv4", mod(func(b []byte) { b[1] = vnetGSOTCPv6 }), errGSOPacket},
		{"trailing bytes", append(good.super(1400), 0, 0), errGSOPacket},
		{"total length past the end", mod(func(b []byte) { binary.BigEndian.PutUint16(b[vnetHdrLen+2:], 4000) }), errGSOPacket},
		{"not TCP", mod(func(b []byte) { b[vnetHdrLen+9] = wire.ProtoUDP }), errGSOPacket},
		{"fragment", mod(func(b []byte) { b[vnetHdrLen+6] |= 0x20 }), errGSOPacket},
		{"SYN", mod(func(b []byte) { b[vnetHdrLen+20+13] |= uint8(wire.FlagSYN) }), errGSOPacket},
		{"RST", mod(func(b []byte) { b[vnetHdrLen+20+13] |= uint8(wire.FlagRST) }), errGSOPacket},
		{"TCP data offset below 5", mod(func(b []byte) { b[vnetHdrLen+20+12] = 0x40 }), errGSOPacket},
		{"TCP header cut", good.super(1400)[:vnetHdrLen+30], errGSOPacket},
		{"full checksum wrong", mod(func(b []byte) {
			b[0] = 0 // no NEEDS_CSUM: the field must be a full checksum, and it is not
		}), errBadChecksum},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := decodeFromDevice(c.in, nil)
			if err == nil {
				t.Fatalf("accepted: %d frames", len(out))
			}
			if c.want != nil && err != c.want {
				t.Fatalf("error %v, want %v", err, c.want)
			}
		})
	}
}

// A GSO packet without NEEDS_CSUM but with a valid full checksum is split; so
// is one marked DATA_VALID.
func TestSplitFullChecksum(t *testing.T) {
	s := seg{src: a4, dst: b4, seq: 1, ack: 2, window: 3, id: 9, flags: wire.FlagACK, payload: pattern(3000, 3)}
	f := s.frame()
	h := vnetHdr{gsoType: vnetGSOTCPv4, gsoSize: 1000}
	in := make([]byte, vnetHdrLen+len(f))
	h.put(in)
	copy(in[vnetHdrLen:], f)
	got, err := decodeFromDevice(in, nil)
	if err != nil || len(got) != 3 {
		t.Fatalf("%d frames, %v", len(got), err)
	}
	for _, g := range got {
		checkValid(t, g)
	}
}

func TestSegmentBufferTooSmall(t *testing.T) {
	s := seg{src: a4, dst: b4, flags: wire.FlagACK, payload: pattern(3000, 0)}
	in := s.super(1400)
	h, _ := parseVnetHdr(in)
	g, err := prepareGSO(in[vnetHdrLen:], &h, true)
	if err != nil {
		t.Fatal(err)
	}
	if g.Segs() != 3 || g.SegLen(0) != 1440 || g.SegLen(2) != 240 {
		t.Fatalf("segs %d lens %d %d", g.Segs(), g.SegLen(0), g.SegLen(2))
	}
	if n := g.Segment(0, make([]byte, 1439)); n != 0 {
		t.Fatalf("segment into 1439 bytes: %d", n)
	}
	if n := g.Segment(2, make([]byte, 240)); n != 240 {
		t.Fatalf("last segment: %d", n)
	}
}

// Partial checksums of non-GSO packets are completed, for TCP and UDP; a UDP
// checksum that comes out 0 is sent as 0xffff.
func TestCompleteChecksum(t *testing.T) {
	s := seg{src: a4, dst: b4, seq: 1, ack: 2, window: 3, id: 9, flags: wire.FlagACK | wire.FlagPSH, payload: []byte("hello")}
	in := s.super(1400)
	in[1] = vnetGSONone
	got, err := decodeFromDevice(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	equalFrames(t, got, [][]byte{s.frame()})

	// UDP: find a payload word whose checksum is 0.
	src, dst := a4.Addr(), b4.Addr()
	for w := 0; w < 1<<16; w++ {
		u := make([]byte, 20+8+2)
		wire.PutIPv4(u, wire.IPv4Header{TotalLen: len(u), TTL: 64, Protocol: wire.ProtoUDP, Src: src, Dst: dst})
		wire.PutUDP(u[20:], 53, 53, 10)
		binary.BigEndian.PutUint16(u[28:], uint16(w))
		full := append([]byte(nil), u...)
		wire.SetUDPChecksum(full[20:], src, dst)
		binary.BigEndian.PutUint16(u[26:], wire.PseudoHeaderChecksum(wire.ProtoUDP, src, dst, 10))
		h := vnetHdr{flags: vnetFlagNeedsCsum, csumStart: 20, csumOffset: 6}
		if err := completeChecksum(u, &h); err != nil {
			t.Fatal(err)
		}
		c := binary.BigEndian.Uint16(u[26:])
		if c == 0 {
			t.Fatalf("UDP checksum 0 for word %#x", w)
		}
		if c == 0xffff {
			if !wire.UDP(u[20:]).ChecksumValid(src, dst) {
				t.Fatalf("0xffff does not verify")
			}
			return
		}
		if string(u) != string(full) {
			t.Fatalf("word %#x: completed % x, want % x", w, u, full)
		}
	}
	t.Fatal("no payload gives a zero UDP checksum")
}

func TestCompleteChecksumRange(t *testing.T) {
	pkt := make([]byte, 40)
	for _, h := range []vnetHdr{
		{csumStart: 40, csumOffset: 0},
		{csumStart: 20, csumOffset: 19},
		{csumStart: 0xffff, csumOffset: 0xffff},
	} {
		if err := completeChecksum(pkt, &h); err != errCsumRange {
			t.Errorf("%+v: %v", h, err)
		}
	}
}
