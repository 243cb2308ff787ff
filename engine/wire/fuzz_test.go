package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

// One fuzz target per parser. Each calls the parser and, when it accepts the
// input, every accessor, checking the invariants the views promise: the view
// lies within the input, header and payload add up to the view, parsing the
// view again gives the same view, and rebuilding the header from the parsed
// values with the Put builders gives the same fields back. A rejection must be
// one of the parser's documented errors. Seeds are in testdata/fuzz/<Target>/
// (the kernel packets of testdata/golden and hand-made edge cases; see
// TestWriteFuzzCorpus).

// isOneOf reports whether err is one of the given errors.
func isOneOf(err error, errs ...error) bool {
	for _, e := range errs {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// sameView reports whether a and b are the same slice of memory.
func sameView(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

func FuzzEthernet(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { checkEthernet(t, data) })
}

func checkEthernet(t *testing.T, data []byte) {
	e, err := ParseEthernet(data)
	if err != nil {
		if !isOneOf(err, ErrShort, ErrUnsupported) || e != nil {
			t.Fatalf("ParseEthernet: %v, view %x", err, []byte(e))
		}
		if len(data) >= EthernetHeaderLen+2*vlanTagLen && errors.Is(err, ErrShort) {
			t.Fatalf("ErrShort for %d bytes", len(data))
		}
		return
	}
	hl := e.HeaderLen()
	if !sameView(e, data) || (hl != 14 && hl != 18 && hl != 22) || hl > len(e) || len(e.Payload())+hl != len(e) {
		t.Fatalf("view %d bytes of %d, HeaderLen %d, payload %d", len(e), len(data), hl, len(e.Payload()))
	}
	id, ok := e.VLAN()
	if ok != (hl > EthernetHeaderLen) || id > 0xfff || (ok && id != binary.BigEndian.Uint16(e[hl-4:])&0xfff) {
		t.Fatalf("VLAN %d, %v with header length %d", id, ok, hl)
	}
	et := e.EtherType()
	if et < 0x0600 || et != binary.BigEndian.Uint16(e[hl-2:]) {
		t.Fatalf("EtherType %#04x", et)
	}
	if len(e.Dst().String()) != 17 || len(e.Src().String()) != 17 {
		t.Fatal("MAC.String")
	}
	if again, err := ParseEthernet(e); err != nil || !sameView(again, e) {
		t.Fatalf("reparse: %v", err)
	}
	var hdr [EthernetHeaderLen]byte
	PutEthernet(hdr[:], e.Dst(), e.Src(), et)
	if !bytes.Equal(hdr[:12], e[:12]) || !bytes.Equal(hdr[12:], e[hl-2:hl]) {
		t.Fatalf("PutEthernet rebuilt %x", hdr)
	}
	switch et {
	case EtherTypeARP:
		checkARP(t, e.Payload())
	case EtherTypeIPv4:
		checkIPv4(t, e.Payload())
	case EtherTypeIPv6:
		checkIPv6(t, e.Payload())
	}
}

func FuzzARP(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { checkARP(t, data) })
}

func checkARP(t *testing.T, data []byte) {
	a, err := ParseARP(data)
	if err != nil {
		if !isOneOf(err, ErrShort, ErrUnsupported) || a != nil || (errors.Is(err, ErrShort) != (len(data) < ARPLen)) {
			t.Fatalf("ParseARP of %d bytes: %v", len(data), err)
		}
		return
	}
	if len(a) != ARPLen || &a[0] != &data[0] {
		t.Fatalf("view %d bytes", len(a))
	}
	var out [ARPLen]byte
	PutARP(out[:], a.Op(), a.SenderMAC(), a.SenderIP(), a.TargetMAC(), a.TargetIP())
	if !bytes.Equal(out[:], a) {
		t.Fatalf("PutARP rebuilt %x, want %x", out, []byte(a))
	}
	if !a.SenderIP().Is4() || !a.TargetIP().Is4() {
		t.Fatal("ARP addresses are not IPv4")
	}
}

func FuzzIPv4(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { checkIPv4(t, data) })
}

func checkIPv4(t *testing.T, data []byte) {
	ip, err := ParseIPv4(data)
	q, qerr := ParseIPv4Quoted(data)
	if err != nil {
		if !isOneOf(err, ErrShort, ErrVersion, ErrHeaderLength, ErrTotalLength) || ip != nil {
			t.Fatalf("ParseIPv4: %v", err)
		}
		// The quoted parser differs only in accepting a total length past the buffer.
		if qerr != nil && !errors.Is(qerr, err) {
			t.Fatalf("ParseIPv4: %v, ParseIPv4Quoted: %v", err, qerr)
		}
		if qerr == nil {
			if !errors.Is(err, ErrTotalLength) || q.TotalLen() <= len(data) || !sameView(q, data) {
				t.Fatalf("ParseIPv4: %v, but ParseIPv4Quoted accepted %d of %d bytes", err, len(q), len(data))
			}
			checkIPv4View(t, q, true)
		}
		return
	}
	if qerr != nil || !sameView(q, ip) {
		t.Fatalf("ParseIPv4 accepted, ParseIPv4Quoted: %v, %d bytes", qerr, len(q))
	}
	if len(ip) != ip.TotalLen() || len(ip) > len(data) || &ip[0] != &data[0] {
		t.Fatalf("view %d bytes, total length %d, input %d", len(ip), ip.TotalLen(), len(data))
	}
	if again, err := ParseIPv4(ip); err != nil || !sameView(again, ip) {
		t.Fatalf("reparse: %v", err)
	}
	checkIPv4View(t, ip, false)
}

func checkIPv4View(t *testing.T, ip IPv4, quoted bool) {
	hl := ip.HeaderLen()
	if hl < IPv4MinHeaderLen || hl > IPv4MaxHeaderLen || hl > len(ip) || hl%4 != 0 ||
		len(ip.Options())+IPv4MinHeaderLen != hl || len(ip.Payload())+hl != len(ip) || ip.TotalLen() < hl {
		t.Fatalf("header %d, options %d, payload %d, view %d", hl, len(ip.Options()), len(ip.Payload()), len(ip))
	}
	if ip.Flags() > 7 || ip.FragmentOffset()%8 != 0 || ip.FragmentOffset() > 0x1fff*8 {
		t.Fatalf("flags %d offset %d", ip.Flags(), ip.FragmentOffset())
	}
	if ip.IsFragment() != (ip.Flags()&IPv4MoreFragments != 0 || ip.FragmentOffset() != 0) {
		t.Fatal("IsFragment")
	}
	_, _, _, _ = ip.TOS(), ip.ID(), ip.TTL(), ip.Checksum()
	if !ip.Src().Is4() || !ip.Dst().Is4() {
		t.Fatal("addresses are not IPv4")
	}
	// Rebuild the header; it equals the original but for the checksum, which
	// PutIPv4 always makes valid.
	out := make([]byte, hl)
	PutIPv4(out, IPv4Header{TOS: ip.TOS(), TotalLen: ip.TotalLen(), ID: ip.ID(), Flags: ip.Flags(),
		FragmentOffset: ip.FragmentOffset(), TTL: ip.TTL(), Protocol: ip.Protocol(), Src: ip.Src(), Dst: ip.Dst(),
		Options: ip.Options()})
	if !bytes.Equal(out[:10], ip[:10]) || !bytes.Equal(out[12:], ip[12:hl]) || !IPv4(out).ChecksumValid() {
		t.Fatalf("PutIPv4 rebuilt %x, want %x", out, []byte(ip[:hl]))
	}
	if ip.ChecksumValid() && refSum(ip[:hl], 0) != 0xffff {
		t.Fatal("ChecksumValid disagrees with the reference sum")
	}
	if ip.FragmentOffset() != 0 {
		return
	}
	checkUpper(t, ip.Protocol(), ip.Payload(), ip.Src(), ip.Dst(), quoted)
}

// checkUpper runs the checks of the upper-layer parser on an IP payload.
func checkUpper(t *testing.T, proto uint8, b []byte, src, dst netip.Addr, quoted bool) {
	if quoted {
		return // cut short: the upper layer is what the ICMP targets fuzz
	}
	switch proto {
	case ProtoTCP:
		checkTCPAddrs(t, b, src, dst)
	case ProtoUDP:
		checkUDPAddrs(t, b, src, dst)
	case ProtoICMPv4:
		checkICMPv4(t, b)
	case ProtoICMPv6:
		checkICMPv6Addrs(t, b, src, dst)
	}
}

func FuzzIPv6(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { checkIPv6(t, data) })
}

func checkIPv6(t *testing.T, data []byte) {
	ip, err := ParseIPv6(data)
	q, qerr := ParseIPv6Quoted(data)
	if err != nil {
		if !isOneOf(err, ErrShort, ErrVersion, ErrTotalLength) || ip != nil {
			t.Fatalf("ParseIPv6: %v", err)
		}
		if qerr != nil && !errors.Is(qerr, err) {
			t.Fatalf("ParseIPv6: %v, ParseIPv6Quoted: %v", err, qerr)
		}
		if qerr == nil {
			if !errors.Is(err, ErrTotalLength) || !sameView(q, data) {
				t.Fatalf("ParseIPv6: %v, but ParseIPv6Quoted accepted %d of %d bytes", err, len(q), len(data))
			}
			checkIPv6View(t, q, true)
		}
		return
	}
	if qerr != nil || !sameView(q, ip) {
		t.Fatalf("ParseIPv6 accepted, ParseIPv6Quoted: %v", qerr)
	}
	if len(ip) != IPv6HeaderLen+ip.PayloadLen() || len(ip) > len(data) || &ip[0] != &data[0] {
		t.Fatalf("view %d bytes, payload length %d, input %d", len(ip), ip.PayloadLen(), len(data))
	}
	if again, err := ParseIPv6(ip); err != nil || !sameView(again, ip) {
		t.Fatalf("reparse: %v", err)
	}
	checkIPv6View(t, ip, false)
}

func checkIPv6View(t *testing.T, ip IPv6, quoted bool) {
	if len(ip.Payload())+IPv6HeaderLen != len(ip) || ip.FlowLabel() > 0xfffff || !ip.Src().Is6() || !ip.Dst().Is6() {
		t.Fatalf("payload %d of %d", len(ip.Payload()), len(ip))
	}
	var out [IPv6HeaderLen]byte
	PutIPv6(out[:], IPv6Header{TrafficClass: ip.TrafficClass(), FlowLabel: ip.FlowLabel(), PayloadLen: ip.PayloadLen(),
		NextHeader: ip.NextHeader(), HopLimit: ip.HopLimit(), Src: ip.Src(), Dst: ip.Dst()})
	if !bytes.Equal(out[:], ip[:IPv6HeaderLen]) {
		t.Fatalf("PutIPv6 rebuilt %x, want %x", out, []byte(ip[:IPv6HeaderLen]))
	}
	h, err := ip.Walk()
	if err != nil {
		if !isOneOf(err, ErrTooManyHeaders, ErrExtHeaderOrder, ErrHeaderLength) {
			t.Fatalf("Walk: %v", err)
		}
		return
	}
	if h.Offset < IPv6HeaderLen || h.Offset > len(ip) || h.Offset%8 != 0 {
		t.Fatalf("Walk: upper layer at %d of %d", h.Offset, len(ip))
	}
	switch h.Proto {
	case ProtoHopByHop, ProtoRouting, ProtoFragment, ProtoDstOpts:
		if h.Fragment == 0 || h.FragmentOffset == 0 {
			t.Fatalf("Walk stopped at extension header %d without a non-first fragment", h.Proto)
		}
	}
	if h.HopByHop != 0 && h.HopByHop != IPv6HeaderLen {
		t.Fatalf("hop-by-hop at %d", h.HopByHop)
	}
	for _, off := range []int{h.HopByHop, h.Routing, h.DstOpts, h.Fragment} {
		if off != 0 && (off < IPv6HeaderLen || off+8 > h.Offset || off%8 != 0) {
			t.Fatalf("extension header at %d, upper layer at %d", off, h.Offset)
		}
	}
	if off := h.Fragment; off != 0 {
		var f [IPv6FragmentHeaderLen]byte
		PutIPv6Fragment(f[:], ip[off], h.FragmentOffset, h.MoreFragments, h.FragmentID)
		fo := binary.BigEndian.Uint16(ip[off+2:])
		if f[0] != ip[off] || binary.BigEndian.Uint16(f[2:]) != fo&0xfff9 || !bytes.Equal(f[4:], ip[off+4:off+8]) {
			t.Fatalf("PutIPv6Fragment rebuilt %x from %x", f, []byte(ip[off:off+8]))
		}
		if h.IsFragment() != (h.FragmentOffset != 0 || h.MoreFragments) {
			t.Fatal("IsFragment")
		}
		if h.FragmentOffset != 0 {
			return
		}
	} else if h.IsFragment() {
		t.Fatal("IsFragment without a fragment header")
	}
	checkUpper(t, h.Proto, ip[h.Offset:], ip.Src(), ip.Dst(), quoted)
}

func FuzzICMPv4(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { checkICMPv4(t, data) })
}

func checkICMPv4(t *testing.T, data []byte) {
	m, err := ParseICMPv4(data)
	if err != nil {
		if !errors.Is(err, ErrShort) || len(data) >= ICMPHeaderLen || m != nil {
			t.Fatalf("ParseICMPv4 of %d bytes: %v", len(data), err)
		}
		return
	}
	if !sameView(m, data) || len(m.Body())+ICMPHeaderLen != len(m) {
		t.Fatalf("view %d, body %d", len(m), len(m.Body()))
	}
	_, _, _, _, _, _ = m.Code(), m.EchoID(), m.EchoSeq(), m.MTU(), m.Pointer(), m.Checksum()
	if m.ChecksumValid() != (refSum(m, 0) == 0xffff) {
		t.Fatal("ChecksumValid disagrees with the reference sum")
	}
	out := make([]byte, len(m))
	PutICMPv4(out, m.Type(), m.Code(), binary.BigEndian.Uint32(m[4:]))
	copy(out[ICMPHeaderLen:], m.Body())
	SetICMPv4Checksum(out)
	if !ICMPv4(out).ChecksumValid() || !bytes.Equal(out[:2], m[:2]) || !bytes.Equal(out[4:], m[4:]) {
		t.Fatalf("rebuilt %x from %x", out, []byte(m))
	}
	if m.IsError() {
		q, err := m.Quoted()
		if err != nil {
			if !isOneOf(err, ErrShort, ErrVersion, ErrHeaderLength, ErrTotalLength) {
				t.Fatalf("Quoted: %v", err)
			}
			return
		}
		if len(q) > len(m.Body()) || (len(q) > 0 && &q[0] != &m.Body()[0]) {
			t.Fatalf("quoted view %d bytes of a %d-byte body", len(q), len(m.Body()))
		}
		checkIPv4View(t, q, true)
	}
}

func FuzzICMPv6(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { checkICMPv6Addrs(t, data, v6a, v6b) })
}

func checkICMPv6Addrs(t *testing.T, data []byte, src, dst netip.Addr) {
	m, err := ParseICMPv6(data)
	if err != nil {
		if !errors.Is(err, ErrShort) || len(data) >= ICMPHeaderLen || m != nil {
			t.Fatalf("ParseICMPv6 of %d bytes: %v", len(data), err)
		}
		return
	}
	if !sameView(m, data) || len(m.Body())+ICMPHeaderLen != len(m) {
		t.Fatalf("view %d, body %d", len(m), len(m.Body()))
	}
	_, _, _, _, _, _ = m.Code(), m.EchoID(), m.EchoSeq(), m.MTU(), m.Pointer(), m.Checksum()
	if m.ChecksumValid(src, dst) != (refSum(m, refPseudo(ProtoICMPv6, src, dst, len(m))) == 0xffff) {
		t.Fatal("ChecksumValid disagrees with the reference sum")
	}
	out := make([]byte, len(m))
	PutICMPv6(out, m.Type(), m.Code(), binary.BigEndian.Uint32(m[4:]))
	copy(out[ICMPHeaderLen:], m.Body())
	SetICMPv6Checksum(out, src, dst)
	if !ICMPv6(out).ChecksumValid(src, dst) || !bytes.Equal(out[:2], m[:2]) || !bytes.Equal(out[4:], m[4:]) {
		t.Fatalf("rebuilt %x from %x", out, []byte(m))
	}
	if m.IsError() != (m.Type() < 128) {
		t.Fatal("IsError")
	}
	if m.IsError() {
		q, err := m.Quoted()
		if err != nil {
			if !isOneOf(err, ErrShort, ErrVersion) {
				t.Fatalf("Quoted: %v", err)
			}
			return
		}
		if len(q) > len(m.Body()) || &q[0] != &m.Body()[0] {
			t.Fatalf("quoted view %d bytes of a %d-byte body", len(q), len(m.Body()))
		}
		checkIPv6View(t, q, true)
	}
}

func FuzzUDP(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		checkUDPAddrs(t, data, v4a, v4b)
		checkUDPAddrs(t, data, v6a, v6ll)
	})
}

func checkUDPAddrs(t *testing.T, data []byte, src, dst netip.Addr) {
	u, err := ParseUDP(data)
	if err != nil {
		if !isOneOf(err, ErrShort, ErrTotalLength) || u != nil || errors.Is(err, ErrShort) != (len(data) < UDPHeaderLen) {
			t.Fatalf("ParseUDP of %d bytes: %v", len(data), err)
		}
		return
	}
	if len(u) != u.Length() || len(u) > len(data) || &u[0] != &data[0] || len(u.Payload())+UDPHeaderLen != len(u) {
		t.Fatalf("view %d, length %d, input %d", len(u), u.Length(), len(data))
	}
	if again, err := ParseUDP(u); err != nil || !sameView(again, u) {
		t.Fatalf("reparse: %v", err)
	}
	valid := u.ChecksumValid(src, dst)
	switch {
	case u.Checksum() == 0:
		if valid != src.Is4() {
			t.Fatalf("zero checksum over %v: valid %v", src, valid)
		}
	case valid != (refSum(u, refPseudo(ProtoUDP, src, dst, len(u))) == 0xffff):
		t.Fatal("ChecksumValid disagrees with the reference sum")
	}
	out := make([]byte, len(u))
	PutUDP(out, u.SrcPort(), u.DstPort(), u.Length())
	copy(out[UDPHeaderLen:], u.Payload())
	SetUDPChecksum(out, src, dst)
	if !UDP(out).ChecksumValid(src, dst) || UDP(out).Checksum() == 0 || !bytes.Equal(out[:6], u[:6]) || !bytes.Equal(out[8:], u[8:]) {
		t.Fatalf("rebuilt %x from %x", out, []byte(u))
	}
}

func FuzzTCP(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { checkTCPAddrs(t, data, v4a, v4b) })
}

func checkTCPAddrs(t *testing.T, data []byte, src, dst netip.Addr) {
	seg, err := ParseTCP(data)
	if err != nil {
		if !isOneOf(err, ErrShort, ErrHeaderLength) || seg != nil || errors.Is(err, ErrShort) != (len(data) < TCPMinHeaderLen) {
			t.Fatalf("ParseTCP of %d bytes: %v", len(data), err)
		}
		return
	}
	hl := seg.HeaderLen()
	if !sameView(seg, data) || hl < TCPMinHeaderLen || hl > TCPMaxHeaderLen || hl%4 != 0 || hl > len(seg) ||
		len(seg.Options())+TCPMinHeaderLen != hl || len(seg.Payload())+hl != len(seg) {
		t.Fatalf("header %d, options %d, payload %d, view %d", hl, len(seg.Options()), len(seg.Payload()), len(seg))
	}
	if seg.ChecksumValid(src, dst) != (refSum(seg, refPseudo(ProtoTCP, src, dst, len(seg))) == 0xffff) {
		t.Fatal("ChecksumValid disagrees with the reference sum")
	}
	if seg.Flags().String() == "" {
		t.Fatal("empty Flags.String")
	}
	o, _ := ParseOptions(seg.Options())
	s := seg.Segment()
	if s.Seq != seg.Seq() || s.Ack != seg.Ack() || s.Window != seg.Window() || s.Flags != seg.Flags() ||
		s.Len != len(seg.Payload()) || s.Opts != o {
		t.Fatalf("Segment %+v disagrees with the accessors", s)
	}
	want := uint32(s.Len)
	if s.Flags.Has(FlagSYN) {
		want++
	}
	if s.Flags.Has(FlagFIN) {
		want++
	}
	if s.SeqLen() != want || s.End() != s.Seq.Add(want) {
		t.Fatalf("SeqLen %d End %d", s.SeqLen(), s.End())
	}
	checkOptions(t, seg.Options())
	// Rebuild with the parsed options: same fields, options as Put lays them out.
	h := TCPHeader{SrcPort: seg.SrcPort(), DstPort: seg.DstPort(), Seq: seg.Seq(), Ack: seg.Ack(),
		Flags: seg.Flags(), Window: seg.Window(), Urgent: seg.Urgent()}
	out := make([]byte, TCPMaxHeaderLen+len(seg.Payload()))
	n := PutTCP(out, h, &o)
	out = out[:n+len(seg.Payload())]
	copy(out[n:], seg.Payload())
	SetTCPChecksum(out, src, dst)
	r, err := ParseTCP(out)
	if err != nil {
		t.Fatalf("ParseTCP of the rebuilt segment: %v", err)
	}
	rs := r.Segment()
	if (TCPHeader{r.SrcPort(), r.DstPort(), r.Seq(), r.Ack(), r.Flags(), r.Window(), r.Urgent()}) != h ||
		!bytes.Equal(r.Payload(), seg.Payload()) || !r.ChecksumValid(src, dst) || rs.Opts != putExpected(o) {
		t.Fatalf("rebuilt segment %x from %x", out, []byte(seg))
	}
}

func FuzzTCPOptions(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { checkOptions(t, data) })
}

func checkOptions(t *testing.T, data []byte) {
	o, ok := ParseOptions(data)
	if ro, rok := refParseOptions(data); normSACK(o) != ro || ok != rok {
		t.Fatalf("ParseOptions(%x) = %+v, %v; reference %+v, %v", data, o, ok, ro, rok)
	}
	if o.Present&^(HasMSS|HasWindowScale|HasSACKPermitted|HasTimestamps|HasSACK) != 0 ||
		o.NumSACK > MaxSACKBlocks || o.Has(HasSACK) != (o.NumSACK > 0) || o.Shift() > MaxWindowShift {
		t.Fatalf("ParseOptions(%x) = %+v", data, o)
	}
	var b [TCPMaxOptionLen]byte
	n := o.Put(b[:])
	if n != o.Len() || n > TCPMaxOptionLen || n%4 != 0 {
		t.Fatalf("Put = %d, Len = %d", n, o.Len())
	}
	p, pok := ParseOptions(b[:n])
	if !pok || p != putExpected(o) {
		t.Fatalf("Put(%+v) = %x, parsed back as %+v, %v", o, b[:n], p, pok)
	}
	var b2 [TCPMaxOptionLen]byte
	if n2 := p.Put(b2[:]); n2 != n || b2 != b {
		t.Fatalf("second Put %x, first %x", b2[:n2], b[:n])
	}
}

// normSACK zeroes the SACK blocks past NumSACK (a second SACK option with fewer
// blocks leaves the earlier option's extra blocks in place).
func normSACK(o Options) Options {
	for i := int(o.NumSACK); i < MaxSACKBlocks; i++ {
		o.SACK[i] = SACKBlock{}
	}
	return o
}

// refParseOptions is a plain reading of RFC 9293 §3.2, RFC 7323 and RFC 2018
// to compare ParseOptions with.
func refParseOptions(b []byte) (Options, bool) {
	var o Options
	i := 0
	for i < len(b) {
		switch b[i] {
		case OptEOL:
			return o, true
		case OptNOP:
			i++
			continue
		}
		if i+1 >= len(b) || b[i+1] < 2 || i+int(b[i+1]) > len(b) {
			return o, false
		}
		kind, n, v := b[i], int(b[i+1]), b[i+2:i+int(b[i+1])]
		switch {
		case kind == OptMSS && n == 4:
			o.Present |= HasMSS
			o.MSS = uint16(v[0])<<8 | uint16(v[1])
		case kind == OptWindowScale && n == 3:
			o.Present |= HasWindowScale
			o.WindowScale = v[0]
		case kind == OptSACKPermitted && n == 2:
			o.Present |= HasSACKPermitted
		case kind == OptTimestamps && n == 10:
			o.Present |= HasTimestamps
			o.TSVal = binary.BigEndian.Uint32(v)
			o.TSEcr = binary.BigEndian.Uint32(v[4:])
		case kind == OptSACK && n >= 10 && (n-2)%8 == 0:
			o.Present |= HasSACK
			o.NumSACK = 0
			o.SACK = [MaxSACKBlocks]SACKBlock{}
			for j := 0; j < (n-2)/8 && j < MaxSACKBlocks; j++ {
				o.SACK[j] = SACKBlock{Seq(binary.BigEndian.Uint32(v[8*j:])), Seq(binary.BigEndian.Uint32(v[8*j+4:]))}
				o.NumSACK++
			}
		case kind == OptMSS || kind == OptWindowScale || kind == OptSACKPermitted || kind == OptTimestamps || kind == OptSACK:
			return o, false // a known kind with the wrong length
		}
		i += n
	}
	return o, true
}

func FuzzChecksum(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, initial uint16) {
		for off := range min(2, len(data)+1) {
			b := data[off:]
			if got, want := Checksum(b, initial), refSum(b, initial); got != want {
				t.Fatalf("Checksum(%x, %#04x) = %#04x, reference %#04x", b, initial, got, want)
			}
		}
		whole := Checksum(data, 0)
		for cut := 0; cut <= len(data); cut += 2 {
			if got := ChecksumCombine(Checksum(data[:cut], 0), Checksum(data[cut:], 0)); got != whole {
				t.Fatalf("split at %d: combined %#04x, whole %#04x", cut, got, whole)
			}
		}
		// Treat the input as a header whose first word is the checksum field,
		// change its second word to initial and update the field incrementally.
		if len(data) < 4 {
			return
		}
		h := bytes.Clone(data[:len(data)&^1])
		h[0], h[1] = 0, 0
		field := ^Checksum(h, 0)
		binary.BigEndian.PutUint16(h, field)
		old := binary.BigEndian.Uint16(h[2:])
		inc := ChecksumUpdate(field, old, initial)
		binary.BigEndian.PutUint16(h[2:], initial)
		h[0], h[1] = 0, 0
		if allZero(h) {
			return // ~0 is 0xffff by a full sum and 0x0000 incrementally; both mean "no data"
		}
		if full := ^Checksum(h, 0); inc != full {
			t.Fatalf("ChecksumUpdate(%#04x, %#04x, %#04x) = %#04x, full recomputation %#04x", field, old, initial, inc, full)
		}
		if len(h) >= 6 {
			old32 := binary.BigEndian.Uint32(h[2:])
			new32 := uint32(initial)<<16 | uint32(^initial)
			binary.BigEndian.PutUint16(h, inc)
			inc = ChecksumUpdate32(inc, old32, new32)
			binary.BigEndian.PutUint32(h[2:], new32)
			h[0], h[1] = 0, 0
			if full := ^Checksum(h, 0); inc != full && !allZero(h) {
				t.Fatalf("ChecksumUpdate32: %#04x, full recomputation %#04x", inc, full)
			}
		}
	})
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
