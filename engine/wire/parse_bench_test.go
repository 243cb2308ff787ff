package wire

import "testing"

// BenchmarkParseTCP measures the receive path of one segment: ParseIPv4,
// ParseTCP and Segment (which parses the options), without checksums.
func BenchmarkParseTCP(b *testing.B) {
	pkt := buildIPv4TCP(TCPHeader{SrcPort: 40000, DstPort: 80, Seq: 1, Ack: 2, Flags: FlagACK, Window: 502},
		&Options{Present: HasTimestamps | HasSACK, TSVal: 1, TSEcr: 2, NumSACK: 3}, make([]byte, 1400))
	b.ReportAllocs()
	var s Segment
	for b.Loop() {
		ip, err := ParseIPv4(pkt)
		if err != nil {
			b.Fatal(err)
		}
		seg, err := ParseTCP(ip.Payload())
		if err != nil {
			b.Fatal(err)
		}
		s = seg.Segment()
	}
	sinkSegment = s
}

// BenchmarkParseTCPChecksum is BenchmarkParseTCP with the IPv4 header and TCP
// checksums verified, as the input path does.
func BenchmarkParseTCPChecksum(b *testing.B) {
	pkt := buildIPv4TCP(TCPHeader{SrcPort: 40000, DstPort: 80, Seq: 1, Ack: 2, Flags: FlagACK, Window: 502},
		&Options{Present: HasTimestamps, TSVal: 1, TSEcr: 2}, make([]byte, 1448))
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	var s Segment
	for b.Loop() {
		ip, err := ParseIPv4(pkt)
		if err != nil || !ip.ChecksumValid() {
			b.Fatal("bad IPv4 header", err)
		}
		seg, err := ParseTCP(ip.Payload())
		if err != nil || !seg.ChecksumValid(ip.Src(), ip.Dst()) {
			b.Fatal("bad TCP segment", err)
		}
		s = seg.Segment()
	}
	sinkSegment = s
}

// BenchmarkParseIPv6TCP is the IPv6 receive path: ParseIPv6, Walk, ParseTCP and
// Segment.
func BenchmarkParseIPv6TCP(b *testing.B) {
	seg := make([]byte, 32+1400)
	o := Options{Present: HasTimestamps, TSVal: 1, TSEcr: 2}
	PutTCP(seg, TCPHeader{SrcPort: 40000, DstPort: 80, Seq: 1, Ack: 2, Flags: FlagACK, Window: 502}, &o)
	SetTCPChecksum(seg, v6a, v6b)
	pkt := ipv6Packet(ProtoTCP, seg)
	b.ReportAllocs()
	var s Segment
	for b.Loop() {
		ip, err := ParseIPv6(pkt)
		if err != nil {
			b.Fatal(err)
		}
		h, err := ip.Walk()
		if err != nil || h.Proto != ProtoTCP {
			b.Fatal(err)
		}
		t, err := ParseTCP(ip[h.Offset:])
		if err != nil {
			b.Fatal(err)
		}
		s = t.Segment()
	}
	sinkSegment = s
}

// BenchmarkParseOptions parses the options of a Linux SYN.
func BenchmarkParseOptions(b *testing.B) {
	opts := hexBytes(b, "020405b4 0402080a 0000abcd 00000000 01030307")
	b.ReportAllocs()
	var o Options
	for b.Loop() {
		o, _ = ParseOptions(opts)
	}
	sinkOptions = o
}

// BenchmarkBuildTCP measures the send path's header work: PutIPv4, PutTCP with
// timestamps and SetTCPChecksum over a 1448-byte payload.
func BenchmarkBuildTCP(b *testing.B) {
	buf := make([]byte, 20+32+1448)
	o := Options{Present: HasTimestamps, TSVal: 1, TSEcr: 2}
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		n := PutTCP(buf[20:], TCPHeader{SrcPort: 80, DstPort: 40000, Seq: 1, Ack: 2, Flags: FlagACK, Window: 502}, &o)
		SetTCPChecksum(buf[20:], v4a, v4b)
		PutIPv4(buf, IPv4Header{TotalLen: len(buf), Flags: IPv4DontFragment, TTL: 64, Protocol: ProtoTCP, Src: v4a, Dst: v4b})
		sinkInt = n
	}
}
