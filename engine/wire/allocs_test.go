package wire

import (
	"net/netip"
	"testing"
)

// Sinks keep the compiler from discarding the calls measured below.
var (
	sinkInt     int
	sinkU8      uint8
	sinkU16     uint16
	sinkU32     uint32
	sinkBool    bool
	sinkBytes   []byte
	sinkAddr    netip.Addr
	sinkMAC     MAC
	sinkSeq     Seq
	sinkErr     error
	sinkSegment Segment
	sinkOptions Options
	sinkHeaders IPv6Headers
	sinkFlags   Flags
)

// TestZeroAllocs checks the package's promise that parsing, the accessors, the
// IPv6 walk, option parsing, the builders and the checksums do not allocate.
func TestZeroAllocs(t *testing.T) {
	frame := make([]byte, 14+20+40+5)
	PutEthernet(frame, macB, macA, EtherTypeIPv4)
	copy(frame[14:], buildIPv4TCP(TCPHeader{SrcPort: 1, DstPort: 2, Seq: 3, Ack: 4, Flags: FlagSYN | FlagACK, Window: 5},
		&Options{Present: HasMSS | HasSACKPermitted | HasTimestamps | HasWindowScale, MSS: 1460, WindowScale: 7, TSVal: 1}, []byte("hello")))
	tagged := hexBytes(t, "020000000002 020000000001 88a8 0064 8100 00c8 0800")
	arp := hexBytes(t, arpRequestHex)
	v4 := frame[14:]
	v6 := ipv6Packet(ProtoHopByHop, ext(ProtoDstOpts, 0), ext(ProtoFragment, 0), fragHdr(ProtoTCP, 0, true, 1), hexBytes(t, tcpDataHex))
	v6cut := IPv6(ipv6Packet(ProtoDstOpts))
	icmp4 := hexBytes(t, icmpv4FragNeededHex)
	icmp6 := hexBytes(t, icmpv6PTBHex)
	udp := hexBytes(t, "3039 0035 000c f690 61626364")
	tcpSeg := v4[20:]
	opts := tcpSeg[20:40]
	sackOpt := hexBytes(t, "0101080a 00000001 00000002 0101051a 00000064 000000c8 0000012c 00000190 000001f4 00000258")
	big := make([]byte, 9000)
	out := make([]byte, 128)
	fullOpts := Options{Present: HasMSS | HasSACKPermitted | HasTimestamps | HasWindowScale | HasSACK, MSS: 1460,
		WindowScale: 7, TSVal: 1, TSEcr: 2, NumSACK: 4}
	ip4h := IPv4Header{TotalLen: 40, ID: 1, Flags: IPv4DontFragment, TTL: 64, Protocol: ProtoTCP, Src: v4a, Dst: v4b, Options: []byte{1, 1, 1, 0}}
	ip6h := IPv6Header{PayloadLen: 20, NextHeader: ProtoTCP, HopLimit: 64, Src: v6a, Dst: v6b}

	tests := []struct {
		name string
		f    func()
	}{
		{"ParseEthernet+accessors", func() {
			e, err := ParseEthernet(frame)
			sinkErr = err
			sinkMAC, sinkMAC = e.Dst(), e.Src()
			sinkU16 = e.EtherType()
			sinkU16, sinkBool = e.VLAN()
			sinkInt = e.HeaderLen()
			sinkBytes = e.Payload()
		}},
		{"ParseEthernet tagged", func() {
			e, err := ParseEthernet(tagged)
			sinkErr = err
			sinkU16, sinkBool = e.VLAN()
			sinkU16 = e.EtherType()
		}},
		{"ParseEthernet error", func() { _, sinkErr = ParseEthernet(frame[:10]) }},
		{"ParseARP+accessors", func() {
			a, err := ParseARP(arp)
			sinkErr = err
			sinkU16 = a.Op()
			sinkMAC, sinkMAC = a.SenderMAC(), a.TargetMAC()
			sinkAddr, sinkAddr = a.SenderIP(), a.TargetIP()
		}},
		{"ParseIPv4+accessors", func() {
			ip, err := ParseIPv4(v4)
			sinkErr = err
			sinkInt = ip.HeaderLen() + ip.TotalLen() + ip.FragmentOffset()
			sinkU8 = ip.TOS() + ip.Flags() + ip.TTL() + ip.Protocol()
			sinkU16 = ip.ID() + ip.Checksum()
			sinkBool = ip.ChecksumValid() || ip.IsFragment()
			sinkAddr, sinkAddr = ip.Src(), ip.Dst()
			sinkBytes, sinkBytes = ip.Options(), ip.Payload()
		}},
		{"ParseIPv4Quoted", func() { _, sinkErr = ParseIPv4Quoted(v4[:28]) }},
		{"ParseIPv4 error", func() { _, sinkErr = ParseIPv4(v4[:30]) }},
		{"ParseIPv6+accessors+Walk", func() {
			ip, err := ParseIPv6(v6)
			sinkErr = err
			sinkU8 = ip.TrafficClass() + ip.NextHeader() + ip.HopLimit()
			sinkU32 = ip.FlowLabel()
			sinkInt = ip.PayloadLen()
			sinkAddr, sinkAddr = ip.Src(), ip.Dst()
			sinkBytes = ip.Payload()
			h, err := ip.Walk()
			sinkHeaders, sinkErr = h, err
			sinkBool = h.IsFragment()
		}},
		{"ParseIPv6Quoted", func() { _, sinkErr = ParseIPv6Quoted(v6[:48]) }},
		{"IPv6 Walk error", func() {
			_, sinkErr = v6cut.Walk()
		}},
		{"ParseICMPv4+accessors+Quoted", func() {
			m, err := ParseICMPv4(icmp4)
			sinkErr = err
			sinkU8 = m.Type() + m.Code() + m.Pointer()
			sinkU16 = m.Checksum() + m.EchoID() + m.EchoSeq() + m.MTU()
			sinkBool = m.ChecksumValid() || m.IsError()
			sinkBytes = m.Body()
			q, err := m.Quoted()
			sinkBytes, sinkErr = q, err
		}},
		{"ParseICMPv6+accessors+Quoted", func() {
			m, err := ParseICMPv6(icmp6)
			sinkErr = err
			sinkU8 = m.Type() + m.Code()
			sinkU16 = m.Checksum() + m.EchoID() + m.EchoSeq()
			sinkU32 = m.MTU() + m.Pointer()
			sinkBool = m.ChecksumValid(v6b, v6a) || m.IsError()
			sinkBytes = m.Body()
			q, err := m.Quoted()
			sinkBytes, sinkErr = q, err
		}},
		{"ParseUDP+accessors", func() {
			u, err := ParseUDP(udp)
			sinkErr = err
			sinkU16 = u.SrcPort() + u.DstPort() + u.Checksum()
			sinkInt = u.Length()
			sinkBool = u.ChecksumValid(v4a, v4b) || u.ChecksumValid(v6a, v6b)
			sinkBytes = u.Payload()
		}},
		{"ParseTCP+accessors+Segment", func() {
			s, err := ParseTCP(tcpSeg)
			sinkErr = err
			sinkU16 = s.SrcPort() + s.DstPort() + s.Window() + s.Checksum() + s.Urgent()
			sinkSeq = s.Seq() + s.Ack()
			sinkInt = s.HeaderLen()
			sinkFlags = s.Flags()
			sinkBytes, sinkBytes = s.Options(), s.Payload()
			sinkBool = s.ChecksumValid(v4a, v4b)
			sinkSegment = s.Segment()
			sinkU32 = sinkSegment.SeqLen()
			sinkSeq = sinkSegment.End()
		}},
		{"ParseTCP error", func() { _, sinkErr = ParseTCP(tcpSeg[:30]) }},
		{"ParseOptions", func() { sinkOptions, sinkBool = ParseOptions(opts) }},
		{"ParseOptions SACK", func() { sinkOptions, sinkBool = ParseOptions(sackOpt) }},
		{"Options Len/Put/Has/Shift", func() {
			sinkInt = fullOpts.Len() + fullOpts.Put(out)
			sinkBool = fullOpts.Has(HasMSS)
			sinkU8 = fullOpts.Shift()
		}},
		{"Flags.Has", func() { sinkBool = FlagSYN.Has(FlagSYN) }},
		{"Seq methods", func() {
			s := Seq(0xfffffff0)
			sinkBool = s.LessThan(10) || s.LessEq(10) || s.GreaterThan(10) || s.GreaterEq(10) || s.InWindow(0, 100) || s.InRange(0, 100)
			sinkSeq = SeqMax(s, 10) + SeqMin(s, 10) + s.Add(1) + s.Sub(1)
			sinkU32 = s.Size(10)
			sinkInt = int(s.Diff(10))
		}},
		{"PutEthernet", func() { sinkInt = PutEthernet(out, macA, macB, EtherTypeIPv6) }},
		{"PutARP", func() { sinkInt = PutARP(out, ARPReply, macA, v4a, macB, v4b) }},
		{"PutIPv4", func() { sinkInt = PutIPv4(out, ip4h) }},
		{"PutIPv6", func() { sinkInt = PutIPv6(out, ip6h) }},
		{"PutIPv6Fragment", func() { sinkInt = PutIPv6Fragment(out, ProtoTCP, 8, true, 1) }},
		{"PutICMPv4+SetICMPv4Checksum", func() { sinkInt = PutICMPv4(out, 8, 0, 1); SetICMPv4Checksum(out[:64]) }},
		{"PutICMPv6+SetICMPv6Checksum", func() { sinkInt = PutICMPv6(out, 128, 0, 1); SetICMPv6Checksum(out[:64], v6a, v6b) }},
		{"PutUDP+SetUDPChecksum", func() { sinkInt = PutUDP(out, 1, 2, 64); SetUDPChecksum(out[:64], v4a, v4b) }},
		{"PutTCP+SetTCPChecksum", func() {
			sinkInt = PutTCP(out, TCPHeader{SrcPort: 1, DstPort: 2, Flags: FlagACK}, &fullOpts)
			SetTCPChecksum(out[:100], v6a, v6b)
		}},
		{"PutTCP without options", func() { sinkInt = PutTCP(out, TCPHeader{SrcPort: 1, DstPort: 2, Flags: FlagACK}, nil) }},
		{"Checksum", func() { sinkU16 = Checksum(big, 0) + Checksum(big[1:77], 1) }},
		{"PseudoHeaderChecksum IPv4", func() { sinkU16 = PseudoHeaderChecksum(ProtoTCP, v4a, v4b, 1500) }},
		{"PseudoHeaderChecksum IPv6", func() { sinkU16 = PseudoHeaderChecksum(ProtoTCP, v6a, v6ll, 1500) }},
		{"ChecksumCombine/Update/Update32", func() {
			sinkU16 = ChecksumCombine(1, 2) + ChecksumUpdate(3, 4, 5) + ChecksumUpdate32(6, 7, 8)
		}},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(100, tt.f); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", tt.name, n)
		}
	}
}
