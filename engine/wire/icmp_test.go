package wire

import (
	"bytes"
	"strconv"
	"testing"
)

const (
	// An echo request, identifier 0x1234, sequence 1, 8 bytes of data.
	icmpv4EchoHex = "0800 5435 1234 0001 6162636465666768"
	// Fragmentation needed (RFC 1191), next-hop MTU 1400, quoting the IPv4
	// header of a 1500-byte TCP segment from 10.7.0.1 to 10.7.0.2 and the first
	// 8 bytes of its TCP header.
	icmpv4FragNeededHex = "0304 c6f9 0000 0578" +
		"4500 05dc 0007 4000 4006 2105 0a070001 0a070002" +
		"3039 0050 00000001"
	// An ICMPv6 echo request from fd00::1 to fd00::2.
	icmpv6EchoHex = "8000 e1e5 1234 0001 6162636465666768"
	// Packet too big from fd00::2 to fd00::1, MTU 1240, quoting the fixed header
	// of a packet from fd00::1 to fd00::2 and 8 bytes of its TCP header.
	icmpv6PTBHex = "0200 6dcd 000004d8" +
		"6000 0000 0014 0640 fd000000000000000000000000000001 fd000000000000000000000000000002" +
		"3039 0050 00000001"
)

func TestICMPv4(t *testing.T) {
	b := hexBytes(t, icmpv4EchoHex)
	m, err := ParseICMPv4(b)
	wantErr(t, "echo", err, nil)
	if m.Type() != ICMPv4Echo || m.Code() != 0 || m.Checksum() != 0x5435 || !m.ChecksumValid() ||
		m.EchoID() != 0x1234 || m.EchoSeq() != 1 || m.IsError() || string(m.Body()) != "abcdefgh" || len(m) != 16 {
		t.Errorf("echo: type %d code %d cksum %#04x valid %v id %#x seq %d err %v body %q",
			m.Type(), m.Code(), m.Checksum(), m.ChecksumValid(), m.EchoID(), m.EchoSeq(), m.IsError(), m.Body())
	}

	b = hexBytes(t, icmpv4FragNeededHex)
	m, err = ParseICMPv4(b)
	wantErr(t, "frag needed", err, nil)
	if m.Type() != ICMPv4DstUnreachable || m.Code() != ICMPv4FragNeeded || m.Checksum() != 0xc6f9 ||
		!m.ChecksumValid() || m.MTU() != 1400 || !m.IsError() {
		t.Errorf("frag needed: type %d code %d cksum %#04x valid %v mtu %d err %v",
			m.Type(), m.Code(), m.Checksum(), m.ChecksumValid(), m.MTU(), m.IsError())
	}
	q, err := m.Quoted()
	wantErr(t, "Quoted", err, nil)
	if len(q) != 28 || q.TotalLen() != 1500 || q.Protocol() != ProtoTCP || q.Src() != v4a || q.Dst() != v4b || !q.ChecksumValid() {
		t.Errorf("quoted: len %d total %d proto %d %v>%v", len(q), q.TotalLen(), q.Protocol(), q.Src(), q.Dst())
	}
	// The quoted TCP header is only 8 bytes: too short for ParseTCP, but the
	// ports and sequence number are there.
	_, err = ParseTCP(q.Payload())
	wantErr(t, "ParseTCP of 8 quoted bytes", err, ErrShort)
	if p := q.Payload(); len(p) != 8 || TCP(p).SrcPort() != 12345 || TCP(p).DstPort() != 80 || TCP(p).Seq() != 1 {
		t.Errorf("quoted ports: %x", p)
	}
	// A flipped bit in the body breaks the checksum.
	b[len(b)-1] ^= 0x80
	if m.ChecksumValid() {
		t.Error("corrupted message still verifies")
	}

	// Types.
	for _, c := range []struct {
		typ     uint8
		isError bool
	}{
		{ICMPv4EchoReply, false}, {ICMPv4DstUnreachable, true}, {ICMPv4Echo, false},
		{ICMPv4TimeExceeded, true}, {ICMPv4ParamProblem, true}, {13, false}, {255, false},
	} {
		if got := ICMPv4([]byte{c.typ, 0, 0, 0, 0, 0, 0, 0}).IsError(); got != c.isError {
			t.Errorf("type %d: IsError = %v, want %v", c.typ, got, c.isError)
		}
	}
	// Parameter problem pointer.
	pp := ICMPv4(hexBytes(t, "0c00 0000 14000000"))
	if pp.Pointer() != 20 {
		t.Errorf("Pointer = %d, want 20", pp.Pointer())
	}
}

func TestICMPv4Bad(t *testing.T) {
	b := hexBytes(t, icmpv4FragNeededHex)
	for n := range ICMPHeaderLen {
		_, err := ParseICMPv4(b[:n])
		wantErr(t, "cut to "+strconv.Itoa(n), err, ErrShort)
	}
	// The quoted datagram may be cut anywhere after its header; before that,
	// Quoted fails with ErrShort.
	for n := ICMPHeaderLen; n <= len(b); n++ {
		m, err := ParseICMPv4(b[:n])
		wantErr(t, "cut to "+strconv.Itoa(n), err, nil)
		q, err := m.Quoted()
		if n < ICMPHeaderLen+IPv4MinHeaderLen {
			wantErr(t, "quoted, cut to "+strconv.Itoa(n), err, ErrShort)
			continue
		}
		wantErr(t, "quoted, cut to "+strconv.Itoa(n), err, nil)
		if len(q) != n-ICMPHeaderLen || q.Src() != v4a || q.Dst() != v4b {
			t.Errorf("quoted, cut to %d: %d bytes %v>%v", n, len(q), q.Src(), q.Dst())
		}
	}
	// A quoted datagram with an impossible header fails with its specific error.
	for _, c := range []struct {
		name string
		mod  func(b []byte)
		want error
	}{
		{"version 6", func(b []byte) { b[8] = 0x65 }, ErrVersion},
		{"IHL 4", func(b []byte) { b[8] = 0x44 }, ErrHeaderLength},
		{"IHL 15", func(b []byte) { b[8] = 0x4f }, ErrHeaderLength},
		{"total length 19", func(b []byte) { b[10], b[11] = 0, 19 }, ErrTotalLength},
	} {
		bad := bytes.Clone(b)
		c.mod(bad)
		m, err := ParseICMPv4(bad)
		wantErr(t, c.name, err, nil)
		_, err = m.Quoted()
		wantErr(t, "quoted header with "+c.name, err, c.want)
	}
}

func TestICMPv6(t *testing.T) {
	b := hexBytes(t, icmpv6EchoHex)
	m, err := ParseICMPv6(b)
	wantErr(t, "echo", err, nil)
	if m.Type() != ICMPv6EchoRequest || m.Code() != 0 || m.Checksum() != 0xe1e5 || !m.ChecksumValid(v6a, v6b) ||
		m.EchoID() != 0x1234 || m.EchoSeq() != 1 || m.IsError() || string(m.Body()) != "abcdefgh" {
		t.Errorf("echo: type %d code %d cksum %#04x valid %v id %#x seq %d err %v body %q",
			m.Type(), m.Code(), m.Checksum(), m.ChecksumValid(v6a, v6b), m.EchoID(), m.EchoSeq(), m.IsError(), m.Body())
	}
	// The pseudo-header is covered: other addresses do not verify.
	if m.ChecksumValid(v6a, v6ll) || m.ChecksumValid(v6ll, v6b) {
		t.Error("echo verifies with the wrong addresses")
	}

	b = hexBytes(t, icmpv6PTBHex)
	m, err = ParseICMPv6(b)
	wantErr(t, "packet too big", err, nil)
	if m.Type() != ICMPv6PacketTooBig || m.Code() != 0 || m.Checksum() != 0x6dcd || !m.ChecksumValid(v6b, v6a) ||
		m.MTU() != 1240 || m.Pointer() != 1240 || !m.IsError() {
		t.Errorf("packet too big: type %d code %d cksum %#04x valid %v mtu %d err %v",
			m.Type(), m.Code(), m.Checksum(), m.ChecksumValid(v6b, v6a), m.MTU(), m.IsError())
	}
	q, err := m.Quoted()
	wantErr(t, "Quoted", err, nil)
	if len(q) != 48 || q.PayloadLen() != 20 || q.NextHeader() != ProtoTCP || q.Src() != v6a || q.Dst() != v6b {
		t.Errorf("quoted: len %d plen %d nh %d %v>%v", len(q), q.PayloadLen(), q.NextHeader(), q.Src(), q.Dst())
	}
	if h, err := q.Walk(); err != nil || h.Proto != ProtoTCP || h.Offset != 40 {
		t.Errorf("quoted Walk: %+v, %v", h, err)
	}
	for _, c := range []struct {
		typ     uint8
		isError bool
	}{
		{0, true}, {ICMPv6DstUnreachable, true}, {ICMPv6PacketTooBig, true}, {ICMPv6TimeExceeded, true},
		{ICMPv6ParamProblem, true}, {127, true}, {ICMPv6EchoRequest, false}, {ICMPv6EchoReply, false},
		{135, false}, {255, false},
	} {
		if got := ICMPv6([]byte{c.typ, 0, 0, 0, 0, 0, 0, 0}).IsError(); got != c.isError {
			t.Errorf("type %d: IsError = %v, want %v", c.typ, got, c.isError)
		}
	}
}

func TestICMPv6Bad(t *testing.T) {
	b := hexBytes(t, icmpv6PTBHex)
	for n := range ICMPHeaderLen {
		_, err := ParseICMPv6(b[:n])
		wantErr(t, "cut to "+strconv.Itoa(n), err, ErrShort)
	}
	for n := ICMPHeaderLen; n <= len(b); n++ {
		m, err := ParseICMPv6(b[:n])
		wantErr(t, "cut to "+strconv.Itoa(n), err, nil)
		q, err := m.Quoted()
		if n < ICMPHeaderLen+IPv6HeaderLen {
			wantErr(t, "quoted, cut to "+strconv.Itoa(n), err, ErrShort)
			continue
		}
		wantErr(t, "quoted, cut to "+strconv.Itoa(n), err, nil)
		if len(q) != n-ICMPHeaderLen || q.Src() != v6a || q.Dst() != v6b {
			t.Errorf("quoted, cut to %d: %d bytes %v>%v", n, len(q), q.Src(), q.Dst())
		}
	}
	bad := bytes.Clone(b)
	bad[8] = 0x45
	m, _ := ParseICMPv6(bad)
	_, err := m.Quoted()
	wantErr(t, "quoted IPv4 in ICMPv6", err, ErrVersion)
}

func TestPutICMP(t *testing.T) {
	b := make([]byte, 16)
	for i := range b {
		b[i] = 0xee
	}
	if n := PutICMPv4(b, ICMPv4Echo, 0, 0x12340001); n != ICMPHeaderLen {
		t.Fatalf("PutICMPv4 = %d", n)
	}
	copy(b[8:], "abcdefgh")
	SetICMPv4Checksum(b)
	if want := hexBytes(t, icmpv4EchoHex); !bytes.Equal(b, want) {
		t.Fatalf("echo built as %x, want %x", b, want)
	}
	// SetICMPv4Checksum ignores what the field held before.
	b[2], b[3] = 0xab, 0xcd
	SetICMPv4Checksum(b)
	if !ICMPv4(b).ChecksumValid() || ICMPv4(b).Checksum() != 0x5435 {
		t.Fatalf("checksum %#04x after a second SetICMPv4Checksum", ICMPv4(b).Checksum())
	}

	b = make([]byte, 16)
	if n := PutICMPv6(b, ICMPv6EchoRequest, 0, 0x12340001); n != ICMPHeaderLen {
		t.Fatalf("PutICMPv6 = %d", n)
	}
	copy(b[8:], "abcdefgh")
	b[2], b[3] = 0xff, 0xff
	SetICMPv6Checksum(b, v6a, v6b)
	if want := hexBytes(t, icmpv6EchoHex); !bytes.Equal(b, want) {
		t.Fatalf("ICMPv6 echo built as %x, want %x", b, want)
	}
	// An error message with the quoted packet built from the parts.
	ptb := hexBytes(t, icmpv6PTBHex)
	b = make([]byte, len(ptb))
	PutICMPv6(b, ICMPv6PacketTooBig, 0, 1240)
	copy(b[8:], ptb[8:])
	SetICMPv6Checksum(b, v6b, v6a)
	if !bytes.Equal(b, ptb) {
		t.Fatalf("packet too big built as %x, want %x", b, ptb)
	}
	// Random bodies of odd and even lengths verify after SetICMP*Checksum.
	r := newRand(30)
	for n := ICMPHeaderLen; n < 200; n++ {
		m := randBytes(r, n)
		SetICMPv4Checksum(m)
		if !ICMPv4(m).ChecksumValid() {
			t.Fatalf("ICMPv4 of %d bytes does not verify", n)
		}
		SetICMPv6Checksum(m, v6ll, v6a)
		if !ICMPv6(m).ChecksumValid(v6ll, v6a) {
			t.Fatalf("ICMPv6 of %d bytes does not verify", n)
		}
	}
	assertPanics(t, "PutICMPv4 into 7 bytes", func() { PutICMPv4(make([]byte, 7), 8, 0, 0) })
	assertPanics(t, "PutICMPv6 into 7 bytes", func() { PutICMPv6(make([]byte, 7), 128, 0, 0) })
}
